"""The vault file's plumbing shared by every operation: the SQLite handle, the vault
key in memory, item encryption and the manifest that authenticates the item list.

:class:`VaultFile` is the base of :class:`~unlatch.vault.vault.Vault`; the
operations are split by concern (``slot_ops`` for key slots and rotation,
``item_ops`` for items), each a small class over this one. See docs/vault.md.
"""

from __future__ import annotations

import hmac
import os
import re
import sqlite3
import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from hashlib import sha256
from pathlib import Path
from typing import Any

from unlatch.vault import crypto, items, schema
from unlatch.vault.crypto import AeadFailure
from unlatch.vault.errors import (
    CorruptVaultError,
    InvalidItemError,
    ItemIntegrityError,
    ItemNotFoundError,
    VaultLockedError,
)
from unlatch.vault.items import Item
from unlatch.vault.slots import InvalidSlotError

VAULT_ID_LEN = 16
MAX_MIN_PASSWORD = 8
MAX_PASSWORD_CHARS = 1024
MAX_CIPHERTEXT = items.MAX_PLAINTEXT + items.PAD_TO + 16
EDITABLE_FIELDS = items.EDITABLE_FIELDS


def _now() -> int:
    return int(time.time())


#: An item may be named by the first characters of its id, as long as they are unique.
MIN_ID_PREFIX = 4
_ID_PREFIX = re.compile(rf"[0-9a-fA-F]{{{MIN_ID_PREFIX},32}}")


def _new_id() -> str:
    return crypto.random_bytes(16).hex()


def check_password(password: str) -> None:
    """A master password: 8-1024 characters (length is what matters, not classes)."""
    if not isinstance(password, str) or len(password) < MAX_MIN_PASSWORD:
        raise InvalidSlotError(
            f"the master password must be at least {MAX_MIN_PASSWORD} characters"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidSlotError(f"the master password must be at most {MAX_PASSWORD_CHARS} chars")


class VaultFile:
    """The open file, its vault id and (while unlocked) the key; nothing public."""

    def __init__(self, path: Path, conn: sqlite3.Connection, meta: Mapping[str, str]) -> None:
        self.path = path
        self._conn = conn
        try:
            self.vault_id = bytes.fromhex(meta.get("vault_id", ""))
        except ValueError:
            self.vault_id = b""
        if len(self.vault_id) != VAULT_ID_LEN:
            conn.close()
            raise CorruptVaultError(f"{path} has no valid vault id")
        self._key: bytearray | None = None
        self._items_prk: bytes | None = None
        self._cache: dict[tuple[str, int], Item] = {}
        self._verified_state: tuple[int, int] | None = None

    # ---------------------------------------------------------------- internals

    @property
    def is_unlocked(self) -> bool:
        """True while the vault key is held in memory."""
        return self._key is not None

    def lock(self) -> None:
        """Drop the vault key and every decrypted item (best effort wipe of the key bytes)."""
        if self._key is not None:
            for i in range(len(self._key)):
                self._key[i] = 0
        self._key = None
        self._items_prk = None
        self._verified_state = None
        self._cache.clear()

    def close(self) -> None:
        """Lock and close the file."""
        self.lock()
        self._conn.close()

    def _require_key(self) -> bytes:
        if self._key is None:
            raise VaultLockedError()
        return bytes(self._key)

    def _verify_key(self, key: bytes, *, may_record: bool = False) -> None:
        """Reject a slot that unwraps to some other key (e.g. one planted in the file).

        Vaults made before the check existed get it recorded on the first
        master-password unlock (``may_record``); other slots are refused until then.
        """
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is None and may_record:
            with schema.write_txn(self._conn):
                self._conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?)",
                    (_key_check(key, self.vault_id).hex(),),
                )
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        try:
            stored = bytes.fromhex(row[0]) if row else b""
        except ValueError:
            stored = b""
        if not hmac.compare_digest(stored, _key_check(key, self.vault_id)):
            raise CorruptVaultError(
                "the key slot does not hold this vault's key (the file was altered)"
            )

    def _set_key(self, key: bytes) -> None:
        self.lock()
        self._key = bytearray(key)

    def _item_key(self, key: bytes, item_id: str) -> bytes:
        if self._items_prk is None:
            self._items_prk = crypto.hkdf_extract(key)
        return self._item_key_from(self._items_prk, item_id)

    def _item_key_from(self, prk: bytes, item_id: str) -> bytes:
        context = crypto.lp(self.vault_id, item_id.encode())
        return crypto.hkdf_expand(prk, crypto.LABEL_ITEM_KEY, context)

    def _item_aad(self, item_id: str, version: int) -> bytes:
        return crypto.lp(
            crypto.LABEL_ITEM_AAD, self.vault_id, item_id.encode(), struct.pack(">Q", version)
        )

    def _seal_item(self, key: bytes, item: Item) -> tuple[bytes, bytes]:
        return crypto.seal(
            self._item_key(key, item.id), items.encode(item), self._item_aad(item.id, item.version)
        )

    def _load_item(self, key: bytes, item_id: str) -> Item:
        row = self._conn.execute(
            "SELECT id, version, nonce, ciphertext FROM items WHERE id = ?", (item_id,)
        ).fetchone()
        if row is None:
            raise ItemNotFoundError(f"no item with id {item_id}")
        return self._decrypt_row(key, *row)

    def _decrypt_row(
        self, key: bytes, item_id: Any, version: Any, nonce: Any, ct: Any, *, copy: bool = True
    ) -> Item:
        if not (
            isinstance(item_id, str)
            and isinstance(version, int)
            and isinstance(nonce, bytes)
            and isinstance(ct, bytes)
        ):
            raise ItemIntegrityError(f"item {item_id!s:.40} is malformed")
        cached = self._cache.get((item_id, version))
        if cached is not None:
            # Filled only after authentication; the ciphertext of an (id, version)
            # pair cannot change without the version changing.
            return cached.copy() if copy else cached
        if len(ct) > MAX_CIPHERTEXT or not 0 <= version < 2**63:
            raise ItemIntegrityError(f"item {item_id} is malformed")
        try:
            plaintext = crypto.open_sealed(
                self._item_key(key, item_id), nonce, ct, self._item_aad(item_id, version)
            )
        except AeadFailure:
            raise ItemIntegrityError(
                f"item {item_id} failed its integrity check: it was tampered with, swapped "
                "or rolled back (not shown)"
            ) from None
        try:
            item = items.decode(plaintext, item_id, version)
        except InvalidItemError as exc:
            raise ItemIntegrityError(str(exc)) from None
        self._cache[(item_id, version)] = item
        return item.copy() if copy else item

    def _manifest_rows(self) -> list[tuple[Any, Any]]:
        return self._conn.execute("SELECT id, version FROM items ORDER BY id").fetchall()

    def _db_state(self) -> tuple[int, int]:
        """Changes since: ``data_version`` moves on other connections' commits, ``total_changes``
        on ours."""
        (data_version,) = self._conn.execute("PRAGMA data_version").fetchone()
        return int(data_version), self._conn.total_changes

    def _check_manifest(self, key: bytes, rows: list[tuple[Any, Any]] | None = None) -> None:
        """Compare the stored manifest MAC with one over ``rows`` (sorted by id) or the table.

        Skipped when nothing was committed to the file since the last check
        or since our own last write (which recomputed the manifest itself).
        """
        state = self._db_state()
        if state == self._verified_state:
            return
        stored = self._conn.execute("SELECT value FROM meta WHERE key = 'manifest_mac'").fetchone()
        try:
            expected = _manifest_mac(
                key, self.vault_id, self._manifest_rows() if rows is None else rows
            )
        except (TypeError, ValueError, struct.error):
            expected = b""
        try:
            ok = stored is not None and hmac.compare_digest(bytes.fromhex(stored[0]), expected)
        except ValueError:
            ok = False
        if not ok:
            raise ItemIntegrityError(
                "the vault's item list failed its integrity check: items were removed, "
                "added or rolled back outside unlatch"
            )
        self._verified_state = state

    @contextmanager
    def _item_txn(self, key: bytes) -> Iterator[None]:
        """A write transaction on items: the manifest is checked first (a tampered list
        is never laundered by a later write) and recomputed before the commit."""
        with schema.write_txn(self._conn):
            self._check_manifest(key)
            yield
            _store_manifest(self._conn, _manifest_mac(key, self.vault_id, self._manifest_rows()))
        self._verified_state = self._db_state()


# ------------------------------------------------------------------- helpers


_U32, _U64 = struct.Struct(">I"), struct.Struct(">Q")
_EIGHT = _U32.pack(8)


def _manifest_mac(key: bytes, vault_id: bytes, rows: Iterable[tuple[Any, Any]]) -> bytes:
    """HMAC over ``lp(label, vault id)`` then ``lp(item id, u64 version)`` per row, by id."""
    mac_key = crypto.hkdf(key, crypto.LABEL_MANIFEST_KEY, vault_id)
    mac = hmac.new(mac_key, crypto.lp(crypto.LABEL_MANIFEST, vault_id), sha256)
    parts = []
    for item_id, version in rows:
        raw = item_id.encode()
        parts.append(_U32.pack(len(raw)) + raw + _EIGHT + _U64.pack(version))
    mac.update(b"".join(parts))
    return mac.digest()


def _key_check(key: bytes, vault_id: bytes) -> bytes:
    """A commitment to the vault key: HKDF(K_V, key-check label, vault id)."""
    return crypto.hkdf(key, crypto.LABEL_KEY_CHECK, vault_id)


def _store_manifest(conn: sqlite3.Connection, mac: bytes) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('manifest_mac', ?)", (mac.hex(),)
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
