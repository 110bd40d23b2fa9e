"""The PostgreSQL :class:`~unlatch.relay.store.Store`: many relay nodes, one database.

Chosen by ``--db postgresql://user@host:port/dbname`` (``pool_min``/``pool_max``
query parameters size the connection pool, default 1..10 per node).

Why it holds across nodes: every rule that must be decided once (the first
``hello`` owns a pairing channel, one ``reply`` per unlock request, a challenge
is used once, at most N open channels per desktop, no post after expiry) is a
single transaction that either locks the row it decides on (``SELECT ... FOR
UPDATE`` on the channel, then an ``INSERT ... ON CONFLICT DO NOTHING``) or is
one conditional statement (``UPDATE ... WHERE peer IS NULL``, ``DELETE ...
RETURNING``). Two nodes racing on the same channel serialize on its row lock;
the loser re-reads the committed state and is refused exactly as on SQLite.
Per-creator caps and pairing registration take a transaction-scoped advisory
lock on the creator / routing id, so a count-then-insert cannot be interleaved.
The sweepers of all nodes expire channels with ``FOR UPDATE SKIP LOCKED``, so
they split the work instead of deadlocking on it.

The schema is versioned (:mod:`unlatch.relay.migrations`, ``NNN_name.sql``) and
migrated at startup under a session advisory lock: when several nodes start at
once, one applies the migrations and the others wait, then find nothing to do.

When PostgreSQL is unreachable (restart, failover) a call fails with
:class:`StoreUnavailable` (HTTP 503 ``store_unavailable`` + ``Retry-After``),
which clients retry. A call is retried here first when that is certainly safe:
reads, idempotent writes, and transactions that failed before their COMMIT
was sent; a write whose COMMIT may or may not have landed is never replayed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, TypeAlias, TypeVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from unlatch.relay.apierror import ApiError
from unlatch.relay.errors import RelayConfigError
from unlatch.relay.logs import log
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
    CreateResult,
    PairResult,
    Store,
    channel_change,
)

T = TypeVar("T")

MIGRATIONS_TABLE = "unlatch_schema_migrations"
_MIGRATION_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
CONNECT_TIMEOUT = 5.0
COMMAND_TIMEOUT = 10.0
ATTEMPTS = 3
SWEEP_BATCH = 500


def _lock_key(label: str) -> int:
    """A stable signed 64-bit advisory-lock key derived from a label."""
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "big", signed=True)


MIGRATION_LOCK = _lock_key("unlatch relay schema migration")

# Errors that mean "the connection or the server went away", not "bad SQL".
_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
    # asyncpg's state machine after a connection broke mid-operation ("cannot switch to state")
    asyncpg.exceptions.InternalClientError,
)
# Errors after which PostgreSQL rolled the transaction back and asks for a retry.
_RETRY_TX_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
)


class StoreUnavailable(ApiError):
    """PostgreSQL cannot be reached right now; the client should retry shortly."""

    def __init__(self) -> None:
        super().__init__(
            "store_unavailable",
            "the relay's database is unavailable for a moment; try again",
            retry_after=1,
        )


def migrations() -> list[tuple[int, str, str]]:
    """The packaged migrations as ``(version, name, sql)``, in order, checked for gaps."""
    found: list[tuple[int, str, str]] = []
    for entry in resources.files("unlatch.relay.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text("utf-8")))
    found.sort()
    for expected, (version, name, _sql) in enumerate(found, start=1):
        if version != expected:
            raise RuntimeError(f"migration {version:03d}_{name} breaks the sequence")
    return found


def split_url(url: str) -> tuple[str, int, int]:
    """Separate our pool options from the DSN asyncpg gets: ``(dsn, pool_min, pool_max)``."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in query if k in ("pool_min", "pool_max")}
    rest = [(k, v) for k, v in query if k not in ("pool_min", "pool_max")]
    try:
        pool_min = int(ours.get("pool_min", "1"))
        pool_max = int(ours.get("pool_max", "10"))
    except ValueError:
        raise RelayConfigError("--db: pool_min and pool_max must be integers") from None
    if not 0 <= pool_min <= pool_max or not 1 <= pool_max <= 200:
        raise RelayConfigError("--db: need 0 <= pool_min <= pool_max <= 200")
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return dsn, pool_min, pool_max


def _channel(row: asyncpg.Record) -> Channel:
    return Channel(
        channel_id=bytes(row["channel_id"]),
        kind=row["kind"],
        creator=row["creator"],
        peer=row["peer"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        state=ChannelState(row["state"]),
        routing_id=None if row["routing_id"] is None else bytes(row["routing_id"]),
        push=None if row["push"] is None else bytes(row["push"]),
        meta=row["meta"] or {},
    )


def _message(row: asyncpg.Record) -> Message:
    return Message(
        bytes(row["channel_id"]),
        row["seq"],
        row["type"],
        row["sender"],
        bytes(row["data"]),
        row["created_at"],
    )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool without asyncpg's reset query (a round trip).

    asyncpg's default reset runs ``RESET ALL; UNLISTEN *; pg_advisory_unlock_all();
    CLOSE ALL`` on *every* release, which doubled the round trips of a one-query
    store call. This store sets no session state, listens to nothing, holds no
    cursor, and takes session advisory locks only while migrating (released in a
    ``finally``). An open transaction is still rolled back: asyncpg does that itself
    before calling this.
    """
    return None


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )


# A pairing as one side sees it, in one query: "linked" when the other side registered
# the mirror entry (register_pairing refuses a third device, so two rows at most),
# "blocked" when either entry is.
_VIEW = (
    "SELECT p.routing_id, p.peer_device_id, p.created_at,"
    " (SELECT bool_or(q.blocked) FROM pairings q WHERE q.routing_id = p.routing_id) AS blocked,"
    " EXISTS (SELECT 1 FROM pairings q WHERE q.routing_id = p.routing_id"
    " AND q.device_id = p.peer_device_id AND q.peer_device_id = p.device_id"
    " AND q.kind <> p.kind) AS linked"
    " FROM pairings p WHERE "
)
_VIEW_QUERIES = {
    "by_device": _VIEW + "p.device_id = $1 ORDER BY p.created_at",
    "by_routing": _VIEW + "p.routing_id = $1 AND p.device_id = $2",
}

Conn: TypeAlias = asyncpg.Connection

# Store.channel_changes in one statement, so the horizon (the xmin of the statement's own
# snapshot: every transaction below it had ended) and the changes come from one snapshot.
# A change whose transaction was still running then has an id >= that horizon, so the
# next look, asking for ids >= it, finds it once it committed (migration 003).
_HORIZON = "SELECT pg_snapshot_xmin(pg_current_snapshot())"
_CHANGES = (
    "SELECT h.horizon, t.channel_id, t.seq, t.changed, t.state, t.type, ch.kind, ch.peer"
    " FROM (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) h LEFT JOIN ("
    " SELECT channel_id, 0 AS seq, changed, state, NULL AS type FROM channels"
    " WHERE changed >= $1::xid8 UNION ALL"
    " SELECT channel_id, seq, changed, NULL, type FROM messages WHERE changed >= $1::xid8"
    ") t ON true LEFT JOIN channels ch ON ch.channel_id = t.channel_id"
)


class PostgresStore(Store):
    """A connection pool to one PostgreSQL database shared by every relay node."""

    def __init__(self, url: str) -> None:
        self.dsn, self._pool_min, self._pool_max = split_url(url)
        self._pool: asyncpg.Pool | None = None
        self._last_warning = 0.0
        parts = urlsplit(url)
        self.where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"

    # plumbing ------------------------------------------------------------------
    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._pool_min,
                max_size=self._pool_max,
                timeout=CONNECT_TIMEOUT,
                command_timeout=COMMAND_TIMEOUT,
                max_inactive_connection_lifetime=120.0,
                init=_init_connection,
                reset=_keep_session,
            )
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise RelayConfigError(
                f"cannot connect to PostgreSQL at {self.where} ({type(exc).__name__})"
            ) from None
        async with self._pool.acquire() as conn:
            await self._migrate(conn)

    async def _migrate(self, conn: Conn) -> None:
        """Apply pending migrations; a session advisory lock makes concurrent starts safe."""
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            applied = {
                r[0]
                for r in await conn.fetch(f"SELECT version FROM {MIGRATIONS_TABLE}")  # noqa: S608
            }
            known = migrations()
            newest = known[-1][0] if known else 0
            if applied and max(applied) > newest:
                raise RelayConfigError(
                    f"the database schema (v{max(applied)}) is newer than this relay"
                    f" (v{newest}); upgrade the relay"
                )
            for version, name, sql in known:
                if version in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        f"INSERT INTO {MIGRATIONS_TABLE} (version, name) VALUES ($1, $2)",  # noqa: S608
                        version,
                        name,
                    )
                log("schema migrated", version=version, migration=name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def schema_version(self) -> int:
        """The newest applied migration (for tests and operators)."""
        value = await self._read(
            lambda c: c.fetchval(
                f"SELECT COALESCE(MAX(version), 0) FROM {MIGRATIONS_TABLE}"  # noqa: S608
            )
        )
        return int(value)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 5.0)
            except _CONNECTION_ERRORS:  # includes TimeoutError
                pool.terminate()

    async def _call(self, fn: Callable[[Conn], Awaitable[T]], *, tx: bool, idempotent: bool) -> T:
        """Run ``fn`` on a pooled connection (in a transaction if ``tx``), retrying when safe."""
        pool = self._pool
        if pool is None:
            raise RuntimeError("store is not open")
        for attempt in range(ATTEMPTS):
            committing = False
            try:
                async with pool.acquire() as conn:
                    if not tx:
                        return await fn(conn)
                    transaction = conn.transaction()
                    await transaction.start()
                    try:
                        result = await fn(conn)
                    except BaseException:
                        if not conn.is_closed():
                            await transaction.rollback()
                        raise
                    committing = True
                    await transaction.commit()
                    return result
            except _RETRY_TX_ERRORS:
                if attempt == ATTEMPTS - 1:
                    raise
            except _CONNECTION_ERRORS as exc:
                unsure = committing or (not tx and not idempotent)
                if unsure or attempt == ATTEMPTS - 1:
                    now = time.monotonic()
                    if now - self._last_warning > 5.0:  # one line per outage, not per request
                        self._last_warning = now
                        log(
                            "store unavailable",
                            logging.WARNING,
                            error=type(exc).__name__,
                            replayable=not unsure,
                        )
                    raise StoreUnavailable() from None
            await asyncio.sleep(0.05 * (attempt + 1) ** 2)
        raise StoreUnavailable()  # pragma: no cover - the loop always returns or raises

    def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> Awaitable[T]:
        return self._call(fn, tx=False, idempotent=True)

    def _write(self, fn: Callable[[Conn], Awaitable[T]], *, idempotent: bool) -> Awaitable[T]:
        return self._call(fn, tx=True, idempotent=idempotent)

    async def ping(self) -> None:
        await self._read(lambda c: c.fetchval("SELECT 1"))

    # challenges and sessions ------------------------------------------------
    async def record_setting(self, name: str, value: str, *, replace: bool = False) -> str:
        conflict = "DO UPDATE SET value = EXCLUDED.value" if replace else "DO NOTHING"

        async def fn(c: Conn) -> str:
            await c.execute(
                f"INSERT INTO relay_settings VALUES ($1, $2) ON CONFLICT (name) {conflict}",  # noqa: S608
                name,
                value,
            )
            return cast(
                str, await c.fetchval("SELECT value FROM relay_settings WHERE name = $1", name)
            )

        return await self._call(fn, tx=True, idempotent=True)

    async def put_challenge(self, challenge: bytes, expires_at: float) -> None:
        await self._call(
            lambda c: c.execute(
                "INSERT INTO challenges VALUES ($1, $2)"
                " ON CONFLICT (challenge) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                challenge,
                expires_at,
            ),
            tx=False,
            idempotent=True,
        )

    async def take_challenge(self, challenge: bytes, now: float) -> bool:
        async def fn(c: Conn) -> bool:
            row = await c.fetchrow(
                "DELETE FROM challenges WHERE challenge = $1 RETURNING expires_at", challenge
            )
            return row is not None and row[0] > now

        return await self._write(fn, idempotent=False)

    async def put_session(self, token_hash: bytes, device_id: str, expires_at: float) -> None:
        await self._call(
            lambda c: c.execute(
                "INSERT INTO sessions VALUES ($1, $2, $3) ON CONFLICT (token_hash) DO NOTHING",
                token_hash,
                device_id,
                expires_at,
            ),
            tx=False,
            idempotent=True,
        )

    async def get_session(self, token_hash: bytes, now: float) -> str | None:
        value = await self._read(
            lambda c: c.fetchval(
                "SELECT device_id FROM sessions WHERE token_hash = $1 AND expires_at > $2",
                token_hash,
                now,
            )
        )
        return None if value is None else str(value)

    # devices ------------------------------------------------------------------
    @staticmethod
    async def _device(c: Conn, device_id: str) -> Device | None:
        row = await c.fetchrow("SELECT * FROM devices WHERE device_id = $1", device_id)
        if row is None:
            return None
        return Device(
            device_id=row["device_id"],
            public_key=bytes(row["public_key"]),
            kind=row["kind"],
            created_at=row["created_at"],
            push_target=row["push_target"],
        )

    async def register_device(
        self, device_id: str, public_key: bytes, kind: DeviceKind, now: float
    ) -> Device:
        async def fn(c: Conn) -> Device:
            await c.execute(
                "INSERT INTO devices (device_id, public_key, kind, created_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO NOTHING",
                device_id,
                public_key,
                kind,
                now,
            )
            device = await self._device(c, device_id)
            assert device is not None
            return device

        return await self._write(fn, idempotent=True)

    async def get_device(self, device_id: str) -> Device | None:
        return await self._read(lambda c: self._device(c, device_id))

    async def set_push_target(
        self, device_id: str, target: dict[str, Any] | None, *, only_if_endpoint: str | None = None
    ) -> bool:
        async def fn(c: Conn) -> bool:
            if only_if_endpoint is None:
                status = await c.execute(
                    "UPDATE devices SET push_target = $1 WHERE device_id = $2", target, device_id
                )
            else:
                status = await c.execute(
                    "UPDATE devices SET push_target = $1 WHERE device_id = $2"
                    " AND push_target ->> 'endpoint' = $3",
                    target,
                    device_id,
                    only_if_endpoint,
                )
            return str(status).endswith(" 1")

        return await self._call(fn, tx=False, idempotent=True)

    # channels -------------------------------------------------------------------
    async def create_channel(self, channel: Channel, max_open_per_creator: int) -> CreateResult:
        async def fn(c: Conn) -> CreateResult:
            # Serialize this creator's creations on every node, so the cap is exact.
            await c.execute(
                "SELECT pg_advisory_xact_lock($1)", _lock_key("creator:" + channel.creator)
            )
            exists, count = await c.fetchrow(
                "SELECT EXISTS (SELECT 1 FROM channels WHERE channel_id = $4),"
                " (SELECT COUNT(*) FROM channels WHERE creator = $1 AND kind = $2"
                " AND state = 'open' AND expires_at > $3)",
                channel.creator,
                channel.kind,
                channel.created_at,
                channel.channel_id,
            )
            if exists:
                return CreateResult.EXISTS
            if count >= max_open_per_creator:
                return CreateResult.TOO_MANY
            inserted = await c.fetchval(
                "INSERT INTO channels (channel_id, kind, creator, peer, routing_id, push, meta,"
                " created_at, expires_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
                " 'open') ON CONFLICT (channel_id) DO NOTHING RETURNING 1",
                channel.channel_id,
                channel.kind,
                channel.creator,
                channel.peer,
                channel.routing_id,
                channel.push,
                channel.meta or None,
                channel.created_at,
                channel.expires_at,
            )
            return CreateResult.CREATED if inserted else CreateResult.EXISTS

        return await self._write(fn, idempotent=False)

    async def get_channel(self, channel_id: bytes) -> Channel | None:
        row = await self._read(
            lambda c: c.fetchrow("SELECT * FROM channels WHERE channel_id = $1", channel_id)
        )
        return None if row is None else _channel(row)

    async def claim_channel(self, channel_id: bytes, peer: str) -> bool:
        async def fn(c: Conn) -> bool:
            # A concurrent claim waits on the row lock, then re-checks "peer IS NULL".
            await c.execute(
                "UPDATE channels SET peer = $2 WHERE channel_id = $1 AND peer IS NULL",
                channel_id,
                peer,
            )
            owner = await c.fetchval("SELECT peer FROM channels WHERE channel_id = $1", channel_id)
            return owner == peer

        return await self._write(fn, idempotent=True)

    async def add_message(
        self, channel_id: bytes, msg_type: str, sender: str, data: bytes, now: float
    ) -> tuple[AddResult, Message | None]:
        async def fn(c: Conn) -> tuple[AddResult, Message | None]:
            # The row lock orders every post, close and expiry of this channel across nodes.
            live = await c.fetchval(
                "SELECT 1 FROM channels WHERE channel_id = $1 AND state = 'open'"
                " AND expires_at > $2 FOR UPDATE",
                channel_id,
                now,
            )
            if live is None:
                return AddResult.NOT_OPEN, None
            seq = await c.fetchval(
                "INSERT INTO messages (channel_id, seq, type, sender, data, created_at)"
                " SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5 FROM messages"
                " WHERE channel_id = $1 ON CONFLICT (channel_id, type) DO NOTHING RETURNING seq",
                channel_id,
                msg_type,
                sender,
                data,
                now,
            )
            if seq is None:
                return AddResult.DUPLICATE, None
            return AddResult.ADDED, Message(channel_id, seq, msg_type, sender, data, now)

        return await self._write(fn, idempotent=False)

    async def messages_after(self, channel_id: bytes, after: int) -> list[Message]:
        rows = await self._read(
            lambda c: c.fetch(
                "SELECT * FROM messages WHERE channel_id = $1 AND seq > $2 ORDER BY seq",
                channel_id,
                after,
            )
        )
        return [_message(r) for r in rows]

    async def channel_with_messages(
        self, channel_id: bytes, after: int
    ) -> tuple[Channel | None, list[Message]]:
        rows = await self._read(
            lambda c: c.fetch(
                "SELECT ch.*, m.seq AS m_seq, m.type AS m_type, m.sender AS m_sender,"
                " m.data AS m_data, m.created_at AS m_at FROM channels ch LEFT JOIN messages m"
                " ON m.channel_id = ch.channel_id AND m.seq > $2 WHERE ch.channel_id = $1"
                " ORDER BY m.seq",
                channel_id,
                after,
            )
        )
        if not rows:
            return None, []
        msgs = [
            Message(
                channel_id, r["m_seq"], r["m_type"], r["m_sender"], bytes(r["m_data"]), r["m_at"]
            )
            for r in rows
            if r["m_seq"] is not None
        ]
        return _channel(rows[0]), msgs

    async def close_channel(self, channel_id: bytes, now: float, outcome: str = "closed") -> bool:
        # Two statements in a transaction, not one with a data-modifying CTE: the UPDATE
        # may wait on a racing post's row lock, and only a statement started after that
        # wait sees (and deletes) the message the post committed. One statement would
        # delete with its older snapshot and leave the reply on a closed channel
        # (tests/test_postgres_store.py::test_close_racing_a_reply_...).
        async def fn(c: Conn) -> bool:
            closed = await c.fetchval(
                "UPDATE channels SET state = 'closed', closed_at = $2, push = NULL, meta = $3"
                " WHERE channel_id = $1 AND state = 'open' RETURNING 1",
                channel_id,
                now,
                {"outcome": outcome},
            )
            await c.execute("DELETE FROM messages WHERE channel_id = $1", channel_id)
            return closed is not None

        return await self._write(fn, idempotent=True)

    async def expire_channels(self, now: float, grace: float) -> list[bytes]:
        async def fn(c: Conn) -> list[bytes]:
            rows = await c.fetch(
                "WITH due AS (SELECT channel_id FROM channels ch WHERE state = 'open'"
                " AND expires_at <= $1 AND (expires_at <= $2 OR NOT EXISTS"
                " (SELECT 1 FROM messages m WHERE m.channel_id = ch.channel_id))"
                " ORDER BY channel_id LIMIT $3 FOR UPDATE SKIP LOCKED)"
                " UPDATE channels SET state = 'expired', closed_at = $1, push = NULL, meta = NULL"
                " FROM due WHERE channels.channel_id = due.channel_id"
                " RETURNING channels.channel_id",
                now,
                now - grace,
                SWEEP_BATCH,
            )
            ids = [bytes(r[0]) for r in rows]
            if ids:
                await c.execute("DELETE FROM messages WHERE channel_id = ANY($1::bytea[])", ids)
            return ids

        return await self._write(fn, idempotent=True)

    async def purge(self, now: float, tombstone_before: float) -> int:
        async def fn(c: Conn) -> int:
            removed = 0
            for sql, arg in (
                ("DELETE FROM channels WHERE state <> 'open' AND closed_at < $1", tombstone_before),
                ("DELETE FROM challenges WHERE expires_at <= $1", now),
                ("DELETE FROM sessions WHERE expires_at <= $1", now),
            ):
                status = await c.execute(sql, arg)
                removed += int(str(status).rsplit(" ", 1)[-1])
            return removed

        return await self._write(fn, idempotent=True)

    async def open_unlock_for_peer(self, peer: str, now: float) -> list[Channel]:
        rows = await self._read(
            lambda c: c.fetch(
                "SELECT * FROM channels ch WHERE peer = $1 AND kind = 'unlock' AND state = 'open'"
                " AND expires_at > $2 AND NOT EXISTS (SELECT 1 FROM messages m"
                " WHERE m.channel_id = ch.channel_id AND m.type = 'reply') ORDER BY created_at",
                peer,
                now,
            )
        )
        return [_channel(r) for r in rows]

    async def channel_changes(self, since: ChangeCursor | None) -> Changes:
        if since is None:
            return Changes(ChangeCursor(int(await self._read(lambda c: c.fetchval(_HORIZON)))), [])
        rows = await self._read(lambda c: c.fetch(_CHANGES, since.position))
        horizon = int(rows[0]["horizon"])
        changes = []
        seen: set[tuple[bytes, int, int]] = set()
        for r in rows:
            if r["channel_id"] is None:
                continue  # no change: the one row that carries the horizon
            key = (bytes(r["channel_id"]), int(r["seq"]), int(r["changed"]))
            if key[2] >= horizon:
                seen.add(key)  # the next look sees it again: it is not news then
            if key not in since.seen:  # reported once, though seen while the horizon stays
                changes.append(channel_change(key[0], r["state"], r["type"], r["kind"], r["peer"]))
        return Changes(ChangeCursor(horizon, frozenset(seen)), changes)

    async def count_open_channels(self) -> dict[ChannelKind, int]:
        rows = await self._read(
            lambda c: c.fetch(
                "SELECT kind, COUNT(*) FROM channels WHERE state = 'open' GROUP BY kind"
            )
        )
        counts: dict[ChannelKind, int] = {"pairing": 0, "unlock": 0}
        for kind, n in rows:
            counts[kind] = n
        return counts

    # pairings ---------------------------------------------------------------------
    async def register_pairing(
        self, routing_id: bytes, device_id: str, peer_device_id: str, kind: DeviceKind, now: float
    ) -> PairResult:
        async def fn(c: Conn) -> PairResult:
            # Both sides may register at the same instant on two nodes: serialize per routing id.
            await c.execute(
                "SELECT pg_advisory_xact_lock($1)", _lock_key("routing:" + routing_id.hex())
            )
            rows = await c.fetch(
                "SELECT device_id, peer_device_id FROM pairings WHERE routing_id = $1", routing_id
            )
            for other, other_peer in rows:
                if other == device_id and other_peer != peer_device_id:
                    return PairResult.CONFLICT
                if other not in (device_id, peer_device_id):
                    return PairResult.CONFLICT
                if other == peer_device_id and other_peer != device_id:
                    return PairResult.CONFLICT
            await c.execute(
                "INSERT INTO pairings (routing_id, device_id, peer_device_id, kind, created_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (routing_id, device_id) DO NOTHING",
                routing_id,
                device_id,
                peer_device_id,
                kind,
                now,
            )
            return PairResult.LINKED if await self._linked(c, routing_id) else PairResult.PENDING

        return await self._write(fn, idempotent=True)

    @staticmethod
    async def _linked(c: Conn, routing_id: bytes) -> bool:
        rows = await c.fetch(
            "SELECT device_id, peer_device_id, kind FROM pairings WHERE routing_id = $1",
            routing_id,
        )
        if len(rows) != 2:
            return False
        (a, a_peer, a_kind), (b, b_peer, b_kind) = rows
        return a_peer == b and b_peer == a and {a_kind, b_kind} == {"desktop", "phone"}

    async def _views(self, c: Conn, query: str, *args: Any) -> list[PairingView]:
        rows = await c.fetch(_VIEW_QUERIES[query], *args)
        return [
            PairingView(
                routing_id=bytes(r["routing_id"]),
                peer_device_id=r["peer_device_id"],
                linked=bool(r["linked"]),
                blocked=bool(r["blocked"]),
                created_at=r["created_at"],
            )
            for r in rows
        ]

    async def list_pairings(self, device_id: str) -> list[PairingView]:
        return await self._read(lambda c: self._views(c, "by_device", device_id))

    async def get_pairing(self, routing_id: bytes, device_id: str) -> PairingView | None:
        views = await self._read(lambda c: self._views(c, "by_routing", routing_id, device_id))
        return views[0] if views else None

    async def delete_pairing(self, routing_id: bytes, device_id: str) -> bool:
        async def fn(c: Conn) -> bool:
            await c.execute(
                "SELECT pg_advisory_xact_lock($1)", _lock_key("routing:" + routing_id.hex())
            )
            party = await c.fetchval(
                "SELECT 1 FROM pairings WHERE routing_id = $1 AND device_id = $2",
                routing_id,
                device_id,
            )
            if party is None:
                return False
            await c.execute("DELETE FROM pairings WHERE routing_id = $1", routing_id)
            return True

        return await self._write(fn, idempotent=False)

    async def set_blocked(self, routing_id: bytes, phone_id: str, blocked: bool) -> bool:
        status = await self._call(
            lambda c: c.execute(
                "UPDATE pairings SET blocked = $1 WHERE routing_id = $2 AND device_id = $3"
                " AND kind = 'phone'",
                blocked,
                routing_id,
                phone_id,
            ),
            tx=False,
            idempotent=True,
        )
        return str(status).endswith(" 1")
