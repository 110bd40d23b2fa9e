"""The vault file: typed errors for foreign, damaged, truncated or newer files; migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.vault import PASSWORD

from unlatch.vault import (
    OWASP_MINIMUM,
    CorruptVaultError,
    Item,
    NotAVaultError,
    UnsupportedSchemaError,
    Vault,
    schema,
)
from unlatch.vault.errors import VaultExistsError, VaultNotFoundError

MakeVault = Callable[..., Vault]


def closed_vault_with_items(make_vault: MakeVault, n: int = 50) -> Path:
    vault = make_vault()
    for i in range(n):
        vault.add_item(Item(title=f"item {i}", notes="x" * 500))
    path = vault.path
    vault.close()
    return path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(VaultNotFoundError, match="unlatch init"):
        Vault.open(tmp_path / "nope.db")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"hello, I am a text file\n" * 10,
        bytes(range(256)) * 8,
        b"SQLite format 2\x00" + b"\0" * 200,
    ],
)
def test_not_sqlite_is_not_a_vault(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(content)
    with pytest.raises(NotAVaultError):
        Vault.open(path)
    assert path.read_bytes() == content  # untouched


def test_foreign_sqlite_file_is_not_a_vault_and_is_not_modified(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('hi')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(NotAVaultError, match="not an unlatch vault"):
        Vault.open(path)
    assert path.read_bytes() == before
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    conn.commit()
    conn.close()
    with pytest.raises(NotAVaultError):
        Vault.open(path)


@pytest.mark.parametrize("keep", [10, 99, 4096, 0.5, 0.9])
def test_truncated_file_is_corrupt(make_vault: MakeVault, keep: float) -> None:
    path = closed_vault_with_items(make_vault)
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep
    path.write_bytes(data[:cut])
    with pytest.raises(CorruptVaultError):
        Vault.open(path)


def test_damaged_page_is_corrupt(make_vault: MakeVault) -> None:
    path = closed_vault_with_items(make_vault)
    data = bytearray(path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for i in range(page_size + 8, page_size * 2):  # smash page 2's header and body
        data[i] = 0xA5
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptVaultError):
        vault = Vault.open(path)
        vault.unlock_with_password(PASSWORD)
        vault.items()


def test_newer_schema_is_refused(make_vault: MakeVault) -> None:
    path = closed_vault_with_items(make_vault, 1)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(UnsupportedSchemaError, match="upgrade unlatch"):
        Vault.open(path)


def test_missing_vault_id_is_corrupt(make_vault: MakeVault) -> None:
    path = closed_vault_with_items(make_vault, 1)
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM meta WHERE key = 'vault_id'")
    conn.commit()
    conn.close()
    with pytest.raises(CorruptVaultError, match="vault id"):
        Vault.open(path)


def test_migration_steps_run_in_order_and_bump_the_version(make_vault: MakeVault) -> None:
    path = closed_vault_with_items(make_vault, 3)
    conn = schema.connect(path)

    def add_column(c: sqlite3.Connection) -> None:
        c.execute("ALTER TABLE items ADD COLUMN extra TEXT")

    def broken(c: sqlite3.Connection) -> None:
        c.execute("CREATE TABLE half (x)")
        raise RuntimeError("crash mid-migration")

    steps = {**schema.MIGRATIONS, 1: add_column, 2: broken}
    with pytest.raises(RuntimeError):
        schema.migrate(conn, 1, steps, target=3)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["schema_version"] == "2"  # step 1 committed, step 2 rolled back whole
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "half" not in tables
    conn.close()


def test_create_refuses_to_overwrite(make_vault: MakeVault) -> None:
    vault = make_vault()
    with pytest.raises(VaultExistsError):
        Vault.create(vault.path, PASSWORD, kdf_params=OWASP_MINIMUM)
    leftovers = [p.name for p in vault.path.parent.iterdir() if "creating" in p.name]
    assert leftovers == []
