"""The PostgreSQL store against a real PostgreSQL: same semantics as SQLite, safe across nodes.

Every scenario of the :class:`~unlatch.relay.store.Store` contract runs on both
backends (``sqlite`` and ``postgres``) so they cannot drift apart; the race
tests open several :class:`PostgresStore` instances on one database — that is
what several relay nodes are — and fire the conflicting calls at once.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from fixtures.scale import PG_ADMIN, fresh_database, require_postgres

from unlatch.relay.errors import RelayConfigError
from unlatch.relay.models import Channel, ChannelState, Message
from unlatch.relay.store import (
    CHANNEL_CREATED,
    CHANNEL_ENDED,
    AddResult,
    ChangeCursor,
    CloseResult,
    Closing,
    CreateResult,
    PairResult,
    Store,
    open_store,
)
from unlatch.relay.store_postgres import (
    PostgresStore,
    StoreUnavailable,
    _lock_key,
    migrations,
    split_url,
)
from unlatch.relay.store_sqlite import CHANGE_LOG_KEEP, SCHEMA_VERSION, SQLiteStore


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    require_postgres()
    with fresh_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_url: str
) -> AsyncIterator[Store]:
    s: Store = (
        SQLiteStore(tmp_path / "relay.db") if request.param == "sqlite" else PostgresStore(pg_url)
    )
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def nodes(url: str, count: int) -> list[PostgresStore]:
    stores = [PostgresStore(url) for _ in range(count)]
    await asyncio.gather(*(s.open() for s in stores))
    return stores


def unlock(creator: str, peer: str, now: float, life: float = 100) -> Channel:
    return Channel(
        os.urandom(16),
        "unlock",
        creator,
        peer,
        now,
        now + life,
        routing_id=os.urandom(16),
        push=os.urandom(40),
        meta={"requester": {"address": "192.0.2.1", "user_agent": "ua"}},
    )


def uid() -> str:
    return os.urandom(8).hex()


# -- the contract, on both backends --------------------------------------------------


async def test_challenges_and_sessions(store: Store) -> None:
    now = time.time()
    c = os.urandom(32)
    await store.put_challenge(c, now + 60)
    assert await store.take_challenge(c, now) is True
    assert await store.take_challenge(c, now) is False  # single use
    old = os.urandom(32)
    await store.put_challenge(old, now - 1)
    assert await store.take_challenge(old, now) is False  # expired
    token, device = os.urandom(32), uid()
    await store.put_session(token, device, now + 60)
    assert await store.get_session(token, now) == device
    assert await store.get_session(token, now + 61) is None
    assert await store.get_session(os.urandom(32), now) is None


async def test_devices_and_push_targets(store: Store) -> None:
    now = time.time()
    d = uid()
    first = await store.register_device(d, b"\x04" + os.urandom(64), "phone", now)
    again = await store.register_device(d, b"\x04" + os.urandom(64), "desktop", now + 5)
    assert again == first and again.kind == "phone"  # first registration wins
    assert await store.get_device(uid()) is None
    target = {"kind": "webpush", "endpoint": "https://push.example/a", "keys": {"auth": "x"}}
    assert await store.set_push_target(d, target) is True
    assert (await store.get_device(d)).push_target == target  # type: ignore[union-attr]
    # compare-and-set: only the endpoint that was reported gone is removed
    assert await store.set_push_target(d, None, only_if_endpoint="https://push.example/b") is False
    assert await store.set_push_target(d, None, only_if_endpoint="https://push.example/a") is True
    assert (await store.get_device(d)).push_target is None  # type: ignore[union-attr]


async def test_channel_life(store: Store) -> None:
    now = time.time()
    desktop, phone = uid(), uid()
    ch = unlock(desktop, phone, now)
    assert await store.create_channel(ch, 2) is CreateResult.CREATED
    assert await store.create_channel(ch, 2) is CreateResult.EXISTS
    assert await store.create_channel(unlock(desktop, phone, now), 2) is CreateResult.CREATED
    assert await store.create_channel(unlock(desktop, phone, now), 2) is CreateResult.TOO_MANY
    got = await store.get_channel(ch.channel_id)
    assert got == ch
    assert await store.get_channel(os.urandom(16)) is None
    result, seen = await store.add_message(ch.channel_id, "seen", phone, b"s", now)
    assert result is AddResult.ADDED and seen is not None and seen.seq == 1
    assert (await store.add_message(ch.channel_id, "seen", phone, b"s2", now))[0] is (
        AddResult.DUPLICATE
    )
    assert [c.channel_id for c in await store.open_unlock_for_peer(phone, now)] != []
    result, reply = await store.add_message(ch.channel_id, "reply", phone, b"r" * 1000, now)
    assert result is AddResult.ADDED and reply is not None and reply.seq == 2
    ids = [c.channel_id for c in await store.open_unlock_for_peer(phone, now)]
    assert ch.channel_id not in ids  # answered requests are no longer pending
    assert [(m.seq, m.type, m.data) for m in await store.messages_after(ch.channel_id, 0)] == [
        (1, "seen", b"s"),
        (2, "reply", b"r" * 1000),
    ]
    assert [m.seq for m in await store.messages_after(ch.channel_id, 1)] == [2]
    assert await store.close_channel(ch.channel_id, now) is True
    assert await store.close_channel(ch.channel_id, now) is False
    closed = await store.get_channel(ch.channel_id)
    assert closed is not None and closed.state is ChannelState.CLOSED and closed.push is None
    assert await store.messages_after(ch.channel_id, 0) == []  # payloads wiped
    assert (await store.add_message(ch.channel_id, "reply", phone, b"x", now))[0] is (
        AddResult.NOT_OPEN
    )
    assert (await store.add_message(os.urandom(16), "reply", phone, b"x", now))[0] is (
        AddResult.NOT_OPEN
    )


async def test_claim_and_expiry_with_grace(store: Store) -> None:
    now = time.time()
    desktop = uid()
    pairing = Channel(os.urandom(16), "pairing", desktop, None, now, now + 10)
    assert await store.create_channel(pairing, 8) is CreateResult.CREATED
    a, b = uid(), uid()
    assert await store.claim_channel(pairing.channel_id, a) is True
    assert await store.claim_channel(pairing.channel_id, b) is False
    assert await store.claim_channel(pairing.channel_id, a) is True  # idempotent for the owner
    empty = unlock(desktop, a, now, life=10)
    answered = unlock(desktop, a, now, life=10)
    for ch in (empty, answered):
        await store.create_channel(ch, 16)
    await store.add_message(answered.channel_id, "reply", a, b"r", now)
    assert (await store.add_message(empty.channel_id, "seen", a, b"late", now + 11))[0] is (
        AddResult.NOT_OPEN
    )
    expired = await store.expire_channels(now + 11, grace=60)
    assert empty.channel_id in expired and pairing.channel_id in expired
    assert answered.channel_id not in expired  # keeps its reply for a reconnecting desktop
    assert [m.data for m in await store.messages_after(answered.channel_id, 0)] == [b"r"]
    assert answered.channel_id in await store.expire_channels(now + 71, grace=60)
    assert await store.messages_after(answered.channel_id, 0) == []
    gone = await store.get_channel(empty.channel_id)
    assert gone is not None and gone.state is ChannelState.EXPIRED
    counts = await store.count_open_channels()
    assert set(counts) == {"pairing", "unlock"}
    assert await store.purge(now + 100, tombstone_before=now + 1000) >= 3
    assert await store.get_channel(empty.channel_id) is None


async def changes_of(
    store: Store, cursor: ChangeCursor, ids: set[bytes]
) -> tuple[ChangeCursor, list[tuple[bytes, str, str | None, str | None]]]:
    """The next look at the store's changes, only those of ``ids`` (the database is shared)."""
    changes = await store.channel_changes(cursor)
    assert changes.complete
    mine = [(c.channel_id, c.what, c.kind, c.peer) for c in changes.channels if c.channel_id in ids]
    return changes.cursor, mine


async def test_channel_changes_report_what_a_waiter_must_hear_once(store: Store) -> None:
    """Issue 15: what a node's reconciler asks instead of every waiter polling the store.

    Every change a waiter waits for (a channel created, a message, a channel
    closed or expired) is reported by the next look, with the channel's kind
    and phone, and not again by the one after. A message posted and the
    channel closed before one look: the close (which wiped the message) is
    what that look reports.
    """
    now = time.time()
    desktop, phone = uid(), uid()
    start = (await store.channel_changes(None)).cursor
    first, second = unlock(desktop, phone, now, life=10), unlock(desktop, phone, now, life=10)
    pairing = Channel(os.urandom(16), "pairing", desktop, None, now, now + 600)
    ids = {first.channel_id, second.channel_id, pairing.channel_id}
    for ch in (first, second, pairing):
        await store.create_channel(ch, 16)
    cursor, got = await changes_of(store, start, ids)
    assert sorted(got) == sorted(
        [
            (first.channel_id, CHANNEL_CREATED, "unlock", phone),
            (second.channel_id, CHANNEL_CREATED, "unlock", phone),
            (pairing.channel_id, CHANNEL_CREATED, "pairing", None),
        ]
    )
    assert (await changes_of(store, cursor, ids))[1] == []  # told once
    await store.add_message(first.channel_id, "seen", phone, b"s", now)
    await store.add_message(first.channel_id, "reply", phone, b"r", now)
    await store.claim_channel(pairing.channel_id, phone)  # no one waits for a claim
    cursor, got = await changes_of(store, cursor, ids)
    assert got == [
        (first.channel_id, "seen", "unlock", phone),
        (first.channel_id, "reply", "unlock", phone),
    ]
    await store.add_message(pairing.channel_id, "hello", phone, b"h", now)
    await store.close_channel(pairing.channel_id, now)
    assert second.channel_id in await store.expire_channels(now + 11, grace=60)
    cursor, got = await changes_of(store, cursor, ids)
    assert (pairing.channel_id, CHANNEL_ENDED, "pairing", phone) in got
    assert (second.channel_id, CHANNEL_ENDED, "unlock", phone) in got
    assert {c[0] for c in got} == {pairing.channel_id, second.channel_id}
    assert (await changes_of(store, cursor, ids))[1] == []
    assert await store.close_channel(pairing.channel_id, now) is False  # no change, no report
    assert (await changes_of(store, cursor, ids))[1] == []


async def test_a_change_committed_after_a_later_one_is_still_reported(pg_url: str) -> None:
    """PostgreSQL gives transaction ids in start order, not commit order.

    A reply whose transaction began first but commits after a later change
    and after a look was taken must still be reported by the next look (the
    look asks for ids from the oldest transaction still running, not from the
    newest it saw). Held open on a connection of its own, as a slow node would.
    """
    store = PostgresStore(pg_url)
    await store.open()
    slow = await asyncpg.connect(pg_url)
    try:
        now = time.time()
        phone = uid()
        early, late = unlock(uid(), phone, now), unlock(uid(), phone, now)
        for ch in (early, late):
            await store.create_channel(ch, 16)
        cursor = (await store.channel_changes(None)).cursor
        ids = {early.channel_id, late.channel_id}
        tx = slow.transaction()
        await tx.start()
        await slow.execute(
            "INSERT INTO messages (channel_id, seq, type, sender, data, created_at)"
            " VALUES ($1, 1, 'reply', $2, 'r', $3)",
            early.channel_id,
            phone,
            now,
        )  # its transaction id is now taken, below every later one
        await store.add_message(late.channel_id, "seen", phone, b"s", now)
        cursor, got = await changes_of(store, cursor, ids)
        assert got == [(late.channel_id, "seen", "unlock", phone)]
        await tx.commit()
        cursor, got = await changes_of(store, cursor, ids)
        assert got == [(early.channel_id, "reply", "unlock", phone)]  # and not the seen again
        assert (await changes_of(store, cursor, ids))[1] == []
    finally:
        await slow.close()
        await store.close()


async def test_sqlite_change_log_is_trimmed_and_says_when_it_was_trimmed_too_far(
    tmp_path: Path,
) -> None:
    """The log keeps CHANGE_LOG_KEEP seconds; a cursor older than that is told it missed some.

    The reconciler then wakes every local waiter instead of guessing. The
    newest change is never trimmed (so ids are never reused), even when old.
    """
    store = SQLiteStore(tmp_path / "relay.db")
    await store.open()
    try:
        now = time.time()
        await store.create_channel(unlock(uid(), uid(), now), 16)
        cursor = (await store.channel_changes(None)).cursor
        # nothing was recorded before a reconciler's first look (a relay on the in-process
        # bus has none, and its writes do not pay for the log)
        assert cursor.position == 0
        ch = unlock(uid(), uid(), now)
        await store.create_channel(ch, 16)
        await store.add_message(ch.channel_id, "seen", uid(), b"s", now)
        await store.purge(now, now - 900)  # recent changes stay
        assert len((await store.channel_changes(cursor)).channels) == 2
        await store.purge(now + CHANGE_LOG_KEEP + 1, now - 900)  # now they are old
        late = await store.channel_changes(cursor)
        assert late.complete is False and [c.what for c in late.channels] == ["seen"]
        assert late.cursor.position == cursor.position + 2
        current = await store.channel_changes(late.cursor)  # and from there on, complete again
        assert current.complete and current.channels == []
        await store.close_channel(ch.channel_id, now)
        after = await store.channel_changes(current.cursor)
        assert after.complete and [c.what for c in after.channels] == [CHANNEL_ENDED]
        assert after.cursor.position == cursor.position + 3  # the kept newest id + 1
    finally:
        await store.close()


# Made by the relay of 48204ce (SQLite schema 1, before versions were recorded), its pages
# shrunk to 1 KiB by VACUUM: two devices with a linked pairing, the phone's push target, a
# session, a recorded setting, the change-log triggers (a reconciler had looked), an
# answered and closed unlock request, an open one with a "seen" message, an open pairing
# channel. Times are at RELAY_T; the open ones expire an hour later.
RELAY_SCHEMA1 = Path(__file__).parent / "fixtures" / "data" / "relay-schema1.db"
RELAY_T = 1_700_000_000.0
DESKTOP1, PHONE1, ROUTING1 = "d" * 43, "p" * 43, bytes(range(16))
OPEN1, ANSWERED1, PAIRING1 = b"\x01" * 16, b"\x02" * 16, b"\x03" * 16


def layout(path: Path) -> tuple[set[tuple[str, str]], int, str]:
    """The file's tables, indexes and triggers, its schema version, the messages table's SQL."""
    db = sqlite3.connect(path)
    try:
        names = {(t, n) for t, n in db.execute("SELECT type, name FROM sqlite_master")}
        (version,) = db.execute("SELECT version FROM schema_version").fetchone()
        (messages,) = db.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'messages'"
        ).fetchone()
        return names, version, messages
    finally:
        db.close()


async def test_sqlite_a_version_1_file_is_migrated_in_place_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    """An existing relay's file gets the new layout at its first open; nothing is lost.

    The same tables, indexes and triggers as a new file's; every record still
    reads the same; the change log still records (its message trigger was on
    the rebuilt table); one message of each type per channel still holds; a
    second open changes nothing.
    """
    path = tmp_path / "relay.db"
    shutil.copy(RELAY_SCHEMA1, path)
    db = sqlite3.connect(path)
    old_names = {n for (n,) in db.execute("SELECT name FROM sqlite_master")}
    db.close()
    assert {"channels_creator", "channels_peer", "channels_expiry"} <= old_names
    assert "message_added_log" in old_names
    store = SQLiteStore(path)
    await store.open()
    try:
        now = RELAY_T + 10
        ch = await store.get_channel(OPEN1)
        assert ch is not None and ch.state is ChannelState.OPEN and ch.push == b"push"
        assert ch.meta == {"requester": {"address": "192.0.2.1", "user_agent": "ua"}}
        seen = await store.messages_after(OPEN1, 0)
        assert [(m.seq, m.type, m.data) for m in seen] == [(1, "seen", b"seen")]
        answered = await store.get_channel(ANSWERED1)
        assert answered is not None and answered.meta == {"outcome": "answered"}
        assert [c.channel_id for c in await store.open_unlock_for_peer(PHONE1, now)] == [OPEN1]
        assert (await store.count_open_channels()) == {"pairing": 1, "unlock": 1}
        [view] = await store.list_pairings(DESKTOP1)
        assert view.linked and view.peer_device_id == PHONE1
        phone = await store.get_device(PHONE1)
        assert phone is not None and phone.push_target is not None
        assert await store.get_session(b"S" * 32, now) == DESKTOP1
        assert await store.record_setting("vapid_public_key", "other") == "BKEY"
        # the change log records on the rebuilt messages table without being asked again
        start = await store.channel_changes(ChangeCursor(0))
        assert await store.add_message(OPEN1, "reply", PHONE1, b"r", now) == (
            AddResult.ADDED,
            Message(OPEN1, 2, "reply", PHONE1, b"r", now),
        )
        assert (await store.add_message(OPEN1, "reply", PHONE1, b"r", now))[0] is (
            AddResult.DUPLICATE
        )
        changes = await store.channel_changes(start.cursor)
        assert [(c.channel_id, c.what) for c in changes.channels] == [(OPEN1, "reply")]
        closing = await store.close_as(OPEN1, DESKTOP1, "unlock", now)
        assert (closing.result, closing.outcome) == (CloseResult.CLOSED, "answered")
        assert await store.messages_after(OPEN1, 0) == []
    finally:
        await store.close()
    new = tmp_path / "new.db"
    fresh = SQLiteStore(new)
    await fresh.open()
    await fresh.channel_changes(None)  # its change-log triggers, as the old file had them
    await fresh.close()
    migrated_names, version, messages = layout(path)
    assert version == SCHEMA_VERSION
    assert migrated_names == layout(new)[0]
    assert "WITHOUT ROWID" in messages
    again = SQLiteStore(path)
    await again.open()  # a second open: nothing to migrate
    await again.close()
    assert layout(path) == (migrated_names, version, messages)


async def test_sqlite_a_file_of_a_newer_relay_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    db = sqlite3.connect(path)
    db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    db.commit()
    db.close()
    newer = SQLiteStore(path)
    with pytest.raises(RelayConfigError, match="newer than this relay"):
        await newer.open()
    await newer.close()


async def test_sqlite_a_write_that_fails_midway_leaves_nothing_and_the_next_one_runs(
    tmp_path: Path,
) -> None:
    """A write method's statements are one transaction: all or nothing, then the next."""
    store = SQLiteStore(tmp_path / "relay.db")
    await store.open()
    now = time.time()
    ch = unlock(uid(), uid(), now)

    def insert_then_fail(db: sqlite3.Connection) -> None:
        SQLiteStore._create(db, ch, 8)
        raise sqlite3.OperationalError("disk I/O error")  # what SQLite raises midway

    try:
        with pytest.raises(sqlite3.OperationalError):
            store._run(insert_then_fail)
        assert await store.get_channel(ch.channel_id) is None  # rolled back
        assert await store.create_channel(ch, 8) is CreateResult.CREATED  # the next one runs
        assert await store.get_channel(ch.channel_id) is not None
    finally:
        await store.close()


# How a statement of an exchange or of the sweeper may find its rows (EXPLAIN QUERY PLAN's
# SEARCH and SCAN steps): by a primary key, or among open channels by creator, peer or
# expiry; never a table scan, nor every open channel for one device's.
INDEXED_STEPS = re.compile(
    r"SCAN CONSTANT ROW|SCAN \(subquery-\d+\)"
    r"|SEARCH \w+ USING (COVERING )?INDEX sqlite_autoindex_(channels|devices|pairings)_1 \(.*"
    r"|SEARCH \w+ USING PRIMARY KEY \(channel_id=\?.*"  # messages
    r"|SEARCH \w+ USING (COVERING )?INDEX channels_open_creator \(creator=\? AND kind=\?.*"
    r"|SEARCH \w+ USING (COVERING )?INDEX channels_open_peer \(peer=\?\)"
    r"|SEARCH \w+ USING (COVERING )?INDEX channels_open_expiry \(expires_at<\?\)"  # sweeper
    r"|SCAN channels USING (COVERING )?INDEX channels_open_expiry"  # metrics: count open ones
)


async def test_sqlite_queries_of_open_channels_use_their_indexes(tmp_path: Path) -> None:
    """Each statement of an exchange and of the sweeper finds its rows through an index.

    Open channels are found by creator, peer or expiry in the indexes of open
    channels, never by reading every open channel (what the version-1 planner
    did for a desktop's count and a phone's list) or a whole table.
    """
    store = SQLiteStore(tmp_path / "relay.db")
    await store.open()
    db = store._db
    assert db is not None
    statements: list[str] = []
    try:
        now = time.time()
        desktop, phone, rid = uid(), uid(), os.urandom(16)
        await store.register_pairing(rid, desktop, phone, "desktop", now)
        await store.register_pairing(rid, phone, desktop, "phone", now)
        first, second = (
            Channel(os.urandom(16), "unlock", desktop, phone, at, at + 100, routing_id=rid)
            for at in (now, now + 1)
        )
        db.set_trace_callback(statements.append)  # the statements, their values inlined
        await store.unlock_context(rid, desktop, first.channel_id)
        assert (await store.create_unlock(first, 8))[0] is CreateResult.CREATED
        assert await store.create_unlock(second, 8) == (CreateResult.CREATED, first.channel_id)
        await store.channel_with_messages(second.channel_id, 0)
        await store.add_message(
            second.channel_id, "reply", phone, b"r", now, kind="unlock", from_peer=True
        )
        await store.open_unlock_for_peer(phone, now)
        closing = await store.close_as(second.channel_id, desktop, "unlock", now)
        assert (closing.result, closing.older) == (CloseResult.CLOSED, (first.channel_id,))
        await store.expire_channels(now + 200, 5)
        await store.count_open_channels()
        db.set_trace_callback(None)
        steps = [
            (sql, step)
            for sql in statements
            if not sql.startswith(("BEGIN", "COMMIT"))
            for *_, step in db.execute("EXPLAIN QUERY PLAN " + sql)
            if step.startswith(("SEARCH", "SCAN"))
        ]
        assert [(sql, step) for sql, step in steps if not INDEXED_STEPS.fullmatch(step)] == []
        used = {m for _, step in steps for m in re.findall(r"channels_open_\w+", step)}
        assert used == {"channels_open_creator", "channels_open_peer", "channels_open_expiry"}
    finally:
        await store.close()


async def test_pairings(store: Store) -> None:
    now = time.time()
    desktop, phone, intruder = uid(), uid(), uid()
    rid = os.urandom(16)
    assert await store.register_pairing(rid, desktop, phone, "desktop", now) is PairResult.PENDING
    assert await store.register_pairing(rid, desktop, phone, "desktop", now) is PairResult.PENDING
    view = await store.get_pairing(rid, desktop)
    assert view is not None and not view.linked and view.peer_device_id == phone
    assert await store.register_pairing(rid, phone, desktop, "phone", now) is PairResult.LINKED
    assert await store.register_pairing(rid, intruder, desktop, "phone", now) is (
        PairResult.CONFLICT
    )
    assert await store.register_pairing(rid, desktop, intruder, "desktop", now) is (
        PairResult.CONFLICT
    )
    [listed] = await store.list_pairings(desktop)
    assert listed.routing_id == rid and listed.linked and not listed.blocked
    assert await store.set_blocked(rid, desktop, True) is False  # only the phone blocks
    assert await store.set_blocked(rid, phone, True) is True
    assert (await store.get_pairing(rid, desktop)).blocked  # type: ignore[union-attr]
    assert await store.set_blocked(rid, phone, False) is True
    assert not (await store.get_pairing(rid, desktop)).blocked  # type: ignore[union-attr]
    assert await store.delete_pairing(rid, intruder) is False
    assert await store.delete_pairing(rid, phone) is True
    assert await store.list_pairings(desktop) == []
    assert await store.get_pairing(rid, desktop) is None


async def test_a_guarded_post_checks_liveness_then_kind_and_sender_then_duplicates(
    store: Store,
) -> None:
    """What lets the service post a phone's message in one call and read only if refused."""
    now = time.time()
    desktop, phone, stranger = uid(), uid(), uid()
    ch = unlock(desktop, phone, now)
    await store.create_channel(ch, 4)
    cid = ch.channel_id

    async def post(sender: str, kind: str = "unlock", msg_type: str = "reply") -> AddResult:
        result, msg = await store.add_message(
            cid,
            msg_type,
            sender,
            b"r",
            now,
            kind=kind,
            from_peer=True,  # type: ignore[arg-type]
        )
        assert (msg is not None) == (result is AddResult.ADDED)
        return result

    assert await post(stranger) is AddResult.NOT_ALLOWED
    assert await post(desktop) is AddResult.NOT_ALLOWED  # a party, but not the peer
    assert await post(phone, kind="pairing") is AddResult.NOT_ALLOWED
    assert await store.messages_after(cid, 0) == []  # no refused post left anything
    assert await post(phone) is AddResult.ADDED
    assert await post(phone) is AddResult.DUPLICATE
    assert await post(stranger) is AddResult.NOT_ALLOWED  # the guard before duplicates
    # unguarded, anyone may post (the service checked the channel itself)
    assert (await store.add_message(cid, "seen", desktop, b"s", now))[0] is AddResult.ADDED
    await store.close_channel(cid, now)
    assert await post(stranger) is AddResult.NOT_OPEN  # liveness first
    assert (await store.add_message(os.urandom(16), "reply", phone, b"r", now, kind="unlock"))[
        0
    ] is AddResult.NOT_OPEN


async def test_create_unlock_names_the_request_it_renews(store: Store) -> None:
    now = time.time()
    desktop, phone = uid(), uid()
    rid = os.urandom(16)

    def request(at: float, routing: bytes = rid, creator: str = desktop) -> Channel:
        ch = unlock(creator, phone, at)
        return Channel(
            ch.channel_id, "unlock", creator, phone, at, at + 100, routing_id=routing, push=b"p"
        )

    a, b, c = request(now), request(now + 1), request(now + 2)
    assert await store.create_unlock(a, 8) == (CreateResult.CREATED, None)
    assert await store.create_unlock(b, 8) == (CreateResult.CREATED, a.channel_id)
    assert await store.create_unlock(c, 8) == (CreateResult.CREATED, b.channel_id)  # the newest
    # another pairing, another desktop: a new attempt
    assert await store.create_unlock(request(now + 3, routing=os.urandom(16)), 8) == (
        CreateResult.CREATED,
        None,
    )
    assert await store.create_unlock(request(now + 3, creator=uid()), 8) == (
        CreateResult.CREATED,
        None,
    )
    await store.add_message(c.channel_id, "reply", phone, b"r", now)  # answered: not renewed
    assert await store.create_unlock(request(now + 4), 8) == (CreateResult.CREATED, b.channel_id)
    assert await store.create_unlock(c, 8) == (CreateResult.EXISTS, None)
    assert (await store.create_unlock(request(now + 5), 4))[0] is CreateResult.TOO_MANY


async def test_closing_a_request_closes_the_older_requests_it_renewed(store: Store) -> None:
    now = time.time()
    desktop, phone = uid(), uid()
    rid = os.urandom(16)

    def request(at: float, routing: bytes = rid) -> Channel:
        ch = unlock(desktop, phone, at)
        return Channel(
            ch.channel_id, "unlock", desktop, phone, at, at + 100, routing_id=routing, push=b"p"
        )

    first, answered, other, current, newer = (
        request(now),
        request(now + 1),
        request(now + 2, routing=os.urandom(16)),
        request(now + 3),
        request(now + 4),
    )
    for ch in (first, answered, other, current, newer):
        assert (await store.create_unlock(ch, 8))[0] is CreateResult.CREATED
    await store.add_message(first.channel_id, "seen", phone, b"s", now)
    await store.add_message(answered.channel_id, "reply", phone, b"r", now)
    closing = await store.close_as(current.channel_id, desktop, "unlock", now + 5)
    assert closing.result is CloseResult.CLOSED and closing.older == (first.channel_id,)
    states = {
        ch.channel_id: await store.get_channel(ch.channel_id)
        for ch in (first, answered, other, current, newer)
    }
    assert states[first.channel_id].meta == {"outcome": "cancelled"}  # type: ignore[union-attr]
    assert await store.messages_after(first.channel_id, 0) == []  # its "seen" dropped
    for kept in (answered, other, newer):  # answered, another attempt, a newer request
        assert states[kept.channel_id].state is ChannelState.OPEN  # type: ignore[union-attr]
    again = await store.close_as(current.channel_id, desktop, "unlock", now + 6)
    assert (again.result, again.older) == (CloseResult.NOT_OPEN, ())
    last = await store.close_as(newer.channel_id, desktop, "unlock", now + 6)
    assert (last.result, last.older) == (CloseResult.CLOSED, ())


async def test_a_party_closes_in_one_call_checked_and_with_its_outcome(store: Store) -> None:
    """close_as: the checks in order (unknown, not a party, not the creator), the outcome
    from what was posted (close_outcomes), the renewed requests closed with it, and a
    second close a no-op."""
    now = time.time()
    desktop, phone, stranger = uid(), uid(), uid()
    routing = os.urandom(16)

    def request(at: float) -> Channel:
        ch = unlock(desktop, phone, at)
        return Channel(
            ch.channel_id, "unlock", desktop, phone, at, at + 100, routing_id=routing, push=b"p"
        )

    old, answered, quiet = request(now), request(now + 1), request(now + 2)
    for ch in (old, answered, quiet):
        assert (await store.create_unlock(ch, 8))[0] is CreateResult.CREATED
    cid = answered.channel_id
    assert (await store.close_as(os.urandom(16), desktop, "unlock", now)).result is (
        CloseResult.UNKNOWN
    )
    assert (await store.close_as(cid, desktop, "pairing", now)).result is CloseResult.UNKNOWN
    assert (await store.close_as(cid, stranger, "unlock", now)).result is CloseResult.NOT_PARTY
    assert (await store.close_as(cid, phone, "unlock", now)).result is CloseResult.NOT_CREATOR
    await store.add_message(cid, "reply", phone, b"r", now)
    # answered: the older unanswered request it renewed ends with it ("closed")
    closing = await store.close_as(cid, desktop, "unlock", now + 3)
    expected = Closing(
        CloseResult.CLOSED, "answered", "closed", phone, now + 101, (old.channel_id,)
    )
    assert closing == expected
    assert (await store.get_channel(cid)).meta == {"outcome": "answered"}  # type: ignore[union-attr]
    assert (await store.get_channel(old.channel_id)).meta == {"outcome": "closed"}  # type: ignore[union-attr]
    assert await store.messages_after(cid, 0) == []
    # the newest, unanswered: cancelled (the older ones are closed already)
    closing = await store.close_as(quiet.channel_id, desktop, "unlock", now + 4)
    assert (closing.result, closing.outcome, closing.renewed_outcome, closing.older) == (
        CloseResult.CLOSED,
        "cancelled",
        "cancelled",
        (),
    )
    again = await store.close_as(quiet.channel_id, desktop, "unlock", now + 5)
    assert again.result is CloseResult.NOT_OPEN and again.older == ()
    # pairing channels: the desktop closing after a hello without accept rejected it
    for posted, closer, outcome in (
        (("hello",), desktop, "rejected"),
        (("hello", "accept"), desktop, "closed"),
        (("hello",), phone, "closed"),
        ((), desktop, "closed"),
    ):
        ch = Channel(os.urandom(16), "pairing", desktop, None, now, now + 100)
        assert await store.create_channel(ch, 8) is CreateResult.CREATED
        assert await store.claim_channel(ch.channel_id, phone)
        for msg_type in posted:
            sender = phone if msg_type == "hello" else desktop
            await store.add_message(ch.channel_id, msg_type, sender, b"m", now)
        closing = await store.close_as(ch.channel_id, closer, "pairing", now + 1)
        assert (closing.result, closing.outcome) == (CloseResult.CLOSED, outcome), posted


async def test_close_as_racing_a_reply_counts_it_or_refuses_it(pg_url: str) -> None:
    """A reply posted on one node while the desktop closes on another: either the close
    says answered, or the reply is refused as not open; never cancelled with a reply in."""
    stores = await nodes(pg_url, 2)
    try:
        for _ in range(20):
            now = time.time()
            desktop, phone = uid(), uid()
            ch = unlock(desktop, phone, now)
            assert (await stores[0].create_unlock(ch, 8))[0] is CreateResult.CREATED
            closing, (added, _) = await asyncio.gather(
                stores[0].close_as(ch.channel_id, desktop, "unlock", now),
                stores[1].add_message(ch.channel_id, "reply", phone, b"r", now),
            )
            assert closing.result is CloseResult.CLOSED
            assert (closing.outcome == "answered") == (added is AddResult.ADDED)
            assert await stores[0].messages_after(ch.channel_id, 0) == []
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_unlock_context_reads_pairing_request_id_and_phone_at_once(store: Store) -> None:
    now = time.time()
    desktop, phone = uid(), uid()
    rid, request_id = os.urandom(16), os.urandom(16)
    empty = await store.unlock_context(rid, desktop, request_id)
    assert (empty.pairing, empty.request_taken, empty.phone) == (None, False, None)
    await store.register_pairing(rid, desktop, phone, "desktop", now)
    pending = await store.unlock_context(rid, desktop, request_id)
    assert pending.pairing is not None and not pending.pairing.linked and pending.phone is None
    key = b"\x04" + os.urandom(64)
    await store.register_device(phone, key, "phone", now)
    target = {"kind": "webpush", "endpoint": "https://push.example/p", "keys": {"auth": "x"}}
    await store.set_push_target(phone, target)
    await store.register_pairing(rid, phone, desktop, "phone", now)
    await store.set_blocked(rid, phone, True)
    ch = unlock(desktop, phone, now)
    await store.create_channel(Channel(request_id, "unlock", desktop, phone, now, now + 9), 4)
    got = await store.unlock_context(rid, desktop, request_id)
    assert got.pairing == await store.get_pairing(rid, desktop)
    assert got.pairing is not None and got.pairing.linked and got.pairing.blocked
    assert got.request_taken is True
    assert got.phone is not None and got.phone.public_key == key
    assert got.phone.push_target == target and got.phone.kind == "phone"
    assert (await store.unlock_context(rid, phone, ch.channel_id)).request_taken is False


# -- races between nodes (PostgreSQL only) ----------------------------------------------------


async def test_one_reply_wins_when_many_nodes_post_at_once(pg_url: str) -> None:
    stores = await nodes(pg_url, 3)
    try:
        now = time.time()
        for _ in range(5):
            ch = unlock(uid(), uid(), now)
            await stores[0].create_channel(ch, 16)
            results = await asyncio.gather(
                *(
                    stores[i % 3].add_message(
                        ch.channel_id, "reply", ch.peer or "", bytes([i]), now
                    )
                    for i in range(24)
                )
            )
            added = [m for r, m in results if r is AddResult.ADDED]
            assert len(added) == 1
            assert all(r is AddResult.DUPLICATE for r, _ in results if r is not AddResult.ADDED)
            stored = await stores[1].messages_after(ch.channel_id, 0)
            assert [(m.seq, m.data) for m in stored] == [(1, added[0].data)]  # type: ignore[union-attr]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_races_on_claim_challenge_cap_and_pairing(pg_url: str) -> None:
    stores = await nodes(pg_url, 3)
    try:
        now = time.time()
        # first hello owns the pairing channel
        ch = Channel(os.urandom(16), "pairing", uid(), None, now, now + 60)
        await stores[0].create_channel(ch, 8)
        phones = [uid() for _ in range(12)]
        claims = await asyncio.gather(
            *(stores[i % 3].claim_channel(ch.channel_id, p) for i, p in enumerate(phones))
        )
        assert sum(claims) == 1
        owner = phones[claims.index(True)]
        assert (await stores[2].get_channel(ch.channel_id)).peer == owner  # type: ignore[union-attr]
        # a challenge is used once
        challenge = os.urandom(32)
        await stores[0].put_challenge(challenge, now + 60)
        taken = await asyncio.gather(
            *(stores[i % 3].take_challenge(challenge, now) for i in range(9))
        )
        assert sum(taken) == 1
        # the per-creator cap is exact
        desktop = uid()
        created = await asyncio.gather(
            *(stores[i % 3].create_channel(unlock(desktop, "p", now), 5) for i in range(20))
        )
        assert created.count(CreateResult.CREATED) == 5
        assert created.count(CreateResult.TOO_MANY) == 15
        # both sides register the pairing at the same instant on two nodes
        for _ in range(5):
            rid, d, p = os.urandom(16), uid(), uid()
            results = await asyncio.gather(
                stores[0].register_pairing(rid, d, p, "desktop", now),
                stores[1].register_pairing(rid, p, d, "phone", now),
            )
            assert sorted(results) == sorted([PairResult.PENDING, PairResult.LINKED])
            assert (await stores[2].get_pairing(rid, d)).linked  # type: ignore[union-attr]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_sweepers_of_several_nodes_split_expiry_without_overlap(pg_url: str) -> None:
    stores = await nodes(pg_url, 3)
    try:
        now = time.time()
        due = [unlock(uid(), uid(), now - 50, life=10) for _ in range(60)]
        for ch in due:
            await stores[0].create_channel(ch, 16)
        batches = await asyncio.gather(*(s.expire_channels(now, grace=0) for s in stores))
        flat = [cid for batch in batches for cid in batch]
        assert len(flat) == len(set(flat))  # no channel expired twice (no double "ended")
        assert {ch.channel_id for ch in due} <= set(flat)
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_close_racing_a_reply_never_leaves_a_message_on_a_closed_channel(
    pg_url: str,
) -> None:
    stores = await nodes(pg_url, 2)
    try:
        now = time.time()
        for _ in range(15):
            ch = unlock(uid(), uid(), now)
            await stores[0].create_channel(ch, 16)
            (added, _msg), closed = await asyncio.gather(
                stores[0].add_message(ch.channel_id, "reply", ch.peer or "", b"r", now),
                stores[1].close_channel(ch.channel_id, now),
            )
            assert closed is True
            assert added in (AddResult.ADDED, AddResult.NOT_OPEN)
            assert await stores[1].messages_after(ch.channel_id, 0) == []
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_closing_an_attempt_races_replies_and_other_closers(pg_url: str) -> None:
    """close_as of the newest and of the middle request, replies to both older ones,
    on three nodes at once: no deadlock (closers lock newest to oldest), each request
    closed by one closer only, and never a message left on a closed request."""
    stores = await nodes(pg_url, 3)
    try:
        now = time.time()
        for _ in range(25):
            desktop, phone, rid = uid(), uid(), os.urandom(16)
            chain = []
            for i in range(3):
                ch = unlock(desktop, phone, now + i)
                ch = Channel(
                    ch.channel_id, "unlock", desktop, phone, now + i, now + 100, routing_id=rid
                )
                await stores[0].create_channel(ch, 8)
                chain.append(ch.channel_id)
            oldest, middle, newest = chain
            results = await asyncio.gather(
                stores[0].close_as(newest, desktop, "unlock", now + 5),
                stores[1].close_as(middle, desktop, "unlock", now + 5),
                stores[2].add_message(oldest, "reply", phone, b"r1", now + 5),
                stores[0].add_message(middle, "reply", phone, b"r2", now + 5),
            )
            closed_newest = results[0].result is CloseResult.CLOSED
            closed_middle = results[1].result is CloseResult.CLOSED
            older_a, older_b = results[0].older, results[1].older
            assert closed_newest is True
            claimed = [newest, *older_a, *older_b] + ([middle] if closed_middle else [])
            assert len(claimed) == len(set(claimed))  # no request closed twice
            for cid in chain:
                ch, msgs = await stores[1].channel_with_messages(cid, 0)
                assert ch is not None
                if ch.state is ChannelState.CLOSED:
                    assert msgs == [] and cid in claimed
                else:  # left open only because it was answered first
                    assert [m.type for m in msgs] == ["reply"] and cid not in claimed
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_the_creator_cap_holds_while_version_2_nodes_still_create(pg_url: str) -> None:
    """A rolling upgrade: a version 2 node creates in a client-side transaction under the
    creator's advisory lock; unlatch_create_channel takes the same key, so it waits for
    that transaction and then counts its channel: the cap stays exact."""
    store = PostgresStore(pg_url)
    await store.open()
    old = await asyncpg.connect(pg_url)
    try:
        now = time.time()
        desktop = uid()
        async with old.transaction():  # what a version 2 node sends, up to its COMMIT
            await old.execute("SELECT pg_advisory_xact_lock($1)", _lock_key("creator:" + desktop))
            count = await old.fetchval(
                "SELECT COUNT(*) FROM channels WHERE creator = $1 AND kind = 'unlock'"
                " AND state = 'open' AND expires_at > $2",
                desktop,
                now,
            )
            assert count == 0
            await old.execute(
                "INSERT INTO channels (channel_id, kind, creator, created_at, expires_at, state)"
                " VALUES ($1, 'unlock', $2, $3, $4, 'open')",
                os.urandom(16),
                desktop,
                now,
                now + 100,
            )
            newer = asyncio.ensure_future(store.create_channel(unlock(desktop, "p", now), 1))
            await asyncio.sleep(0.3)
            assert not newer.done()  # waiting on the creator's lock
        assert await newer is CreateResult.TOO_MANY
    finally:
        await old.close()
        await store.close()


async def test_a_setting_is_recorded_by_the_first_writer_and_replaced_on_purpose(
    store: Store,
) -> None:
    name = "test_" + os.urandom(4).hex()
    assert await store.record_setting(name, "first") == "first"
    assert await store.record_setting(name, "second") == "first"
    assert await store.record_setting(name, "second", replace=True) == "second"
    assert await store.record_setting(name, "third") == "second"


async def test_nodes_racing_to_record_a_setting_agree_on_one_value(pg_url: str) -> None:
    """What makes the VAPID key check hold when nodes with different keys start at once."""
    stores = await nodes(pg_url, 5)
    try:
        name = "test_" + os.urandom(4).hex()
        results = await asyncio.gather(
            *(s.record_setting(name, f"node{i}") for i, s in enumerate(stores))
        )
        assert len(set(results)) == 1 and results[0].startswith("node")
    finally:
        await asyncio.gather(*(s.close() for s in stores))


# -- migrations, configuration, outages ------------------------------------------------------


async def test_concurrent_startup_migrates_once() -> None:
    require_postgres()
    with fresh_database() as url:
        stores = await nodes(url, 5)  # five nodes start at the same instant
        try:
            assert {await s.schema_version() for s in stores} == {len(migrations())}
            conn = await asyncpg.connect(url)
            try:
                rows = await conn.fetch(
                    "SELECT version, name FROM unlatch_schema_migrations ORDER BY version"
                )
                await conn.execute(
                    "INSERT INTO unlatch_schema_migrations (version, name) VALUES (99, 'future')"
                )
            finally:
                await conn.close()
            assert [(r[0], r[1]) for r in rows] == [
                (1, "initial"),
                (2, "settings"),
                (3, "single_trip_writes"),
                (4, "channel_changes"),
                (5, "close_as"),
            ]
        finally:
            await asyncio.gather(*(s.close() for s in stores))
        newer = PostgresStore(url)
        with pytest.raises(RelayConfigError, match="newer than this relay"):
            await newer.open()
        await newer.close()


async def test_a_version_2_database_with_live_channels_migrates_to_change_stamps() -> None:
    """Migration 003 on a deployment that is running: its open channels and messages stay.

    Their rows get the migrating transaction's id as their change stamp, and
    changes made afterwards are reported as on a fresh database.
    """
    require_postgres()
    with fresh_database() as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "CREATE TABLE unlatch_schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for version, name, sql in migrations()[:2]:
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO unlatch_schema_migrations (version, name) VALUES ($1, $2)",
                    version,
                    name,
                )
            now = time.time()
            ch = unlock(uid(), uid(), now)
            await conn.execute(
                "INSERT INTO channels (channel_id, kind, creator, peer, created_at, expires_at,"
                " state) VALUES ($1, 'unlock', $2, $3, $4, $5, 'open')",
                ch.channel_id,
                ch.creator,
                ch.peer,
                now,
                now + 100,
            )
            await conn.execute(
                "INSERT INTO messages VALUES ($1, 1, 'seen', $2, 's', $3)",
                ch.channel_id,
                ch.peer,
                now,
            )
        finally:
            await conn.close()
        store = PostgresStore(url)
        await store.open()
        try:
            assert await store.schema_version() == len(migrations())
            cursor = (await store.channel_changes(None)).cursor
            assert [m.type for m in await store.messages_after(ch.channel_id, 0)] == ["seen"]
            await store.add_message(ch.channel_id, "reply", ch.peer or "", b"r", now)
            cursor, got = await changes_of(store, cursor, {ch.channel_id})
            assert got == [(ch.channel_id, "reply", "unlock", ch.peer)]
            await store.close_channel(ch.channel_id, now)
            assert (await changes_of(store, cursor, {ch.channel_id}))[1] == [
                (ch.channel_id, CHANNEL_ENDED, "unlock", ch.peer)
            ]
        finally:
            await store.close()


async def test_url_options_and_clear_errors() -> None:
    dsn, lo, hi = split_url(
        "postgresql://u:secret@db:5433/relay?pool_min=2&pool_max=7&sslmode=disable"
    )
    assert (lo, hi) == (2, 7) and "pool_" not in dsn and "sslmode=disable" in dsn
    with pytest.raises(RelayConfigError, match="pool_min"):
        split_url("postgresql://db/relay?pool_max=lots")
    assert isinstance(open_store("postgresql://db/relay"), PostgresStore)
    assert isinstance(open_store("postgres://db/relay"), PostgresStore)
    # nothing listens on port 1: a clear startup error that never shows the password
    down = PostgresStore("postgresql://postgres:hunter2@127.0.0.1:1/x")
    with pytest.raises(RelayConfigError) as info:
        await down.open()
    assert "127.0.0.1:1" in str(info.value) and "hunter2" not in str(info.value)


async def test_dropped_connections_are_replaced_without_the_caller_noticing(pg_url: str) -> None:
    store = PostgresStore(pg_url + "?pool_min=3&pool_max=3")
    await store.open()
    try:
        now = time.time()
        ch = unlock(uid(), uid(), now)
        await store.create_channel(ch, 16)
        name = pg_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await admin.close()
        assert killed >= 1
        await asyncio.sleep(0.2)
        # reads and not-yet-committed transactions are replayed on a fresh connection
        assert (await store.get_channel(ch.channel_id)) == ch
        result, _ = await store.add_message(ch.channel_id, "reply", ch.peer or "", b"r", now)
        assert result is AddResult.ADDED
        await store.ping()
    finally:
        await store.close()


async def _backend_waiting_on_a_lock(admin: asyncpg.Connection, db: str) -> int:
    for _ in range(500):
        pid = await admin.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
            db,
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.01)
    raise AssertionError("no store connection is waiting on the lock")


async def test_a_write_cut_off_mid_statement_is_replayed_only_if_replayable(pg_url: str) -> None:
    """A single statement whose connection dies may have committed: a post (which would
    answer "duplicate" the second time) gives 503, never a blind replay; a claim (the same
    answer when run twice) is replayed on a fresh connection."""
    store = PostgresStore(pg_url)
    await store.open()
    db = pg_url.rsplit("/", 1)[1]
    locker = await asyncpg.connect(pg_url)
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        now = time.time()
        ch = unlock(uid(), uid(), now)
        pairing = Channel(os.urandom(16), "pairing", uid(), None, now, now + 60)
        for c in (ch, pairing):
            await store.create_channel(c, 8)
        for cid in (ch.channel_id, pairing.channel_id):
            # hold the channel's row lock, so the store's statement waits inside PostgreSQL
            tx = locker.transaction()
            await tx.start()
            await locker.execute("SELECT 1 FROM channels WHERE channel_id = $1 FOR UPDATE", cid)
            if cid == ch.channel_id:
                call = asyncio.ensure_future(
                    store.add_message(cid, "reply", ch.peer or "", b"r", now)
                )
            else:
                call = asyncio.ensure_future(store.claim_channel(cid, "phone"))
            pid = await _backend_waiting_on_a_lock(admin, db)
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            if cid == ch.channel_id:
                with pytest.raises(StoreUnavailable):
                    await asyncio.wait_for(call, 5)  # a replay would wait on the lock
                await tx.rollback()
                assert await store.messages_after(cid, 0) == []  # rolled back, not replayed
            else:
                await asyncio.sleep(0.2)
                assert not call.done()  # replayed: waiting on the lock again
                await tx.rollback()
                assert await call is True
                assert (await store.get_channel(cid)).peer == "phone"  # type: ignore[union-attr]
        await store.ping()
    finally:
        await locker.close()
        await admin.close()
        await store.close()


async def test_the_pool_bounds_connections_and_drops_the_ones_a_call_left_unclean(
    pg_url: str,
) -> None:
    store = PostgresStore(pg_url + "?pool_min=1&pool_max=2")
    await store.open()
    try:
        pool = store._pool
        assert pool is not None and pool.size == 1
        sizes: list[int] = []

        async def slow() -> None:
            await store._read(lambda c: c.fetchval("SELECT pg_sleep(0.05)"))
            sizes.append(pool.size)

        await asyncio.gather(*(slow() for _ in range(8)))  # 8 calls share 2 connections
        assert max(sizes) == 2 and pool.size == 2
        # a call cancelled mid-query: its connection is terminated, not handed out again
        stuck = asyncio.ensure_future(store._read(lambda c: c.fetchval("SELECT pg_sleep(5)")))
        await asyncio.sleep(0.2)
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck
        assert pool.size == 1
        assert await store._read(lambda c: c.fetchval("SELECT 7")) == 7
        # waiters cancelled while queued leave no connection behind
        hold = [asyncio.ensure_future(slow()) for _ in range(2)]
        queued = asyncio.ensure_future(slow())
        await asyncio.sleep(0.01)
        queued.cancel()
        await asyncio.gather(*hold)
        await asyncio.gather(queued, return_exceptions=True)
        assert await store._read(lambda c: c.fetchval("SELECT 8")) == 8
        assert pool.size == 2
        # idle beyond its lifetime and above pool_min: closed at the next use
        pool.IDLE_LIFETIME = 0.0
        await asyncio.sleep(0.01)
        await store.ping()
        assert pool.size == 1
    finally:
        await store.close()
