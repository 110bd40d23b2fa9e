"""The encrypted unlatch export: every item, under a password of its own.

A JSON envelope (documented in docs/vault.md)::

    {"format": "unlatch-export", "version": 1,
     "kdf": {"name": "argon2id", "m": KiB, "t": iterations, "p": lanes, "salt": b64},
     "nonce": b64(12 bytes), "ciphertext": b64}

``key = HKDF-SHA256(Argon2id(password, salt, m, t, p), info = lp("unlatch/export/v1/key", ""))``;
the ciphertext is AES-256-GCM of the UTF-8 JSON ``{"items": [...], "exported_at"}``
with ``AAD = lp("unlatch/export/v1/payload", "1", u32 m, u32 t, u32 p, salt)``,
so changing the cost, the salt or the version in the envelope fails
authentication like a changed ciphertext does. The export's password is not
the vault's and the file holds nothing of the vault's keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import time
from typing import Any

from unlatch.vault import crypto, kdf
from unlatch.vault.crypto import AeadFailure
from unlatch.vault.errors import InvalidItemError, WeakKdfError
from unlatch.vault.items import Item
from unlatch.vault.kdf import KdfParams
from unlatch.vault.transfer.base import (
    Draft,
    FileTooLargeError,
    ImportResult,
    MalformedFileError,
    TransferPasswordError,
    array,
    collect,
    obj,
    read_json,
)

FORMAT = "unlatch-export"
VERSION = 1
# An export may come from elsewhere: its Argon2 memory is bounded tighter than
# a vault's, so opening a hostile file cannot take the machine's memory.
MAX_EXPORT_MEMORY_KIB = 1024 * 1024
MIN_PASSWORD = 8


def _aad(params: KdfParams, salt: bytes) -> bytes:
    cost = struct.pack(">III", params.memory_kib, params.time_cost, params.parallelism)
    return crypto.lp(crypto.LABEL_EXPORT_AAD, str(VERSION).encode(), cost, salt)


def _key(password: str, salt: bytes, params: KdfParams) -> bytes:
    return crypto.hkdf(kdf.derive(password, salt, params), crypto.LABEL_EXPORT_KEY)


def check_password(password: str) -> None:
    """An export password: at least 8 characters (it guards every item)."""
    if len(password) < MIN_PASSWORD:
        raise TransferPasswordError(
            f"the export password must be at least {MIN_PASSWORD} characters"
        )


def export_items(items: list[Item], password: str, params: KdfParams | None = None) -> bytes:
    """The encrypted export of ``items`` (Argon2id calibrated like ``init`` unless given)."""
    check_password(password)
    params = params or kdf.calibrate()
    params.check()
    salt = crypto.random_bytes(kdf.SALT_LEN)
    body = {
        "items": [_portable(i) for i in items],
        "exported_at": int(time.time()),
    }
    plaintext = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    nonce, ciphertext = crypto.seal(_key(password, salt, params), plaintext, _aad(params, salt))
    envelope = {
        "format": FORMAT,
        "version": VERSION,
        "kdf": {
            "name": "argon2id",
            "m": params.memory_kib,
            "t": params.time_cost,
            "p": params.parallelism,
            "salt": base64.b64encode(salt).decode("ascii"),
        },
        "nonce": base64.b64encode(nonce).decode("ascii"),
        "ciphertext": base64.b64encode(ciphertext).decode("ascii"),
    }
    return (json.dumps(envelope, indent=1) + "\n").encode("utf-8")


def _portable(item: Item) -> dict[str, Any]:
    """An item without the vault's id and version (they are the new vault's to assign)."""
    data = item.to_dict()
    for key in ("id", "version"):
        data.pop(key)
    return data


def is_export(data: bytes) -> bool:
    """Whether ``data`` looks like an unlatch export (cheap check before parsing)."""
    return f'"format": "{FORMAT}"'.encode() in data[:200]


def import_data(data: bytes, password: str) -> ImportResult:
    """The items of an unlatch export (:class:`TransferPasswordError` on a wrong password)."""
    what = "the unlatch export"
    env = read_json(data, what)
    if env.get("format") != FORMAT:
        raise MalformedFileError(f'not an unlatch export (no "format": "{FORMAT}")')
    if env.get("version") != VERSION:
        raise MalformedFileError(
            f"unlatch export version {str(env.get('version'))[:10]}: upgrade unlatch"
        )
    spec = obj(env.get("kdf"), "kdf")
    try:
        if spec.get("name") != "argon2id":
            raise ValueError
        m, t, p = (spec[k] for k in ("m", "t", "p"))
        if not all(type(v) is int for v in (m, t, p)):
            raise ValueError
        params = KdfParams(m, t, p)
        salt = base64.b64decode(str(spec["salt"]), validate=True)
        nonce = base64.b64decode(str(env["nonce"]), validate=True)
        ciphertext = base64.b64decode(str(env["ciphertext"]), validate=True)
    except (KeyError, ValueError, binascii.Error):
        raise MalformedFileError(f"{what} is damaged (envelope)") from None
    if m > MAX_EXPORT_MEMORY_KIB:
        raise FileTooLargeError(f"{what} asks for more than 1 GiB of Argon2 memory")
    try:
        params.check()
    except WeakKdfError as exc:
        raise MalformedFileError(f"{what}: {exc}") from None
    if not 8 <= len(salt) <= 64:
        raise MalformedFileError(f"{what} is damaged (salt)")
    try:
        plaintext = crypto.open_sealed(
            _key(password, salt, params), nonce, ciphertext, _aad(params, salt)
        )
    except AeadFailure:
        raise TransferPasswordError(f"wrong password for {what}, or the file was changed") from None
    body = read_json(plaintext, f"{what}'s contents")
    items = array(body.get("items"), "items")

    def drafts() -> Any:
        for n, raw in enumerate(items, 1):
            yield _draft(obj(raw, f"item {n}"), n)

    return collect("unlatch", drafts())


def _draft(raw: dict[str, Any], n: int) -> Draft:
    """An exported item back through the draft (same bounds and checks as any import)."""
    try:
        item = Item.from_dict(raw)
    except InvalidItemError as exc:
        raise MalformedFileError(f"item {n} of the unlatch export: {exc}") from None
    draft = Draft(f"item {n} ({item.title[:40]!r})")
    for name in ("title", "type", "username", "password", "notes", "favorite", "data"):
        setattr(draft, name, getattr(item, name))
    draft.urls, draft.tags, draft.totp, draft.fields = (
        item.urls,
        item.tags,
        item.totp_secret,
        item.fields,
    )
    return draft
