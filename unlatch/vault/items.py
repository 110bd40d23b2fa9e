"""Vault items: the plaintext model, its bounds and its (padded) encoding.

The encoding is JSON *inside* the AEAD ciphertext; nothing here is ever
written in the clear. Plaintexts are padded to a multiple of
:data:`PAD_TO` bytes so the file does not reveal exact field lengths.

An item has a *type* (:data:`ITEM_TYPES`): a login, a secure note, a payment
card, an identity or an SSH key. The login fields (username, password, URLs,
TOTP secret) stay top-level on every item, as before types existed; what only
one type has lives in ``data`` under the keys :data:`TYPE_FIELDS` lists for it
(one table, also what a UI renders forms from). Any item may carry custom
fields (text, hidden or URL) and be a favourite.

Encoding version 1 (before item types) is still read: such an item is a login
with no custom fields, and it is written as version 2 on its next edit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from unlatch.vault import totp
from unlatch.vault.errors import InvalidItemError

PAD_TO = 256
MAX_PLAINTEXT = 64 * 1024
ENCODING_VERSION = 2
READABLE_ENCODINGS = (1, 2)

# Field bounds: generous for real use, small enough that a hostile input
# cannot make an item (or the agent's reply) huge.
LIMITS = {"title": 256, "username": 1024, "password": 4096, "notes": 32 * 1024}
MAX_URLS, MAX_URL_LEN = 32, 2048
MAX_TAGS, MAX_TAG_LEN = 64, 64
MAX_FIELDS, MAX_FIELD_NAME, MAX_FIELD_VALUE = 64, 128, 4096
# The item's text and list-of-text fields (the ones a user edits).
TEXT_FIELDS = ("title", "username", "password", "notes", "totp_secret")
LIST_FIELDS = ("urls", "tags")
# What an edit may change (everything but id, version and times).
EDITABLE_FIELDS = (*TEXT_FIELDS, *LIST_FIELDS, "type", "favorite", "fields", "data")

LOGIN, NOTE, CARD, IDENTITY, SSH_KEY = "login", "note", "card", "identity", "ssh_key"
ITEM_TYPES = (LOGIN, NOTE, CARD, IDENTITY, SSH_KEY)
FIELD_KINDS = ("text", "hidden", "url")
#: How a UI names each type (and the form's type picker lists them, in this order).
TYPE_LABELS = {
    LOGIN: "Login",
    NOTE: "Secure note",
    CARD: "Payment card",
    IDENTITY: "Identity",
    SSH_KEY: "SSH key",
}


@dataclass(frozen=True)
class DataField:
    """One type-specific field: its key in ``Item.data``, how to show it, its bound.

    ``secret`` values are left out of listings (:func:`public_view`) like the
    password, and shown hidden with a copy button in a UI.
    """

    key: str
    label: str
    secret: bool = False
    multiline: bool = False
    limit: int = 1024


TYPE_FIELDS: dict[str, tuple[DataField, ...]] = {
    LOGIN: (),
    NOTE: (),
    CARD: (
        DataField("cardholder", "Cardholder name"),
        DataField("brand", "Brand", limit=64),
        DataField("number", "Card number", secret=True, limit=64),
        DataField("exp_month", "Expiry month", limit=2),
        DataField("exp_year", "Expiry year", limit=4),
        DataField("code", "Security code", secret=True, limit=16),
        DataField("pin", "PIN", secret=True, limit=16),
    ),
    IDENTITY: (
        DataField("honorific", "Title", limit=32),
        DataField("first_name", "First name"),
        DataField("middle_name", "Middle name"),
        DataField("last_name", "Last name"),
        DataField("company", "Company"),
        DataField("email", "Email"),
        DataField("phone", "Phone", limit=64),
        DataField("address1", "Address"),
        DataField("address2", "Address (line 2)"),
        DataField("address3", "Address (line 3)"),
        DataField("city", "City"),
        DataField("state", "State or province"),
        DataField("postal_code", "Postal code", limit=32),
        DataField("country", "Country"),
        DataField("birth_date", "Date of birth", limit=32),
        DataField("ssn", "National ID / SSN", secret=True, limit=64),
        DataField("passport_number", "Passport number", secret=True, limit=64),
        DataField("license_number", "Licence number", secret=True, limit=64),
    ),
    SSH_KEY: (
        DataField("private_key", "Private key", secret=True, multiline=True, limit=16 * 1024),
        DataField("public_key", "Public key", multiline=True, limit=8 * 1024),
        DataField("fingerprint", "Fingerprint", limit=256),
    ),
}


@dataclass
class CustomField:
    """A named extra value on any item; ``hidden`` values are treated like passwords."""

    name: str
    value: str = field(default="", repr=False)
    kind: str = "text"

    def validate(self) -> None:
        """Raise :class:`InvalidItemError` when out of bounds."""
        if not self.name.strip() or len(self.name) > MAX_FIELD_NAME:
            raise InvalidItemError(f"a custom field needs a name of 1-{MAX_FIELD_NAME} characters")
        if len(self.value) > MAX_FIELD_VALUE:
            raise InvalidItemError(
                f"custom field {self.name!r} must be at most {MAX_FIELD_VALUE} characters"
            )
        if self.kind not in FIELD_KINDS:
            raise InvalidItemError(f"a custom field's kind is one of {', '.join(FIELD_KINDS)}")


@dataclass
class Item:
    """One vault item. ``id`` and ``version`` are managed by the vault."""

    title: str
    username: str = ""
    password: str = field(default="", repr=False)
    urls: list[str] = field(default_factory=list)
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    totp_secret: str = field(default="", repr=False)
    type: str = LOGIN
    favorite: bool = False
    fields: list[CustomField] = field(default_factory=list)
    data: dict[str, str] = field(default_factory=dict, repr=False)
    created_at: int = 0
    updated_at: int = 0
    id: str = ""
    version: int = 0

    def validate(self) -> None:
        """Raise :class:`InvalidItemError` when a field is out of bounds."""
        if not self.title.strip():
            raise InvalidItemError("an item needs a title")
        for name, limit in LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > limit:
                raise InvalidItemError(f"{name} must be text of at most {limit} characters")
        _check_list("urls", self.urls, MAX_URLS, MAX_URL_LEN)
        _check_list("tags", self.tags, MAX_TAGS, MAX_TAG_LEN)
        if self.totp_secret:
            totp.parse(self.totp_secret)
        if self.type not in ITEM_TYPES:
            raise InvalidItemError(f"an item's type is one of {', '.join(ITEM_TYPES)}")
        specs = {f.key: f for f in TYPE_FIELDS[self.type]}
        for key, value in self.data.items():
            spec = specs.get(key)
            if spec is None:
                raise InvalidItemError(f"a {self.type} item has no field {key[:40]!r}")
            if len(value) > spec.limit:
                raise InvalidItemError(f"{key} must be at most {spec.limit} characters")
        if len(self.fields) > MAX_FIELDS:
            raise InvalidItemError(f"at most {MAX_FIELDS} custom fields")
        for custom in self.fields:
            custom.validate()

    def matches(self, query: str) -> bool:
        """Case-insensitive substring match on what a listing shows (never on secrets).

        Title, username, URLs, tags, custom field names and non-hidden values,
        and the type's non-secret fields (cardholder, company, email...).
        """
        q = query.casefold()
        haystack = [self.title, self.username, *self.urls, *self.tags]
        haystack += [f.name for f in self.fields]
        haystack += [f.value for f in self.fields if f.kind != "hidden"]
        secret = _secret_keys(self.type)
        haystack += [v for k, v in self.data.items() if k not in secret]
        return any(q in h.casefold() for h in haystack)

    def copy(self) -> Item:
        """An independent copy (callers may mutate it freely)."""
        return replace(
            self,
            urls=list(self.urls),
            tags=list(self.tags),
            fields=[replace(f) for f in self.fields],
            data=dict(self.data),
        )

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for JSON replies)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Item:
        """Build from a dict, ignoring unknown keys and checking types.

        Types are checked, not coerced: ``str()`` would turn ``{"title": 5}``
        into ``"5"`` and ``list()`` would split ``{"urls": "abc"}`` into three
        URLs. Lengths and counts are :meth:`validate`'s job. Empty values in
        ``data`` are dropped (an empty field and a missing one are the same).
        """
        if "title" not in data:
            raise InvalidItemError("malformed item: no title")
        check_types(data)
        try:
            created, updated, version = (
                int(data.get(name, 0)) for name in ("created_at", "updated_at", "version")
            )
        except (TypeError, ValueError):
            raise InvalidItemError("malformed item: bad times or version") from None
        return cls(
            **{name: data.get(name, "") for name in TEXT_FIELDS},
            urls=list(data.get("urls", [])),
            tags=list(data.get("tags", [])),
            type=data.get("type", LOGIN),
            favorite=data.get("favorite", False),
            fields=[
                CustomField(f["name"], f.get("value", ""), f.get("kind", "text"))
                for f in data.get("fields", [])
            ],
            data={k: v for k, v in data.get("data", {}).items() if v},
            created_at=created,
            updated_at=updated,
            id=str(data.get("id", "")),
            version=version,
        )


def check_types(data: dict[str, Any]) -> None:
    """Each item field present in ``data`` has its own JSON type (:class:`InvalidItemError`).

    One check for the vault, the agent's socket and the web UI: text fields
    are strings, ``urls``/``tags`` lists of strings, ``favorite`` a boolean,
    ``fields`` a list of ``{name, value, kind}`` strings and ``data`` an
    object of strings.
    """
    for name in (*TEXT_FIELDS, "type"):
        if name in data and not isinstance(data[name], str):
            raise InvalidItemError(f'malformed item: "{name}" must be a string')
    for name in LIST_FIELDS:
        values = data.get(name, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidItemError(f'malformed item: "{name}" must be a list of strings')
    if not isinstance(data.get("favorite", False), bool):
        raise InvalidItemError('malformed item: "favorite" must be true or false')
    fields = data.get("fields", [])
    if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
        raise InvalidItemError(f'malformed item: "fields" must be a list of at most {MAX_FIELDS}')
    for f in fields:
        if not (
            isinstance(f, dict)
            and isinstance(f.get("name"), str)
            and all(isinstance(f.get(k, ""), str) for k in ("value", "kind"))
        ):
            raise InvalidItemError(
                'malformed item: each of "fields" is {"name", "value", "kind"} strings'
            )
    values = data.get("data", {})
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in values.items()
    ):
        raise InvalidItemError('malformed item: "data" must be an object of strings')


def _secret_keys(item_type: str) -> set[str]:
    return {f.key for f in TYPE_FIELDS.get(item_type, ()) if f.secret}


def public_view(item: Item) -> dict[str, Any]:
    """The item without its secrets, for listings: what may be shown before a reveal.

    Leaves out the password and TOTP secret (``has_totp`` says whether there is
    one), the type's secret fields (card number, SSH private key...) and the
    values of hidden custom fields.
    """
    data = item.to_dict()
    data.pop("password")
    data["has_totp"] = bool(data.pop("totp_secret"))
    secret = _secret_keys(item.type)
    data["data"] = {k: v for k, v in item.data.items() if k not in secret}
    data["fields"] = [
        {"name": f.name, "kind": f.kind, **({"value": f.value} if f.kind != "hidden" else {})}
        for f in item.fields
    ]
    return data


#: The top-level login fields a type's form offers (every item *has* them; a
#: UI shows one on another type only when it holds a value, e.g. after an import).
#: An SSH key's ``password`` is its passphrase.
TYPE_LOGIN_FIELDS: dict[str, tuple[DataField, ...]] = {
    LOGIN: (
        DataField("username", "Username", limit=LIMITS["username"]),
        DataField("password", "Password", secret=True, limit=LIMITS["password"]),
    ),
    NOTE: (),
    CARD: (),
    IDENTITY: (),
    SSH_KEY: (DataField("password", "Passphrase", secret=True, limit=LIMITS["password"]),),
}
#: Whether a type's form offers websites and a one-time code (logins only).
TYPE_HAS_WEB = {LOGIN: True, NOTE: False, CARD: False, IDENTITY: False, SSH_KEY: False}


def types_schema() -> list[dict[str, Any]]:
    """:data:`TYPE_FIELDS` (and the labels, login fields, custom field kinds) as plain
    data, for a UI that draws its forms and views from it instead of a copy per type."""
    return [
        {
            "type": name,
            "label": TYPE_LABELS[name],
            "login_fields": [asdict(f) for f in TYPE_LOGIN_FIELDS[name]],
            "web": TYPE_HAS_WEB[name],
            "fields": [asdict(f) for f in specs],
        }
        for name, specs in TYPE_FIELDS.items()
    ]


def _check_list(name: str, values: list[str], max_count: int, max_len: int) -> None:
    if not isinstance(values, list) or len(values) > max_count:
        raise InvalidItemError(f"at most {max_count} {name}")
    for v in values:
        if not isinstance(v, str) or not v or len(v) > max_len:
            raise InvalidItemError(f"each of {name} must be 1-{max_len} characters")


def encode(item: Item) -> bytes:
    """Padded plaintext for the AEAD (id and version travel in the AAD, not here)."""
    body = {
        "e": ENCODING_VERSION,
        "title": item.title,
        "username": item.username,
        "password": item.password,
        "urls": item.urls,
        "notes": item.notes,
        "tags": item.tags,
        "totp_secret": item.totp_secret,
        "type": item.type,
        "favorite": item.favorite,
        "fields": [asdict(f) for f in item.fields],
        "data": item.data,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(raw) > MAX_PLAINTEXT:
        raise InvalidItemError("item too large")
    return raw + b" " * (-len(raw) % PAD_TO)


def decode(plaintext: bytes, item_id: str, version: int) -> Item:
    """Inverse of :func:`encode` for an authenticated plaintext (encoding 1 or 2)."""
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidItemError(f"item {item_id} has an unreadable encoding") from None
    encoding = data.get("e") if isinstance(data, dict) else None
    if type(encoding) is not int or encoding not in READABLE_ENCODINGS:
        raise InvalidItemError(f"item {item_id} has an unknown encoding version")
    assert isinstance(data, dict)
    if encoding == 1:  # before item types: a login, nothing else (keys of 2 are not read)
        data = {k: v for k, v in data.items() if k not in ("type", "favorite", "fields", "data")}
    data["id"], data["version"] = item_id, version
    return Item.from_dict(data)
