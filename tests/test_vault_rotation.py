"""Key rotation (`Vault.rotate_key`): a new vault key, every item re-encrypted, slots moved.

The attacker of docs/security.md P7/P9 who learnt an old master password and
kept an old copy of the vault file must not read the current file once the
key was rotated, items added later included; phones and passkeys keep
working through their renewal keys; a renewal key swapped in the file never
receives the new key. Kills mid-rotation are in tests/test_vault_crash.py.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.vault import PASSWORD, copy_file, key_from, readable_items

from unlatch.vault import Item, ItemIntegrityError, Vault, WrongKeyError, WrongPasswordError, crypto
from unlatch.vault.vault import DROP_ALTERED, DROP_NOT_RENEWABLE

MakeVault = Callable[..., Vault]
NEW_PASSWORD = "a brand new master password"
RECOVERY = "recovery passphrase words here"


def reopen(vault: Vault) -> Vault:
    path = vault.path
    vault.close()
    return Vault.open(path)


def test_attack_old_password_and_old_file_after_rotation(
    make_vault: MakeVault, tmp_path: Path
) -> None:
    vault = make_vault()
    vault.add_item(Item(title="before", password="old secret"))
    old_copy = copy_file(vault.path, tmp_path / "stolen-copy.db")

    vault.rotate_key(PASSWORD, NEW_PASSWORD)
    vault.add_item(Item(title="after", password="new secret"))
    vault.update_item(vault.find("before").id, {"notes": "edited after"})
    current = copy_file(vault.path, tmp_path / "current.db")

    old_key = key_from(old_copy, PASSWORD)  # the old password opens the old copy, as it must
    assert readable_items(old_copy, old_key) == ["before"]
    assert readable_items(current, old_key) == []  # ...but nothing of the current file
    with pytest.raises(WrongPasswordError):
        key_from(current, PASSWORD)
    assert readable_items(current, key_from(current, NEW_PASSWORD)) == ["after", "before"]


def test_a_plain_password_change_keeps_the_key(make_vault: MakeVault, tmp_path: Path) -> None:
    """Why rotation exists: `passwd` without it leaves the old key opening new items."""
    vault = make_vault()
    old_copy = copy_file(vault.path, tmp_path / "stolen-copy.db")
    vault.change_password(PASSWORD, NEW_PASSWORD)
    vault.add_item(Item(title="after"))
    current = copy_file(vault.path, tmp_path / "current.db")
    assert readable_items(current, key_from(old_copy, PASSWORD)) == ["after"]


def test_rotation_keeps_every_slot_and_renews_each_at_its_next_use(make_vault: MakeVault) -> None:
    vault = make_vault()
    item = vault.add_item(Item(title="shared", password="pw", totp_secret="JBSWY3DPEHPK3PXP"))
    kek_phone, kek_passkey = os.urandom(32), os.urandom(32)
    phone = vault.add_slot("phone", "Pixel 8", kek_phone, {"pairing_id": "abc"})
    passkey = vault.add_slot("passkey", "YubiKey", kek_passkey, {"credential_id": "x"})
    recovery = vault.add_password_slot(RECOVERY, "recovery")
    assert {s.renewal for s in vault.list_slots()} == {"ready"}

    done = vault.rotate_key(PASSWORD)  # `unlatch rotate-key`: same password
    assert done.items == 1 and done.dropped == []
    assert [s.label for s in done.rewrapped] == ["master password"]
    assert {s.id for s in done.renewing} == {phone, passkey, recovery}
    assert vault.get_item(item.id).password == "pw"  # still unlocked, with the new key
    renewal = {s.id: s.renewal for s in vault.list_slots()}
    assert renewal == {
        done.rewrapped[0].id: "ready",
        phone: "pending",
        passkey: "pending",
        recovery: "pending",
    }

    for slot_id, unlock in (
        (phone, lambda v: v.unlock_with_slot(phone, kek_phone)),
        (passkey, lambda v: v.unlock_with_slot(passkey, kek_passkey)),
        (recovery, lambda v: v.unlock_with_password(RECOVERY)),
        (None, lambda v: v.unlock_with_password(PASSWORD)),
    ):
        vault = reopen(vault)
        unlock(vault)
        assert vault.get_item(item.id).totp_secret == "JBSWY3DPEHPK3PXP"
        if slot_id is not None:  # rewrapped under its KEK at this use
            assert {s.id: s.renewal for s in vault.list_slots()}[slot_id] == "ready"
    vault = reopen(vault)
    with pytest.raises(WrongKeyError):
        vault.unlock_with_slot(phone, os.urandom(32))
    vault.close()


def test_rotation_with_a_new_password_retires_the_old_one(make_vault: MakeVault) -> None:
    vault = make_vault()
    vault.add_item(Item(title="a"))
    vault.lock()  # works locked too, and leaves the vault locked
    done = vault.rotate_key(PASSWORD, NEW_PASSWORD)
    assert not vault.is_unlocked and done.items == 1
    vault = reopen(vault)
    with pytest.raises(WrongPasswordError):
        vault.unlock_with_password(PASSWORD)
    vault.unlock_with_password(NEW_PASSWORD)
    assert [i.title for i in vault.items()] == ["a"]
    with pytest.raises(WrongPasswordError):
        vault.rotate_key(PASSWORD)
    vault.close()


def _forget_renewal_key(vault: Vault, slot_id: str) -> None:
    """What a slot made by unlatch before key rotation looks like after the migration."""
    vault._conn.execute(
        "UPDATE slots SET renew_key = NULL, renew_mac = NULL WHERE id = ?", (slot_id,)
    )


def test_a_slot_without_a_renewal_key_is_dropped_and_named(make_vault: MakeVault) -> None:
    vault = make_vault()
    kek_old, kek_used = os.urandom(32), os.urandom(32)
    old = vault.add_slot("phone", "Old phone", kek_old, {})
    used = vault.add_slot("phone", "Used phone", kek_used, {})
    _forget_renewal_key(vault, old)
    _forget_renewal_key(vault, used)
    vault = reopen(vault)
    assert {s.label: s.renewal for s in vault.list_slots()}["Old phone"] == "none"
    vault.unlock_with_slot(used, kek_used)  # a use records the renewal key
    assert {s.label: s.renewal for s in vault.list_slots()}["Used phone"] == "ready"

    done = vault.rotate_key(PASSWORD)
    assert [(d.slot.label, d.reason) for d in done.dropped] == [("Old phone", DROP_NOT_RENEWABLE)]
    assert [s.label for s in done.renewing] == ["Used phone"]
    vault = reopen(vault)
    assert "Old phone" not in {s.label for s in vault.list_slots()}
    vault.unlock_with_slot(used, kek_used)
    vault.close()


def test_attack_swapped_renewal_key_never_receives_the_new_key(make_vault: MakeVault) -> None:
    """Someone who can write the file, but has no key, puts their own public key in a
    phone slot before the user rotates: the slot is dropped, nothing is sealed to them."""
    vault = make_vault()
    vault.add_item(Item(title="secret"))
    phone = vault.add_slot("phone", "Pixel 8", os.urandom(32), {})
    attacker_seed = os.urandom(32)
    vault._conn.execute(
        "UPDATE slots SET renew_key = ? WHERE id = ?",
        (crypto.renewal_public_key(attacker_seed), phone),
    )
    done = vault.rotate_key(PASSWORD)
    assert [(d.slot.id, d.reason) for d in done.dropped] == [(phone, DROP_ALTERED)]
    rows = vault._conn.execute("SELECT id, kind, enc, wrapped_key FROM slots").fetchall()
    for slot_id, kind, enc, wrapped in rows:
        if enc is None:
            continue
        aad = crypto.lp(crypto.LABEL_SLOT_WRAP, vault.vault_id, slot_id.encode(), kind.encode())
        with pytest.raises(crypto.AeadFailure):
            crypto.open_from(attacker_seed, enc, wrapped, crypto.LABEL_SLOT_SEAL, aad)
    vault.close()


def test_rotation_refuses_a_tampered_vault_and_changes_nothing(make_vault: MakeVault) -> None:
    vault = make_vault()
    item = vault.add_item(Item(title="a", password="pw"))
    path = vault.path
    vault.close()
    conn = sqlite3.connect(path)
    (ct,) = conn.execute("SELECT ciphertext FROM items WHERE id = ?", (item.id,)).fetchone()
    conn.execute(
        "UPDATE items SET ciphertext = ? WHERE id = ?", (bytes([ct[0] ^ 1]) + ct[1:], item.id)
    )
    conn.commit()
    before = (
        conn.execute("SELECT * FROM slots").fetchall(),
        conn.execute("SELECT * FROM meta").fetchall(),
    )
    conn.close()
    vault = Vault.open(path)
    with pytest.raises(ItemIntegrityError, match="not rotating"):
        vault.rotate_key(PASSWORD, NEW_PASSWORD)
    vault.close()
    conn = sqlite3.connect(path)
    after = (
        conn.execute("SELECT * FROM slots").fetchall(),
        conn.execute("SELECT * FROM meta").fetchall(),
    )
    conn.close()
    assert after == before


def test_a_version_1_file_is_migrated_and_its_slots_learn_their_renewal_keys(
    make_vault: MakeVault, tmp_path: Path
) -> None:
    vault = make_vault()
    vault.add_item(Item(title="kept"))
    kek = os.urandom(32)
    phone = vault.add_slot("phone", "Pixel 8", kek, {})
    path = vault.path
    vault.close()
    conn = sqlite3.connect(path)  # turn it into the file an older unlatch wrote
    for column in ("renew_key", "renew_mac", "enc"):
        conn.execute(f"ALTER TABLE slots DROP COLUMN {column}")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    shutil.copy(path, tmp_path / "v1.db")

    vault = Vault.open(path)
    assert {s.renewal for s in vault.list_slots()} == {"none"}
    vault.unlock_with_slot(phone, kek)
    vault.lock()
    vault.unlock_with_password(PASSWORD)
    assert {s.renewal for s in vault.list_slots()} == {"ready"}
    done = vault.rotate_key(PASSWORD)
    assert done.dropped == [] and [s.id for s in done.renewing] == [phone]
    assert [i.title for i in vault.items()] == ["kept"]
    vault.close()
