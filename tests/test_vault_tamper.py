"""Tampering with the file is detected and reported, never returned."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.vault import PASSWORD

from unlatch.vault import Item, ItemIntegrityError, Vault

MakeVault = Callable[..., Vault]


def prepare(make_vault: MakeVault, name: str = "vault.db", n: int = 3) -> tuple[Path, list[str]]:
    vault = make_vault(name)
    ids = [vault.add_item(Item(title=f"t{i}", password=f"secret-{i}")).id for i in range(n)]
    path = vault.path
    vault.close()
    return path, ids


def unlocked(path: Path) -> Vault:
    vault = Vault.open(path)
    vault.unlock_with_password(PASSWORD)
    return vault


def test_flipping_any_byte_of_a_ciphertext_is_detected(make_vault: MakeVault) -> None:
    path, ids = prepare(make_vault)
    conn = sqlite3.connect(path)
    (original,) = conn.execute("SELECT ciphertext FROM items WHERE id = ?", (ids[0],)).fetchone()
    conn.close()
    vault = unlocked(path)
    key = vault._require_key()
    for pos in range(len(original)):  # every byte, including the GCM tag
        flipped = bytearray(original)
        flipped[pos] ^= 0x01 << (pos % 8)
        vault._conn.execute(
            "UPDATE items SET ciphertext = ? WHERE id = ?", (bytes(flipped), ids[0])
        )
        vault._set_key(key)  # re-key without Argon2: also drops the decrypted-item cache
        with pytest.raises(ItemIntegrityError, match=ids[0]):
            vault.get_item(ids[0])
        with pytest.raises(ItemIntegrityError, match="integrity"):
            vault.items()
    # The other items are untouched and still readable one by one.
    assert vault.get_item(ids[1]).password == "secret-1"
    vault.close()


def test_flipping_the_nonce_is_detected(make_vault: MakeVault) -> None:
    path, ids = prepare(make_vault)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE items SET nonce = zeroblob(12) WHERE id = ?", (ids[1],))
    conn.commit()
    conn.close()
    with pytest.raises(ItemIntegrityError):
        unlocked(path).get_item(ids[1])


def test_swapping_two_ciphertexts_is_detected(make_vault: MakeVault) -> None:
    path, (a, b, _) = prepare(make_vault)
    conn = sqlite3.connect(path)
    rows = dict((i, (n, c)) for i, n, c in conn.execute("SELECT id, nonce, ciphertext FROM items"))
    conn.execute("UPDATE items SET nonce = ?, ciphertext = ? WHERE id = ?", (*rows[b], a))
    conn.execute("UPDATE items SET nonce = ?, ciphertext = ? WHERE id = ?", (*rows[a], b))
    conn.commit()
    conn.close()
    vault = unlocked(path)
    for item_id in (a, b):
        with pytest.raises(ItemIntegrityError):
            vault.get_item(item_id)
    with pytest.raises(ItemIntegrityError, match="2 item"):
        vault.items()


def test_moving_a_ciphertext_between_vaults_is_detected(make_vault: MakeVault) -> None:
    src, (src_id, *_) = prepare(make_vault, "a.db")
    dst, (dst_id, *_) = prepare(make_vault, "b.db")
    conn = sqlite3.connect(src)
    row = conn.execute("SELECT nonce, ciphertext FROM items WHERE id = ?", (src_id,)).fetchone()
    conn.close()
    conn = sqlite3.connect(dst)
    conn.execute("UPDATE items SET nonce = ?, ciphertext = ? WHERE id = ?", (*row, dst_id))
    conn.commit()
    conn.close()
    with pytest.raises(ItemIntegrityError):
        unlocked(dst).get_item(dst_id)


def test_rolling_back_an_item_row_is_detected(make_vault: MakeVault) -> None:
    """An older (version, ciphertext) pair restored whole: AAD consistent, manifest not."""
    vault = make_vault()
    item = vault.add_item(Item(title="bank", password="old"))
    old_row = vault._conn.execute(
        "SELECT version, nonce, ciphertext FROM items WHERE id = ?", (item.id,)
    ).fetchone()
    vault.update_item(item.id, {"password": "new"})
    vault._conn.execute(
        "UPDATE items SET version = ?, nonce = ?, ciphertext = ? WHERE id = ?", (*old_row, item.id)
    )
    path = vault.path
    vault.close()
    with pytest.raises(ItemIntegrityError, match="rolled back"):
        unlocked(path).get_item(item.id)
    # A stale ciphertext under the current version number fails the AAD instead.
    vault2 = unlocked(path)
    vault2._conn.execute("UPDATE items SET version = 2 WHERE id = ?", (item.id,))
    with pytest.raises(ItemIntegrityError):
        vault2.get_item(item.id)


def test_deleting_or_adding_rows_behind_the_vaults_back_is_detected(make_vault: MakeVault) -> None:
    path, ids = prepare(make_vault)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM items WHERE id = ?", (ids[2],))
    conn.commit()
    conn.close()
    vault = unlocked(path)
    with pytest.raises(ItemIntegrityError, match="removed, added or rolled back"):
        vault.items()
    # A tampered list is not laundered by a later write either.
    with pytest.raises(ItemIntegrityError):
        vault.add_item(Item(title="new"))
