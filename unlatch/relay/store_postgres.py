"""The PostgreSQL :class:`~unlatch.relay.store.Store`: many relay nodes, one database.

Chosen by ``--db postgresql://user@host:port/dbname`` (``pool_min``/``pool_max``
query parameters size the connection pool, default 1..10 per node).

Why it holds across nodes: every rule that must be decided once (the first
``hello`` owns a pairing channel, one ``reply`` per unlock request, a challenge
is used once, at most N open channels per desktop, no post after expiry) is
decided inside PostgreSQL by one statement, in its own transaction: either a
conditional statement (``UPDATE ... WHERE peer IS NULL OR peer = $2 RETURNING``,
``DELETE ... RETURNING``) or a call of one of the PL/pgSQL functions of
migration 3 (``unlatch_create_channel``, ``unlatch_add_message``,
``unlatch_close_channel``, ``unlatch_expire_channels``), which lock the row
they decide on (``SELECT ... FOR UPDATE`` on the channel) or the creator's
advisory lock, then insert or update. Two nodes racing on the same channel
serialize on its row lock; the loser's next statement sees the committed state
(a function takes a fresh snapshot per statement, at READ COMMITTED) and is
refused exactly as on SQLite. The sweepers of all nodes expire channels with
``FOR UPDATE SKIP LOCKED``, so they split the work instead of deadlocking on it.
Pairing registration and deletion, rare, stay client-side transactions under
an advisory lock on the routing id.

Round trips: one per store call on the paths of an exchange (no BEGIN/COMMIT,
no reset query on release, asyncpg prepares and caches each statement per
connection), which is most of what the relay spends per exchange here.

The schema is versioned (:mod:`unlatch.relay.migrations`, ``NNN_name.sql``) and
migrated at startup under a session advisory lock: when several nodes start at
once, one applies the migrations and the others wait, then find nothing to do.

When PostgreSQL is unreachable (restart, failover) a call fails with
:class:`StoreUnavailable` (HTTP 503 ``store_unavailable`` + ``Retry-After``),
which clients retry. A call is retried here first when that is certainly safe:
a failure before anything was sent (getting a connection), reads, writes that
give the same answer when run twice, and transactions that failed before their
COMMIT was sent; any other write that may or may not have landed is never
replayed.
"""

from __future__ import annotations

import asyncio
import collections
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
    CloseResult,
    Closing,
    CreateResult,
    PairResult,
    Store,
    UnlockContext,
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


class _Pool:
    """The store's connections: a stack of idle ones, opened on demand up to ``max_size``.

    Not asyncpg's ``Pool``: its acquire and release cost about 40 µs of CPU on
    top of a ~35 µs query (a proxy object per acquire, a Task per release for
    ``asyncio.shield``, a timer per idle connection, and a reset round trip
    unless replaced), which at nine store calls per exchange was a tenth of
    the relay's CPU per exchange on PostgreSQL. This one does what the store
    needs: hand out the most recently used idle connection, or open one, or
    wait for one; take back only a connection whose call finished cleanly
    (anything else, an error, a cancellation mid-query, a transaction left
    open, is terminated, and PostgreSQL rolls back what it had open); close
    connections idle for ``IDLE_LIFETIME`` beyond ``min_size``. No session
    state is set on a connection but the JSON codec, so none needs resetting.
    """

    IDLE_LIFETIME = 120.0

    def __init__(self, dsn: str, min_size: int, max_size: int) -> None:
        self.dsn, self.min_size, self.max_size = dsn, min_size, max_size
        self._idle: list[tuple[Conn, float]] = []  # (connection, idle since), newest last
        self._size = 0  # connections open or being opened
        self._waiters: collections.deque[asyncio.Future[Conn | None]] = collections.deque()
        self._closed = False

    async def _connect(self) -> Conn:
        conn = await asyncpg.connect(
            self.dsn, timeout=CONNECT_TIMEOUT, command_timeout=COMMAND_TIMEOUT
        )
        try:
            await conn.set_type_codec(
                "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog", format="text"
            )
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def fill(self) -> None:
        """Open ``min_size`` connections (at least one: open() must reach the server)."""
        while self._size < max(1, self.min_size):
            self._size += 1
            try:
                conn = await self._connect()
            except BaseException:
                self._size -= 1
                raise
            self._idle.append((conn, time.monotonic()))

    async def acquire(self) -> Conn:
        while True:
            if self._closed:
                raise asyncpg.InterfaceError("the store's pool is closed")
            while self._idle:
                conn, _ = self._idle.pop()
                if not conn.is_closed():
                    self._trim(time.monotonic())
                    return conn
                self._size -= 1
            if self._size < self.max_size:
                self._size += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._size -= 1
                    self._wake()
                    raise
            waiter: asyncio.Future[Conn | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                conn_or_slot = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    handed = waiter.result()
                    if handed is not None:  # handed over as we were cancelled: pass it on
                        self.release(handed, reuse=True)
                    else:
                        self._wake()
                raise
            if conn_or_slot is not None:
                return conn_or_slot
            # None: a connection was dropped, so there is room to open one: loop

    def release(self, conn: Conn, *, reuse: bool) -> None:
        if not reuse or self._closed or conn.is_closed() or conn.is_in_transaction():
            conn.terminate()
            self._size -= 1
            self._wake()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append((conn, time.monotonic()))

    def _wake(self) -> None:
        """Room for one more connection: let the first live waiter open it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _trim(self, now: float) -> None:
        """Close the least recently used idle connection if it idled too long (one per call)."""
        if self._idle and self._size > self.min_size:
            conn, since = self._idle[0]
            if now - since > self.IDLE_LIFETIME:
                del self._idle[0]
                conn.terminate()
                self._size -= 1

    @property
    def size(self) -> int:
        """Connections open or being opened (for tests)."""
        return self._size

    async def close(self) -> None:
        """Close idle connections politely; ones in use are terminated when released."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._size -= len(idle)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(asyncpg.InterfaceError("the store's pool is closed"))
        self._waiters.clear()
        for conn, _ in idle:
            try:
                await asyncio.wait_for(conn.close(), 2.0)
            except (*_CONNECTION_ERRORS, asyncpg.PostgresError):
                conn.terminate()


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

# Store.unlock_context in one query: one row, whether or not the pairing exists.
_UNLOCK_CONTEXT = (
    "SELECT EXISTS (SELECT 1 FROM channels WHERE channel_id = $3) AS taken, v.*,"  # noqa: S608 - constants
    " d.device_id AS phone_id, d.public_key AS phone_key, d.kind AS phone_kind,"
    " d.created_at AS phone_created_at, d.push_target AS phone_push_target"
    " FROM (SELECT 1) AS one LEFT JOIN ("
    + _VIEW_QUERIES["by_routing"]
    + ") AS v ON TRUE LEFT JOIN devices d ON d.device_id = v.peer_device_id"
)

# unlatch_add_message's answers other than a new seq
_ADD_REFUSALS = {0: AddResult.DUPLICATE, -1: AddResult.NOT_OPEN, -2: AddResult.NOT_ALLOWED}


def _view(row: asyncpg.Record) -> PairingView:
    return PairingView(
        routing_id=bytes(row["routing_id"]),
        peer_device_id=row["peer_device_id"],
        linked=bool(row["linked"]),
        blocked=bool(row["blocked"]),
        created_at=row["created_at"],
    )


Conn: TypeAlias = asyncpg.Connection

# Store.channel_changes in one statement, so the horizon (the xmin of the statement's own
# snapshot: every transaction below it had ended) and the changes come from one snapshot.
# A change whose transaction was still running then has an id >= that horizon, so the
# next look, asking for ids >= it, finds it once it committed (migration 004).
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
        self._pool: _Pool | None = None
        self._last_warning = 0.0
        parts = urlsplit(url)
        self.where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"

    # plumbing ------------------------------------------------------------------
    async def open(self) -> None:
        pool = self._pool = _Pool(self.dsn, self._pool_min, self._pool_max)
        try:
            await pool.fill()
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise RelayConfigError(
                f"cannot connect to PostgreSQL at {self.where} ({type(exc).__name__})"
            ) from None
        conn = await pool.acquire()
        migrated = False
        try:
            await self._migrate(conn)
            migrated = True
        finally:
            pool.release(conn, reuse=migrated)

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
            await pool.close()

    async def _call(self, fn: Callable[[Conn], Awaitable[T]], *, tx: bool, replayable: bool) -> T:
        """Run ``fn`` on a pooled connection (in a transaction if ``tx``), retrying when safe.

        ``replayable``: running ``fn`` twice answers the caller as running it
        once (a read, an upsert, a compare-and-set that also accepts its own
        result), so it is retried whenever the connection is lost. Otherwise
        it is retried only if the connection was lost before ``fn`` started
        or, in a transaction, before COMMIT was sent (PostgreSQL rolled it
        back); a single statement sent may have committed.
        """
        pool = self._pool
        if pool is None:
            raise RuntimeError("store is not open")
        for attempt in range(ATTEMPTS):
            started = committing = False
            try:
                conn = await pool.acquire()
                started = clean = True
                try:
                    if not tx:
                        result = await fn(conn)
                    else:  # an error before COMMIT: the connection is dropped, which rolls back
                        transaction = conn.transaction()
                        await transaction.start()
                        result = await fn(conn)
                        committing = True
                        await transaction.commit()
                except BaseException:
                    clean = False
                    raise
                finally:
                    pool.release(conn, reuse=clean)
                return result
            except _RETRY_TX_ERRORS:
                # PostgreSQL rolled the statement or transaction back: nothing landed
                if attempt == ATTEMPTS - 1:
                    raise
            except _CONNECTION_ERRORS as exc:
                unsure = (committing if tx else started) and not replayable
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
        return self._call(fn, tx=False, replayable=True)

    def _direct(self, fn: Callable[[Conn], Awaitable[T]], *, replayable: bool) -> Awaitable[T]:
        """Writes without BEGIN/COMMIT: each statement is its own transaction, one round trip."""
        return self._call(fn, tx=False, replayable=replayable)

    def _write(self, fn: Callable[[Conn], Awaitable[T]], *, replayable: bool) -> Awaitable[T]:
        """Several statements in one transaction (BEGIN and COMMIT: two more round trips)."""
        return self._call(fn, tx=True, replayable=replayable)

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

        return await self._write(fn, replayable=True)

    async def put_challenge(self, challenge: bytes, expires_at: float) -> None:
        await self._direct(
            lambda c: c.execute(
                "INSERT INTO challenges VALUES ($1, $2)"
                " ON CONFLICT (challenge) DO UPDATE SET expires_at = EXCLUDED.expires_at",
                challenge,
                expires_at,
            ),
            replayable=True,
        )

    async def take_challenge(self, challenge: bytes, now: float) -> bool:
        expires_at = await self._direct(
            lambda c: c.fetchval(
                "DELETE FROM challenges WHERE challenge = $1 RETURNING expires_at", challenge
            ),
            replayable=False,  # a replay would find it gone
        )
        return expires_at is not None and expires_at > now

    async def put_session(self, token_hash: bytes, device_id: str, expires_at: float) -> None:
        await self._direct(
            lambda c: c.execute(
                "INSERT INTO sessions VALUES ($1, $2, $3) ON CONFLICT (token_hash) DO NOTHING",
                token_hash,
                device_id,
                expires_at,
            ),
            replayable=True,
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
        # No transaction: a device row is never changed (but for its push target) nor
        # deleted, so reading it first answers a known device in one round trip. A
        # device inserted by another node between our read and our insert makes the
        # insert do nothing, and the read after it (a new statement, a new snapshot)
        # sees that row.
        async def fn(c: Conn) -> Device:
            device = await self._device(c, device_id)
            if device is None:
                await c.execute(
                    "INSERT INTO devices (device_id, public_key, kind, created_at)"
                    " VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO NOTHING",
                    device_id,
                    public_key,
                    kind,
                    now,
                )
                device = await self._device(c, device_id)
            if device is None:
                raise RuntimeError("a device row vanished right after its insert")
            return device

        return await self._direct(fn, replayable=True)

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

        return await self._direct(fn, replayable=True)

    # channels -------------------------------------------------------------------
    async def _create(
        self, channel: Channel, max_open_per_creator: int, *, renews: bool
    ) -> tuple[CreateResult, bytes | None]:
        # One call: the creator's advisory lock (the key version 2 nodes take, so both
        # serialize during a rolling upgrade), then the count and the insert, each on a
        # fresh snapshot taken after the lock was granted: the cap is exact on every node.
        row = await self._direct(
            lambda c: c.fetchrow(
                "SELECT * FROM unlatch_create_channel($1, $2, $3, $4, $5, $6, $7, $8, $9,"
                " $10, $11, $12)",
                _lock_key("creator:" + channel.creator),
                max_open_per_creator,
                renews,
                channel.channel_id,
                channel.kind,
                channel.creator,
                channel.peer,
                channel.routing_id,
                channel.push,
                channel.meta or None,
                channel.created_at,
                channel.expires_at,
            ),
            replayable=False,  # a replay would find its own channel: "exists"
        )
        renewed = row["renews"]
        return CreateResult(row["result"]), None if renewed is None else bytes(renewed)

    async def create_channel(self, channel: Channel, max_open_per_creator: int) -> CreateResult:
        result, _ = await self._create(channel, max_open_per_creator, renews=False)
        return result

    async def create_unlock(
        self, channel: Channel, max_open_per_creator: int
    ) -> tuple[CreateResult, bytes | None]:
        return await self._create(channel, max_open_per_creator, renews=True)

    async def unlock_context(
        self, routing_id: bytes, desktop_id: str, request_id: bytes
    ) -> UnlockContext:
        row = await self._read(
            lambda c: c.fetchrow(_UNLOCK_CONTEXT, routing_id, desktop_id, request_id)
        )
        pairing = None if row["peer_device_id"] is None else _view(row)
        phone = None
        if row["phone_id"] is not None:
            phone = Device(
                device_id=row["phone_id"],
                public_key=bytes(row["phone_key"]),
                kind=row["phone_kind"],
                created_at=row["phone_created_at"],
                push_target=row["phone_push_target"],
            )
        return UnlockContext(pairing, row["taken"], phone)

    async def get_channel(self, channel_id: bytes) -> Channel | None:
        row = await self._read(
            lambda c: c.fetchrow("SELECT * FROM channels WHERE channel_id = $1", channel_id)
        )
        return None if row is None else _channel(row)

    async def claim_channel(self, channel_id: bytes, peer: str) -> bool:
        # One statement: a concurrent claim holds the row lock; this UPDATE waits for it,
        # then re-checks its WHERE on the row as that claim left it (READ COMMITTED), so
        # exactly one peer wins. The owner claiming again matches too (and rewrites the
        # same value), which makes a replay answer as the first call did.
        owner = await self._direct(
            lambda c: c.fetchval(
                "UPDATE channels SET peer = $2 WHERE channel_id = $1"
                " AND (peer IS NULL OR peer = $2) RETURNING peer",
                channel_id,
                peer,
            ),
            replayable=True,
        )
        return owner is not None

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
        # unlatch_add_message locks the channel row (which orders every post, close and
        # expiry of the channel across nodes), then inserts on a fresh snapshot.
        seq = await self._direct(
            lambda c: c.fetchval(
                "SELECT unlatch_add_message($1, $2, $3, $4, $5, $6, $7)",
                channel_id,
                msg_type,
                sender,
                data,
                now,
                kind,
                from_peer,
            ),
            replayable=False,  # a replay would find its own message: "duplicate"
        )
        if seq > 0:
            return AddResult.ADDED, Message(channel_id, seq, msg_type, sender, data, now)
        return _ADD_REFUSALS[seq], None

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

    async def _close(
        self, channel_id: bytes, now: float, outcome: str, renewed_outcome: str | None
    ) -> list[bytes] | None:
        # unlatch_close_channel: the UPDATE may wait on a racing post's row lock, and the
        # DELETE of the payloads is a later statement of the function, on a snapshot taken
        # after that wait, so it also drops the message that post committed. One plain
        # statement (a data-modifying CTE) would delete with its older snapshot and leave
        # the reply on a closed channel (tests/test_postgres_store.py::test_close_racing_...).
        closed = await self._direct(
            lambda c: c.fetchval(
                "SELECT unlatch_close_channel($1, $2, $3, $4)",
                channel_id,
                now,
                {"outcome": outcome},
                None if renewed_outcome is None else {"outcome": renewed_outcome},
            ),
            replayable=False,  # a replay would find it closed: False
        )
        return None if closed is None else [bytes(cid) for cid in closed]

    async def close_channel(self, channel_id: bytes, now: float, outcome: str = "closed") -> bool:
        return await self._close(channel_id, now, outcome, None) is not None

    async def close_as(
        self, channel_id: bytes, device_id: str, kind: ChannelKind, now: float
    ) -> Closing:
        row = await self._direct(
            lambda c: c.fetchrow(
                "SELECT * FROM unlatch_close_as($1, $2, $3, $4)", channel_id, device_id, kind, now
            ),
            replayable=False,  # a replay would find it closed: NOT_OPEN, and nothing announced
        )
        assert row is not None  # a function with OUT parameters returns one row
        closed = [bytes(cid) for cid in row["closed"] or ()]
        return Closing(
            CloseResult(row["result"]),
            row["outcome"],
            row["renewed_outcome"],
            row["peer"],
            row["expires_at"] or 0.0,
            tuple(closed[1:]),
        )

    async def expire_channels(self, now: float, grace: float) -> list[bytes]:
        ids = await self._direct(
            lambda c: c.fetchval(
                "SELECT unlatch_expire_channels($1, $2, $3)", now, now - grace, SWEEP_BATCH
            ),
            replayable=False,  # a replay would not return what the first run expired
        )
        return [bytes(cid) for cid in ids]

    async def purge(self, now: float, tombstone_before: float) -> int:
        # Three independent deletes in one statement: nothing here waits on a lock
        # whose holder's changes a later statement would have to see.
        removed = await self._direct(
            lambda c: c.fetchval(
                "WITH t AS (DELETE FROM channels WHERE state <> 'open' AND closed_at < $2"
                " RETURNING 1), c AS (DELETE FROM challenges WHERE expires_at <= $1"
                " RETURNING 1), s AS (DELETE FROM sessions WHERE expires_at <= $1 RETURNING 1)"
                " SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM c)"
                " + (SELECT count(*) FROM s)",
                now,
                tombstone_before,
            ),
            replayable=True,  # the count is only logged
        )
        return int(removed)

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

        return await self._write(fn, replayable=True)

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
        return [_view(r) for r in await c.fetch(_VIEW_QUERIES[query], *args)]

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

        return await self._write(fn, replayable=False)  # a replay would find it gone

    async def set_blocked(self, routing_id: bytes, phone_id: str, blocked: bool) -> bool:
        status = await self._direct(
            lambda c: c.execute(
                "UPDATE pairings SET blocked = $1 WHERE routing_id = $2 AND device_id = $3"
                " AND kind = 'phone'",
                blocked,
                routing_id,
                phone_id,
            ),
            replayable=True,
        )
        return str(status).endswith(" 1")
