"""KeePass / KeePassXC databases (KDBX 4), read and written with ``pykeepass``.

Before ``pykeepass`` sees a file its outer header (unencrypted) is parsed here
to check the signature, the version (4.x) and the key derivation's cost, so a
hostile database cannot make the import use gigabytes of memory or hours of
AES rounds. Entries map to items: title, user name, password, URL (further
URLs in ``KP2A_URL*`` attributes), notes, tags, ``otp`` (the TOTP URI) and
the group path as a tag; other attributes become custom fields (hidden when
protected). Entries in the recycle bin and history copies are skipped.

An unlatch item written to KDBX keeps what has no KeePass place in
attributes: the type's fields under their labels (protected when secret), its
custom fields under their names, and an ``unlatch`` attribute with the type,
the favourite flag and which attribute is which, so importing the file back
gives the same items.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from typing import Any

from unlatch.vault.items import FIELD_KINDS, ITEM_TYPES, TYPE_FIELDS, Item
from unlatch.vault.transfer.base import (
    Draft,
    FileTooLargeError,
    ImportResult,
    MalformedFileError,
    Skipped,
    TransferPasswordError,
    check_size,
    collect,
)

SIGNATURE = bytes.fromhex("03d9a29a67fb4bb5")
KDF_PARAMETERS = 11
AES_KDF = bytes.fromhex("c9d9f39a628a4460bf740d08c18a4fea")
ARGON2D = bytes.fromhex("ef636ddf8c29444b91f7a9a403e30a0c")
ARGON2ID = bytes.fromhex("9e298b1956db4773b23dfc3ec6f0a1e6")
# What the import accepts: above KeePassXC's defaults (64 MiB, about 1 s), far
# below what would exhaust the machine.
MAX_ARGON2_MEMORY = 1024 * 1024 * 1024
MAX_ARGON2_WORK = 64 * MAX_ARGON2_MEMORY  # iterations x memory
MAX_AES_ROUNDS = 10_000_000
MAX_HEADER_FIELDS = 64
META_ATTRIBUTE = "unlatch"
EXTRA_URL_PREFIX = "KP2A_URL"


def is_kdbx(data: bytes) -> bool:
    """Whether ``data`` starts with the KeePass 2 signature."""
    return data.startswith(SIGNATURE)


def check_header(data: bytes) -> None:
    """Signature, version 4 and a bounded key derivation, from the clear header."""
    check_size(data, "the KeePass file")
    if not is_kdbx(data):
        raise MalformedFileError(
            "not a KeePass database (KDBX); for KeePassXC's CSV export use keepassxc-csv"
        )
    minor, major = struct.unpack_from("<HH", data, 8)
    if major != 4:
        raise MalformedFileError(
            f"KeePass database version {major}.{minor}: unlatch reads KDBX 4 (in KeePassXC, "
            "Database > Database Settings > Encryption: KDBX 4 format, then save)"
        )
    pos = 12
    for _ in range(MAX_HEADER_FIELDS):
        if pos + 5 > len(data):
            break
        field_id, size = data[pos], struct.unpack_from("<I", data, pos + 1)[0]
        body = data[pos + 5 : pos + 5 + size]
        if len(body) != size:
            break
        pos += 5 + size
        if field_id == 0:
            return
        if field_id == KDF_PARAMETERS:
            _check_kdf(_variant_dict(body))
    raise MalformedFileError("the KeePass file's header is damaged")


def _variant_dict(body: bytes) -> dict[str, bytes]:
    """KDBX 4's VariantDictionary: ``u16 version``, then ``type, key, value`` records."""
    out: dict[str, bytes] = {}
    pos = 2
    while pos < len(body) and body[pos] != 0:
        try:
            key_len = struct.unpack_from("<i", body, pos + 1)[0]
            key = body[pos + 5 : pos + 5 + key_len].decode("utf-8")
            pos += 5 + key_len
            value_len = struct.unpack_from("<i", body, pos)[0]
        except (struct.error, UnicodeDecodeError):
            raise MalformedFileError(
                "the KeePass file's key derivation header is damaged"
            ) from None
        if key_len < 0 or value_len < 0 or len(out) > 32:
            raise MalformedFileError("the KeePass file's key derivation header is damaged")
        out[key] = body[pos + 4 : pos + 4 + value_len]
        pos += 4 + value_len
    return out


def _int(params: dict[str, bytes], key: str) -> int:
    raw = params.get(key, b"")
    if len(raw) not in (4, 8):
        raise MalformedFileError(f"the KeePass file's key derivation has no valid {key!r}")
    return int.from_bytes(raw, "little")


def _check_kdf(params: dict[str, bytes]) -> None:
    kdf = params.get("$UUID", b"")
    if kdf == AES_KDF:
        rounds = _int(params, "R")
        if rounds > MAX_AES_ROUNDS:
            raise FileTooLargeError(
                f"the KeePass file uses AES-KDF with {rounds} rounds (unlatch reads at most "
                f"{MAX_AES_ROUNDS}); switch it to Argon2 in KeePassXC's database settings"
            )
    elif kdf in (ARGON2D, ARGON2ID):
        memory, iterations = _int(params, "M"), _int(params, "I")
        if memory > MAX_ARGON2_MEMORY or memory * iterations > MAX_ARGON2_WORK:
            raise FileTooLargeError(
                f"the KeePass file's Argon2 cost ({memory // 1048576} MiB x {iterations}) is "
                "above what unlatch reads (1 GiB, 64 GiB-passes)"
            )
        if _int(params, "P") > 64:
            raise FileTooLargeError("the KeePass file's Argon2 parallelism is above 64")
    else:
        raise MalformedFileError("the KeePass file uses an unknown key derivation")


# ------------------------------------------------------------------ import


def import_data(data: bytes, password: str) -> ImportResult:
    """Items from a KDBX 4 database opened with ``password`` (key files are not supported)."""
    import zlib

    from construct import ConstructError
    from lxml.etree import LxmlError
    from pykeepass import PyKeePass
    from pykeepass.exceptions import (
        BinaryError,
        CredentialsError,
        HeaderChecksumError,
        PayloadChecksumError,
    )

    damaged: tuple[type[BaseException], ...] = (
        *(ConstructError, LxmlError, zlib.error, ValueError),
        *(BinaryError, HeaderChecksumError, PayloadChecksumError),
    )

    check_header(data)
    try:
        kp = PyKeePass(io.BytesIO(data), password=password)
    except CredentialsError:
        raise TransferPasswordError(
            "wrong password for the KeePass database (databases that need a key file "
            "are not supported)"
        ) from None
    except damaged as exc:
        raise MalformedFileError(
            f"the KeePass database is damaged ({type(exc).__name__})"
        ) from None
    result = ImportResult("keepass", ignored=["icons", "times", "history", "auto-type"])
    recycle = kp.recyclebin_group

    def drafts() -> Iterator[Draft]:
        for n, entry in enumerate(kp.entries, 1):
            draft = _entry(entry, n, recycle)
            if isinstance(draft, Skipped):
                result.skipped.append(draft)
            else:
                yield draft

    return collect("keepass", drafts(), result)


def _in_group(entry: Any, group: Any) -> bool:
    parent = entry.group
    while parent is not None and group is not None:
        if parent.uuid == group.uuid:
            return True
        parent = parent.parentgroup
    return False


def _entry(entry: Any, n: int, recycle: Any) -> Draft | Skipped:
    title = entry.title or ""
    where = f"entry {n} ({title[:40]!r})"
    if _in_group(entry, recycle):
        return Skipped(where, "in the recycle bin")
    draft = Draft(where, title=title)
    draft.username = entry.username or ""
    draft.password = entry.password or ""
    draft.notes = entry.notes or ""
    draft.add_url(entry.url or "")
    draft.totp = entry.otp or ""
    for tag in entry.tags or []:
        draft.add_tag(tag)
    path = [p for p in (entry.group.path if entry.group is not None else []) if p]
    if path:
        draft.add_tag("/".join(path))
    props: dict[str, str] = dict(entry.custom_properties)
    meta = _meta(props.pop(META_ATTRIBUTE, ""))
    data_names = meta.get("data", {})
    kinds = meta.get("kinds", {})
    if meta.get("type") in ITEM_TYPES:
        draft.type = meta["type"]
    draft.favorite = meta.get("favorite") is True
    for name, value in props.items():
        value = value or ""
        if name.startswith(EXTRA_URL_PREFIX):
            draft.add_url(value)
        elif name in data_names:
            draft.data[data_names[name]] = value
        else:
            kind = kinds.get(name)
            if kind not in FIELD_KINDS:
                kind = "hidden" if _protected(entry, name) else "text"
            draft.keep(name, value, kind)
    for attachment in entry.attachments:
        draft.lost.append(f"the attachment {str(attachment.filename)[:80]!r}")
    return draft


def _protected(entry: Any, name: str) -> bool:
    from lxml.etree import XPathError

    try:
        return bool(entry.is_custom_property_protected(name))
    except XPathError:  # an attribute name pykeepass cannot put in its XPath
        return True


def _meta(raw: str) -> dict[str, Any]:
    try:
        meta = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    if not isinstance(meta, dict):
        return {}
    for key in ("data", "kinds"):
        if not isinstance(meta.get(key, {}), dict):
            meta[key] = {}
    return meta


# ------------------------------------------------------------------ export


def export_items(items: list[Item], password: str) -> bytes:
    """A KDBX 4 database (Argon2, pykeepass's defaults) holding ``items``."""
    from pykeepass import create_database

    buffer = io.BytesIO()
    kp = create_database(io.BytesIO(), password=password)
    for item in items:
        entry = kp.add_entry(
            kp.root_group,
            item.title,
            item.username,
            item.password,
            url=item.urls[0] if item.urls else None,
            notes=item.notes or None,
            tags=item.tags or None,
            otp=item.totp_secret or None,
            force_creation=True,
        )
        names: set[str] = {"Title", "UserName", "Password", "URL", "Notes", "otp", "Tags"}
        data_names: dict[str, str] = {}
        kinds: dict[str, str] = {}
        for n, url in enumerate(item.urls[1:], 1):
            entry.set_custom_property(_unique(f"{EXTRA_URL_PREFIX}_{n}", names), url)
        specs = {f.key: f for f in TYPE_FIELDS[item.type]}
        for key, value in item.data.items():
            name = _unique(specs[key].label, names)
            data_names[name] = key
            entry.set_custom_property(name, value, protect=specs[key].secret)
        for f in item.fields:
            name = _unique(f.name, names)
            kinds[name] = f.kind
            entry.set_custom_property(name, f.value, protect=f.kind == "hidden")
        meta = {"type": item.type, "favorite": item.favorite, "data": data_names, "kinds": kinds}
        entry.set_custom_property(META_ATTRIBUTE, json.dumps(meta, separators=(",", ":")))
    kp.save(buffer)
    return buffer.getvalue()


def _unique(name: str, taken: set[str]) -> str:
    """An attribute name not used yet on this entry (pykeepass cannot hold a quote in one)."""
    base = name.replace('"', "'").strip() or "field"
    candidate, n = base, 1
    while candidate in taken or candidate == META_ATTRIBUTE:
        n += 1
        candidate = f"{base} ({n})"
    taken.add(candidate)
    return candidate
