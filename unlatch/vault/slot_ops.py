"""Key slots: unlocking, adding, renaming and removing slots, changing the master
password, and rotating the vault key (every item re-encrypted, every slot
rewrapped or sealed to its renewal key, in one transaction).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from unlatch.vault import crypto, kdf, schema, slots
from unlatch.vault.crypto import AeadFailure
from unlatch.vault.errors import (
    CorruptVaultError,
    LastPasswordSlotError,
    SlotNotFoundError,
    WrongKeyError,
    WrongPasswordError,
)
from unlatch.vault.file_core import (
    MAX_PASSWORD_CHARS,
    VaultFile,
    _key_check,
    _new_id,
    _now,
    check_password,
)
from unlatch.vault.kdf import KdfParams
from unlatch.vault.slots import KIND_PASSWORD, InvalidSlotError, SlotInfo, SlotMeta


@dataclass(frozen=True)
class OpenedSlot:
    """A slot that a KEK opened, before the vault holds its key (:meth:`SlotOps.open_slot`).

    ``needs_write``: the slot is to be renewed in the file (sealed by a
    rotation, or without a renewal key), which :meth:`SlotOps.finish_slot_unlock`
    does in its own write transaction. The key and KEK are left out of the repr.
    """

    row: Mapping[str, Any] = field(repr=False)
    kek: bytes = field(repr=False)
    key: bytes = field(repr=False)
    needs_write: bool


class SlotOps(VaultFile):
    """The vault's key slots and the vault key's rotation."""

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
        self.finish_slot_unlock(self.open_slot(slot_id, kek))

    def open_slot(self, slot_id: str, kek: bytes) -> OpenedSlot:
        """The first half of :meth:`unlock_with_slot`: reads and checks, never writes.

        Two small reads (the slot row, the key check) and an AES-GCM open (an
        HPKE open for a slot sealed by a rotation): the agent runs this on its
        event loop rather than in a worker thread, whose hop costs two thread
        wake-ups (issue 15); the write, when ``needs_write`` says one is due,
        still goes to a thread. :class:`WrongKeyError` when the KEK does not
        open the slot, :class:`CorruptVaultError` when it opens to another key.
        """
        row = self._slot_row(slot_id)
        key = self._unwrap(row, kek)
        if key is None:
            raise WrongKeyError(f"the key does not open slot {row['label']!r} ({row['kind']})")
        self._verify_key(key)
        return OpenedSlot(row, bytes(kek), key, not self._slot_current(row, key))

    def finish_slot_unlock(self, opened: OpenedSlot) -> None:
        """The second half: renew the slot in the file if it needs it, then hold the key."""
        if opened.needs_write:
            self._renew_slot(opened.row, opened.kek, opened.key)
        self._set_key(opened.key)

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
        if self._slot_current(row, key):
            return
        slot_id, kind = str(row["id"]), str(row["kind"])
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

    def _slot_current(self, row: Mapping[str, Any], key: bytes) -> bool:
        """True when ``row`` needs no renewal: wrapped (not sealed by a rotation), with
        a renewal key whose MAC under the vault ``key`` holds."""
        if row["enc"] is not None:
            return False
        if not (isinstance(row["renew_key"], bytes) and isinstance(row["renew_mac"], bytes)):
            return False
        slot_id, kind = str(row["id"]), str(row["kind"])
        expected = _renew_mac(key, self.vault_id, slot_id, kind, row["renew_key"])
        return hmac.compare_digest(expected, row["renew_mac"])

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
