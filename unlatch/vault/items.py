"""Vault items: the plaintext model, its bounds and its (padded) encoding.

The encoding is JSON *inside* the AEAD ciphertext; nothing here is ever
written in the clear. Plaintexts are padded to a multiple of
:data:`PAD_TO` bytes so the file does not reveal exact field lengths.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from unlatch.vault import totp
from unlatch.vault.errors import InvalidItemError

PAD_TO = 256
MAX_PLAINTEXT = 64 * 1024
ENCODING_VERSION = 1

# Field bounds: generous for real use, small enough that a hostile input
# cannot make an item (or the agent's reply) huge.
LIMITS = {"title": 256, "username": 1024, "password": 4096, "notes": 32 * 1024}
MAX_URLS, MAX_URL_LEN = 32, 2048
MAX_TAGS, MAX_TAG_LEN = 64, 64
# The item's text and list-of-text fields (the ones a user edits).
TEXT_FIELDS = ("title", "username", "password", "notes", "totp_secret")
LIST_FIELDS = ("urls", "tags")


@dataclass
class Item:
    """One login. ``id`` and ``version`` are managed by the vault."""

    title: str
    username: str = ""
    password: str = field(default="", repr=False)
    urls: list[str] = field(default_factory=list)
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    totp_secret: str = field(default="", repr=False)
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

    def matches(self, query: str) -> bool:
        """Case-insensitive substring match on title, username, URLs and tags."""
        q = query.casefold()
        haystack = [self.title, self.username, *self.urls, *self.tags]
        return any(q in h.casefold() for h in haystack)

    def copy(self) -> Item:
        """An independent copy (callers may mutate it freely)."""
        return replace(self, urls=list(self.urls), tags=list(self.tags))

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for JSON replies)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Item:
        """Build from a dict, ignoring unknown keys and checking types.

        Types are checked, not coerced: ``str()`` would turn ``{"title": 5}``
        into ``"5"`` and ``list()`` would split ``{"urls": "abc"}`` into three
        URLs. Lengths and counts are :meth:`validate`'s job.
        """
        if "title" not in data:
            raise InvalidItemError("malformed item: no title")
        text = {name: data.get(name, "") for name in TEXT_FIELDS}
        lists = {name: data.get(name, []) for name in LIST_FIELDS}
        for name, value in text.items():
            if not isinstance(value, str):
                raise InvalidItemError(f"malformed item: {name} must be a string")
        for name, values in lists.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise InvalidItemError(f"malformed item: {name} must be a list of strings")
        try:
            created, updated, version = (
                int(data.get(name, 0)) for name in ("created_at", "updated_at", "version")
            )
        except (TypeError, ValueError):
            raise InvalidItemError("malformed item: bad times or version") from None
        return cls(
            **text,
            urls=list(lists["urls"]),
            tags=list(lists["tags"]),
            created_at=created,
            updated_at=updated,
            id=str(data.get("id", "")),
            version=version,
        )


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
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    if len(raw) > MAX_PLAINTEXT:
        raise InvalidItemError("item too large")
    return raw + b" " * (-len(raw) % PAD_TO)


def decode(plaintext: bytes, item_id: str, version: int) -> Item:
    """Inverse of :func:`encode` for an authenticated plaintext."""
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidItemError(f"item {item_id} has an unreadable encoding") from None
    if not isinstance(data, dict) or data.get("e") != ENCODING_VERSION:
        raise InvalidItemError(f"item {item_id} has an unknown encoding version")
    data["id"], data["version"] = item_id, version
    return Item.from_dict(data)
