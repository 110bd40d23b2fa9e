"""The Redis bus and the Redis rate limiter against a real Redis.

Two :class:`RedisBus` (or limiter) instances on one Redis are two relay
nodes. Tests that stop Redis use a private ``redis-server`` on a random port,
never the shared one; the others use the shared server with a random key
prefix, removed afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fixtures.relay import RelayProcess
from fixtures.scale import LoadBalancer, PrivateRedis, redis_cleanup, redis_prefix, require_redis
from redis.exceptions import NoScriptError, ResponseError

from unlatch.relay import bus_redis, redis_pipe
from unlatch.relay.bus import InProcessBus, open_bus
from unlatch.relay.bus_redis import RedisBus
from unlatch.relay.errors import RelayConfigError
from unlatch.relay.ratelimit import MemoryRateLimiter, Rule, open_limiter
from unlatch.relay.ratelimit_redis import RedisRateLimiter
from unlatch.relay.redis_pipe import read_reply
from unlatch.relay.redis_url import split_redis_url


@pytest.fixture
def prefix() -> Iterator[str]:
    require_redis()
    p = redis_prefix()
    yield p
    redis_cleanup(6379, p)


@contextlib.asynccontextmanager
async def started(*urls: str) -> AsyncIterator[list[RedisBus]]:
    """A started bus (a node) per URL, closed after."""
    buses = [RedisBus(url) for url in urls]
    try:
        for bus in buses:
            await bus.start()
        yield buses
    finally:
        for bus in buses:
            await bus.close()


@pytest.fixture
async def two_buses(prefix: str) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    url = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    async with started(url, url) as (a, b):
        # b counted a when it started; a counts b when b says hello on the bus
        for _ in range(100):
            if a.other_nodes == b.other_nodes == 1:
                break
            await asyncio.sleep(0.02)
        assert a.other_nodes == b.other_nodes == 1
        yield a, b


async def numsub(channel: str, port: int = 6379) -> int:
    client = aioredis.Redis(port=port)
    try:
        [(_name, count)] = await client.pubsub_numsub(channel)
        return int(count)
    finally:
        await client.aclose()


async def test_an_event_published_on_one_node_wakes_a_waiter_on_another(
    two_buses: tuple[RedisBus, RedisBus],
) -> None:
    a, b = two_buses
    # each node's one subscription is confirmed by Redis before start() returns
    assert await numsub(a.channel) == 2
    async with a.subscribe("channel:abc") as sub, a.subscribe("channel:def") as bystander:
        # b's event goes to the other node (a), which hands it to its waiter of that topic
        assert await b.publish("channel:abc", {"event": "message", "seq": 1}) == 1
        assert await sub.get(5) == {"event": "message", "seq": 1}
        assert await sub.get(0.3) is None  # exactly once
        assert await bystander.get(0) is None  # only to the topic's waiters
        assert await b.publish("channel:other", {"event": "x"}) == 1  # a hears, no one waits
        assert await sub.get(0.3) is None and await bystander.get(0) is None


async def test_local_subscribers_are_woken_once_without_redis_round_trip(
    two_buses: tuple[RedisBus, RedisBus],
) -> None:
    a, b = two_buses
    async with a.subscribe("device:p1") as s1, a.subscribe("device:p1") as s2:
        async with b.subscribe("device:p1") as remote:
            # two local subscribers on a, one remote node (b)
            assert await a.publish("device:p1", {"event": "unlock", "n": 1}) == 3
            for sub in (s1, s2, remote):
                assert await sub.get(5) == {"event": "unlock", "n": 1}
                assert await sub.get(0.3) is None  # not a second time via Redis


async def test_a_full_queue_is_announced_so_in_process_waiters_need_not_poll() -> None:
    """Issue 15: waiters re-read the store every 5 s because an event could be dropped.

    A subscriber's full queue used to drop events silently. Now the dropped ones
    become one "resync" after the queued ones, so the in-process bus loses nothing
    unannounced and its waiters need no re-read timer (``recheck`` None); Redis,
    which can lose an event in flight, keeps one.
    """
    bus = InProcessBus(queue_size=2)
    async with bus.subscribe("channel:q") as sub:
        assert sub.recheck is None
        delivered = [
            await bus.publish("channel:q", {"event": "message", "seq": i}) for i in range(5)
        ]
        assert delivered == [1, 1, 0, 0, 0]
        got = [await sub.get(1) for _ in range(3)]
        assert got == [
            {"event": "message", "seq": 0},
            {"event": "message", "seq": 1},
            {"event": "resync"},
        ]
        assert await sub.get(0.05) is None  # announced once
        waiting = asyncio.create_task(sub.get(5))  # a waiter is woken by the next event
        await asyncio.sleep(0)
        assert await bus.publish("channel:q", {"event": "ended"}) == 1
        assert await asyncio.wait_for(waiting, 1) == {"event": "ended"}
    assert bus.subscriber_count("channel:q") == 0


async def test_redis_waiters_keep_a_re_read_timer_until_a_reconciler_covers_lost_events(
    two_buses: tuple[RedisBus, RedisBus],
) -> None:
    """A bare Redis bus can lose an event in flight: its waiters re-read the store every 5 s.

    Once the service runs a reconciler (unlatch/relay/reconcile.py) and says
    so, new subscriptions keep no timer; the reconciler's wake-up reaches only
    the local subscribers of the topics it names, through the subscription,
    after the events already queued and once however often it is asked.
    """
    a, _b = two_buses
    assert a.lossy
    async with a.subscribe("channel:t") as sub:
        assert sub.recheck == bus_redis.RECHECK == 5.0
    a.reconciled()
    async with a.subscribe("channel:t") as sub, a.subscribe("channel:u") as other:
        assert sub.recheck is None and other.recheck is None
        assert sorted(a.local_topics()) == ["channel:t", "channel:u"]
        await a.publish("channel:t", {"event": "message", "seq": 1})
        assert a.wake_local(["channel:t", "channel:gone"]) == 1
        assert a.wake_local(["channel:t"]) == 1
        assert await sub.get(1) == {"event": "message", "seq": 1}
        assert await sub.get(1) == {"event": "resync"}
        assert await sub.get(0) is None  # two wake-ups before it looked: one re-read
        assert await other.get(0) is None
        waiting = asyncio.create_task(sub.get(30))  # a waiter in get() is woken at once
        await asyncio.sleep(0)
        a.wake_local(["channel:t"])
        assert await asyncio.wait_for(waiting, 1) == {"event": "resync"}


async def test_waiters_come_and_go_without_a_redis_command(tmp_path: Path) -> None:
    """Issue 15: a waiter's own SUBSCRIBE/UNSUBSCRIBE cost a round trip each per exchange.

    A node subscribes once (its one channel); a waiter joining or leaving is a
    dict insert or removal on the node, whatever the topic: Redis counts no
    (un)subscribe command for a hundred waiters, and still one subscriber, the node.
    """
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    a = RedisBus(server.url)
    b = RedisBus(server.url)
    client = aioredis.Redis(port=server.port)

    async def commands(name: str) -> int:
        stats = await client.info("commandstats")
        return int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))

    try:
        await a.start()
        await b.start()
        before = [await commands(c) for c in ("subscribe", "unsubscribe")]
        for i in range(100):
            async with a.subscribe(f"channel:{i}") as sub:
                assert await b.publish(f"channel:{i}", {"event": "message", "seq": i}) == 1
                assert await sub.get(5) == {"event": "message", "seq": i}
            assert a.subscriber_count(f"channel:{i}") == 0
        assert [await commands(c) for c in ("subscribe", "unsubscribe")] == before
        assert await numsub(a.channel, server.port) == 2
    finally:
        await a.close()
        await b.close()
        await client.aclose()
        server.stop()


async def test_publishes_made_while_redis_is_away_arrive_in_order_when_it_returns(
    prefix: str,
) -> None:
    """The outbox: a publish never waits; what Redis did not take is sent, in order, later."""
    proxy = LoadBalancer([6379])  # a TCP proxy in front of the real Redis, for b only
    await proxy.start()
    direct = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    try:
        async with started(direct, f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}") as (
            a,
            b,
        ):
            async with a.subscribe("channel:o") as sub:
                await proxy.outage()  # b's connections reset, new ones refused
                begun = time.monotonic()
                for seq in range(5):
                    await b.publish("channel:o", {"event": "message", "seq": seq})
                assert time.monotonic() - begun < 0.1  # queued, not waited for
                for _ in range(200):  # until b has tried, failed and backs off
                    if b._backoff.delay(time.monotonic()) > 0:
                        break
                    await asyncio.sleep(0.01)
                assert b._backoff.delay(time.monotonic()) > 0 and len(b._outbox) == 5
                assert await sub.get(0) is None
                await proxy.start()
                got = [await sub.get(5) for _ in range(5)]
                assert got == [{"event": "message", "seq": seq} for seq in range(5)]
                assert await sub.get(0.3) is None  # once each
    finally:
        await proxy.close()


async def test_prefixes_keep_deployments_apart(prefix: str) -> None:
    url = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    async with started(url, url + "other:") as (mine, theirs):
        async with mine.subscribe("channel:x") as sub:
            assert await theirs.publish("channel:x", {"event": "message"}) == 0
            assert await sub.get(0.5) is None


async def test_redis_restart_resyncs_waiters_and_publishing_never_fails(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    a = RedisBus(server.url)
    b = RedisBus(server.url)
    await a.start()
    await b.start()
    try:
        async with a.subscribe("channel:r") as sub:
            server.stop()  # kill -9: every connection drops
            await asyncio.sleep(0.3)
            # publishing while Redis is down neither raises nor blocks the caller
            started = time.monotonic()
            assert await b.publish("channel:r", {"event": "message", "seq": 1}) == 0
            assert time.monotonic() - started < 3
            # a new waiter subscribing during the outage is not blocked either
            async with a.subscribe("channel:late") as late:
                server.start()
                # both waiters are told to re-read the store once the bus is back
                events = [await sub.get(10)]
                assert {"event": "resync"} in events or {"event": "message", "seq": 1} in events
                assert await late.get(10) == {"event": "resync"}
                assert a.reconnects >= 1
                # and live events flow again
                for _ in range(40):
                    if await b.publish("channel:late", {"event": "message", "seq": 2}) >= 1:
                        break
                    await asyncio.sleep(0.1)
                got = [await late.get(5) for _ in range(2)]
                assert {"event": "message", "seq": 2} in got
    finally:
        await a.close()
        await b.close()
        server.stop()


def _run_on(loop: str, scenario: Callable[[], Any]) -> None:
    """Run ``scenario()`` on a fresh loop: uvloop (the relay's, under uvicorn) or asyncio."""
    import uvloop

    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(scenario())


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_waiters_joining_and_leaving_while_redis_resets_the_connection_get_no_error(
    prefix: str, loop: str
) -> None:
    """Issue 15: a waiter subscribing while Redis drops got a 500 / 1011 close.

    Its own SUBSCRIBE (and a leaving waiter's UNSUBSCRIBE) ran on a connection
    being reset; on uvloop the write raised RuntimeError("... the handler is
    closed"). A waiter no longer sends any command: here Redis's connections
    are reset (TCP RST through a proxy) and, before the node can notice, a
    waiter leaves, another joins and the node publishes. None of it fails or
    waits; the joining waiter is told to re-read the store once the node's
    subscription is back (confirmed) and then gets live events again.
    """

    async def scenario() -> None:
        proxy = LoadBalancer([6379])  # a TCP proxy in front of the real Redis
        await proxy.start()
        bus = RedisBus(f"redis://127.0.0.1:{proxy.port}/0?prefix={prefix}")
        other = RedisBus(f"redis://127.0.0.1:6379/0?prefix={prefix}")  # another node
        direct = aioredis.Redis(port=6379)
        await bus.start()
        await other.start()
        try:
            leaving = bus.subscribe("channel:leaving")
            await leaving.__aenter__()
            assert proxy.reset_clients() >= 1
            for _ in range(2):
                await direct.ping()  # round trips on loopback: the resets have arrived
            await leaving.__aexit__(None, None, None)
            joining = bus.subscribe("channel:joining")
            sub = await asyncio.wait_for(joining.__aenter__(), 2)
            await bus.publish("channel:leaving", {"event": "ended"})
            assert await sub.get(10) == {"event": "resync"}
            got = None
            for _ in range(50):
                await other.publish("channel:joining", {"event": "message", "seq": 1})
                got = await sub.get(0.2)
                if got is not None:
                    break
            assert got == {"event": "message", "seq": 1}
            await joining.__aexit__(None, None, None)
            assert bus.reconnects >= 1
        finally:
            await bus.close()
            await other.close()
            await direct.aclose()
            await proxy.close()

    _run_on(loop, scenario)


# -- rate limits --------------------------------------------------------------------------


@pytest.fixture
async def two_limiters(prefix: str) -> AsyncIterator[tuple[RedisRateLimiter, RedisRateLimiter]]:
    a = RedisRateLimiter(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    b = RedisRateLimiter(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_a_bucket_is_shared_and_atomic_across_nodes(
    two_limiters: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    a, b = two_limiters
    rule = Rule(5, 60)
    results = await asyncio.gather(
        *((a if i % 2 else b).acquire([("pairing", "unlock:pairing:k", rule)]) for i in range(20))
    )
    assert results.count(None) == 5
    denied = [r for r in results if r is not None]
    assert all(d.scope == "pairing" for d in denied)
    assert all(0 < d.retry_after <= 12.5 for d in denied)  # 60 s / 5 tokens


async def test_refused_requests_take_no_token_from_the_other_buckets(
    two_limiters: tuple[RedisRateLimiter, RedisRateLimiter],
) -> None:
    a, b = two_limiters
    tight, loose = Rule(1, 60), Rule(3, 60)
    checks = [("pairing", "p", tight), ("device", "d", loose)]
    assert await a.acquire(checks) is None
    denied = await b.acquire(checks)
    assert denied is not None and denied.scope == "pairing"
    # "d" lost only the one token of the allowed request
    assert await b.acquire([("device", "d", loose)]) is None
    assert await a.acquire([("device", "d", loose)]) is None
    last = await a.acquire([("device", "d", loose)])
    assert last is not None and last.scope == "device"


async def test_buckets_refill_and_expire(
    prefix: str, two_limiters: tuple[RedisRateLimiter, RedisRateLimiter]
) -> None:
    a, b = two_limiters
    # a slow refill (a token per 15 s), so three calls are never too slow to be refused
    slow = Rule(2, 30)
    assert await a.acquire([("ip", "s", slow)]) is None
    assert await b.acquire([("ip", "s", slow)]) is None
    denied = await a.acquire([("ip", "s", slow)])
    assert denied is not None and denied.scope == "ip" and 0 < denied.retry_after <= 15
    # refill: one token per second; after a second and a bit the bucket has one again
    fast = Rule(1, 1)
    assert await a.acquire([("ip", "f", fast)]) is None
    early = await b.acquire([("ip", "f", fast)])  # refused unless a whole second passed
    assert early is None or 0 < early.retry_after <= 1.0
    await asyncio.sleep(1.2)
    assert await b.acquire([("ip", "f", fast)]) is None
    client = aioredis.Redis()
    try:
        ttl = await client.pttl(a.key("f"))
    finally:
        await client.aclose()
    assert 0 < ttl <= 2000  # an idle bucket disappears once it would be full again


async def test_limiter_falls_back_to_local_buckets_when_redis_is_down(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    calls: list[int] = []
    limiter = RedisRateLimiter(server.url, on_fallback=lambda: calls.append(1))
    try:
        rule = Rule(2, 60)
        assert await limiter.acquire([("ip", "x", rule)]) is None
        server.stop()
        # Redis gone: per-node buckets keep limits in force instead of failing requests
        assert await limiter.acquire([("ip", "y", rule)]) is None
        assert await limiter.acquire([("ip", "y", rule)]) is None
        denied = await limiter.acquire([("ip", "y", rule)])
        assert denied is not None and denied.scope == "ip"
        assert limiter.fallbacks == 3 and len(calls) == 3
        server.start()
        assert await limiter.acquire([("ip", "z", rule)]) is None
        assert limiter.fallbacks == 3 and len(calls) == 3  # back on the shared buckets
    finally:
        await limiter.close()
        server.stop()


async def test_a_relay_counts_the_checks_it_made_alone_while_redis_was_down(
    tmp_path: Path, relay_factory: Callable[..., RelayProcess]
) -> None:
    """unlatch_relay_rate_limit_fallbacks_total: limits held per node, not per deployment."""
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        relay = relay_factory(args=["--bus", server.url])
        metric = "unlatch_relay_rate_limit_fallbacks_total"

        def challenge() -> int:
            return httpx.post(relay.url + "/v1/auth/challenge", timeout=10).status_code

        assert await asyncio.to_thread(challenge) == 200
        assert relay.metric(metric) == 0
        server.stop()
        for _ in range(3):  # Redis gone: still served, on this node's own buckets
            assert await asyncio.to_thread(challenge) == 200
        assert relay.metric(metric) == 3
        assert "using per-node limits" in relay.logs()
        server.start()
        # back on the shared buckets: the counter stops growing
        deadline = time.monotonic() + 30
        while True:
            before = relay.metric(metric)
            assert await asyncio.to_thread(challenge) == 200
            if relay.metric(metric) == before:
                break
            assert time.monotonic() < deadline, "the limiter never went back to Redis"
            await asyncio.sleep(0.2)
    finally:
        server.stop()


def test_urls_pick_the_backends() -> None:
    assert split_redis_url("redis://h:1/2?prefix=abc:&socket_keepalive=true") == (
        "redis://h:1/2?socket_keepalive=true",
        "abc:",
    )
    assert split_redis_url("redis://h/0")[1] == "unlatch:"
    with pytest.raises(RelayConfigError, match="prefix"):
        split_redis_url("redis://h/0?prefix=bad prefix*")
    assert isinstance(open_bus("memory://"), InProcessBus)
    assert isinstance(open_bus("redis://127.0.0.1:6379/0"), RedisBus)
    assert isinstance(open_limiter("memory://"), MemoryRateLimiter)
    assert isinstance(open_limiter("redis://127.0.0.1:6379/0"), RedisRateLimiter)
    with pytest.raises(RelayConfigError):
        open_bus("kafka://broker")


async def test_a_silent_subscriber_connection_is_dropped_and_made_again(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subscriber connection that hears nothing, not even its pings' answers (a
    black-holed Redis), is aborted after DEAD_AFTER: the node subscribes again and
    its waiters re-read the store. Here its pings are not sent, so it goes silent."""
    monkeypatch.setattr(bus_redis, "PING_EVERY", 0.05)
    monkeypatch.setattr(bus_redis, "DEAD_AFTER", 0.3)
    monkeypatch.setattr(bus_redis, "PING", b"")  # nothing written: no answer comes
    url = f"redis://127.0.0.1:6379/0?prefix={prefix}"
    async with started(url, url) as (a, b):
        async with a.subscribe("channel:s") as sub:
            assert await sub.get(5) == {"event": "resync"}  # silent, aborted, back: re-read
            assert a.reconnects >= 1
            got = None
            for _ in range(50):  # and live events flow on the new connection
                await b.publish("channel:s", {"event": "message", "seq": 1})
                got = await sub.get(0.1)
                if got is not None and got != {"event": "resync"}:
                    break
            assert got == {"event": "message", "seq": 1}


async def test_replies_are_read_within_bounds() -> None:
    """The bus's and the limiter's own reply reader (redis_pipe.read_reply), bounded.

    RESP2 and RESP3 replies parse to bytes, integers and lists; an error reply
    comes back as a value (read whole: the connection stays in step); anything
    unknown, or a length, a line or a nesting past the bounds, is a broken
    connection (dropped, and made again), never a crash or an unbounded read.
    """

    async def read(data: bytes) -> object:
        stream = asyncio.StreamReader()
        stream.feed_data(data)
        stream.feed_eof()
        return await read_reply(stream)

    push = b">3\r\n$7\r\nmessage\r\n$5\r\np:bus\r\n$4\r\nab\r\n\r\n"
    assert await read(push) == [b"message", b"p:bus", b"ab\r\n"]  # a bulk is read by length
    assert await read(b"*3\r\n$9\r\nsubscribe\r\n$5\r\np:bus\r\n:1\r\n") == [
        b"subscribe",
        b"p:bus",
        1,
    ]
    assert await read(b"*2\r\n:0\r\n$1\r\n0\r\n") == [0, b"0"]  # the limiter's script
    assert await read(b"%1\r\n$5\r\np:bus\r\n:2\r\n") == [b"p:bus", 2]  # RESP3 NUMSUB
    assert await read(b"+PONG\r\n") == b"PONG"
    assert await read(b"_\r\n") is None
    missing = await read(b"-NOSCRIPT No matching script.\r\n")
    assert isinstance(missing, NoScriptError)
    wrong = await read(b"-WRONGTYPE not a hash\r\n")
    assert isinstance(wrong, ResponseError) and not isinstance(wrong, NoScriptError)
    deep = b"*1\r\n" * (redis_pipe.MAX_DEPTH + 1) + b":1\r\n"
    for broken in (
        f"${redis_pipe.MAX_BULK + 1}\r\n".encode(),  # too large
        f"*{redis_pipe.MAX_ITEMS + 1}\r\n".encode(),  # too many items
        deep,  # nested too deeply
        b"$-2\r\n",  # a negative length
        b">3\r\n$7\r\nmess",  # cut off
        b"$3\r\nabcde",  # not terminated where its length says
        b"+" + b"x" * redis_pipe.MAX_LINE + b"\r\n",  # a line past its bound
        b":twelve\r\n",  # not a number
        b"?\r\n",  # an unknown type
        b"",  # closed
    ):
        with pytest.raises(ConnectionError):
            await read(broken)
