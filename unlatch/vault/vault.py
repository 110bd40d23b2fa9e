"""The vault: an SQLite file of AEAD-encrypted items and key slots.

A :class:`Vault` handle starts locked (:meth:`Vault.open`) and becomes
unlocked when a key slot yields the vault key (master password, or any
caller-provided key-encryption key for phone / passkey slots). Items are
sealed with AES-256-GCM under a per-item key ``HKDF(vault key, item id)``;
the AAD binds vault id, item id and item version, and an HMAC "manifest"
over every ``(item id, version)`` pair catches rows that were deleted,
added, or rolled back to an older copy. :meth:`Vault.rotate_key` replaces
the vault key itself (every item re-encrypted, every slot rewrapped or
sealed to its renewal key) in one transaction. See docs/vault.md.

The class is split by concern, one small module each: ``file_core``
(:class:`~unlatch.vault.file_core.VaultFile`: the SQLite handle, the key in
memory, item encryption, the manifest), ``slot_ops`` (key slots),
``rotation`` (the key rotation) and ``item_ops`` (items); this module keeps
creating and opening a file.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from unlatch.vault import crypto, kdf, schema, scratch
from unlatch.vault.errors import (
    CorruptVaultError,
    VaultExistsError,
)
from unlatch.vault.file_core import (
    EDITABLE_FIELDS,
    MIN_ID_PREFIX,
    VAULT_ID_LEN,
    VaultFile,
    _fsync_dir,
    _key_check,
    _manifest_mac,
    _new_id,
    _now,
    _store_manifest,
    check_password,
)
from unlatch.vault.item_ops import ItemOps
from unlatch.vault.kdf import KdfParams
from unlatch.vault.rotation import (
    DROP_ALTERED,
    DROP_NOT_RENEWABLE,
    DroppedSlot,
    Rotation,
    RotationOps,
)
from unlatch.vault.slot_ops import _insert_password_slot

__all__ = [
    "DROP_ALTERED",
    "DROP_NOT_RENEWABLE",
    "EDITABLE_FIELDS",
    "MIN_ID_PREFIX",
    "DroppedSlot",
    "Rotation",
    "Vault",
    "VaultFile",
    "check_password",
]


class Vault(RotationOps, ItemOps):
    """A handle on one vault file; locked until a slot yields the key."""

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def create(
        cls, path: Path | str, password: str, *, kdf_params: KdfParams | None = None
    ) -> Vault:
        """Create a new vault at ``path`` with one master-password slot; returned unlocked.

        ``kdf_params`` defaults to :func:`unlatch.vault.kdf.calibrate` (~0.5 s,
        >= 64 MiB). Explicit params are still refused below the OWASP minimum.
        The file is built under a temporary name and linked into place, so a
        crash never leaves a half-made vault at ``path``.
        """
        path = Path(path)
        check_password(password)
        params = kdf_params or kdf.calibrate()
        params.check()
        if path.exists():
            raise VaultExistsError(f"a vault already exists at {path}")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        scratch.sweep(path)
        key = bytearray(crypto.random_bytes(crypto.KEY_LEN))
        with scratch.scratch_file(path, _new_id()[:12]) as tmp:
            conn = schema.connect(tmp)
            try:
                schema.migrate(conn, 0)
                vault_id = crypto.random_bytes(VAULT_ID_LEN)
                with schema.write_txn(conn):
                    conn.executemany(
                        "INSERT INTO meta (key, value) VALUES (?, ?)",
                        [
                            ("vault_id", vault_id.hex()),
                            ("created_at", str(_now())),
                            ("key_check", _key_check(bytes(key), vault_id).hex()),
                        ],
                    )
                    _insert_password_slot(
                        conn, vault_id, bytes(key), password, params, "master password"
                    )
                    _store_manifest(conn, _manifest_mac(bytes(key), vault_id, []))
            finally:
                conn.close()
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise VaultExistsError(f"a vault already exists at {path}") from None
            _fsync_dir(path.parent)
        vault = cls.open(path)
        vault._set_key(bytes(key))
        for i in range(len(key)):
            key[i] = 0
        return vault

    @classmethod
    def open(cls, path: Path | str) -> Vault:
        """Open (locked) and validate: SQLite header, format marker, schema version.

        Raises :class:`~unlatch.vault.errors.VaultNotFoundError`,
        :class:`~unlatch.vault.errors.NotAVaultError`,
        :class:`~unlatch.vault.errors.CorruptVaultError` or
        :class:`~unlatch.vault.errors.UnsupportedSchemaError`. Older schemas
        are migrated in place (one transaction per step).
        """
        path = Path(path)
        schema.check_file(path)
        # Validate through a read-only connection first: a foreign SQLite file
        # must not be switched to WAL mode (or otherwise touched) by us.
        try:
            ro = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise CorruptVaultError(f"cannot open {path}: {exc}") from None
        try:
            meta = schema.read_meta(ro, path)
            version = schema.schema_version(meta, path)
            schema.quick_check(ro, path)
        finally:
            ro.close()
        try:
            conn = schema.connect(path)
        except sqlite3.DatabaseError as exc:
            raise CorruptVaultError(f"cannot open {path}: {exc}") from None
        try:
            if version < schema.SCHEMA_VERSION:
                schema.migrate(conn, version)
            meta = schema.read_meta(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, meta)

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
