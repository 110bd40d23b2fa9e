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
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import re
import sqlite3
import struct
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from unlatch.vault import crypto, items, kdf, schema, scratch, slots
from unlatch.vault.crypto import AeadFailure
from unlatch.vault.errors import (
    AmbiguousItemError,
    CorruptVaultError,
    InvalidItemError,
    ItemIntegrityError,
    ItemNotFoundError,
    LastPasswordSlotError,
    SlotNotFoundError,
    VaultExistsError,
    VaultLockedError,
    WrongKeyError,
    WrongPasswordError,
)
from unlatch.vault.items import Item
from unlatch.vault.kdf import KdfParams
from unlatch.vault.slots import KIND_PASSWORD, InvalidSlotError, SlotInfo, SlotMeta

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


DROP_NOT_RENEWABLE = (
    "it was added by an older unlatch and has not unlocked the vault since, so "
    "the vault never learned its renewal key"
)
DROP_ALTERED = "its renewal key failed its integrity check (the vault file was altered)"


@dataclass(frozen=True)
class DroppedSlot:
    """A slot a rotation had to delete, and why (shown to the user)."""

    slot: SlotInfo
    reason: str


@dataclass(frozen=True)
class Rotation:
    """What :meth:`Vault.rotate_key` did."""

    items: int
    #: password slots rewrapped with the password that was typed
    rewrapped: list[SlotInfo]
    #: slots sealed to their renewal key: they keep working, rewrapped at next use
    renewing: list[SlotInfo]
    #: slots deleted: their phone must be paired again, their passkey added again
    dropped: list[DroppedSlot]


class Vault:
    """A handle on one vault file; locked until a slot yields the key."""

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

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------- slots

    def unlock_with_password(self, password: str) -> None:
        """Try every password slot; :class:`WrongPasswordError` if none opens."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
            raise WrongPasswordError()
        for slot_id in self._slot_ids(KIND_PASSWORD):
            opened = self._try_password_slot(slot_id, password)
            if opened is not None:
                row, kek, key = opened
                self._verify_key(key, may_record=True)
                self._renew_slot(row, kek, key)
                self._set_key(key)
                return
        raise WrongPasswordError()

    def unlock_with_slot(self, slot_id: str, kek: bytes) -> None:
        """Unwrap with a caller-computed 32-byte KEK (phone, passkey...)."""
        row = self._slot_row(slot_id)
        key = self._unwrap(row, kek)
        if key is None:
            raise WrongKeyError(f"the key does not open slot {row['label']!r} ({row['kind']})")
        self._verify_key(key)
        self._renew_slot(row, bytes(kek), key)
        self._set_key(key)

    def list_slots(self) -> list[SlotInfo]:
        """Every slot (works while locked: the UI offers the unlock methods)."""
        rows = self._conn.execute(
            "SELECT id, kind, label, created_at, meta, renew_key, enc FROM slots"
            " ORDER BY created_at, id"
        ).fetchall()
        return [_slot_info(r) for r in rows]

    def find_slots(self, kind: str) -> list[SlotInfo]:
        """The slots of one kind (e.g. every paired phone)."""
        return [s for s in self.list_slots() if s.kind == kind]

    def add_slot(self, kind: str, label: str, kek: bytes, meta: SlotMeta | None = None) -> str:
        """Wrap the vault key under ``kek`` in a new slot; returns its id.

        For generic kinds (``phone``, ``passkey``...): the caller derives the
        32-byte KEK; only its wrapping of the vault key is stored.
        """
        slots.check_kind(kind)
        if kind == KIND_PASSWORD:
            raise InvalidSlotError("use add_password_slot for a master-password slot")
        if not isinstance(kek, bytes | bytearray) or len(kek) != crypto.KEY_LEN:
            raise InvalidSlotError("a key-encryption key must be 32 bytes")
        label = slots.check_label(label)
        meta_text = slots.encode_meta(meta or {})
        key = self._require_key()
        slot_id = _new_id()
        wrap = _wrap(self.vault_id, slot_id, kind, bytes(kek), key)
        with schema.write_txn(self._conn):
            self._conn.execute(
                _INSERT_SLOT,
                (slot_id, kind, label, _now(), meta_text, *wrap),
            )
        return slot_id

    def add_password_slot(
        self, password: str, label: str = "master password", *, kdf_params: KdfParams | None = None
    ) -> str:
        """A further master-password slot (e.g. a recovery passphrase)."""
        check_password(password)
        params = kdf_params or kdf.calibrate()
        params.check()
        key = self._require_key()
        with schema.write_txn(self._conn):
            return _insert_password_slot(
                self._conn, self.vault_id, key, password, params, slots.check_label(label)
            )

    def rename_slot(self, slot_id: str, label: str) -> None:
        """Change a slot's human label (not part of the AAD: no rewrap needed)."""
        self._require_key()
        label = slots.check_label(label)
        with schema.write_txn(self._conn):
            cur = self._conn.execute("UPDATE slots SET label = ? WHERE id = ?", (label, slot_id))
            if cur.rowcount != 1:
                raise SlotNotFoundError(f"no key slot {slot_id}")

    def remove_slot(self, slot_id: str) -> None:
        """Delete a slot. The last password slot is refused: it is the recovery path."""
        self._require_key()
        with schema.write_txn(self._conn):
            row = self._conn.execute("SELECT kind FROM slots WHERE id = ?", (slot_id,)).fetchone()
            if row is None:
                raise SlotNotFoundError(f"no key slot {slot_id}")
            if row[0] == KIND_PASSWORD:
                (count,) = self._conn.execute(
                    "SELECT COUNT(*) FROM slots WHERE kind = ?", (KIND_PASSWORD,)
                ).fetchone()
                if count <= 1:
                    raise LastPasswordSlotError(
                        "refusing to remove the last master-password slot: the master "
                        "password is how you recover the vault if your phone and "
                        "passkeys are lost (change it with `unlatch passwd` instead)"
                    )
            self._conn.execute("DELETE FROM slots WHERE id = ?", (slot_id,))

    def change_password(self, old: str, new: str, *, kdf_params: KdfParams | None = None) -> None:
        """Rewrap only the password slot that ``old`` opens, under ``new``.

        Other slots (phones, passkeys) keep working untouched. The slot's
        Argon2 parameters stay unless ``kdf_params`` is given; the salt is new.
        """
        check_password(new)
        for slot_id in self._slot_ids(KIND_PASSWORD):
            opened = self._try_password_slot(slot_id, old)
            if opened is None:
                continue
            row, _, key = opened
            meta, kek = _password_kek(new, self._slot_params(row, kdf_params))
            wrap = _wrap(self.vault_id, slot_id, KIND_PASSWORD, kek, key)
            with schema.write_txn(self._conn):
                self._conn.execute(
                    _UPDATE_META_AND_WRAP,
                    (slots.encode_meta(meta), *wrap, slot_id),
                )
            return
        raise WrongPasswordError("the current master password is wrong")

    def rotate_key(
        self,
        password: str,
        new_password: str | None = None,
        *,
        kdf_params: KdfParams | None = None,
    ) -> Rotation:
        """Replace the vault key: a new random key, every item re-encrypted, every slot moved.

        ``password`` is the current master password: each password slot it
        opens is rewrapped directly, under ``new_password`` if given (with a
        new salt; the slot's Argon2 cost unless ``kdf_params``). Every other
        slot is *sealed* to its renewal public key (HPKE; no KEK needed) and
        rewrapped at its next use; a slot without a usable renewal key
        (older than this feature and not used since, or altered) is deleted
        and reported. The old key then opens nothing in this file.

        All of it is one ``BEGIN IMMEDIATE`` transaction: a crash at any point
        leaves the old vault or the new one, never a mix. Works locked or
        unlocked (the vault stays as it was, with the new key if unlocked).
        Refuses (:class:`ItemIntegrityError`) a vault whose items do not all
        authenticate, rather than re-encrypt tampered data under the new key.
        """
        if new_password is not None:
            check_password(new_password)
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS:
            raise WrongPasswordError("the current master password is wrong")
        opened = [
            found
            for slot_id in self._slot_ids(KIND_PASSWORD)
            if (found := self._try_password_slot(slot_id, password)) is not None
        ]
        if not opened:
            raise WrongPasswordError("the current master password is wrong")
        old_key = opened[0][2]
        self._verify_key(old_key, may_record=True)
        # Argon2 for the rewrapped slots before the write lock is taken.
        typed = {
            str(row["id"]): _password_kek(
                password if new_password is None else new_password,
                self._slot_params(row, kdf_params),
            )
            for row, _, _ in opened
        }
        was_unlocked = self.is_unlocked
        new_key = bytearray(crypto.random_bytes(crypto.KEY_LEN))
        try:
            with schema.write_txn(self._conn):
                self._verify_key(old_key)  # the file may have changed since the check above
                count = self._reencrypt_items(old_key, bytes(new_key))
                self._conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'key_check'",
                    (_key_check(bytes(new_key), self.vault_id).hex(),),
                )
                result = self._move_slots(old_key, bytes(new_key), typed)
            self.lock()
            if was_unlocked:
                self._set_key(bytes(new_key))
        finally:
            for i in range(len(new_key)):
                new_key[i] = 0
        return Rotation(count, *result)

    def _reencrypt_items(self, old_key: bytes, new_key: bytes) -> int:
        """Inside rotate_key's transaction: authenticate every item and the manifest
        under the old key, re-encrypt each under the new one (same id and version)."""
        rows = self._conn.execute(
            "SELECT id, version, nonce, ciphertext FROM items ORDER BY id"
        ).fetchall()
        listed = [(r[0], r[1]) for r in rows]
        stored = self._conn.execute("SELECT value FROM meta WHERE key = 'manifest_mac'").fetchone()
        try:
            expected = _manifest_mac(old_key, self.vault_id, listed)
            ok = stored is not None and hmac.compare_digest(bytes.fromhex(stored[0]), expected)
        except (TypeError, ValueError, struct.error):
            ok = False
        if not ok:
            raise ItemIntegrityError(
                "the vault's item list failed its integrity check: not rotating a vault "
                "whose items were removed, added or rolled back outside unlatch"
            )
        old_prk, new_prk = crypto.hkdf_extract(old_key), crypto.hkdf_extract(new_key)
        updates = []
        for item_id, version, nonce, ct in rows:
            aad = self._item_aad(item_id, version)
            try:
                if not isinstance(ct, bytes) or len(ct) > MAX_CIPHERTEXT:
                    raise AeadFailure
                plaintext = crypto.open_sealed(
                    self._item_key_from(old_prk, item_id), nonce, ct, aad
                )
            except (AeadFailure, TypeError):
                raise ItemIntegrityError(
                    f"item {item_id} failed its integrity check: not rotating a vault "
                    "with a tampered or damaged item"
                ) from None
            updates.append(
                (*crypto.seal(self._item_key_from(new_prk, item_id), plaintext, aad), item_id)
            )
        self._conn.executemany("UPDATE items SET nonce = ?, ciphertext = ? WHERE id = ?", updates)
        _store_manifest(self._conn, _manifest_mac(new_key, self.vault_id, listed))
        return len(rows)

    def _move_slots(
        self, old_key: bytes, new_key: bytes, typed: Mapping[str, tuple[SlotMeta, bytes]]
    ) -> tuple[list[SlotInfo], list[SlotInfo], list[DroppedSlot]]:
        """Inside rotate_key's transaction: rewrap the typed password slots, seal the
        others to their (authenticated) renewal keys, delete those that cannot be."""
        rewrapped: list[SlotInfo] = []
        sealed: list[SlotInfo] = []
        dropped: list[DroppedSlot] = []
        rows = self._conn.execute(
            "SELECT id, kind, label, created_at, meta, renew_key, enc, renew_mac FROM slots"
            " ORDER BY created_at, id"
        ).fetchall()
        for row in rows:
            slot_id, kind, public, mac = str(row[0]), str(row[1]), row[5], row[7]
            if slot_id in typed:
                meta, kek = typed[slot_id]
                wrap = _wrap(self.vault_id, slot_id, kind, kek, new_key)
                self._conn.execute(
                    _UPDATE_META_AND_WRAP,
                    (slots.encode_meta(meta), *wrap, slot_id),
                )
                rewrapped.append(_slot_info((*row[:4], slots.encode_meta(meta), wrap[2], None)))
                continue
            reason = None
            if not isinstance(public, bytes) or not isinstance(mac, bytes):
                reason = DROP_NOT_RENEWABLE
            elif not hmac.compare_digest(
                mac, _renew_mac(old_key, self.vault_id, slot_id, kind, public)
            ):
                reason = DROP_ALTERED
            else:
                try:
                    wrap = _seal(self.vault_id, slot_id, kind, public, new_key)
                except AeadFailure:
                    reason = DROP_ALTERED
            if reason is not None:
                self._conn.execute("DELETE FROM slots WHERE id = ?", (slot_id,))
                dropped.append(DroppedSlot(_slot_info(row[:7]), reason))
                continue
            self._conn.execute(_UPDATE_WRAP, (*wrap, slot_id))
            sealed.append(_slot_info((*row[:6], wrap[4])))
        return rewrapped, sealed, dropped

    # -------------------------------------------------------------------- items

    def add_item(self, item: Item) -> Item:
        """Store a new item (id, version and times assigned here); returns it."""
        key = self._require_key()
        now = _now()
        new = Item.from_dict(
            {**item.to_dict(), "id": _new_id(), "version": 1, "created_at": now, "updated_at": now}
        )
        new.validate()
        nonce, ct = self._seal_item(key, new)
        with self._item_txn(key):
            self._conn.execute(
                "INSERT INTO items (id, version, nonce, ciphertext) VALUES (?, ?, ?, ?)",
                (new.id, new.version, nonce, ct),
            )
        return new

    def add_items(self, new_items: Iterable[Item]) -> list[Item]:
        """Store many items in one transaction (imports): all land or none do."""
        key = self._require_key()
        now = _now()
        prepared: list[tuple[Item, bytes, bytes]] = []
        for item in new_items:
            new = Item.from_dict(
                {
                    **item.to_dict(),
                    "id": _new_id(),
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            new.validate()
            prepared.append((new, *self._seal_item(key, new)))
        with self._item_txn(key):
            self._conn.executemany(
                "INSERT INTO items (id, version, nonce, ciphertext) VALUES (?, ?, ?, ?)",
                [(i.id, i.version, nonce, ct) for i, nonce, ct in prepared],
            )
        return [i for i, _, _ in prepared]

    def update_item(self, item_id: str, changes: Mapping[str, Any]) -> Item:
        """Apply ``changes`` (a subset of :data:`EDITABLE_FIELDS`); bumps the version."""
        key = self._require_key()
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise InvalidItemError(f"unknown item field(s): {', '.join(sorted(unknown))}")
        with self._item_txn(key):
            current = self._load_item(key, item_id)
            data = {**current.to_dict(), **changes}
            data.update(version=current.version + 1, updated_at=max(_now(), current.updated_at))
            new = Item.from_dict(data)
            new.validate()
            nonce, ct = self._seal_item(key, new)
            self._conn.execute(
                "UPDATE items SET version = ?, nonce = ?, ciphertext = ? WHERE id = ?",
                (new.version, nonce, ct, new.id),
            )
        return new

    def delete_item(self, item_id: str) -> None:
        """Remove an item for good."""
        key = self._require_key()
        with self._item_txn(key):
            cur = self._conn.execute("DELETE FROM items WHERE id = ?", (item_id,))
            if cur.rowcount != 1:
                raise ItemNotFoundError(f"no item with id {item_id}")

    def get_item(self, item_id: str) -> Item:
        """One item by id, authenticated."""
        key = self._require_key()
        self._check_manifest(key)
        return self._load_item(key, item_id)

    def items(self) -> list[Item]:
        """Every item, decrypted and authenticated, sorted by title.

        Raises :class:`ItemIntegrityError` naming the damaged items rather
        than silently leaving them out.
        """
        return [i.copy() for i in self._all_items()]

    def search(self, query: str = "", tag: str | None = None) -> list[Item]:
        """Items whose title, username, URLs or tags contain ``query`` (case-insensitive).

        There is no plaintext index on disk, so this decrypts every item
        (cached in memory until :meth:`lock`); see bench/bench_vault.py.
        """
        found = [i for i in self._all_items() if not query or i.matches(query)]
        if tag is not None:
            wanted = tag.casefold()
            found = [i for i in found if wanted in (t.casefold() for t in i.tags)]
        return [i.copy() for i in found]

    def _all_items(self) -> list[Item]:
        """Authenticated items (shared cache objects: never hand these out uncopied).

        One read transaction (a consistent snapshot): ids and versions first,
        then ciphertexts only for items not already decrypted and cached.
        """
        key = self._require_key()
        self._conn.execute("BEGIN")
        try:
            rows = self._manifest_rows()
            self._check_manifest(key, rows)
            missing = [r for r in rows if (r[0], r[1]) not in self._cache]
            fetched: dict[Any, tuple[Any, Any, Any]] = {}
            if missing:
                fetched = {
                    r[0]: (r[1], r[2], r[3])
                    for r in self._conn.execute("SELECT id, version, nonce, ciphertext FROM items")
                }
        finally:
            self._conn.execute("COMMIT")
        result: list[Item] = []
        damaged: list[str] = []
        for item_id, version in rows:
            cached = self._cache.get((item_id, version))
            if cached is not None:
                result.append(cached)
                continue
            try:
                stored_version, nonce, ct = fetched[item_id]
                if stored_version != version:
                    raise ItemIntegrityError(f"item {item_id} changed during the read")
                result.append(self._decrypt_row(key, item_id, version, nonce, ct, copy=False))
            except (ItemIntegrityError, KeyError):
                damaged.append(str(item_id))
        if damaged:
            raise ItemIntegrityError(
                f"{len(damaged)} item(s) failed their integrity check (tampered or "
                f"damaged): {', '.join(sorted(damaged)[:5])}" + (" ..." if len(damaged) > 5 else "")
            )
        result.sort(key=lambda i: (i.title.casefold(), i.id))
        return result

    def find(self, title_or_id: str) -> Item:
        """The one item named by ``title_or_id``: first an exact id, then a title
        (any case), then a unique id prefix of :data:`MIN_ID_PREFIX`+ characters
        (ids are 32 hex digits: nobody types them whole, as with git commits)."""
        key = self._require_key()
        if self._conn.execute("SELECT 1 FROM items WHERE id = ?", (title_or_id,)).fetchone():
            return self.get_item(title_or_id)
        wanted = title_or_id.casefold()
        matches = [i.copy() for i in self._all_items() if i.title.casefold() == wanted]
        del key
        if not matches and _ID_PREFIX.fullmatch(title_or_id):
            prefix = title_or_id.lower()
            matches = [i.copy() for i in self._all_items() if i.id.startswith(prefix)]
            if len(matches) > 1:
                ids = ", ".join(i.id for i in matches[:5])
                raise AmbiguousItemError(
                    f"{len(matches)} items have ids starting with {title_or_id!r}; "
                    f"give more characters: {ids}"
                )
        if not matches:
            hint = "see `unlatch list`"
            if len(title_or_id) < MIN_ID_PREFIX:
                hint += f"; an id prefix needs at least {MIN_ID_PREFIX} characters"
            raise ItemNotFoundError(f"no item titled {title_or_id!r} ({hint})")
        if len(matches) > 1:
            ids = ", ".join(i.id for i in matches)
            raise AmbiguousItemError(
                f"{len(matches)} items are titled {title_or_id!r}; use an id instead: {ids}"
            )
        return matches[0]

    def count_items(self) -> int:
        """Number of items (no key needed: ids are not secret)."""
        (n,) = self._conn.execute("SELECT COUNT(*) FROM items").fetchone()
        return int(n)

    # ---------------------------------------------------------------- internals

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

    def _slot_ids(self, kind: str) -> list[str]:
        rows = self._conn.execute(
            "SELECT id FROM slots WHERE kind = ? ORDER BY created_at, id", (kind,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def _slot_row(self, slot_id: str) -> dict[str, Any]:
        cur = self._conn.execute(
            "SELECT id, kind, label, created_at, meta, nonce, wrapped_key, renew_key, renew_mac,"
            " enc FROM slots WHERE id = ?",
            (slot_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise SlotNotFoundError(f"no key slot {slot_id}")
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def _unwrap(self, row: Mapping[str, Any], kek: bytes) -> bytes | None:
        if not isinstance(kek, bytes | bytearray) or len(kek) != crypto.KEY_LEN:
            return None
        """The vault key from a slot row: AES-GCM under the KEK, or, for a slot
        sealed by a rotation (``enc`` set), HPKE-opened with the renewal key
        pair derived from the KEK. None when the KEK does not open it."""
        slot_id, kind = str(row["id"]), str(row["kind"])
        aad = slots.slot_aad(self.vault_id, slot_id, kind)
        try:
            if row["enc"] is None:
                key = crypto.open_sealed(
                    bytes(kek), bytes(row["nonce"]), bytes(row["wrapped_key"]), aad
                )
            else:
                seed = _renew_seed(self.vault_id, slot_id, kind, bytes(kek))
                key = crypto.open_from(
                    seed, bytes(row["enc"]), bytes(row["wrapped_key"]), crypto.LABEL_SLOT_SEAL, aad
                )
        except (AeadFailure, TypeError):
            return None
        return key if len(key) == crypto.KEY_LEN else None

    def _renew_slot(self, row: Mapping[str, Any], kek: bytes, key: bytes) -> None:
        """After ``kek`` opened ``row``: rewrap it under the KEK if it was sealed by a
        rotation, or record its renewal key if it has none (made by an older unlatch).

        Runs in its own transaction, and only if the row and the vault key are
        still what was read (another process may have rotated meanwhile: the
        slot must never get an older key written back). A file that cannot be
        written (read-only, busy) leaves the slot as it was: it keeps working.
        """
        slot_id, kind = str(row["id"]), str(row["kind"])
        mac_ok = isinstance(row["renew_key"], bytes) and isinstance(row["renew_mac"], bytes)
        if mac_ok:
            expected = _renew_mac(key, self.vault_id, slot_id, kind, row["renew_key"])
            mac_ok = hmac.compare_digest(expected, row["renew_mac"])
        if row["enc"] is None and mac_ok:
            return
        wrap = _wrap(self.vault_id, slot_id, kind, kek, key)
        try:
            with schema.write_txn(self._conn):
                now = self._conn.execute(
                    "SELECT nonce, wrapped_key, enc FROM slots WHERE id = ?", (slot_id,)
                ).fetchone()
                check = self._conn.execute(
                    "SELECT value FROM meta WHERE key = 'key_check'"
                ).fetchone()
                if now != (row["nonce"], row["wrapped_key"], row["enc"]) or check is None:
                    return
                if not hmac.compare_digest(
                    str(check[0]).encode(), _key_check(key, self.vault_id).hex().encode()
                ):
                    return
                self._conn.execute(_UPDATE_WRAP, (*wrap, slot_id))
        except sqlite3.OperationalError:
            return

    def _try_password_slot(
        self, slot_id: str, password: str
    ) -> tuple[dict[str, Any], bytes, bytes] | None:
        """``(row, kek, vault key)`` if ``password`` opens this password slot."""
        row = self._slot_row(slot_id)
        meta = slots.decode_meta(row["meta"])
        params = _params_from_meta(meta)
        salt = _salt_from_meta(meta)
        try:
            kek = _kek_from_argon(kdf.derive(password, salt, params))
        except ValueError:
            return None
        key = self._unwrap(row, kek)
        return None if key is None else (row, kek, key)

    @staticmethod
    def _slot_params(row: Mapping[str, Any], kdf_params: KdfParams | None) -> KdfParams:
        """The Argon2 cost for rewrapping a password slot: the given one, else the slot's."""
        params = kdf_params or _params_from_meta(slots.decode_meta(row["meta"]))
        params.check()
        return params

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


def _kek_from_argon(argon_output: bytes) -> bytes:
    return crypto.hkdf(argon_output, crypto.LABEL_PASSWORD_KEK)


def _password_kek(password: str, params: KdfParams) -> tuple[SlotMeta, bytes]:
    salt = crypto.random_bytes(kdf.SALT_LEN)
    meta: SlotMeta = {
        "kdf": "argon2id",
        "m": params.memory_kib,
        "t": params.time_cost,
        "p": params.parallelism,
        "salt": base64.b64encode(salt).decode("ascii"),
    }
    return meta, _kek_from_argon(kdf.derive(password, salt, params))


def _insert_password_slot(
    conn: sqlite3.Connection,
    vault_id: bytes,
    key: bytes,
    password: str,
    params: KdfParams,
    label: str,
) -> str:
    slot_id = _new_id()
    meta, kek = _password_kek(password, params)
    wrap = _wrap(vault_id, slot_id, KIND_PASSWORD, kek, key)
    conn.execute(
        _INSERT_SLOT,
        (slot_id, KIND_PASSWORD, label, _now(), slots.encode_meta(meta), *wrap),
    )
    return slot_id


# The five columns that hold a slot's wrapping, in the order _wrap/_seal return them.
_INSERT_SLOT = (
    "INSERT INTO slots (id, kind, label, created_at, meta,"
    " nonce, wrapped_key, renew_key, renew_mac, enc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_WRAP = (
    "UPDATE slots SET nonce = ?, wrapped_key = ?, renew_key = ?, renew_mac = ?, enc = ?"
    " WHERE id = ?"
)
_UPDATE_META_AND_WRAP = (
    "UPDATE slots SET meta = ?, nonce = ?, wrapped_key = ?, renew_key = ?, renew_mac = ?,"
    " enc = ? WHERE id = ?"
)
Wrap = tuple[bytes, bytes, bytes, bytes, bytes | None]


def _renew_seed(vault_id: bytes, slot_id: str, kind: str, kek: bytes) -> bytes:
    """Seed of a slot's renewal key pair: only the holder of the slot's KEK can make it."""
    return crypto.hkdf(
        kek, crypto.LABEL_RENEW_SEED, crypto.lp(vault_id, slot_id.encode(), kind.encode())
    )


def _renew_mac(key: bytes, vault_id: bytes, slot_id: str, kind: str, public: bytes) -> bytes:
    """HMAC of a slot's renewal public key under the vault key.

    A rotation seals the new key to this public key; without the MAC, someone
    able to write the file could swap in a key of their own and receive it.
    """
    mac_key = crypto.hkdf(key, crypto.LABEL_RENEW_MAC_KEY, vault_id)
    data = crypto.lp(crypto.LABEL_RENEW_MAC, vault_id, slot_id.encode(), kind.encode(), public)
    return hmac.new(mac_key, data, sha256).digest()


def _wrap(vault_id: bytes, slot_id: str, kind: str, kek: bytes, key: bytes) -> Wrap:
    """A slot's normal form: the vault key AES-GCM-wrapped under the KEK, plus the
    slot's renewal public key (derived from the KEK) and its MAC under the vault key."""
    nonce, wrapped = crypto.seal(kek, key, slots.slot_aad(vault_id, slot_id, kind))
    public = crypto.renewal_public_key(_renew_seed(vault_id, slot_id, kind, kek))
    return nonce, wrapped, public, _renew_mac(key, vault_id, slot_id, kind, public), None


def _seal(vault_id: bytes, slot_id: str, kind: str, public: bytes, key: bytes) -> Wrap:
    """A slot's sealed form (after a rotation): the vault key HPKE-sealed to the slot's
    renewal public key, which needs no KEK; :class:`AeadFailure` for an unusable key."""
    enc, wrapped = crypto.seal_to(
        public, key, crypto.LABEL_SLOT_SEAL, slots.slot_aad(vault_id, slot_id, kind)
    )
    return b"", wrapped, public, _renew_mac(key, vault_id, slot_id, kind, public), enc


def _params_from_meta(meta: SlotMeta) -> KdfParams:
    try:
        if meta.get("kdf") != "argon2id":
            raise ValueError
        params = KdfParams(int(meta["m"]), int(meta["t"]), int(meta["p"]))
    except (KeyError, ValueError, TypeError):
        raise CorruptVaultError("a password slot has damaged Argon2id parameters") from None
    params.check()
    return params


def _salt_from_meta(meta: SlotMeta) -> bytes:
    try:
        salt = base64.b64decode(str(meta["salt"]), validate=True)
    except (KeyError, binascii.Error):
        raise CorruptVaultError("a password slot has a damaged salt") from None
    if not 8 <= len(salt) <= 64:
        raise CorruptVaultError("a password slot has a damaged salt")
    return salt


def _slot_info(row: tuple[Any, ...]) -> SlotInfo:
    slot_id, kind, label, created_at, meta, renew_key, enc = row
    renewal = "none" if renew_key is None else "ready" if enc is None else "pending"
    return SlotInfo(
        str(slot_id),
        str(kind),
        str(label),
        int(created_at),
        slots.decode_meta(str(meta)),
        renewal,
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
