"""Item types (login, note, card, identity, SSH key), custom fields, favourites,
and the versioned format change: a vault made by the previous release opens.

Names match ``-k item_type``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.vault import PASSWORD

from unlatch.vault import Item, Vault, schema
from unlatch.vault.errors import InvalidItemError, UnsupportedSchemaError
from unlatch.vault.items import CustomField, decode, encode, public_view, types_schema

MakeVault = Callable[..., Vault]
# Made by unlatch 0b90b11 (schema 1, item encoding 1) before item types existed:
# GitHub (alice / gh-s3cret!, 2 URLs, TOTP, tags dev+work), Bank, Forum (edited once).
SCHEMA1_VAULT = Path(__file__).parent / "fixtures" / "data" / "vault-schema1.db"


def card() -> Item:
    return Item(
        title="Visa",
        type="card",
        favorite=True,
        data={
            "cardholder": "Alice",
            "number": "4111111111111111",
            "code": "123",
            "exp_year": "2030",
        },
        fields=[
            CustomField("bank phone", "+64 9 000", "text"),
            CustomField("online pin", "9999", "hidden"),
            CustomField("portal", "https://bank.example", "url"),
        ],
    )


def test_item_type_each_type_round_trips_through_the_vault(make_vault: MakeVault) -> None:
    vault = make_vault()
    made = [
        vault.add_item(card()),
        vault.add_item(Item(title="Diary", type="note", notes="text")),
        vault.add_item(
            Item(title="Me", type="identity", data={"first_name": "Alice", "ssn": "123"})
        ),
        vault.add_item(
            Item(
                title="key",
                type="ssh_key",
                password="passphrase",
                data={"private_key": "-----BEGIN\nx\n-----END", "public_key": "ssh-ed25519 A"},
            )
        ),
        vault.add_item(Item(title="plain login", username="u")),
    ]
    path = vault.path
    vault.close()
    again = Vault.open(path)
    again.unlock_with_password(PASSWORD)
    for item in made:
        got = again.get_item(item.id)
        assert got.to_dict() == item.to_dict()
    assert again.get_item(made[-1].id).type == "login" and not made[-1].favorite
    again.close()


def test_item_type_edit_changes_type_fields_and_favorite(make_vault: MakeVault) -> None:
    vault = make_vault()
    item = vault.add_item(Item(title="x"))
    edited = vault.update_item(
        item.id,
        {
            "type": "card",
            "favorite": True,
            "data": {"number": "4111"},
            "fields": [{"name": "n", "value": "v", "kind": "url"}],
        },
    )
    assert (edited.type, edited.favorite, edited.data) == ("card", True, {"number": "4111"})
    assert edited.fields == [CustomField("n", "v", "url")] and edited.version == 2
    with pytest.raises(InvalidItemError, match="a login item has no field 'number'"):
        vault.update_item(item.id, {"type": "login"})  # card data does not fit a login
    assert vault.get_item(item.id).type == "card"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"type": "car"}, "type is one of"),
        ({"type": "card", "data": {"colour": "red"}}, "no field 'colour'"),
        ({"type": "card", "data": {"number": "1" * 65}}, "number must be at most 64"),
        ({"fields": [{"name": "", "value": "v"}]}, "needs a name"),
        ({"fields": [{"name": "n", "value": "v", "kind": "secret"}]}, "kind is one of"),
        ({"fields": [{"name": "n", "value": "v" * 5000}]}, "at most 4096"),
        ({"fields": [{"name": f"n{i}"} for i in range(65)]}, "at most 64"),
        ({"favorite": "yes"}, '"favorite" must be true or false'),
        ({"data": {"number": 4111}}, '"data" must be an object of strings'),
        ({"fields": [{"name": "n", "value": 1}]}, '"fields"'),
    ],
)
def test_item_type_bounds_and_types_are_checked(
    make_vault: MakeVault, changes: dict[str, object], message: str
) -> None:
    vault = make_vault()
    item = vault.add_item(Item(title="kept"))
    with pytest.raises(InvalidItemError, match=message):
        vault.update_item(item.id, changes)
    assert vault.get_item(item.id).version == 1


def test_item_type_listing_view_leaves_every_secret_out() -> None:
    view = public_view(card())
    assert view["data"] == {"cardholder": "Alice", "exp_year": "2030"}
    assert view["fields"][1] == {"name": "online pin", "kind": "hidden"}
    assert view["fields"][2]["value"] == "https://bank.example"
    text = json.dumps(view)
    for secret in ("4111111111111111", "123", "9999"):
        assert f'"{secret}"' not in text
    assert card().matches("alice") and card().matches("bank phone")
    assert not card().matches("4111")  # secrets are not searchable (nor shown as matches)


def test_item_type_schema_lists_every_type_for_a_ui() -> None:
    schema_ = {t["type"]: t["fields"] for t in types_schema()}
    assert list(schema_) == ["login", "note", "card", "identity", "ssh_key"]
    number = next(f for f in schema_["card"] if f["key"] == "number")
    assert number == {
        "key": "number",
        "label": "Card number",
        "secret": True,
        "multiline": False,
        "limit": 64,
    }


def test_item_type_encoding_1_plaintext_reads_as_a_login() -> None:
    old = json.dumps(
        {
            "e": 1,
            "title": "t",
            "username": "u",
            "password": "p",
            "urls": [],
            "notes": "",
            "tags": [],
            "totp_secret": "",
            "created_at": 1,
            "updated_at": 2,
            "type": "card",
            "data": {"number": "1"},
        }
    ).encode()
    item = decode(old, "id", 3)
    assert (item.type, item.data, item.fields, item.favorite) == ("login", {}, [], False)
    assert json.loads(encode(item))["e"] == 2
    with pytest.raises(InvalidItemError, match="unknown encoding"):
        decode(json.dumps({"e": True, "title": "t"}).encode(), "id", 1)


def test_item_type_vault_made_by_the_previous_release_migrates(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    shutil.copy(SCHEMA1_VAULT, path)
    meta = dict(sqlite3.connect(path).execute("SELECT key, value FROM meta").fetchall())
    assert meta["schema_version"] == "1"
    vault = Vault.open(path)
    vault.unlock_with_password(PASSWORD)
    items = {i.title: i for i in vault.items()}
    assert set(items) == {"GitHub", "Bank", "Forum"}
    gh = items["GitHub"]
    assert (gh.type, gh.username, gh.password, gh.totp_secret) == (
        "login",
        "alice",
        "gh-s3cret!",
        "JBSWY3DPEHPK3PXP",
    )
    assert gh.urls == ["https://github.com", "https://gist.github.com"]
    assert items["Forum"].version == 2 and items["Forum"].notes == "edited once"
    # The old item is re-encrypted in the new encoding on its first edit.
    edited = vault.update_item(gh.id, {"favorite": True, "fields": [{"name": "k", "value": "v"}]})
    assert edited.version == 2 and edited.password == "gh-s3cret!"
    added = vault.add_item(card())
    vault.close()
    meta = dict(sqlite3.connect(path).execute("SELECT key, value FROM meta").fetchall())
    assert meta["schema_version"] == str(schema.SCHEMA_VERSION)  # every migration ran
    again = Vault.open(path)
    again.unlock_with_password(PASSWORD)
    assert again.get_item(gh.id).favorite and again.get_item(added.id).type == "card"
    again.close()


def test_item_type_older_unlatch_refuses_the_migrated_vault_clearly(
    make_vault: MakeVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What schema 2 is for: the previous release says "upgrade", not "tampered"."""
    vault = make_vault()
    vault.add_item(card())
    path = vault.path
    vault.close()
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 1)
    with pytest.raises(UnsupportedSchemaError, match="upgrade unlatch"):
        Vault.open(path)


def test_item_type_secrets_never_reach_the_file_in_clear(make_vault: MakeVault) -> None:
    vault = make_vault()
    vault.add_item(card())
    path = vault.path
    vault.close()
    raw = (
        path.read_bytes() + Path(f"{path}-wal").read_bytes()
        if Path(f"{path}-wal").exists()
        else path.read_bytes()
    )
    for needle in (b"4111111111111111", b"Alice", b"bank phone", b"9999", b"card"):
        assert needle not in raw
