"""Passkey slots at the vault level (no browser).

The passkey slot, the master-password slot and a phone slot all unwrap the
same vault key, and removing any one of them leaves the others working.
The PRF output is modelled as an authenticator computes it: CTAP2
``hmac-secret`` is HMAC-SHA256 under a per-credential secret of
``SHA-256("WebAuthn PRF" || 0x00 || salt)`` (WebAuthn Level 3, section 10.1.4).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.vault import PASSWORD

from unlatch.protocol import phone_slot_kek
from unlatch.protocol.keyschedule import passkey_slot_kek
from unlatch.vault import (
    KIND_PASSKEY,
    KIND_PHONE,
    OWASP_MINIMUM,
    Item,
    Vault,
    WrongKeyError,
    WrongPasswordError,
)
from unlatch.vault.errors import SlotNotFoundError
from unlatch.vault.localkeys import LocalKeyStore

MakeVault = Callable[..., Vault]


class FakeAuthenticatorCredential:
    """Only the PRF arithmetic of a credential: a secret and hmac-secret over the salt."""

    def __init__(self) -> None:
        self.credential_id = os.urandom(48)
        self._cred_random = os.urandom(32)

    def prf(self, salt: bytes) -> bytes:
        hashed = hashlib.sha256(b"WebAuthn PRF\x00" + salt).digest()
        return hmac.new(self._cred_random, hashed, hashlib.sha256).digest()


def reopen(vault: Vault) -> Vault:
    path = vault.path
    vault.close()
    return Vault.open(path)


Unlocker = tuple[str, Callable[[Vault], None]]


def _three_slots(vault: Vault, tmp_path: Path) -> dict[str, Unlocker]:
    """Add a passkey and a phone slot; return ``kind -> (slot id, unlock)`` for all three."""
    cred = FakeAuthenticatorCredential()
    salt = os.urandom(32)
    passkey_kek = passkey_slot_kek(cred.prf(salt), salt, cred.credential_id)
    passkey_id = vault.add_slot(
        KIND_PASSKEY, "YubiKey", passkey_kek, {"credential_id": cred.credential_id.hex()}
    )

    local = LocalKeyStore(tmp_path / "local-keys.json")
    pairing_id = os.urandom(16)
    phone_share = os.urandom(32)
    k_l = local.create(pairing_id.hex())
    phone_id = vault.add_slot(
        KIND_PHONE, "Pixel 8", phone_slot_kek(phone_share, k_l, pairing_id), {}
    )

    def with_passkey(v: Vault) -> None:
        v.unlock_with_slot(passkey_id, passkey_slot_kek(cred.prf(salt), salt, cred.credential_id))

    def with_phone(v: Vault) -> None:
        kek = phone_slot_kek(phone_share, local.get(pairing_id.hex()), pairing_id)
        v.unlock_with_slot(phone_id, kek)

    def with_password(v: Vault) -> None:
        v.unlock_with_password(PASSWORD)

    password_id = vault.find_slots("password")[0].id
    return {
        "passkey": (passkey_id, with_passkey),
        "phone": (phone_id, with_phone),
        "password": (password_id, with_password),
    }


def test_passkey_password_and_phone_slots_unwrap_the_same_key(
    make_vault: MakeVault, tmp_path: Path
) -> None:
    vault = make_vault()
    item = vault.add_item(Item(title="bank", username="ada", password="s3cret"))
    unlockers = _three_slots(vault, tmp_path)
    kinds = sorted(s.kind for s in vault.list_slots())
    assert kinds == ["passkey", "password", "phone"]
    for name, (_, unlock) in unlockers.items():
        vault = reopen(vault)
        assert not vault.is_unlocked
        unlock(vault)
        assert vault.is_unlocked, name
        assert vault.get_item(item.id).password == "s3cret"  # same vault key, same items


@pytest.mark.parametrize("removed", ["passkey", "phone"])
def test_removing_one_slot_leaves_the_others_working(
    make_vault: MakeVault, tmp_path: Path, removed: str
) -> None:
    vault = make_vault()
    item = vault.add_item(Item(title="mail", password="pw-1"))
    unlockers = _three_slots(vault, tmp_path)
    removed_id, removed_unlock = unlockers[removed]
    vault.remove_slot(removed_id)
    vault = reopen(vault)
    with pytest.raises(SlotNotFoundError):
        removed_unlock(vault)
    assert not vault.is_unlocked
    for name, (_, unlock) in unlockers.items():
        if name == removed:
            continue
        vault = reopen(vault)
        unlock(vault)
        assert vault.get_item(item.id).password == "pw-1"


def test_password_slot_removed_passkey_and_phone_still_open(
    make_vault: MakeVault, tmp_path: Path
) -> None:
    vault = make_vault()
    item = vault.add_item(Item(title="x", password="pw-2"))
    unlockers = _three_slots(vault, tmp_path)
    # The last password slot is protected; add a second one, then remove the first.
    first, _ = unlockers["password"]
    vault.add_password_slot("another long passphrase", "recovery", kdf_params=OWASP_MINIMUM)
    vault.remove_slot(first)
    vault = reopen(vault)
    with pytest.raises(WrongPasswordError):
        vault.unlock_with_password(PASSWORD)
    for name in ("passkey", "phone"):
        vault = reopen(vault)
        unlockers[name][1](vault)
        assert vault.get_item(item.id).password == "pw-2"


def test_wrong_passkey_or_salt_or_credential_id_is_refused(make_vault: MakeVault) -> None:
    vault = make_vault()
    cred, other = FakeAuthenticatorCredential(), FakeAuthenticatorCredential()
    salt = os.urandom(32)
    slot = vault.add_slot(
        KIND_PASSKEY, "key", passkey_slot_kek(cred.prf(salt), salt, cred.credential_id), {}
    )
    vault = reopen(vault)
    wrong = [
        passkey_slot_kek(other.prf(salt), salt, cred.credential_id),  # another authenticator
        passkey_slot_kek(cred.prf(os.urandom(32)), salt, cred.credential_id),  # another salt
        passkey_slot_kek(cred.prf(salt), salt, other.credential_id),  # another credential id
    ]
    for kek in wrong:
        with pytest.raises(WrongKeyError):
            vault.unlock_with_slot(slot, kek)
        assert not vault.is_unlocked
    vault.unlock_with_slot(slot, passkey_slot_kek(cred.prf(salt), salt, cred.credential_id))
    assert vault.is_unlocked
