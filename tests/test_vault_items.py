"""Items: add, edit, delete, list, search, persistence, lock behaviour."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import pytest
from fixtures.vault import PASSWORD

from unlatch.vault import Item, ItemNotFoundError, Vault, VaultLockedError
from unlatch.vault.errors import AmbiguousItemError, InvalidItemError

MakeVault = Callable[..., Vault]


def test_add_get_edit_delete_round_trip(make_vault: MakeVault) -> None:
    vault = make_vault()
    item = vault.add_item(
        Item(
            title="GitHub",
            username="alice",
            password="s3cret!",
            urls=["https://github.com"],
            notes="work account",
            tags=["dev", "work"],
            totp_secret="JBSWY3DPEHPK3PXP",
        )
    )
    assert item.version == 1 and len(item.id) == 32 and item.created_at > 0
    got = vault.get_item(item.id)
    assert (got.title, got.username, got.password, got.urls, got.notes, got.tags) == (
        "GitHub",
        "alice",
        "s3cret!",
        ["https://github.com"],
        "work account",
        ["dev", "work"],
    )

    edited = vault.update_item(item.id, {"username": "bob", "tags": ["dev"]})
    assert edited.version == 2 and edited.username == "bob" and edited.password == "s3cret!"
    assert vault.get_item(item.id).tags == ["dev"]

    vault.delete_item(item.id)
    with pytest.raises(ItemNotFoundError):
        vault.get_item(item.id)
    assert vault.items() == []


def test_items_persist_across_reopen_and_need_the_key(make_vault: MakeVault) -> None:
    vault = make_vault()
    ids = {vault.add_item(Item(title=f"site {n}", password=f"pw{n}")).id for n in range(5)}
    path = vault.path
    vault.close()

    again = Vault.open(path)
    assert not again.is_unlocked
    with pytest.raises(VaultLockedError, match="unlatch unlock"):
        again.items()
    again.unlock_with_password(PASSWORD)
    assert {i.id for i in again.items()} == ids
    again.lock()
    with pytest.raises(VaultLockedError):
        again.get_item(next(iter(ids)))
    again.close()


def test_search_matches_title_username_url_and_tag(make_vault: MakeVault) -> None:
    vault = make_vault()
    vault.add_item(Item(title="Mail", username="alice@example.org"))
    vault.add_item(Item(title="Bank", urls=["https://bank.example.com/login"]))
    vault.add_item(Item(title="Forum", tags=["hobby"]))
    vault.add_item(Item(title="Notes only", notes="the word bank appears only in notes"))

    def titles(query: str) -> list[str]:
        return [i.title for i in vault.search(query)]

    assert titles("mail") == ["Mail"]
    assert titles("ALICE") == ["Mail"]
    assert titles("bank.example") == ["Bank"]
    assert titles("bank") == ["Bank"]  # notes are not searched
    assert titles("hobby") == ["Forum"]
    assert [i.title for i in vault.search(tag="HOBBY")] == ["Forum"]
    assert len(vault.search("")) == 4


def test_find_by_title_or_id_and_ambiguity(make_vault: MakeVault) -> None:
    vault = make_vault()
    a = vault.add_item(Item(title="Twin"))
    b = vault.add_item(Item(title="twin"))
    assert vault.find(a.id).id == a.id
    with pytest.raises(AmbiguousItemError, match=b.id):
        vault.find("TWIN")
    with pytest.raises(ItemNotFoundError, match="unlatch list"):
        vault.find("nothing")


def test_item_bounds_are_enforced(make_vault: MakeVault) -> None:
    vault = make_vault()
    with pytest.raises(InvalidItemError, match="title"):
        vault.add_item(Item(title="   "))
    with pytest.raises(InvalidItemError, match="notes"):
        vault.add_item(Item(title="x", notes="n" * 40_000))
    with pytest.raises(InvalidItemError, match="urls"):
        vault.add_item(Item(title="x", urls=["u"] * 33))
    with pytest.raises(InvalidItemError, match="base32"):
        vault.add_item(Item(title="x", totp_secret="not base32 !!"))
    item = vault.add_item(Item(title="ok"))
    with pytest.raises(InvalidItemError, match="unknown item field"):
        vault.update_item(item.id, {"version": 99})
    assert vault.count_items() == 1


def test_returned_items_are_copies(make_vault: MakeVault) -> None:
    vault = make_vault()
    item = vault.add_item(Item(title="a", tags=["x"]))
    got = vault.get_item(item.id)
    got.tags.append("mutated")
    assert vault.get_item(item.id).tags == ["x"]


def test_vault_file_is_private_and_has_no_plaintext(make_vault: MakeVault) -> None:
    vault = make_vault()
    vault.add_item(
        Item(
            title="VerySecretTitle",
            username="hidden-user",
            password="PlaintextPassword123",
            urls=["https://hidden.example"],
        )
    )
    path = vault.path
    vault.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    raw = path.read_bytes()
    for needle in (b"VerySecretTitle", b"hidden-user", b"PlaintextPassword123", b"hidden.example"):
        assert needle not in raw


def test_per_item_key_derivation_is_standard_hkdf() -> None:
    """The fast path (extract once, expand per item) equals RFC 5869 HKDF from cryptography."""
    from unlatch.vault import crypto

    for _ in range(20):
        ikm, context = os.urandom(32), os.urandom(48)
        fast = crypto.hkdf_expand(crypto.hkdf_extract(ikm), crypto.LABEL_ITEM_KEY, context)
        assert fast == crypto.hkdf(ikm, crypto.LABEL_ITEM_KEY, context)


@pytest.mark.parametrize(
    "fields",
    [
        {"title": 5},
        {"title": "ok", "urls": "abc"},
        {"title": "ok", "tags": ["a", 1]},
        {"title": "ok", "username": None},
        {"title": "ok", "notes": ["n"]},
        {"title": "ok", "password": 12345678},
        {"username": "no title"},
    ],
)
def test_item_fields_are_type_checked_not_coerced(
    make_vault: MakeVault, fields: dict[str, object]
) -> None:
    with pytest.raises(InvalidItemError, match="malformed item"):
        Item.from_dict(fields)
    if "title" not in fields:
        return
    vault = make_vault()
    item = vault.add_item(Item(title="ok", urls=["https://a.example"]))
    changes = {k: v for k, v in fields.items() if k != "title"} or {"title": fields["title"]}
    with pytest.raises(InvalidItemError, match="malformed item"):
        vault.update_item(item.id, changes)
    assert vault.get_item(item.id).urls == ["https://a.example"]


def test_find_by_unique_id_prefix(make_vault, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An id prefix of 4+ characters names the one item it starts; a shared one is refused."""
    from unlatch.vault import item_ops as vault_module  # where items get their ids

    ids = iter(["abcd" + "0" * 28, "abcd" + "1" * 28, "ef01" + "2" * 28])
    v = make_vault()
    monkeypatch.setattr(vault_module, "_new_id", lambda: next(ids))
    for title in ("one", "two", "three"):
        v.add_item(Item(title=title))
    assert v.find("abcd0").title == "one" and v.find("ABCD1").title == "two"
    assert v.find("ef01").title == "three"
    with pytest.raises(AmbiguousItemError, match="give more characters"):
        v.find("abcd")
    with pytest.raises(ItemNotFoundError, match="at least 4 characters"):
        v.find("ef0")
    with pytest.raises(ItemNotFoundError):
        v.find("0bcd")
