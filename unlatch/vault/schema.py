"""The vault's SQLite file: opening it safely, its schema and migrations.

One file per vault, in WAL mode with ``synchronous=FULL``: a committed
write survives a crash (even SIGKILL mid-write or power loss), an
uncommitted one vanishes whole. Every write runs in ``BEGIN IMMEDIATE`` so
two writers never interleave.

Schema changes are functions in :data:`MIGRATIONS` (version ``n`` -> ``n+1``),
each applied in one transaction with the ``schema_version`` bump, so a
crash mid-migration leaves the old version intact. Creating a vault is
simply migrating from version 0.
"""

from __future__ import annotations

import os
import sqlite3
import struct
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from unlatch.vault.errors import (
    CorruptVaultError,
    NotAVaultError,
    UnsupportedSchemaError,
    VaultNotFoundError,
)

FORMAT_NAME = "unlatch-vault"
SCHEMA_VERSION = 3
SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_HEADER_LEN = 100

Migration = Callable[[sqlite3.Connection], None]


def _create_v1(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
    conn.execute(
        """CREATE TABLE slots (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            label TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            meta TEXT NOT NULL,
            nonce BLOB NOT NULL,
            wrapped_key BLOB NOT NULL
        )"""
    )
    conn.execute(
        """CREATE TABLE items (
            id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            nonce BLOB NOT NULL,
            ciphertext BLOB NOT NULL
        )"""
    )
    conn.execute("INSERT INTO meta (key, value) VALUES ('format', ?)", (FORMAT_NAME,))


def _renewal_v2(conn: sqlite3.Connection) -> None:
    """Key rotation: each slot's renewal public key, its MAC, and the sealed form.

    ``renew_key``: the slot's HPKE public key, derived from its KEK (NULL until
    the vault has seen that KEK: at creation, or at the slot's next unlock).
    ``renew_mac``: HMAC of it under the vault key. ``enc``: NULL when
    ``wrapped_key`` is AES-GCM under the KEK; otherwise the HPKE encapsulated
    key and ``wrapped_key`` is sealed to ``renew_key`` (after a rotation, until
    the slot's next use). See docs/vault.md "Key rotation".
    """
    conn.execute("ALTER TABLE slots ADD COLUMN renew_key BLOB")
    conn.execute("ALTER TABLE slots ADD COLUMN renew_mac BLOB")
    conn.execute("ALTER TABLE slots ADD COLUMN enc BLOB")


def _v3_item_types(conn: sqlite3.Connection) -> None:
    """Schema 3: item plaintexts may use item encoding 2 (types, custom fields, favourites).

    No table changes: the new fields live inside each item's ciphertext, and
    items written in encoding 1 are still read (as logins) and rewritten in
    encoding 2 on their next edit, since re-encrypting needs the key and a
    migration runs while the vault is locked. The version bump itself is the
    point: an older unlatch then refuses the file with "upgrade unlatch"
    (:class:`UnsupportedSchemaError`) instead of reporting every new item as
    tampered with.
    """


# MIGRATIONS[n] upgrades a file at schema version n to n + 1.
MIGRATIONS: dict[int, Migration] = {0: _create_v1, 1: _renewal_v2, 2: _v3_item_types}


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the pragmas every vault connection needs."""
    conn = sqlite3.connect(
        os.fspath(path), isolation_level=None, check_same_thread=False, timeout=10.0
    )
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA trusted_schema = OFF")
    return conn


@contextmanager
def write_txn(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def check_file(path: Path) -> None:
    """Reject, before SQLite sees it, a file that is missing, not SQLite, or truncated."""
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            header = fh.read(SQLITE_HEADER_LEN)
    except FileNotFoundError:
        raise VaultNotFoundError(f"no vault at {path}: run `unlatch init`") from None
    except OSError as exc:
        raise NotAVaultError(f"cannot read {path}: {exc.strerror}") from None
    if size == 0:
        raise NotAVaultError(f"{path} is empty, not an unlatch vault")
    if not header.startswith(SQLITE_MAGIC[: min(len(header), len(SQLITE_MAGIC))]):
        raise NotAVaultError(f"{path} is not an unlatch vault (not an SQLite file)")
    if len(header) < SQLITE_HEADER_LEN:
        raise CorruptVaultError(f"{path} is truncated (shorter than an SQLite header)")
    (page_size,) = struct.unpack(">H", header[16:18])
    page_size = 65536 if page_size == 1 else page_size
    (page_count,) = struct.unpack(">I", header[28:32])
    change_counter, valid_for = header[24:28], header[92:96]
    if page_size < 512 or page_size & (page_size - 1):
        raise CorruptVaultError(f"{path} is damaged (invalid SQLite page size)")
    # With a non-empty WAL (e.g. after a crash mid-checkpoint) the main file may
    # legitimately be shorter than page 1 says until SQLite replays the log.
    wal = Path(f"{path}-wal")
    wal_pending = wal.exists() and wal.stat().st_size > 0
    if change_counter == valid_for and not wal_pending and size < page_size * page_count:
        raise CorruptVaultError(
            f"{path} is truncated ({size} bytes, expected {page_size * page_count})"
        )


def read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, str]:
    """The ``meta`` table, or a typed error saying why this is not a usable vault."""
    try:
        tables = {
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if "meta" not in tables:
            raise NotAVaultError(f"{path} is an SQLite file but not an unlatch vault")
        meta = {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    except sqlite3.DatabaseError as exc:
        raise _classify(exc, path) from None
    if meta.get("format") != FORMAT_NAME:
        raise NotAVaultError(f"{path} is an SQLite file but not an unlatch vault")
    return meta


def schema_version(meta: Mapping[str, str], path: Path) -> int:
    """The file's schema version, checked against what this code understands."""
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise CorruptVaultError(f"{path} has no valid schema version") from None
    if version > SCHEMA_VERSION:
        raise UnsupportedSchemaError(
            f"{path} uses vault schema {version}, but this unlatch understands up to "
            f"{SCHEMA_VERSION}: upgrade unlatch"
        )
    if version < 1:
        raise CorruptVaultError(f"{path} has an invalid schema version {version}")
    return version


def migrate(
    conn: sqlite3.Connection,
    from_version: int,
    migrations: Mapping[int, Migration] = MIGRATIONS,
    target: int = SCHEMA_VERSION,
) -> int:
    """Apply each step from ``from_version`` to ``target``, one transaction per step."""
    version = from_version
    while version < target:
        step = migrations.get(version)
        if step is None:
            raise UnsupportedSchemaError(f"no migration from vault schema {version}")
        with write_txn(conn):
            step(conn)
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(version + 1),),
            )
        version += 1
    return version


def quick_check(conn: sqlite3.Connection, path: Path) -> None:
    """SQLite's structural check; a damaged page becomes :class:`CorruptVaultError`."""
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise _classify(exc, path) from None
    if rows != [("ok",)]:
        raise CorruptVaultError(f"{path} is damaged (SQLite integrity check failed)")


def _classify(exc: sqlite3.DatabaseError, path: Path) -> Exception:
    text = str(exc).lower()
    if "not a database" in text:
        return NotAVaultError(f"{path} is not an unlatch vault (not an SQLite file)")
    return CorruptVaultError(f"{path} is damaged: {exc}")
