"""1Password exports: 1PUX (1Password 8's "1Password Unencrypted Export") and CSV.

1PUX is a ZIP archive with ``export.attributes`` and ``export.data``, a JSON
object ``{"accounts": [{"attrs", "vaults": [{"attrs": {"name"}, "items":
[...]}]}]}``. An item has ``categoryUuid`` ("001" login, "002" credit card,
"003" secure note, "004" identity, "005" password, "114" SSH key...),
``favIndex``, ``state`` ("active"/"archived"), ``overview`` (``title``,
``url``, ``urls``, ``tags``) and ``details`` (``loginFields`` with a
``designation`` of username/password, ``password``, ``notesPlain``,
``sections[].fields[]`` whose ``value`` is one of ``{"string"}``,
``{"concealed"}``, ``{"url"}``, ``{"totp"}``, ``{"creditCardNumber"}``,
``{"monthYear": 202612}``, ``{"address": {...}}``, ``{"sshKey": {...}}``...,
``passwordHistory``). CSV: ``Title,Url,Username,Password,OTPAuth,Favorite,
Archived,Tags,Notes``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from unlatch.vault.items import CARD, IDENTITY, LOGIN, NOTE, SSH_KEY
from unlatch.vault.transfer import csvformat as c
from unlatch.vault.transfer.base import (
    Draft,
    ImportResult,
    MalformedFileError,
    Skipped,
    array,
    collect,
    obj,
    read_json,
    read_zip_member,
    text,
)

ZIP_MAGIC = b"PK\x03\x04"
CATEGORIES = {"001": LOGIN, "005": LOGIN, "002": CARD, "003": NOTE, "004": IDENTITY}
CATEGORIES |= {"114": SSH_KEY}
OTHER_CATEGORIES = {
    "006": "Document",
    "100": "Software License",
    "101": "Bank Account",
    "102": "Database",
    "103": "Driver License",
    "104": "Outdoor License",
    "105": "Membership",
    "106": "Passport",
    "107": "Reward Program",
    "108": "Social Security Number",
    "109": "Wireless Router",
    "110": "Server",
    "111": "Email Account",
    "112": "API Credential",
    "113": "Medical Record",
    "115": "Crypto Wallet",
}
# Section field ids that map onto a type's fields.
CARD_IDS = {"cardholder": "cardholder", "type": "brand", "ccnum": "number", "cvv": "code"}
CARD_IDS |= {"pin": "pin"}
IDENTITY_IDS = {
    "firstname": "first_name",
    "initial": "middle_name",
    "lastname": "last_name",
    "company": "company",
    "email": "email",
    "defphone": "phone",
    "cellphone": "phone",
    "homephone": "phone",
}
ADDRESS_KEYS = {"street": "address1", "city": "city", "state": "state", "zip": "postal_code"}
ADDRESS_KEYS |= {"country": "country"}
METADATA = ["uuid", "createdAt", "updatedAt", "export.attributes"]


def import_data(data: bytes) -> ImportResult:
    """Items from a 1PUX archive or a 1Password CSV (told apart by the content)."""
    if data.startswith(ZIP_MAGIC):
        return _import_1pux(data)
    return c.import_csv("1password", data, CSV_COLUMNS, CSV_REQUIRED)


CSV_COLUMNS = {
    "title": c.TITLE,
    "url": c.URL,
    "username": c.USERNAME,
    "password": c.PASSWORD,
    "otpauth": c.TOTP,
    "favorite": c.FAVORITE,
    "archived": c.ARCHIVED,
    "tags": c.TAGS,
    "notes": c.NOTES,
}
CSV_REQUIRED = ("title", "username", "password")


# ------------------------------------------------------------------- 1PUX


def _import_1pux(data: bytes) -> ImportResult:
    what = "the 1PUX archive"
    root = read_json(read_zip_member(data, "export.data", what), f"{what}'s export.data")
    if "accounts" not in root:
        raise MalformedFileError(f'{what}\'s export.data has no "accounts" list')
    result = ImportResult("1password", ignored=METADATA)

    def drafts() -> Iterator[Draft]:
        for a, account in enumerate(array(root["accounts"], "accounts"), 1):
            account = obj(account, f"account {a}")
            for v, vault in enumerate(array(account.get("vaults"), f"account {a} vaults"), 1):
                vault = obj(vault, f"vault {v}")
                for n, raw in enumerate(array(vault.get("items"), f"vault {v} items"), 1):
                    raw = obj(raw, f"vault {v} item {n}")
                    item = obj(raw.get("item"), "item") if "item" in raw else raw  # older 1PUX
                    draft = _item(item, f"vault {v} item {n}")
                    if isinstance(draft, Skipped):
                        result.skipped.append(draft)
                    else:
                        yield draft

    return collect("1password", drafts(), result)


def _item(item: dict[str, Any], where: str) -> Draft | Skipped:
    overview = obj(item.get("overview"), f"{where} overview")
    details = obj(item.get("details"), f"{where} details")
    title = text(overview.get("title"), f"{where} title")
    where = f"{where} ({title[:40]!r})"
    state = text(item.get("state"), where).lower()
    if state == "deleted" or item.get("trashed") is True:
        return Skipped(where, "in the trash")
    category = text(item.get("categoryUuid"), where)
    draft = Draft(where, title=title, type=CATEGORIES.get(category, NOTE))
    if category in OTHER_CATEGORIES:
        draft.add_tag(OTHER_CATEGORIES[category])
    if state == "archived":
        draft.add_tag("archived")
    fav = item.get("favIndex")
    draft.favorite = type(fav) is int and fav > 0
    draft.notes = text(details.get("notesPlain"), f"{where} notes")
    draft.add_url(text(overview.get("url"), where))
    for u in array(overview.get("urls"), f"{where} urls"):
        draft.add_url(text(obj(u, f"{where} url").get("url"), where))
    for tag in array(overview.get("tags"), f"{where} tags"):
        draft.add_tag(text(tag, f"{where} tag"))
    draft.password = text(details.get("password"), where)
    for f in array(details.get("loginFields"), f"{where} loginFields"):
        f = obj(f, f"{where} login field")
        value = text(f.get("value"), where)
        designation = f.get("designation")
        if designation == "username" and not draft.username:
            draft.username = value
        elif designation == "password" and not draft.password:
            draft.password = value
        else:
            kind = "hidden" if f.get("fieldType") == "P" else "text"
            draft.keep(text(f.get("name"), where) or "field", value, kind)
    for s in array(details.get("sections"), f"{where} sections"):
        s = obj(s, f"{where} section")
        section = text(s.get("title"), where)
        for f in array(s.get("fields"), f"{where} section fields"):
            _section_field(draft, obj(f, f"{where} field"), section, where)
    if details.get("documentAttributes"):
        name = text(obj(details["documentAttributes"], where).get("fileName"), where)
        draft.lost.append(f"the document {name[:80]!r} (files are not imported)")
    for m, old in enumerate(array(details.get("passwordHistory"), f"{where} history"), 1):
        old = obj(old, f"{where} password history")
        draft.keep(f"previous password {m}", text(old.get("value"), where), "hidden")
    return draft


def _section_field(draft: Draft, field: dict[str, Any], section: str, where: str) -> None:
    """One ``sections[].fields[]`` entry onto the draft (type field, TOTP or custom field)."""
    value = obj(field.get("value"), f"{where} field value")
    field_id = text(field.get("id"), where)
    name = text(field.get("title"), where) or field_id or section or "field"
    if len(value) != 1:
        if value:
            draft.keep(name, ", ".join(sorted(value))[:200])
        return
    ((kind, raw),) = value.items()
    if kind == "totp":
        secret = text(raw, where)
        if not draft.totp:
            draft.totp = secret
        else:
            draft.keep(name, secret, "hidden")
        return
    if kind == "file":
        file_name = text(obj(raw, f"{where} file").get("fileName"), where) or name
        draft.lost.append(f"the file {file_name[:80]!r} (files are not imported)")
        return
    if kind == "address":
        parts = obj(raw, f"{where} address")
        target = draft.data if draft.type == IDENTITY else None
        for theirs, ours in ADDRESS_KEYS.items():
            part = text(parts.get(theirs), where)
            if target is not None and not target.get(ours):
                target[ours] = part
            else:
                draft.keep(f"{name} {theirs}", part)
        return
    if kind == "sshKey":
        ssh = obj(raw, f"{where} sshKey")
        meta = obj(ssh.get("metadata"), where)
        draft.type = SSH_KEY
        draft.data["private_key"] = text(ssh.get("privateKey"), where)
        draft.data["public_key"] = text(meta.get("publicKey"), where)
        draft.data["fingerprint"] = text(meta.get("fingerprint"), where)
        return
    value_text = _value_text(kind, raw, where)
    table = CARD_IDS if draft.type == CARD else IDENTITY_IDS if draft.type == IDENTITY else {}
    data_key = table.get(field_id)
    if draft.type == CARD and field_id == "expiry" and len(value_text) == 6:
        draft.data["exp_year"], draft.data["exp_month"] = value_text[:4], value_text[4:]
    elif draft.type == IDENTITY and field_id == "birthdate" and value_text:
        draft.data["birth_date"] = value_text
    elif data_key and not draft.data.get(data_key):
        draft.data[data_key] = value_text
    else:
        kinds = {"concealed": "hidden", "url": "url", "creditCardNumber": "hidden"}
        draft.keep(f"{section}: {name}" if section else name, value_text, kinds.get(kind, "text"))


def _value_text(kind: str, raw: Any, where: str) -> str:
    """A section value as text: dates as ISO days, month-years as YYYYMM."""
    if raw is None:
        return ""
    if kind == "date" and type(raw) is int:
        try:
            return dt.datetime.fromtimestamp(raw, dt.UTC).date().isoformat()
        except (OverflowError, OSError, ValueError):
            raise MalformedFileError(f"{where}: a date out of range") from None
    if isinstance(raw, dict):
        return ", ".join(f"{k}: {text(v, where)}" for k, v in sorted(raw.items()))
    return text(raw, where)
