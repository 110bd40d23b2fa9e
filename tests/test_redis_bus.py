"""The Redis bus and the Redis rate limiter against a real Redis.

Two :class:`RedisBus` (or limiter) instances on one Redis are two relay
nodes. Tests that stop Redis use a private ``redis-server`` on a random port,
never the shared one; the others use the shared server with a random key
prefix, removed afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from fixtures.relay import RelayProcess
from fixtures.scale import LoadBalancer, PrivateRedis, redis_cleanup, redis_prefix, require_redis

from unlatch.relay import bus_redis
from unlatch.relay.bus import InProcessBus, open_bus
from unlatch.relay.bus_redis import RedisBus
from unlatch.relay.errors import RelayConfigError
from unlatch.relay.ratelimit import MemoryRateLimiter, Rule, open_limiter
from unlatch.relay.ratelimit_redis import RedisRateLimiter
from unlatch.relay.redis_url import split_redis_url


@pytest.fixture
def prefix() -> Iterator[str]:
    require_redis()
    p = redis_prefix()
    yield p
    redis_cleanup(6379, p)


@pytest.fixture
async def two_buses(prefix: str) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    a = RedisBus(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    b = RedisBus(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    await a.start()
    await b.start()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


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
    async with a.subscribe("channel:abc") as sub:
        # the subscription is confirmed by Redis before subscribe() returns
        assert await numsub(a._channel("channel:abc")) == 1
        assert await b.publish("channel:abc", {"event": "message", "seq": 1}) == 1
        assert await sub.get(5) == {"event": "message", "seq": 1}
        assert await sub.get(0.3) is None  # exactly once
    assert await b.publish("channel:other", {"event": "x"}) == 0


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


async def test_subscriptions_are_reference_counted_and_released(
    two_buses: tuple[RedisBus, RedisBus],
) -> None:
    a, _b = two_buses
    channel = a._channel("channel:rc")
    async with a.subscribe("channel:rc"):
        async with a.subscribe("channel:rc"):
            assert await numsub(channel) == 1  # one SUBSCRIBE for both
        await asyncio.sleep(0.2)
        assert await numsub(channel) == 1  # one subscriber left
    for _ in range(50):
        if await numsub(channel) == 0:
            break
        await asyncio.sleep(0.05)
    assert await numsub(channel) == 0
    assert a.subscriber_count("channel:rc") == 0


async def test_prefixes_keep_deployments_apart(prefix: str) -> None:
    mine = RedisBus(f"redis://127.0.0.1:6379/0?prefix={prefix}")
    theirs = RedisBus(f"redis://127.0.0.1:6379/0?prefix={prefix}other:")
    await mine.start()
    await theirs.start()
    try:
        async with mine.subscribe("channel:x") as sub:
            assert await theirs.publish("channel:x", {"event": "message"}) == 0
            assert await sub.get(0.5) is None
    finally:
        await mine.close()
        await theirs.close()


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
    prefix: str, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: a waiter subscribing while Redis drops got a 500 / 1011 close.

    The race, made to happen every time: the bus's own lock orders its Redis
    commands, so the test holds it while a waiter leaves (its UNSUBSCRIBE
    queues), another joins (its SUBSCRIBE queues) and the bus's reader queues
    its ping; then Redis's connections are reset (TCP RST through a proxy)
    and the lock released. Both commands now run on the reset connection
    before the reader can notice. On uvloop a write there raises
    RuntimeError("... the handler is closed"): the leaving waiter's task
    died with it and the joining waiter got the exception. Now neither fails,
    and the joining waiter is told to re-read the store when the bus is back
    and gets live events again.
    """
    monkeypatch.setattr(bus_redis, "PING_EVERY", 0.05)  # the reader queues for its ping soon

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
            await bus._lock.acquire()
            await leaving.__aexit__(None, None, None)  # spawns the UNSUBSCRIBE
            unsubscribes = list(bus._tasks)
            joining = bus.subscribe("channel:joining")
            joined = asyncio.create_task(joining.__aenter__())
            while len(bus._lock._waiters or ()) < 3:  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)  # until unsubscribe, subscribe and ping all wait
            assert proxy.reset_clients() >= 1
            for _ in range(2):
                await direct.ping()  # round trips on loopback: the resets have arrived
            bus._lock.release()
            results = await asyncio.gather(*unsubscribes, return_exceptions=True)
            assert not [r for r in results if isinstance(r, BaseException)], results
            sub = await asyncio.wait_for(joined, 10)
            assert await sub.get(10) == {"event": "resync"}
            got = None
            for _ in range(50):
                if await other.publish("channel:joining", {"event": "message", "seq": 1}) >= 1:
                    got = await sub.get(5)
                    break
                await asyncio.sleep(0.1)  # until the bus's new SUBSCRIBE is in place
            assert got == {"event": "message", "seq": 1}
            await joining.__aexit__(None, None, None)
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
