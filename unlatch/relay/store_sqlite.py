"""The embedded SQLite :class:`~unlatch.relay.store.Store` (the default).

One connection; every method runs as a single function in one transaction (a
``BEGIN IMMEDIATE`` one when it has several statements, else its one statement
alone), so each is atomic without explicit locking. The queries are tiny, indexed and
commit without fsync (WAL with ``synchronous=NORMAL``: enough because
everything here is short-lived; a lost channel after a power cut costs a retry,
not data), so they run inline on the event loop: measured on the bench, a hop
to a worker thread per query cost more than the query itself. Only opening and
closing the file (which may touch the disk for long) go to a thread.

Payloads are wiped (set to NULL / rows deleted) as soon as a channel is closed
or expires; only a small tombstone stays so that late posts get "expired"
rather than "unknown". ``secure_delete`` overwrites freed pages with zeros, so
deleted ciphertext does not linger in the database file either (older page images
stay in the ``-wal`` file until it is rewritten: docs/relay.md, "SQLite details").
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast

from unlatch.relay.errors import RelayConfigError
from unlatch.relay.models import (
    Channel,
    ChannelKind,
    ChannelState,
    Device,
    DeviceKind,
    Message,
    PairingView,
)
from unlatch.relay.store import (
    AddResult,
    ChangeCursor,
    Changes,
    CloseResult,
    Closing,
    CreateResult,
    PairResult,
    Store,
    UnlockContext,
    channel_change,
    close_outcomes,
)

T = TypeVar("T")

# Set at every open (outside any transaction: journal_mode cannot change inside one).
PRAGMAS = """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=NORMAL;
PRAGMA secure_delete=ON;
PRAGMA foreign_keys=ON;
"""

# The layout this code writes, recorded in schema_version. Version 1 (no row: that table
# was made but never written) indexed channels over every row, tombstones included (a
# close moved the channel's entry in each index, and two of them served no query: the
# planner preferred the state index and scanned every open channel of every device),
# and kept messages in three b-trees. Version 2 indexes open channels only (partial
# indexes: an entry is written when a channel opens and removed when it ends, each index
# is as small as the set of open channels, and each query of open channels has one made
# for it; tests/test_postgres_store.py checks the plans) and keeps messages in one
# b-tree. An exchange's three write transactions write about 12 pages to the WAL, not 16.
SCHEMA_VERSION = 2

# Indexes of open channels only: a query uses one when its WHERE says state = 'open' (a
# literal, not a parameter). By creator (the cap on a desktop's open requests and the
# requests a new one renews), by peer (a phone's pending list) and by expiry (the
# sweeper, the metrics' count).
OPEN_INDEXES = (
    "CREATE INDEX IF NOT EXISTS channels_open_creator ON channels (creator, kind, expires_at)"
    " WHERE state = 'open'",
    "CREATE INDEX IF NOT EXISTS channels_open_peer ON channels (peer) WHERE state = 'open'",
    "CREATE INDEX IF NOT EXISTS channels_open_expiry ON channels (expires_at) WHERE state = 'open'",
)

# A channel's messages: one b-tree, keyed by (channel_id, type), which is what holds a
# channel to one message of each type (one reply, one hello). A message's seq (its
# order on the channel) is the channel's largest + 1, given under the write lock. (Version
# 1 had a rowid table with two unique indexes, (channel_id, seq) and (channel_id, type):
# three b-trees, so three pages written to add a message and three to drop one.) Rows are
# small (a reply is under 200 bytes, a hello or accept under 600), well under what one
# page of a WITHOUT ROWID table holds without an overflow page (about 1,000 bytes).
MESSAGES = """{name} (
    channel_id BLOB NOT NULL REFERENCES channels (channel_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    sender TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (channel_id, type)
) WITHOUT ROWID"""

# (added to version 1 after its first files were made: the migration makes it too)
RELAY_SETTINGS = """CREATE TABLE IF NOT EXISTS relay_settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
)"""

TABLES = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    push_target TEXT
)""",
    """CREATE TABLE IF NOT EXISTS challenges (
    challenge BLOB PRIMARY KEY,
    expires_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS sessions (
    token_hash BLOB PRIMARY KEY,
    device_id TEXT NOT NULL,
    expires_at REAL NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at)",
    """CREATE TABLE IF NOT EXISTS channels (
    channel_id BLOB PRIMARY KEY,
    kind TEXT NOT NULL,
    creator TEXT NOT NULL,
    peer TEXT,
    routing_id BLOB,
    push BLOB,
    meta TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL,
    closed_at REAL
)""",
    *OPEN_INDEXES,
    "CREATE TABLE IF NOT EXISTS " + MESSAGES.format(name="messages"),
    """CREATE TABLE IF NOT EXISTS pairings (
    routing_id BLOB NOT NULL,
    device_id TEXT NOT NULL,
    peer_device_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    blocked INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (routing_id, device_id)
)""",
    "CREATE INDEX IF NOT EXISTS pairings_device ON pairings (device_id)",
    RELAY_SETTINGS,
)

# From each version to the next, in the transaction that records the new version.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "DROP INDEX IF EXISTS channels_creator",
        "DROP INDEX IF EXISTS channels_peer",
        "DROP INDEX IF EXISTS channels_expiry",
        *OPEN_INDEXES,
        RELAY_SETTINGS,
        # the messages into their new table (secure_delete zeroes the old one's pages);
        # dropping the old one drops its change-log trigger: migrate() makes it again
        "CREATE TABLE " + MESSAGES.format(name="messages_v2"),
        "INSERT INTO messages_v2 SELECT channel_id, seq, type, sender, data, created_at"
        " FROM messages",
        "DROP TABLE messages",
        "ALTER TABLE messages_v2 RENAME TO messages",
    ),
}

# Seconds a change stays in the change log: far more than a node's reconciler lags behind
# (it reads every sweep_interval); one that lagged longer is told its view is incomplete.
CHANGE_LOG_KEEP = 120.0

# The change log (Store.channel_changes): every change a waiter must hear of, written by
# triggers in the writing transaction, so no code path can forget it: a channel row's new
# state (created open, then closed or expired) or a message's type. A new row's id is the
# largest id in the table + 1, and trimming never deletes the newest row, so ids grow by
# one and are never reused (AUTOINCREMENT would guarantee that too, at twice the cost per
# change: it updates sqlite_sequence). One writer at a time (SQLite's write lock, held from
# the first write to the commit) makes ids follow commit order: a reader that has seen id N
# has seen every change before it.
#
# The table is made at every open (IF NOT EXISTS); the triggers
# only by the first look of a reconciler (a node on the Redis bus), which is when changes
# start to matter: a single relay on the in-process bus does not pay for them (about 6 us
# of the writer's CPU per change, 3 changes an exchange). Once made they stay in the file,
# for every process that writes to it.
CHANGE_LOG = """
CREATE TABLE IF NOT EXISTS channel_changes (
    id INTEGER PRIMARY KEY,
    channel_id BLOB NOT NULL,
    state TEXT,
    type TEXT,
    at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);
"""
CHANGE_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS channel_created_log AFTER INSERT ON channels BEGIN"
    " INSERT INTO channel_changes (channel_id, state) VALUES (NEW.channel_id, NEW.state); END",
    "CREATE TRIGGER IF NOT EXISTS channel_ended_log AFTER UPDATE OF state ON channels"
    " WHEN OLD.state IS NOT NEW.state BEGIN"
    " INSERT INTO channel_changes (channel_id, state) VALUES (NEW.channel_id, NEW.state); END",
    "CREATE TRIGGER IF NOT EXISTS message_added_log AFTER INSERT ON messages BEGIN"
    " INSERT INTO channel_changes (channel_id, type) VALUES (NEW.channel_id, NEW.type); END",
)


# A pairing as one side sees it, in one query: "linked" when the other side registered
# the mirror entry (register_pairing refuses a third device, so two rows at most),
# "blocked" when either entry is.
_VIEW_COLUMNS = (
    "p.routing_id, p.peer_device_id, p.created_at,"
    " (SELECT MAX(q.blocked) FROM pairings q WHERE q.routing_id = p.routing_id) AS any_blocked,"
    " EXISTS (SELECT 1 FROM pairings q WHERE q.routing_id = p.routing_id"
    " AND q.device_id = p.peer_device_id AND q.peer_device_id = p.device_id"
    " AND q.kind <> p.kind) AS linked"
)
_VIEW = "SELECT " + _VIEW_COLUMNS + " FROM pairings p WHERE "  # noqa: S608 - constants

# Store.unlock_context in one statement (one snapshot): whether the request id is taken,
# the desktop's view of the pairing (NULLs if it has none) and the pairing's phone.
_UNLOCK_CONTEXT = (
    "SELECT EXISTS (SELECT 1 FROM channels WHERE channel_id = ?) AS taken, "  # noqa: S608 - constants
    + _VIEW_COLUMNS
    + ", d.device_id AS phone_id, d.public_key AS phone_key, d.kind AS phone_kind,"
    " d.created_at AS phone_created_at, d.push_target AS phone_push_target"
    " FROM (SELECT 1) LEFT JOIN pairings p ON p.routing_id = ? AND p.device_id = ?"
    " LEFT JOIN devices d ON d.device_id = p.peer_device_id"
)


# An unlock request c still waiting for the phone: open, live, no reply yet.
_PENDING_WHERE = (
    "peer = ? AND kind = 'unlock' AND state = 'open'"
    " AND expires_at > ? AND NOT EXISTS (SELECT 1 FROM messages m"
    " WHERE m.channel_id = c.channel_id AND m.type = 'reply')"
)
_PENDING_UNLOCK = "SELECT * FROM channels c WHERE " + _PENDING_WHERE  # noqa: S608 - constants

# The request a new unlock request renews (Store.create_unlock): the newest pending one
# of the same phone, desktop and pairing. Asked in the check before the insert, in the
# same transaction: the new row, the only write in between, is not another request.
_RENEWED = (
    "(SELECT channel_id FROM channels c WHERE "  # noqa: S608 - constants
    + _PENDING_WHERE
    + " AND creator = ? AND routing_id = ? ORDER BY created_at DESC, channel_id LIMIT 1)"
)
# Store.create_channel's check in one read: the id is free, the creator's open channels of
# the kind (the cap), and for an unlock request the request it renews (NULL otherwise).
_CREATE_CHECKS = (
    "SELECT EXISTS (SELECT 1 FROM channels WHERE channel_id = ?),"
    " (SELECT COUNT(*) FROM channels WHERE creator = ? AND kind = ? AND state = 'open'"
    " AND expires_at > ?), "
)
_CREATE_CHECK = _CREATE_CHECKS + "NULL"
_CREATE_UNLOCK_CHECK = _CREATE_CHECKS + _RENEWED
_STATES = {state.value: state for state in ChannelState}  # a dict lookup, not an Enum call


def _device(
    device_id: str, public_key: bytes, kind: DeviceKind, created_at: float, push_target: str | None
) -> Device:
    return Device(
        device_id=device_id,
        public_key=public_key,
        kind=kind,
        created_at=created_at,
        push_target=json.loads(push_target) if push_target else None,
    )


def _channel(row: sqlite3.Row) -> Channel:
    return Channel(
        channel_id=row["channel_id"],
        kind=row["kind"],
        creator=row["creator"],
        peer=row["peer"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        state=_STATES[row["state"]],
        routing_id=row["routing_id"],
        push=row["push"],
        meta=json.loads(row["meta"]) if row["meta"] else {},
    )


def schema_version(db: sqlite3.Connection) -> int:
    """The layout of the open file: 0 when new, 1 when made before versions were recorded."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "channels" not in tables:
        return 0
    row = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return 1 if row is None or row[0] is None else int(row[0])


def migrate(db: sqlite3.Connection) -> None:
    """Bring the file to SCHEMA_VERSION in one transaction (a crash leaves the old layout).

    ``BEGIN IMMEDIATE`` first: two processes opening one old file at once migrate
    it once, the second finding the new version.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(db)
        triggers = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'trigger'").fetchone()
        if version > SCHEMA_VERSION:
            raise RelayConfigError(
                f"the relay database's schema (v{version}) is newer than this relay"
                f" (v{SCHEMA_VERSION}); upgrade the relay"
            )
        if version == 0:  # a new file: the current layout at once
            for statement in TABLES:
                db.execute(statement)
            version = SCHEMA_VERSION
        for step in range(version, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                db.execute(statement)
        if triggers:  # a migration that rebuilt a table dropped its trigger
            for trigger in CHANGE_TRIGGERS:
                db.execute(trigger)
        if schema_version(db) != SCHEMA_VERSION:
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise


class SQLiteStore(Store):
    """SQLite file store; ``path`` is created (0600) with its parent directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relay-sqlite")
        self._db: sqlite3.Connection | None = None

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one write transaction, inline (a plain call: the methods await nothing).

        ``BEGIN IMMEDIATE`` takes the write lock before the first read, so what a
        method checks still holds when it writes (another process on the file waits),
        and its reads and writes share one lock and snapshot instead of one each.
        The connection is in autocommit mode (no implicit BEGIN from the sqlite3
        module, which prepares its BEGIN and COMMIT anew each time): these two are
        prepared once, in the statement cache.
        """
        db = self._db
        if db is None:
            raise RuntimeError("store is not open")
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
            db.execute("COMMIT")
        except BaseException:
            db.rollback()  # a no-op if the failure was the COMMIT's and it ended the transaction
            raise
        return result

    def _auto(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` with each of its statements a transaction of its own (autocommit).

        For a method of one statement (a read, or a write that is atomic alone),
        where a BEGIN and a COMMIT would only add two statements and a lock.
        """
        db = self._db
        if db is None:
            raise RuntimeError("store is not open")
        return fn(db)

    async def open(self) -> None:
        def connect() -> None:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not self.path.exists():
                self.path.touch(mode=0o600)
            db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            try:
                db.row_factory = sqlite3.Row
                db.executescript(PRAGMAS)
                migrate(db)
                db.execute(CHANGE_LOG)
            except BaseException:
                db.close()
                raise
            self._db = db

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, connect)

    async def close(self) -> None:
        def disconnect() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, disconnect)
        self._executor.shutdown(wait=True)

    async def ping(self) -> None:
        self._auto(lambda db: db.execute("SELECT 1").fetchone())

    async def record_setting(self, name: str, value: str, *, replace: bool = False) -> str:
        def fn(db: sqlite3.Connection) -> str:
            verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
            db.execute(f"{verb} INTO relay_settings VALUES (?, ?)", (name, value))
            row = db.execute("SELECT value FROM relay_settings WHERE name = ?", (name,)).fetchone()
            return cast(str, row[0])

        return self._run(fn)

    # challenges and sessions ------------------------------------------------
    async def put_challenge(self, challenge: bytes, expires_at: float) -> None:
        self._auto(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO challenges VALUES (?, ?)", (challenge, expires_at)
            )
        )

    async def take_challenge(self, challenge: bytes, now: float) -> bool:
        def fn(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "DELETE FROM challenges WHERE challenge = ? AND expires_at > ?", (challenge, now)
            )
            return cur.rowcount == 1

        return self._auto(fn)

    async def put_session(self, token_hash: bytes, device_id: str, expires_at: float) -> None:
        self._auto(
            lambda db: db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?)", (token_hash, device_id, expires_at)
            )
        )

    async def get_session(self, token_hash: bytes, now: float) -> str | None:
        def fn(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT device_id FROM sessions WHERE token_hash = ? AND expires_at > ?",
                (token_hash, now),
            ).fetchone()
            return None if row is None else cast(str, row[0])

        return self._auto(fn)

    # devices ------------------------------------------------------------------
    async def register_device(
        self, device_id: str, public_key: bytes, kind: DeviceKind, now: float
    ) -> Device:
        def fn(db: sqlite3.Connection) -> Device:
            db.execute(
                "INSERT OR IGNORE INTO devices (device_id, public_key, kind, created_at)"
                " VALUES (?, ?, ?, ?)",
                (device_id, public_key, kind, now),
            )
            return self._device(db, device_id)  # type: ignore[return-value]

        return self._run(fn)

    @staticmethod
    def _device(db: sqlite3.Connection, device_id: str) -> Device | None:
        row = db.execute("SELECT * FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        if row is None:
            return None
        return _device(
            row["device_id"], row["public_key"], row["kind"], row["created_at"], row["push_target"]
        )

    async def get_device(self, device_id: str) -> Device | None:
        return self._auto(lambda db: self._device(db, device_id))

    async def set_push_target(
        self, device_id: str, target: dict[str, Any] | None, *, only_if_endpoint: str | None = None
    ) -> bool:
        value = json.dumps(target) if target is not None else None

        def fn(db: sqlite3.Connection) -> bool:
            if only_if_endpoint is None:
                cur = db.execute(
                    "UPDATE devices SET push_target = ? WHERE device_id = ?", (value, device_id)
                )
            else:
                cur = db.execute(
                    "UPDATE devices SET push_target = ? WHERE device_id = ?"
                    " AND json_extract(push_target, '$.endpoint') = ?",
                    (value, device_id, only_if_endpoint),
                )
            return cur.rowcount == 1

        return self._auto(fn)

    # channels -------------------------------------------------------------------
    @staticmethod
    def _create(
        db: sqlite3.Connection, channel: Channel, max_open: int, *, renewal: bool = False
    ) -> tuple[CreateResult, bytes | None]:
        """Check and insert; with ``renewal``, the unlock request this one renews, asked at once."""
        exists, count, renewed = db.execute(
            _CREATE_UNLOCK_CHECK if renewal else _CREATE_CHECK,
            (channel.channel_id, channel.creator, channel.kind, channel.created_at)
            + (
                (channel.peer, channel.created_at, channel.creator, channel.routing_id)
                if renewal
                else ()
            ),
        ).fetchone()
        if exists:
            return CreateResult.EXISTS, None
        if count >= max_open:
            return CreateResult.TOO_MANY, None
        db.execute(
            "INSERT INTO channels (channel_id, kind, creator, peer, routing_id, push, meta,"
            " created_at, expires_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'open')",
            (
                channel.channel_id,
                channel.kind,
                channel.creator,
                channel.peer,
                channel.routing_id,
                channel.push,
                json.dumps(channel.meta) if channel.meta else None,
                channel.created_at,
                channel.expires_at,
            ),
        )
        return CreateResult.CREATED, renewed

    async def create_channel(self, channel: Channel, max_open_per_creator: int) -> CreateResult:
        return self._run(lambda db: self._create(db, channel, max_open_per_creator)[0])

    async def create_unlock(
        self, channel: Channel, max_open_per_creator: int
    ) -> tuple[CreateResult, bytes | None]:
        return self._run(lambda db: self._create(db, channel, max_open_per_creator, renewal=True))

    async def unlock_context(
        self, routing_id: bytes, desktop_id: str, request_id: bytes
    ) -> UnlockContext:
        def fn(db: sqlite3.Connection) -> UnlockContext:
            row = db.execute(_UNLOCK_CONTEXT, (request_id, routing_id, desktop_id)).fetchone()
            if row["routing_id"] is None:
                return UnlockContext(None, bool(row["taken"]), None)
            phone = None
            if row["phone_id"] is not None:
                phone = _device(
                    row["phone_id"],
                    row["phone_key"],
                    row["phone_kind"],
                    row["phone_created_at"],
                    row["phone_push_target"],
                )
            return UnlockContext(self._view(row), bool(row["taken"]), phone)

        return self._auto(fn)

    async def get_channel(self, channel_id: bytes) -> Channel | None:
        def fn(db: sqlite3.Connection) -> Channel | None:
            row = db.execute(
                "SELECT * FROM channels WHERE channel_id = ?", (channel_id,)
            ).fetchone()
            return None if row is None else _channel(row)

        return self._auto(fn)

    async def claim_channel(self, channel_id: bytes, peer: str) -> bool:
        def fn(db: sqlite3.Connection) -> bool:
            db.execute(
                "UPDATE channels SET peer = ? WHERE channel_id = ? AND peer IS NULL",
                (peer, channel_id),
            )
            row = db.execute(
                "SELECT peer FROM channels WHERE channel_id = ?", (channel_id,)
            ).fetchone()
            return row is not None and row[0] == peer

        return self._run(fn)

    async def add_message(
        self,
        channel_id: bytes,
        msg_type: str,
        sender: str,
        data: bytes,
        now: float,
        *,
        kind: ChannelKind | None = None,
        from_peer: bool = False,
    ) -> tuple[AddResult, Message | None]:
        def fn(db: sqlite3.Connection) -> tuple[AddResult, Message | None]:
            row = db.execute(
                "SELECT kind, peer,"
                " EXISTS (SELECT 1 FROM messages WHERE channel_id = ? AND type = ?),"
                " (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE channel_id = ?)"
                " FROM channels WHERE channel_id = ? AND state = 'open' AND expires_at > ?",
                (channel_id, msg_type, channel_id, channel_id, now),
            ).fetchone()
            if row is None:
                return AddResult.NOT_OPEN, None
            ch_kind, peer, duplicate, seq = row
            if (kind is not None and ch_kind != kind) or (from_peer and peer != sender):
                return AddResult.NOT_ALLOWED, None
            if duplicate:
                return AddResult.DUPLICATE, None
            db.execute(
                "INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?)",
                (channel_id, seq, msg_type, sender, data, now),
            )
            return AddResult.ADDED, Message(channel_id, seq, msg_type, sender, data, now)

        return self._run(fn)

    async def messages_after(self, channel_id: bytes, after: int) -> list[Message]:
        def fn(db: sqlite3.Connection) -> list[Message]:
            rows = db.execute(
                "SELECT * FROM messages WHERE channel_id = ? AND seq > ? ORDER BY seq",
                (channel_id, after),
            ).fetchall()
            return [
                Message(
                    r["channel_id"], r["seq"], r["type"], r["sender"], r["data"], r["created_at"]
                )
                for r in rows
            ]

        return self._auto(fn)

    async def channel_with_messages(
        self, channel_id: bytes, after: int
    ) -> tuple[Channel | None, list[Message]]:
        def fn(db: sqlite3.Connection) -> tuple[Channel | None, list[Message]]:
            rows = db.execute(
                "SELECT c.*, m.seq AS m_seq, m.type AS m_type, m.sender AS m_sender,"
                " m.data AS m_data, m.created_at AS m_at FROM channels c LEFT JOIN messages m"
                " ON m.channel_id = c.channel_id AND m.seq > ? WHERE c.channel_id = ?"
                " ORDER BY m.seq",
                (after, channel_id),
            ).fetchall()
            if not rows:
                return None, []
            msgs = [
                Message(channel_id, r["m_seq"], r["m_type"], r["m_sender"], r["m_data"], r["m_at"])
                for r in rows
                if r["m_seq"] is not None
            ]
            return _channel(rows[0]), msgs

        return self._auto(fn)

    @staticmethod
    def _close(db: sqlite3.Connection, channel_id: bytes, now: float, outcome: str) -> bool:
        cur = db.execute(
            "UPDATE channels SET state = 'closed', closed_at = ?, push = NULL, meta = ?"
            " WHERE channel_id = ? AND state = 'open'",
            (now, json.dumps({"outcome": outcome}), channel_id),
        )
        db.execute("DELETE FROM messages WHERE channel_id = ?", (channel_id,))
        return cur.rowcount == 1

    async def close_channel(self, channel_id: bytes, now: float, outcome: str = "closed") -> bool:
        return self._run(lambda db: self._close(db, channel_id, now, outcome))

    @classmethod
    def _close_older(
        cls, db: sqlite3.Connection, row: sqlite3.Row, now: float, renewed_outcome: str
    ) -> list[bytes]:
        """Close the open, unanswered requests that the request of ``row`` renewed."""
        older = [
            r["channel_id"]
            for r in db.execute(
                _PENDING_UNLOCK + " AND creator = ? AND routing_id = ? AND created_at < ?"
                " ORDER BY created_at DESC, channel_id",
                (row["peer"], now, row["creator"], row["routing_id"], row["created_at"]),
            ).fetchall()
        ]
        return [cid for cid in older if cls._close(db, cid, now, renewed_outcome)]

    async def close_as(
        self, channel_id: bytes, device_id: str, kind: ChannelKind, now: float
    ) -> Closing:
        def fn(db: sqlite3.Connection) -> Closing:
            row = db.execute(
                "SELECT kind, creator, peer, routing_id, created_at, expires_at,"
                " EXISTS (SELECT 1 FROM messages WHERE channel_id = c.channel_id"
                " AND type = 'reply') AS replied,"
                " EXISTS (SELECT 1 FROM messages WHERE channel_id = c.channel_id"
                " AND type = 'hello') AS helloed,"
                " EXISTS (SELECT 1 FROM messages WHERE channel_id = c.channel_id"
                " AND type = 'accept') AS accepted"
                " FROM channels c WHERE channel_id = ?",
                (channel_id,),
            ).fetchone()
            if row is None or row["kind"] != kind:
                return Closing(CloseResult.UNKNOWN)
            creator, peer = row["creator"], row["peer"]
            if device_id not in (creator, peer):
                return Closing(CloseResult.NOT_PARTY)
            if kind == "unlock" and device_id != creator:
                return Closing(CloseResult.NOT_CREATOR)
            flags = (("reply", "replied"), ("hello", "helloed"), ("accept", "accepted"))
            posted = {name for name, column in flags if row[column]}
            outcome, renewed = close_outcomes(kind, device_id == creator, posted)
            if not self._close(db, channel_id, now, outcome):
                return Closing(CloseResult.NOT_OPEN, outcome, renewed, peer, row["expires_at"])
            older = self._close_older(db, row, now, renewed) if kind == "unlock" and peer else []
            return Closing(
                CloseResult.CLOSED, outcome, renewed, peer, row["expires_at"], tuple(older)
            )

        return self._run(fn)

    async def expire_channels(self, now: float, grace: float) -> list[bytes]:
        def fn(db: sqlite3.Connection) -> list[bytes]:
            ids = [
                r[0]
                for r in db.execute(
                    "SELECT channel_id FROM channels c WHERE state = 'open' AND expires_at <= ?"
                    " AND (expires_at <= ? OR NOT EXISTS"
                    " (SELECT 1 FROM messages m WHERE m.channel_id = c.channel_id))",
                    (now, now - grace),
                ).fetchall()
            ]
            for cid in ids:
                db.execute(
                    "UPDATE channels SET state = 'expired', closed_at = ?, push = NULL, meta = NULL"
                    " WHERE channel_id = ?",
                    (now, cid),
                )
                db.execute("DELETE FROM messages WHERE channel_id = ?", (cid,))
            return ids

        return self._run(fn)

    async def purge(self, now: float, tombstone_before: float) -> int:
        def fn(db: sqlite3.Connection) -> int:
            removed = db.execute(
                "DELETE FROM channels WHERE state != 'open' AND closed_at < ?", (tombstone_before,)
            ).rowcount
            removed += db.execute("DELETE FROM challenges WHERE expires_at <= ?", (now,)).rowcount
            removed += db.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,)).rowcount
            # the change log's old end (not counted: it holds no record), never its newest row
            # (it keeps ids from being reused); scans only what goes
            db.execute(
                "DELETE FROM channel_changes WHERE id < COALESCE((SELECT id FROM channel_changes"
                " WHERE at >= ? ORDER BY id LIMIT 1), (SELECT MAX(id) FROM channel_changes))",
                (now - CHANGE_LOG_KEEP,),
            )
            return removed

        return self._run(fn)

    async def open_unlock_for_peer(self, peer: str, now: float) -> list[Channel]:
        def fn(db: sqlite3.Connection) -> list[Channel]:
            rows = db.execute(_PENDING_UNLOCK + " ORDER BY created_at", (peer, now)).fetchall()
            return [_channel(r) for r in rows]

        return self._auto(fn)

    async def channel_changes(self, since: ChangeCursor | None) -> Changes:
        def fn(db: sqlite3.Connection) -> Changes:
            if since is None:  # the start of a reconciler: record changes from now on
                for trigger in CHANGE_TRIGGERS:
                    db.execute(trigger)
            # the newest id ever given (its row is never trimmed), read first: rows read
            # after it are at least as new
            newest = int(
                db.execute("SELECT COALESCE(MAX(id), 0) FROM channel_changes").fetchone()[0]
            )
            if since is None:
                return Changes(ChangeCursor(newest), [])
            rows = db.execute(
                "SELECT l.id, l.channel_id, l.state, l.type, c.kind, c.peer FROM channel_changes l"
                " LEFT JOIN channels c ON c.channel_id = l.channel_id WHERE l.id > ? ORDER BY l.id",
                (since.position,),
            ).fetchall()
            # ids have no gaps but the trimmed old end: a gap after the cursor was trimmed
            # (were there another, it would cost every local waiter a re-read, nothing more)
            if rows:
                complete = rows[0]["id"] == since.position + 1
                newest = max(newest, rows[-1]["id"])
            else:
                complete = newest <= since.position
            changes = [
                channel_change(r["channel_id"], r["state"], r["type"], r["kind"], r["peer"])
                for r in rows
            ]
            return Changes(ChangeCursor(max(newest, since.position)), changes, complete)

        return self._run(fn)

    async def count_open_channels(self) -> dict[ChannelKind, int]:
        def fn(db: sqlite3.Connection) -> dict[ChannelKind, int]:
            counts: dict[ChannelKind, int] = {"pairing": 0, "unlock": 0}
            for kind, n in db.execute(
                "SELECT kind, COUNT(*) FROM channels WHERE state = 'open' GROUP BY kind"
            ).fetchall():
                counts[kind] = n
            return counts

        return self._auto(fn)

    # pairings ---------------------------------------------------------------------
    async def register_pairing(
        self, routing_id: bytes, device_id: str, peer_device_id: str, kind: DeviceKind, now: float
    ) -> PairResult:
        def fn(db: sqlite3.Connection) -> PairResult:
            rows = db.execute(
                "SELECT device_id, peer_device_id FROM pairings WHERE routing_id = ?", (routing_id,)
            ).fetchall()
            for other, other_peer in rows:
                if other == device_id and other_peer != peer_device_id:
                    return PairResult.CONFLICT
                if other not in (device_id, peer_device_id):
                    return PairResult.CONFLICT
                if other == peer_device_id and other_peer != device_id:
                    return PairResult.CONFLICT
            db.execute(
                "INSERT OR IGNORE INTO pairings (routing_id, device_id, peer_device_id, kind,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (routing_id, device_id, peer_device_id, kind, now),
            )
            return PairResult.LINKED if self._linked(db, routing_id) else PairResult.PENDING

        return self._run(fn)

    @staticmethod
    def _linked(db: sqlite3.Connection, routing_id: bytes) -> bool:
        rows = db.execute(
            "SELECT device_id, peer_device_id, kind FROM pairings WHERE routing_id = ?",
            (routing_id,),
        ).fetchall()
        if len(rows) != 2:
            return False
        (a, a_peer, a_kind), (b, b_peer, b_kind) = rows
        return a_peer == b and b_peer == a and {a_kind, b_kind} == {"desktop", "phone"}

    @staticmethod
    def _view(row: sqlite3.Row) -> PairingView:
        return PairingView(
            routing_id=row["routing_id"],
            peer_device_id=row["peer_device_id"],
            linked=bool(row["linked"]),
            blocked=bool(row["any_blocked"]),
            created_at=row["created_at"],
        )

    async def list_pairings(self, device_id: str) -> list[PairingView]:
        def fn(db: sqlite3.Connection) -> list[PairingView]:
            rows = db.execute(
                _VIEW + "p.device_id = ? ORDER BY p.created_at", (device_id,)
            ).fetchall()
            return [self._view(r) for r in rows]

        return self._auto(fn)

    async def get_pairing(self, routing_id: bytes, device_id: str) -> PairingView | None:
        def fn(db: sqlite3.Connection) -> PairingView | None:
            row = db.execute(
                _VIEW + "p.routing_id = ? AND p.device_id = ?", (routing_id, device_id)
            ).fetchone()
            return None if row is None else self._view(row)

        return self._auto(fn)

    async def delete_pairing(self, routing_id: bytes, device_id: str) -> bool:
        def fn(db: sqlite3.Connection) -> bool:
            if not db.execute(
                "SELECT 1 FROM pairings WHERE routing_id = ? AND device_id = ?",
                (routing_id, device_id),
            ).fetchone():
                return False
            db.execute("DELETE FROM pairings WHERE routing_id = ?", (routing_id,))
            return True

        return self._run(fn)

    async def set_blocked(self, routing_id: bytes, phone_id: str, blocked: bool) -> bool:
        def fn(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE pairings SET blocked = ? WHERE routing_id = ? AND device_id = ?"
                " AND kind = 'phone'",
                (int(blocked), routing_id, phone_id),
            )
            return cur.rowcount == 1

        return self._auto(fn)
