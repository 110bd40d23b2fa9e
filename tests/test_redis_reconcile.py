"""The reconciler: on the Redis bus, idle waiters keep no timer and a lost publish is not lost.

Issue 15: with Redis, each waiter used to re-read the store every 5-10 s
because an event can be lost in flight (a node killed between its store write
and its publish). Now each node's reconciler asks the store once per
``sweep_interval`` which channels changed and wakes only its own subscribers
of those (unlatch/relay/reconcile.py).

Two relay services in this process are two nodes: each has its own store
connection (one SQLite file, or one PostgreSQL database) and its own
:class:`RedisBus` on the shared Redis (a random key prefix). Node A writes to
the store *without publishing*, which is exactly what a node killed between
its write and its publish leaves behind; a waiter on node B must still get
the message. The nodes' periodic loops are given an hour, so nothing happens
until the test calls ``reconciler.tick()``: one period, without waiting for it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fixtures.scale import (
    REDIS_URL,
    fresh_database,
    redis_cleanup,
    redis_prefix,
    require_postgres,
    require_redis,
)

from unlatch.relay.bus import RESYNC
from unlatch.relay.bus_redis import RedisBus
from unlatch.relay.config import RelayConfig
from unlatch.relay.frames import channel_topic, device_topic
from unlatch.relay.metrics import RelayMetrics
from unlatch.relay.models import Channel, Device
from unlatch.relay.ratelimit import MemoryRateLimiter
from unlatch.relay.service import RelayService
from unlatch.relay.store import open_store
from unlatch.relay.store_sqlite import CHANGE_LOG_KEEP

Nodes = tuple[RelayService, RelayService]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite:///" + str(tmp_path / "relay.db")
        return
    require_postgres()
    with fresh_database() as url:
        yield url


async def start_nodes(db: str, bus: str, tmp_path: Path, period: float) -> Nodes:
    nodes = []
    for _ in range(2):
        config = RelayConfig(
            db=db,
            bus=bus,
            push_enabled=False,
            sweep_interval=period,
            vapid_key=str(tmp_path / "vapid.pem"),
        ).finalize()
        node = RelayService(
            config, open_store(db), RedisBus(bus), MemoryRateLimiter(), RelayMetrics()
        )
        await node.start()
        nodes.append(node)
    return nodes[0], nodes[1]


@pytest.fixture
async def nodes(db_url: str, tmp_path: Path) -> AsyncIterator[Nodes]:
    require_redis()
    prefix = redis_prefix()
    a, b = await start_nodes(db_url, f"{REDIS_URL}?prefix={prefix}", tmp_path, period=3600.0)
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()
        redis_cleanup(6379, prefix)


async def request_between(node: RelayService) -> tuple[Device, str, Channel]:
    """A desktop's unlock request to a phone, created in the store (as through any node)."""
    now = time.time()
    desktop = await node.store.register_device(os.urandom(8).hex(), b"k" * 32, "desktop", now)
    phone = os.urandom(8).hex()
    channel = Channel(
        os.urandom(16), "unlock", desktop.device_id, phone, now, now + 120, routing_id=b"r" * 16
    )
    await node.store.create_channel(channel, 16)
    return desktop, phone, channel


async def waiting(node: RelayService, topic: str) -> None:
    """Until a waiter on ``node`` has subscribed to ``topic``, read the store and waits."""
    assert isinstance(node.bus, RedisBus)
    for _ in range(500):
        if any(sub._waiter is not None for sub in node.bus._local.get(topic, ())):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no waiter on {topic}")


async def test_redis_publish_lost_after_the_write_reaches_the_waiter_on_another_node(
    nodes: Nodes,
) -> None:
    """A reply written but never published still reaches a desktop waiting on another node.

    The waiter (a long-poll, the same subscription a WebSocket uses) keeps
    no timer: without an event nothing wakes it, so it is still waiting after
    the write. One period of node B's reconciler (one query) wakes it and it
    returns the reply; a waiter on a channel that did not change is not woken.
    """
    a, b = nodes
    desktop, phone, channel = await request_between(a)
    _, _, other = await request_between(a)
    waiter = asyncio.create_task(b.wait(desktop, channel.channel_id, "unlock", 0, timeout=60))
    async with b.bus.subscribe(channel_topic(other.channel_id)) as bystander:
        assert bystander.recheck is None  # reconciled: no re-read timer on Redis any more
        await waiting(b, channel_topic(channel.channel_id))
        await a.store.add_message(channel.channel_id, "reply", phone, b"the reply", time.time())
        done, _ = await asyncio.wait({waiter}, timeout=0.3)
        assert not done  # nobody published: without the reconciler it would wait 60 s
        assert await b.reconciler.tick() == 1  # type: ignore[union-attr]
        msgs, ch = await asyncio.wait_for(waiter, 10)
        assert [(m.type, m.data) for m in msgs] == [("reply", b"the reply")]
        assert ch is not None and ch.channel_id == channel.channel_id
        assert await bystander.get(0) is None  # its channel did not change: not woken
    assert b.metrics.reconcile_wakeups._value.get() == 1


async def test_redis_lost_notifications_reach_the_phone_listener_on_another_node(
    nodes: Nodes,
) -> None:
    """A new request, a reply and a closed request, all unpublished, wake the phone's listener.

    The listener (ws.py) re-reads its pending requests on ``resync``; each
    change that moves the phone's pending list gives its listeners one.
    A ``seen`` does not (the request stays pending).
    """
    a, b = nodes
    desktop, phone, channel = await request_between(a)
    await b.reconciler.tick()  # type: ignore[union-attr]  # its creation: before the listener
    async with b.bus.subscribe(device_topic(phone)) as listener:
        assert listener.recheck is None
        assert await b.reconciler.tick() == 0  # type: ignore[union-attr]
        now = time.time()
        fresh = Channel(
            os.urandom(16), "unlock", desktop.device_id, phone, now, now + 120, routing_id=b"r" * 16
        )
        await a.store.create_channel(fresh, 16)
        await b.reconciler.tick()  # type: ignore[union-attr]
        assert await listener.get(0) == RESYNC
        await a.store.add_message(channel.channel_id, "seen", phone, b"s", now)
        assert await b.reconciler.tick() == 0  # type: ignore[union-attr]
        await a.store.add_message(channel.channel_id, "reply", phone, b"r", now)
        await a.store.close_channel(fresh.channel_id, now, "cancelled")
        assert await b.reconciler.tick() == 1  # type: ignore[union-attr]  # one re-read for both
        assert await listener.get(0) == RESYNC
        assert await listener.get(0) is None
        assert [
            n["request_id"] for n in await b.pending_unlock(Device(phone, b"", "phone", 0))
        ] == []


async def test_redis_reconciler_bound_holds_on_the_real_loop(db_url: str, tmp_path: Path) -> None:
    """With the nodes' own loops (a 0.1 s period here), a lost publish costs about one period.

    The bound asserted leaves room for a loaded 2-core machine; what it rules
    out is the old per-waiter timer (5 s) or no wake-up at all.
    """
    require_redis()
    prefix = redis_prefix()
    a, b = await start_nodes(db_url, f"{REDIS_URL}?prefix={prefix}", tmp_path, period=0.1)
    try:
        desktop, phone, channel = await request_between(a)
        waiter = asyncio.create_task(b.wait(desktop, channel.channel_id, "unlock", 0, timeout=60))
        await waiting(b, channel_topic(channel.channel_id))
        started = time.monotonic()
        await a.store.add_message(channel.channel_id, "reply", phone, b"late", time.time())
        msgs, _ = await asyncio.wait_for(waiter, 10)
        assert [m.data for m in msgs] == [b"late"]
        assert time.monotonic() - started < 2.0
    finally:
        await a.stop()
        await b.stop()
        redis_cleanup(6379, prefix)


async def test_redis_reconciler_wakes_every_local_waiter_when_it_cannot_tell(
    tmp_path: Path,
) -> None:
    """SQLite's change log trimmed past a node's cursor (it lagged for minutes): everyone re-reads.

    The node cannot tell which channels changed in the gap, so every local
    subscriber gets a ``resync`` (a re-read each), never silence.
    """
    require_redis()
    prefix = redis_prefix()
    db = "sqlite:///" + str(tmp_path / "relay.db")
    a, b = await start_nodes(db, f"{REDIS_URL}?prefix={prefix}", tmp_path, period=3600.0)
    try:
        _, _, channel = await request_between(a)
        async with b.bus.subscribe(channel_topic(channel.channel_id)) as one:
            async with b.bus.subscribe("channel:unrelated") as two:
                now = time.time()
                await a.store.add_message(channel.channel_id, "seen", "p", b"s", now)
                await a.store.purge(now + CHANGE_LOG_KEEP + 1, now - 900)
                assert await b.reconciler.tick() == 2  # type: ignore[union-attr]
                assert await one.get(0) == RESYNC and await two.get(0) == RESYNC
                assert await b.reconciler.tick() == 0  # type: ignore[union-attr]
    finally:
        await a.stop()
        await b.stop()
        redis_cleanup(6379, prefix)
