"""Key slots: password, generic KEK slots, removal rules, password change."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from fixtures.vault import PASSWORD

from unlatch.vault import (
    OWASP_MINIMUM,
    Item,
    KdfParams,
    LastPasswordSlotError,
    Vault,
    VaultLockedError,
    WrongKeyError,
    WrongPasswordError,
)
from unlatch.vault.errors import SlotNotFoundError, WeakKdfError
from unlatch.vault.slots import InvalidSlotError

MakeVault = Callable[..., Vault]


def reopen(vault: Vault) -> Vault:
    path = vault.path
    vault.close()
    return Vault.open(path)


def test_password_and_two_generic_slots_unwrap_the_same_key(make_vault: MakeVault) -> None:
    vault = make_vault()
    item = vault.add_item(Item(title="shared", password="pw"))
    kek_phone, kek_passkey = os.urandom(32), os.urandom(32)
    phone = vault.add_slot("phone", "Pixel 8", kek_phone, {"pairing_id": "abc", "n": 3})
    passkey = vault.add_slot("passkey", "YubiKey", kek_passkey, {})

    infos = {s.id: s for s in vault.list_slots()}
    assert infos[phone].kind == "phone" and infos[phone].meta == {"pairing_id": "abc", "n": 3}
    assert [s.id for s in vault.find_slots("passkey")] == [passkey]
    assert len(vault.find_slots("password")) == 1

    for unlock in (
        lambda v: v.unlock_with_password(PASSWORD),
        lambda v: v.unlock_with_slot(phone, kek_phone),
        lambda v: v.unlock_with_slot(passkey, kek_passkey),
    ):
        vault = reopen(vault)
        unlock(vault)
        assert vault.get_item(item.id).password == "pw"

    # Removing one generic slot leaves the others working.
    vault.remove_slot(phone)
    vault = reopen(vault)
    with pytest.raises(SlotNotFoundError):
        vault.unlock_with_slot(phone, kek_phone)
    vault.unlock_with_slot(passkey, kek_passkey)
    vault = reopen(vault)
    vault.unlock_with_password(PASSWORD)
    assert vault.get_item(item.id).title == "shared"
    vault.close()


def test_wrong_keys_are_rejected_and_leave_the_vault_locked(make_vault: MakeVault) -> None:
    vault = make_vault()
    kek = os.urandom(32)
    slot = vault.add_slot("phone", "phone", kek, {})
    vault = reopen(vault)
    with pytest.raises(WrongKeyError, match="phone"):
        vault.unlock_with_slot(slot, os.urandom(32))
    with pytest.raises(WrongKeyError):
        vault.unlock_with_slot(slot, b"short")
    with pytest.raises(WrongPasswordError):
        vault.unlock_with_password("not the password")
    assert not vault.is_unlocked
    vault.close()


def test_slot_aad_binds_kind_and_id(make_vault: MakeVault) -> None:
    """A wrapped key copied into another slot row (or relabelled kind) no longer opens."""
    vault = make_vault()
    kek = os.urandom(32)
    a = vault.add_slot("phone", "a", kek, {})
    b = vault.add_slot("phone", "b", os.urandom(32), {})
    conn = vault._conn
    conn.execute(
        "UPDATE slots SET nonce = (SELECT nonce FROM slots WHERE id = ?),"
        " wrapped_key = (SELECT wrapped_key FROM slots WHERE id = ?) WHERE id = ?",
        (a, a, b),
    )
    conn.execute("UPDATE slots SET kind = 'passkey' WHERE id = ?", (a,))
    vault = reopen(vault)
    with pytest.raises(WrongKeyError):
        vault.unlock_with_slot(b, kek)
    with pytest.raises(WrongKeyError):
        vault.unlock_with_slot(a, kek)
    vault.close()


def test_last_password_slot_cannot_be_removed(make_vault: MakeVault) -> None:
    vault = make_vault()
    (pw_slot,) = vault.find_slots("password")
    vault.add_slot("phone", "phone", os.urandom(32), {})
    with pytest.raises(LastPasswordSlotError, match="recover"):
        vault.remove_slot(pw_slot.id)
    second = vault.add_password_slot("recovery phrase words", "recovery", kdf_params=OWASP_MINIMUM)
    vault.remove_slot(pw_slot.id)  # allowed now: another password slot remains
    with pytest.raises(LastPasswordSlotError):
        vault.remove_slot(second)
    vault = reopen(vault)
    vault.unlock_with_password("recovery phrase words")
    with pytest.raises(WrongPasswordError):
        reopen(vault).unlock_with_password(PASSWORD)


def test_slot_management_needs_the_key_and_valid_input(make_vault: MakeVault) -> None:
    vault = make_vault()
    slot = vault.add_slot("phone", "old name", os.urandom(32), {})
    vault.rename_slot(slot, "new name")
    assert vault.find_slots("phone")[0].label == "new name"
    with pytest.raises(InvalidSlotError):
        vault.add_slot("Bad Kind!", "x", os.urandom(32), {})
    with pytest.raises(InvalidSlotError):
        vault.add_slot("password", "x", os.urandom(32), {})
    with pytest.raises(InvalidSlotError):
        vault.add_slot("phone", "x", os.urandom(16), {})
    with pytest.raises(InvalidSlotError):
        vault.add_slot("phone", "x", os.urandom(32), {"k": 1.5})  # type: ignore[dict-item]
    vault.lock()
    assert [s.label for s in vault.find_slots("phone")] == ["new name"]  # listing works locked
    with pytest.raises(VaultLockedError):
        vault.add_slot("phone", "x", os.urandom(32), {})
    with pytest.raises(VaultLockedError):
        vault.remove_slot(slot)


def test_change_password_rewraps_only_the_password_slot(make_vault: MakeVault) -> None:
    vault = make_vault()
    kek = os.urandom(32)
    phone = vault.add_slot("phone", "phone", kek, {})
    before = dict(vault._conn.execute("SELECT id, wrapped_key FROM slots").fetchall())
    with pytest.raises(WrongPasswordError):
        vault.change_password("wrong password", "new password 123")
    vault.change_password(PASSWORD, "new password 123")
    after = dict(vault._conn.execute("SELECT id, wrapped_key FROM slots").fetchall())
    assert after[phone] == before[phone]
    (pw,) = vault.find_slots("password")
    assert after[pw.id] != before[pw.id]
    vault = reopen(vault)
    with pytest.raises(WrongPasswordError):
        vault.unlock_with_password(PASSWORD)
    vault.unlock_with_password("new password 123")
    vault = reopen(vault)
    vault.unlock_with_slot(phone, kek)
    vault.close()


def test_kdf_floor_and_stored_params(tmp_path) -> None:  # type: ignore[no-untyped-def]
    weak = KdfParams(memory_kib=OWASP_MINIMUM.memory_kib - 1, time_cost=2)
    with pytest.raises(WeakKdfError, match="OWASP"):
        Vault.create(tmp_path / "v.db", PASSWORD, kdf_params=weak)
    with pytest.raises(WeakKdfError):
        Vault.create(tmp_path / "v.db", PASSWORD, kdf_params=KdfParams(19456, 1))
    assert not (tmp_path / "v.db").exists()
    vault = Vault.create(tmp_path / "v.db", PASSWORD, kdf_params=KdfParams(20480, 3))
    (slot,) = vault.find_slots("password")
    assert (slot.meta["m"], slot.meta["t"], slot.meta["p"], slot.meta["kdf"]) == (
        20480,
        3,
        1,
        "argon2id",
    )
    # A hostile file asking for a huge Argon2 cost is refused, not obeyed.
    vault._conn.execute(
        "UPDATE slots SET meta = json_set(meta, '$.m', 1073741824) WHERE kind = 'password'"
    )
    vault = reopen(vault)
    with pytest.raises(Exception, match=r"damaged Argon2id|too large"):
        vault.unlock_with_password(PASSWORD)
    vault.close()


def test_short_master_password_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidSlotError, match="at least 8"):
        Vault.create(tmp_path / "v.db", "short", kdf_params=OWASP_MINIMUM)


def test_a_planted_slot_wrapping_another_key_is_rejected(make_vault: MakeVault) -> None:
    """Someone with write access adds a slot around a key of their own: unlocking with it
    must not adopt that key (new items would be readable by them)."""
    from unlatch.vault import CorruptVaultError, crypto
    from unlatch.vault.slots import slot_aad

    vault = make_vault()
    kek, foreign_key = os.urandom(32), os.urandom(32)
    nonce, wrapped = crypto.seal(kek, foreign_key, slot_aad(vault.vault_id, "planted", "phone"))
    vault._conn.execute(
        "INSERT INTO slots (id, kind, label, created_at, meta, nonce, wrapped_key)"
        " VALUES ('planted', 'phone', 'evil', 0, '{}', ?, ?)",
        (nonce, wrapped),
    )
    vault = reopen(vault)
    with pytest.raises(CorruptVaultError, match="does not hold this vault's key"):
        vault.unlock_with_slot("planted", kek)
    assert not vault.is_unlocked
    vault.close()


def test_missing_key_check_is_recorded_by_the_password_only(make_vault: MakeVault) -> None:
    from unlatch.vault import CorruptVaultError

    vault = make_vault()
    kek = os.urandom(32)
    phone = vault.add_slot("phone", "phone", kek, {})
    vault._conn.execute("DELETE FROM meta WHERE key = 'key_check'")
    vault = reopen(vault)
    with pytest.raises(CorruptVaultError):
        vault.unlock_with_slot(phone, kek)
    vault.unlock_with_password(PASSWORD)
    vault = reopen(vault)
    vault.unlock_with_slot(phone, kek)
    vault.close()


def test_calibration_never_goes_below_the_floors() -> None:
    from unlatch.vault.kdf import calibrate

    params = calibrate(target_seconds=0.01)  # an impossible target: the floors win
    assert params.memory_kib >= 64 * 1024 and params.time_cost >= OWASP_MINIMUM.time_cost
    params.check()
