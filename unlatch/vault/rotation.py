"""Rotating the vault key: a new key, every item re-encrypted, every slot rewrapped
(password slots, with the password typed) or sealed to its renewal key (phone
and passkey slots, renewed at their next use), all in one SQLite transaction.
A slot that cannot be renewed is listed and deleted. See docs/vault.md, "Key rotation".
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from unlatch.vault import crypto, schema, slots
from unlatch.vault.crypto import AeadFailure
from unlatch.vault.errors import (
    ItemIntegrityError,
    WrongPasswordError,
)
from unlatch.vault.file_core import (
    MAX_CIPHERTEXT,
    MAX_PASSWORD_CHARS,
    _key_check,
    _manifest_mac,
    _store_manifest,
    check_password,
)
from unlatch.vault.kdf import KdfParams
from unlatch.vault.slot_ops import (
    _UPDATE_META_AND_WRAP,
    _UPDATE_WRAP,
    SlotOps,
    Wrap,
    _password_kek,
    _renew_mac,
    _slot_info,
    _wrap,
)
from unlatch.vault.slots import KIND_PASSWORD, SlotInfo, SlotMeta

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


class RotationOps(SlotOps):
    """:meth:`rotate_key` and its two steps (items, then slots)."""

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


def _seal(vault_id: bytes, slot_id: str, kind: str, public: bytes, key: bytes) -> Wrap:
    """A slot's sealed form (after a rotation): the vault key HPKE-sealed to the slot's
    renewal public key, which needs no KEK; :class:`AeadFailure` for an unusable key."""
    enc, wrapped = crypto.seal_to(
        public, key, crypto.LABEL_SLOT_SEAL, slots.slot_aad(vault_id, slot_id, kind)
    )
    return b"", wrapped, public, _renew_mac(key, vault_id, slot_id, kind, public), enc
