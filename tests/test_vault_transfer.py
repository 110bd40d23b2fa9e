"""Importers and exporters: each vendor's documented format, written by the test.

Every test name matches ``-k "import or export"``. Files are built here in the
layout each vendor documents (headers, JSON keys, the 1PUX archive, KDBX 4
through pykeepass) and parsed with the real importers; items then go through
the real vault in one transaction.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pykeepass import PyKeePass, create_database

from unlatch.vault import OWASP_MINIMUM, Item, Vault
from unlatch.vault.items import CustomField
from unlatch.vault.transfer import (
    FileTooLargeError,
    MalformedFileError,
    TransferPasswordError,
    export_items,
    import_file,
    keepass,
    write_private,
)
from unlatch.vault.transfer.base import MAX_ENTRIES

MakeVault = Callable[..., Vault]
KDBX_PASSWORD = "kdbx password 123"
EXPORT_PASSWORD = "export password 456"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----"
TOTP_URI = "otpauth://totp/Example:alice?secret=JBSWY3DPEHPK3PXP&issuer=Example"


def no_password(what: str) -> str:
    raise AssertionError(f"asked for {what}")


def password(value: str) -> Callable[[str], str]:
    return lambda what: value


def csv_bytes(rows: list[list[str]], *, bom: bool = False, quote_all: bool = False) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL if quote_all else 0)
    writer.writerows(rows)
    return ("\ufeff" if bom else "").encode() + out.getvalue().encode("utf-8")


def by_title(items: list[Item]) -> dict[str, Item]:
    return {i.title: i for i in items}


def comparable(item: Item) -> dict[str, Any]:
    data = item.to_dict()
    for key in ("id", "version", "created_at", "updated_at"):
        data.pop(key)
    return data


def sample_items() -> list[Item]:
    """One item of each type, with custom fields of each kind and a favourite."""
    return [
        Item(
            title="GitHub",
            username="alice",
            password="gh-pw",
            urls=["https://github.com", "https://gist.github.com"],
            notes="work\naccount",
            tags=["dev", "work"],
            totp_secret="JBSWY3DPEHPK3PXP",
            favorite=True,
            fields=[
                CustomField("recovery code", "RC-1", "hidden"),
                CustomField("team", "core", "text"),
                CustomField("docs", "https://docs.example", "url"),
            ],
        ),
        Item(title="Diary", type="note", notes="dear diary"),
        Item(
            title="Visa",
            type="card",
            data={
                "cardholder": "Alice Example",
                "brand": "Visa",
                "number": "4111111111111111",
                "exp_month": "12",
                "exp_year": "2030",
                "code": "123",
            },
        ),
        Item(
            title="Me",
            type="identity",
            username="alice.e",
            data={"first_name": "Alice", "last_name": "Example", "email": "a@example.org"},
        ),
        Item(
            title="deploy key",
            type="ssh_key",
            password="key passphrase",
            data={
                "private_key": PRIVATE_KEY,
                "public_key": "ssh-ed25519 AAAAC3Nza alice@host",
                "fingerprint": "SHA256:abc",
            },
        ),
    ]


# ------------------------------------------------------------------ browsers


def test_import_chrome_csv() -> None:
    data = csv_bytes(
        [
            ["name", "url", "username", "password", "note"],
            ["github.com", "https://github.com/login", "alice", "pw1", "a note"],
            ["", "https://bank.example.com/", "bob", "pw2", ""],
        ]
    )
    result = import_file("chrome", data, no_password)
    items = by_title(result.items)
    assert set(items) == {"github.com", "bank.example.com"}  # a missing name: the host
    assert items["github.com"].password == "pw1" and items["github.com"].notes == "a note"
    assert items["github.com"].urls == ["https://github.com/login"] and not result.skipped


def test_import_firefox_csv_keeps_realm_and_form_origin() -> None:
    header = ["url", "username", "password", "httpRealm", "formActionOrigin", "guid"]
    header += ["timeCreated", "timeLastUsed", "timePasswordChanged"]
    row = ["https://example.com", "joe@example.com", "qwerty", "", "https://action.example.com"]
    row += ["{5ec0d12f-e194-4279-ae1b-d7d281bb46f0}", "1589617814635", "1589710449871", "1"]
    result = import_file("firefox", csv_bytes([header, row], quote_all=True), no_password)
    (item,) = result.items
    assert (item.title, item.username, item.password) == (
        "example.com",
        "joe@example.com",
        "qwerty",
    )
    assert [(f.name, f.value, f.kind) for f in item.fields] == [
        ("formActionOrigin", "https://action.example.com", "url")
    ]
    assert result.ignored == ["guid", "timeCreated", "timeLastUsed", "timePasswordChanged"]


def test_import_safari_csv_with_otpauth_and_bom() -> None:
    data = csv_bytes(
        [
            ["Title", "URL", "Username", "Password", "Notes", "OTPAuth"],
            ["Example (alice)", "https://example.com/", "alice", "pw", "n", TOTP_URI],
        ],
        bom=True,
    )
    (item,) = import_file("safari", data, no_password).items
    assert item.totp_secret == TOTP_URI and item.title == "Example (alice)"


# -------------------------------------------------------------- keepassxc csv


def test_import_keepassxc_csv_group_becomes_tag_and_unknown_columns_are_kept() -> None:
    header = ["Group", "Title", "Username", "Password", "URL", "Notes", "TOTP", "Icon"]
    header += ["Last Modified", "Created", "Extra Column"]
    row = ["Root/Email", "Mail", "alice", "pw", "https://mail.example", "n", TOTP_URI, "0"]
    row += ["2022-02-11T09:36:13Z", "2022-02-12T09:35:25Z", "kept"]
    result = import_file("keepassxc-csv", csv_bytes([header, row], quote_all=True), no_password)
    (item,) = result.items
    assert item.tags == ["Email"] and item.totp_secret == TOTP_URI
    assert [(f.name, f.value) for f in item.fields] == [("Extra Column", "kept")]
    assert result.ignored == ["Icon", "Last Modified", "Created"]


# ------------------------------------------------------------------ bitwarden


def bitwarden_json() -> dict[str, Any]:
    """Bitwarden's unencrypted JSON export (``bw export --format json``)."""
    common = {"organizationId": None, "reprompt": 0, "collectionIds": None}
    return {
        "encrypted": False,
        "folders": [{"id": "f1", "name": "Work"}],
        "items": [
            {
                **common,
                "id": "i1",
                "folderId": "f1",
                "type": 1,
                "name": "GitHub",
                "notes": "n",
                "favorite": True,
                "fields": [
                    {"name": "pin", "value": "1234", "type": 1, "linkedId": None},
                    {"name": "team", "value": "core", "type": 0, "linkedId": None},
                    {"name": "active", "value": "true", "type": 2, "linkedId": None},
                ],
                "login": {
                    "uris": [{"match": None, "uri": "https://github.com"}],
                    "username": "alice",
                    "password": "pw",
                    "totp": "JBSWY3DPEHPK3PXP",
                    "fido2Credentials": [{"credentialId": "x"}],
                },
                "passwordHistory": [{"lastUsedDate": "2024-01-01T00:00:00Z", "password": "old"}],
            },
            {
                **common,
                "id": "i2",
                "type": 2,
                "name": "Note",
                "notes": "text",
                "favorite": False,
                "secureNote": {"type": 0},
            },
            {
                **common,
                "id": "i3",
                "type": 3,
                "name": "Visa",
                "notes": None,
                "favorite": False,
                "card": {
                    "cardholderName": "Alice",
                    "brand": "Visa",
                    "number": "4111111111111111",
                    "expMonth": "12",
                    "expYear": "2030",
                    "code": "123",
                },
            },
            {
                **common,
                "id": "i4",
                "type": 4,
                "name": "Me",
                "notes": None,
                "favorite": False,
                "identity": {
                    "title": "Ms",
                    "firstName": "Alice",
                    "middleName": None,
                    "lastName": "Example",
                    "email": "a@example.org",
                    "ssn": "123-45-6789",
                    "username": "alice.e",
                    "passportNumber": None,
                },
            },
            {
                **common,
                "id": "i5",
                "type": 5,
                "name": "Key",
                "notes": None,
                "favorite": False,
                "sshKey": {
                    "privateKey": PRIVATE_KEY,
                    "publicKey": "ssh-ed25519 AAAA",
                    "keyFingerprint": "SHA256:x",
                },
            },
            {**common, "id": "i6", "type": 9, "name": "Future type"},
        ],
    }


def test_import_bitwarden_json_maps_every_type() -> None:
    result = import_file("bitwarden", json.dumps(bitwarden_json()).encode(), no_password)
    items = by_title(result.items)
    gh = items["GitHub"]
    assert (gh.type, gh.username, gh.password, gh.urls) == (
        "login",
        "alice",
        "pw",
        ["https://github.com"],
    )
    assert gh.favorite and gh.tags == ["Work"] and gh.totp_secret == "JBSWY3DPEHPK3PXP"
    fields = {f.name: (f.value, f.kind) for f in gh.fields}
    assert fields["pin"] == ("1234", "hidden") and fields["team"] == ("core", "text")
    assert fields["previous password 1"] == ("old", "hidden")
    assert "passkey" in gh.notes  # the passkey cannot move: said, not dropped
    assert items["Note"].type == "note" and items["Note"].notes == "text"
    assert items["Visa"].data == {
        "cardholder": "Alice",
        "brand": "Visa",
        "number": "4111111111111111",
        "exp_month": "12",
        "exp_year": "2030",
        "code": "123",
    }
    me = items["Me"]
    assert me.type == "identity" and me.username == "alice.e"
    assert me.data["honorific"] == "Ms" and me.data["ssn"] == "123-45-6789"
    assert items["Key"].type == "ssh_key" and items["Key"].data["fingerprint"] == "SHA256:x"
    assert [(s.entry, s.reason) for s in result.skipped] == [
        ("item 6 ('Future type')", "unknown Bitwarden item type '9'")
    ]


def test_import_bitwarden_encrypted_json_is_refused_clearly() -> None:
    data = json.dumps({"encrypted": True, "passwordProtected": True, "data": "2.xx"}).encode()
    with pytest.raises(MalformedFileError, match="without a password"):
        import_file("bitwarden", data, no_password)


def test_import_bitwarden_csv() -> None:
    header = ["folder", "favorite", "type", "name", "notes", "fields", "reprompt"]
    header += ["login_uri", "login_username", "login_password", "login_totp"]
    rows = [
        header,
        [
            "Work",
            "1",
            "login",
            "GitHub",
            "",
            "team: core\npin: 42",
            "0",
            "https://github.com,https://gist.github.com",
            "alice",
            "pw",
            "JBSWY3DPEHPK3PXP",
        ],
        ["", "", "note", "Secret note", "note text", "", "0", "", "", "", ""],
    ]
    result = import_file("bitwarden", csv_bytes(rows), no_password)
    items = by_title(result.items)
    gh = items["GitHub"]
    assert gh.favorite and gh.tags == ["Work"]
    assert gh.urls == ["https://github.com", "https://gist.github.com"]
    assert [(f.name, f.value) for f in gh.fields] == [("team", "core"), ("pin", "42")]
    assert items["Secret note"].type == "note" and items["Secret note"].notes == "note text"


# ------------------------------------------------------------------ 1password


def onepux(items: list[dict[str, Any]]) -> bytes:
    """A 1PUX archive: export.attributes and export.data in a ZIP."""
    data = {
        "accounts": [
            {
                "attrs": {
                    "accountName": "Alice",
                    "name": "Alice",
                    "email": "a@example.org",
                    "uuid": "ACC",
                    "domain": "https://my.1password.com/",
                },
                "vaults": [
                    {"attrs": {"uuid": "V1", "name": "Personal", "type": "P"}, "items": items}
                ],
            }
        ]
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "export.attributes", json.dumps({"version": 3, "description": "1PUX", "createdAt": 1})
        )
        z.writestr("export.data", json.dumps(data))
        z.writestr("files/", "")
    return buffer.getvalue()


def onepux_items() -> list[dict[str, Any]]:
    def item(
        uuid: str, category: str, title: str, details: dict[str, Any], **extra: Any
    ) -> dict[str, Any]:
        return {
            "uuid": uuid,
            "favIndex": extra.pop("fav", 0),
            "createdAt": 1700000000,
            "updatedAt": 1700000000,
            "state": extra.pop("state", "active"),
            "categoryUuid": category,
            "details": {"loginFields": [], "sections": [], "passwordHistory": [], **details},
            "overview": {
                "subtitle": "",
                "title": title,
                "url": extra.pop("url", ""),
                "urls": extra.pop("urls", []),
                "tags": extra.pop("tags", []),
            },
        }

    return [
        item(
            "a",
            "001",
            "GitHub",
            {
                "loginFields": [
                    {
                        "value": "alice",
                        "id": "",
                        "name": "username",
                        "fieldType": "T",
                        "designation": "username",
                    },
                    {
                        "value": "pw",
                        "id": "",
                        "name": "password",
                        "fieldType": "P",
                        "designation": "password",
                    },
                ],
                "notesPlain": "n",
                "sections": [
                    {
                        "title": "Security",
                        "name": "s",
                        "fields": [
                            {
                                "title": "one-time password",
                                "id": "t",
                                "value": {"totp": TOTP_URI},
                                "indexAtSource": 0,
                                "guarded": False,
                                "multiline": False,
                                "dontGenerate": False,
                            },
                            {"title": "recovery", "id": "r", "value": {"concealed": "RC-1"}},
                            {"title": "scan", "id": "f", "value": {"file": {"fileName": "x.png"}}},
                        ],
                    }
                ],
                "passwordHistory": [{"value": "older", "time": 1}],
            },
            fav=1,
            url="https://github.com",
            urls=[{"label": "website", "url": "https://github.com"}],
            tags=["dev"],
        ),
        item(
            "b",
            "002",
            "Visa",
            {
                "sections": [
                    {
                        "title": "",
                        "name": "",
                        "fields": [
                            {
                                "title": "cardholder name",
                                "id": "cardholder",
                                "value": {"string": "Alice"},
                            },
                            {"title": "type", "id": "type", "value": {"creditCardType": "visa"}},
                            {
                                "title": "number",
                                "id": "ccnum",
                                "value": {"creditCardNumber": "4111111111111111"},
                            },
                            {
                                "title": "verification number",
                                "id": "cvv",
                                "value": {"concealed": "123"},
                            },
                            {
                                "title": "expiry date",
                                "id": "expiry",
                                "value": {"monthYear": 203012},
                            },
                        ],
                    }
                ]
            },
        ),
        item("c", "003", "Note", {"notesPlain": "text"}),
        item(
            "d",
            "004",
            "Me",
            {
                "sections": [
                    {
                        "title": "Identification",
                        "name": "name",
                        "fields": [
                            {
                                "title": "first name",
                                "id": "firstname",
                                "value": {"string": "Alice"},
                            },
                            {
                                "title": "last name",
                                "id": "lastname",
                                "value": {"string": "Example"},
                            },
                            {
                                "title": "address",
                                "id": "address",
                                "value": {
                                    "address": {
                                        "street": "1 Main St",
                                        "city": "Town",
                                        "country": "nz",
                                        "zip": "1000",
                                        "state": "",
                                    }
                                },
                            },
                        ],
                    }
                ]
            },
        ),
        item(
            "e",
            "114",
            "SSH",
            {
                "sections": [
                    {
                        "title": "",
                        "name": "",
                        "fields": [
                            {
                                "title": "private key",
                                "id": "private_key",
                                "value": {
                                    "sshKey": {
                                        "privateKey": PRIVATE_KEY,
                                        "metadata": {
                                            "publicKey": "ssh-ed25519 AAAA",
                                            "fingerprint": "SHA256:y",
                                            "keyType": "ed25519",
                                        },
                                    }
                                },
                            },
                        ],
                    }
                ]
            },
        ),
        item("f", "005", "Wifi", {"password": "wifi-pw"}, state="archived"),
        item(
            "g",
            "110",
            "Server",
            {
                "sections": [
                    {
                        "title": "",
                        "name": "",
                        "fields": [
                            {"title": "URL", "id": "url", "value": {"string": "ssh://host"}},
                        ],
                    }
                ]
            },
        ),
    ]


def test_import_1password_1pux_maps_categories_and_keeps_the_rest() -> None:
    result = import_file("1password", onepux(onepux_items()), no_password)
    items = by_title(result.items)
    gh = items["GitHub"]
    assert (gh.username, gh.password, gh.totp_secret, gh.favorite) == (
        "alice",
        "pw",
        TOTP_URI,
        True,
    )
    assert gh.urls == ["https://github.com"] and gh.tags == ["dev"]
    fields = {f.name: (f.value, f.kind) for f in gh.fields}
    assert fields["Security: recovery"] == ("RC-1", "hidden")
    assert fields["previous password 1"] == ("older", "hidden")
    assert "x.png" in gh.notes  # the file is named, not silently dropped
    assert items["Visa"].data == {
        "cardholder": "Alice",
        "brand": "visa",
        "number": "4111111111111111",
        "code": "123",
        "exp_year": "2030",
        "exp_month": "12",
    }
    assert items["Note"].type == "note"
    assert items["Me"].data["address1"] == "1 Main St" and items["Me"].data["postal_code"] == "1000"
    assert items["SSH"].type == "ssh_key" and items["SSH"].data["fingerprint"] == "SHA256:y"
    assert items["Wifi"].password == "wifi-pw" and "archived" in items["Wifi"].tags
    assert items["Server"].type == "note" and items["Server"].tags == ["Server"]
    assert [(f.name, f.value) for f in items["Server"].fields] == [("URL", "ssh://host")]


def test_import_1password_csv() -> None:
    rows = [
        [
            "Title",
            "Url",
            "Username",
            "Password",
            "OTPAuth",
            "Favorite",
            "Archived",
            "Tags",
            "Notes",
        ],
        [
            "Forum",
            "https://forum.example.org",
            "snowfox",
            "three",
            "",
            "true",
            "false",
            "social;fun",
            "a note",
        ],
    ]
    (item,) = import_file("1password", csv_bytes(rows), no_password).items
    assert item.favorite and item.tags == ["social", "fun"] and item.notes == "a note"


# -------------------------------------------------------------------- keepass


def kdbx_file(tmp_path: Path) -> bytes:
    """A KDBX 4 database written by pykeepass, as KeePassXC users have them."""
    path = tmp_path / "db.kdbx"
    kp = create_database(str(path), password=KDBX_PASSWORD)
    email = kp.add_group(kp.root_group, "Email")
    entry = kp.add_entry(
        email,
        "Mail",
        "alice",
        "mail-pw",
        url="https://mail.example",
        notes="n",
        tags=["personal"],
        otp=TOTP_URI,
    )
    entry.set_custom_property("PIN", "1234", protect=True)
    entry.set_custom_property("Team", "core")
    entry.set_custom_property("KP2A_URL_1", "https://webmail.example")
    gone = kp.add_entry(kp.root_group, "Deleted", "x", "y")
    kp.trash_entry(gone)
    kp.save()
    return path.read_bytes()


def test_import_keepass_kdbx4_via_pykeepass(tmp_path: Path) -> None:
    data = kdbx_file(tmp_path)
    result = import_file("keepass", data, password(KDBX_PASSWORD))
    (item,) = result.items
    assert (item.title, item.username, item.password) == ("Mail", "alice", "mail-pw")
    assert item.urls == ["https://mail.example", "https://webmail.example"]
    assert item.totp_secret == TOTP_URI and set(item.tags) == {"personal", "Email"}
    assert {f.name: (f.value, f.kind) for f in item.fields} == {
        "PIN": ("1234", "hidden"),
        "Team": ("core", "text"),
    }
    assert [(s.reason) for s in result.skipped] == ["in the recycle bin"]


def test_import_keepass_wrong_password_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(TransferPasswordError, match="wrong password"):
        import_file("keepass", kdbx_file(tmp_path), password("not it"))


def test_attack_import_keepass_costly_kdf_is_refused_before_deriving(tmp_path: Path) -> None:
    """A database asking Argon2 for 8 GiB is refused from its clear header."""
    data = bytearray(kdbx_file(tmp_path))
    # VariantDictionary record: type 0x05 (u64), key length 1, key "M", value length 8
    pos = data.index(b"\x05\x01\x00\x00\x00M\x08\x00\x00\x00") + 10
    assert struct.unpack_from("<Q", data, pos)[0] == 64 * 1024**2  # pykeepass's 64 MiB
    struct.pack_into("<Q", data, pos, 8 * 1024**3)
    with pytest.raises(FileTooLargeError, match="Argon2 cost"):
        import_file("keepass", bytes(data), no_password)  # no password asked either


def test_import_keepass_refuses_kdbx3_and_other_files() -> None:
    kdbx3 = keepass.SIGNATURE + struct.pack("<HH", 1, 3) + b"\0" * 40
    with pytest.raises(MalformedFileError, match="KDBX 4"):
        import_file("keepass", kdbx3, no_password)
    with pytest.raises(MalformedFileError, match="keepassxc-csv"):
        import_file("keepass", b"Group,Title\n", no_password)


def test_export_keepass_reads_back_with_pykeepass_and_round_trips(tmp_path: Path) -> None:
    items = sample_items()
    data = export_items("keepass", items, KDBX_PASSWORD)
    path = tmp_path / "out.kdbx"
    path.write_bytes(data)
    kp = PyKeePass(str(path), password=KDBX_PASSWORD)
    assert kp.version == (4, 0)
    gh = kp.find_entries(title="GitHub", first=True)
    assert (gh.username, gh.password, gh.url) == ("alice", "gh-pw", "https://github.com")
    assert gh.otp == "JBSWY3DPEHPK3PXP" and set(gh.tags) == {"dev", "work"}
    assert gh.get_custom_property("recovery code") == "RC-1"
    assert gh.is_custom_property_protected("recovery code")
    visa = kp.find_entries(title="Visa", first=True)
    assert visa.get_custom_property("Card number") == "4111111111111111"
    assert visa.is_custom_property_protected("Card number")
    back = import_file("keepass", data, password(KDBX_PASSWORD))
    assert not back.skipped
    assert sorted(map(comparable, back.items), key=str) == sorted(map(comparable, items), key=str)


# -------------------------------------------------------------------- unlatch


def test_export_unlatch_round_trip_gives_the_same_items() -> None:
    items = sample_items()
    data = export_items("unlatch", items, EXPORT_PASSWORD, kdf_params=OWASP_MINIMUM)
    for secret in (b"gh-pw", b"4111111111111111", b"GitHub", b"OPENSSH"):
        assert secret not in data
    back = import_file("unlatch", data, password(EXPORT_PASSWORD))
    assert [comparable(i) for i in back.items] == [comparable(i) for i in items]


def test_attack_import_unlatch_export_wrong_password_or_tampered_envelope() -> None:
    data = export_items("unlatch", sample_items()[:1], EXPORT_PASSWORD, kdf_params=OWASP_MINIMUM)
    with pytest.raises(TransferPasswordError, match="wrong password"):
        import_file("unlatch", data, password("another password"))
    env = json.loads(data)
    env["kdf"]["t"] += 1  # the cost is authenticated (AAD), not just used
    with pytest.raises(TransferPasswordError):
        import_file("unlatch", json.dumps(env).encode(), password(EXPORT_PASSWORD))
    env["kdf"]["m"] = 64 * 1024 * 1024  # 64 GiB: refused before deriving
    with pytest.raises(FileTooLargeError):
        import_file("unlatch", json.dumps(env).encode(), password(EXPORT_PASSWORD))


def test_export_csv_has_every_field() -> None:
    data = export_items("csv", sample_items(), None)
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [r["title"] for r in rows] == ["GitHub", "Diary", "Visa", "Me", "deploy key"]
    assert (
        rows[0]["password"] == "gh-pw"
        and rows[0]["urls"] == "https://github.com\nhttps://gist.github.com"
    )
    assert json.loads(rows[2]["data"])["number"] == "4111111111111111"
    assert json.loads(rows[0]["fields"])[0] == {
        "name": "recovery code",
        "value": "RC-1",
        "kind": "hidden",
    }


def test_export_file_is_created_0600_atomically_and_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "out.unlatch"
    old = os.umask(0)
    try:
        write_private(target, b"data")
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_bytes() == b"data"
    with pytest.raises(Exception, match="exists"):
        write_private(target, b"other")
    assert target.read_bytes() == b"data"
    write_private(target, b"new", overwrite=True)
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["out.unlatch"]


# ------------------------------------------------------------ malformed files


@pytest.mark.parametrize(
    ("fmt", "data", "message"),
    [
        (
            "chrome",
            b"name,url,username,password\nx,https://a,u,p\ny,https://b,u\n",
            "line 3 has 3 columns",
        ),
        ("chrome", b"title,link\nx,y\n", "no name, url, username, password column"),
        ("firefox", b'"url","username","password"\n"https://a","u","p\n', "line 2"),
        ("safari", b"Title,URL,Username,Password\nx,\xff\xfe,u,p\n", "line 2 is not UTF-8"),
        (
            "bitwarden",
            b'{"encrypted": false, "items": [{"type": 1, "name": 5, "login": []}]}',
            "item 1",
        ),
        ("bitwarden", b'{"encrypted": false, "items": [\n{"type": 1,, }]}', "line 2"),
        ("1password", b"PK\x03\x04not really a zip", "not a ZIP"),
        ("keepassxc-csv", b"", "empty"),
        ("unlatch", b'{"format": "something else"}', "not an unlatch export"),
    ],
)
def test_import_malformed_file_names_the_line_or_entry(fmt: str, data: bytes, message: str) -> None:
    with pytest.raises(MalformedFileError, match=message):
        import_file(fmt, data, password("x"))


def test_import_malformed_1pux_entry_is_named() -> None:
    bad = onepux_items()
    bad[2]["details"]["sections"] = "not a list"
    with pytest.raises(MalformedFileError, match=r"vault 1 item 3 \('Note'\) sections"):
        import_file("1password", onepux(bad), no_password)


def test_import_bounds_entries_and_values() -> None:
    many = b"name,url,username,password\n" + b"x,https://a,u,p\n" * (MAX_ENTRIES + 1)
    with pytest.raises(FileTooLargeError, match="entries"):
        import_file("chrome", many, no_password)
    huge = b"name,url,username,password\nx,https://a,u," + b"p" * (200 * 1024) + b"\n"
    with pytest.raises((FileTooLargeError, MalformedFileError), match="line 2"):
        import_file("chrome", huge, no_password)


def test_import_what_does_not_fit_is_kept_or_reported_never_dropped() -> None:
    long_url = "https://example.com/" + "a" * 3000
    rows = [
        ["Title", "URL", "Username", "Password", "Notes", "OTPAuth"],
        ["Odd", long_url, "u", "p", "", "not a totp secret"],
        ["Too long", "https://b", "u", "p", "n" * 40_000, ""],
    ]
    result = import_file("safari", csv_bytes(rows), no_password)
    (item,) = result.items
    fields = {f.name: (f.value, f.kind) for f in item.fields}
    assert fields["URL"] == (long_url, "url")
    assert fields["one-time code (not understood)"] == ("not a totp secret", "hidden")
    assert [(s.entry, "notes" in s.reason) for s in result.skipped] == [("line 3", True)]
    assert result.report()[:2] == ["imported 1 item(s) from safari", "skipped 1:"]


def test_import_malformed_file_leaves_the_vault_unchanged(make_vault: MakeVault) -> None:
    """The vault-level contract: all items of a file in one transaction, or none."""
    vault = make_vault()
    vault.add_item(Item(title="existing"))
    good = import_file("bitwarden", json.dumps(bitwarden_json()).encode(), no_password)
    bad = [*good.items, Item(title="x" * 300)]  # invalid: the whole batch is refused
    with pytest.raises(Exception, match="title"):
        vault.add_items(bad)
    assert [i.title for i in vault.items()] == ["existing"]
    vault.add_items(good.items)
    assert vault.count_items() == 1 + len(good.items)
    raw = sqlite3.connect(vault.path).execute("SELECT ciphertext FROM items").fetchall()
    assert all(b"4111111111111111" not in r[0] for r in raw)
