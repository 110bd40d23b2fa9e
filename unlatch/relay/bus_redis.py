"""The Redis :class:`~unlatch.relay.bus.Bus`: wake-ups between relay nodes over Redis pub/sub.

Chosen by ``--bus redis://host:port/db?prefix=unlatch:``.

Why pub/sub and not streams: the bus carries *wake-ups*, not messages. Every
message is committed to the shared store (PostgreSQL) before its event is
published, and stays there until the desktop acknowledges it or the channel
expires; a waiter that (re)connects reads the store from ``after=<seq>``. So
the bus never needs to store or replay anything: a lost event costs latency,
never a message. Streams would add per-event storage, trimming and consumer
bookkeeping to guarantee something the store already guarantees. Pub/sub is
fire-and-forget, costs nothing when nobody listens, and keeps no payload.

How delivery survives failures:

* A waiter subscribes *before* it reads the store, and its Redis SUBSCRIBE is
  confirmed before :meth:`RedisBus.subscribe` returns (or a short timeout
  passes), so a post that lands after the read is always announced.
* An event lost in flight (a node killed between its store write and its
  publish; the outbox full or too old) is made up for by the node's
  reconciler (:mod:`unlatch.relay.reconcile`): once per ``sweep_interval``
  one store query asks which channels changed, and the local subscribers of
  those (only) get a ``resync``. Waiters therefore keep no timer
  (:attr:`~unlatch.relay.bus.Subscription.recheck` None) once the service
  has called :meth:`RedisBus.reconciled`; a bus used without a reconciler
  keeps the old safety net, a re-read every ``RECHECK`` seconds per waiter.
* When this node's subscriber connection comes back after a drop, every local
  subscriber gets a ``{"event": "resync"}`` wake-up and re-reads the store at
  once: events published while the connection was down are not needed.
* A publish that fails (Redis unreachable) is kept in a small outbox and sent
  when Redis answers again (events older than ``OUTBOX_MAX_AGE`` are dropped).
* Subscribers on the publishing node are woken directly, without Redis, so a
  single node keeps working while Redis is down.

A waiting node that restarts loses its sockets; the clients reconnect (to any
node) with ``after`` and get everything from the store.

One pub/sub connection per node carries all of that node's subscriptions
(``<prefix>bus:<topic>``); subscriptions are reference-counted, so a thousand
sockets waiting on one channel cost one SUBSCRIBE.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Collection, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.backoff import NoBackoff
from redis.retry import Retry

from unlatch.relay.bus import Bus, Event, Subscription, _QueueSubscription, _wake_all
from unlatch.relay.codec import json_loads
from unlatch.relay.logs import log
from unlatch.relay.redis_url import (
    REDIS_ERRORS,
    RETRY_CAP,
    RETRY_FIRST,
    Backoff,
    describe,
    split_redis_url,
)

SUBSCRIBE_WAIT = 1.0  # how long subscribe() waits for Redis to confirm
# A request never waits longer than this on a publish: an unreachable (even
# black-holed) Redis turns into a queued event, not a slow answer.
PUBLISH_TIMEOUT = 1.0
PING_EVERY = 5.0  # ping the subscriber connection after this much silence
DEAD_AFTER = 15.0  # no answer for this long: reconnect
# An event can be lost in flight here (a node killed between its store write and its
# publish; the outbox full or too old): without a reconciler, waiters re-read the store
# this often anyway.
RECHECK = 5.0
OUTBOX_SIZE = 1000
OUTBOX_MAX_AGE = 30.0
_REDIS_ERRORS = REDIS_ERRORS


class _NotYet(Exception):
    """Redis failed a moment ago; it is tried again after the back-off."""


class RedisBus(Bus):
    """Pub/sub over one Redis server (or a Sentinel-managed primary behind one address)."""

    lossy = True

    def __init__(self, url: str, *, queue_size: int = 64) -> None:
        self._recheck: float | None = RECHECK  # None once a reconciler covers lost events
        self.url, self.prefix = split_redis_url(url)
        self.where = describe(self.url)
        self.node = secrets.token_hex(8)  # our own publications are delivered locally
        self._queue_size = queue_size
        self._local: dict[str, set[_QueueSubscription]] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        self._lock = asyncio.Lock()  # orders (un)subscribe commands and reconnects
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._outbox: deque[tuple[float, str, str]] = deque(maxlen=OUTBOX_SIZE)
        self._connected = asyncio.Event()
        self._last_error = 0.0
        self._closing = False
        self._backoff = Backoff()  # for publishes
        self.reconnects = 0
        no_retry = Retry(NoBackoff(), 0)
        self._cmd = Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 1),
        )
        self._sub = Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=None,
            retry=no_retry,
        )

    def _channel(self, topic: str) -> str:
        return f"{self.prefix}bus:{topic}"

    @property
    def _control(self) -> str:
        return f"{self.prefix}bus-control"

    # lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_loop())
        try:
            await asyncio.wait_for(self._connected.wait(), 3.0)
        except TimeoutError:
            log(
                "redis bus not connected yet; retrying in background",
                logging.WARNING,
                redis=self.where,
            )

    async def close(self) -> None:
        self._closing = True
        reader = self._reader
        # Cancel until it is done: redis-py can swallow a cancellation that lands while
        # its own read timeout fires (the read then ends in TimeoutError instead), and a
        # single cancel() left close() waiting for ever on a reader that went on reading.
        while reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait({reader}, timeout=0.2)
        for task in list(self._tasks):
            task.cancel()
        self._local.clear()
        for client in (self._cmd, self._sub):
            with contextlib.suppress(*_REDIS_ERRORS):
                await client.aclose()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _warn(self, what: str, exc: BaseException) -> None:
        """Log a Redis failure at most every few seconds (an outage must not flood logs)."""
        now = time.monotonic()
        if now - self._last_error > 5.0:
            self._last_error = now
            log(what, logging.WARNING, redis=self.where, error=type(exc).__name__)

    # the subscriber connection ------------------------------------------------------
    async def _read_loop(self) -> None:
        backoff = RETRY_FIRST
        first = True
        while not self._closing:
            ps = self._sub.pubsub()
            try:
                async with self._lock:
                    channels = [self._channel(t) for t in self._local]
                    self._confirmed = {
                        c: asyncio.get_running_loop().create_future() for c in channels
                    }
                    await ps.subscribe(self._control, *channels)
                    self._pubsub = ps
                self._connected.set()
                backoff = RETRY_FIRST
                if not first:
                    self.reconnects += 1
                    log("redis bus reconnected", redis=self.where, topics=len(channels))
                    self._resync()
                first = False
                if self._outbox:
                    self._spawn(self._flush_outbox())
                await self._pump(ps)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - this task must outlive any failure
                self._warn("redis bus connection lost", exc)
            finally:
                # under the lock: a (un)subscribe holding it has taken the old connection
                # and may be using it; it finishes (or fails) before the teardown, so its
                # confirmation future is not completed under its feet
                async with self._lock:
                    self._pubsub = None
                    self._connected.clear()
                    for fut in self._confirmed.values():
                        if not fut.done():
                            fut.set_result(None)
                with contextlib.suppress(Exception):
                    await ps.aclose()
            # capped low: the node subscribes again (and resyncs its waiters, and sends
            # its outbox) within RETRY_CAP of Redis's return; a refused connect is cheap
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_CAP)

    async def _pump(self, ps: PubSub) -> None:
        """Read messages until the connection fails (raises) or goes silent."""
        last_heard = time.monotonic()
        pinged = False
        while True:
            if self._pubsub is not ps:  # a command failed on it: _abandon()
                raise ConnectionError("redis pub/sub connection abandoned")
            msg = await ps.get_message(timeout=PING_EVERY)
            now = time.monotonic()
            if msg is None:
                if now - last_heard > DEAD_AFTER:
                    raise ConnectionError("redis pub/sub connection went silent")
                if not pinged or now - last_heard > PING_EVERY:
                    async with self._lock:
                        if self._pubsub is not ps:
                            raise ConnectionError("redis pub/sub connection abandoned")
                        await asyncio.wait_for(ps.ping(), PUBLISH_TIMEOUT)
                    pinged = True
                continue
            last_heard = now
            pinged = False
            kind = msg.get("type")
            channel = msg.get("channel")
            if kind == "message" and isinstance(channel, str):
                self._dispatch(channel, msg.get("data"))
            elif kind == "subscribe" and isinstance(channel, str):
                fut = self._confirmed.get(channel)
                if fut is not None and not fut.done():
                    fut.set_result(None)

    def _dispatch(self, channel: str, data: Any) -> None:
        head = f"{self.prefix}bus:"
        if not channel.startswith(head) or not isinstance(data, str) or len(data) > 65536:
            return
        try:
            envelope = json_loads(data)
        except ValueError:
            return
        if not isinstance(envelope, dict) or envelope.get("node") == self.node:
            return  # ours: already delivered locally
        event = envelope.get("event")
        if isinstance(event, dict):
            self._deliver(channel[len(head) :], event)

    def _deliver(self, topic: str, event: Event) -> int:
        delivered = 0
        for sub in list(self._local.get(topic, ())):
            if sub.offer(event):  # a full queue: that subscriber gets a resync instead
                delivered += 1
        return delivered

    def _resync(self) -> None:
        """Wake every local subscriber to re-read the store (events may have been missed)."""
        for topic in list(self._local):
            self._deliver(topic, {"event": "resync"})

    # the reconciler --------------------------------------------------------------------
    def reconciled(self) -> None:
        self._recheck = None

    def local_topics(self) -> Collection[str]:
        return list(self._local)

    def wake_local(self, topics: Iterable[str]) -> int:
        return _wake_all(self._local, topics)

    # publishing --------------------------------------------------------------------
    async def publish(self, topic: str, event: Event) -> int:
        """Wake local subscribers directly, other nodes through Redis; never raises.

        Returns local subscribers plus the number of *other nodes* subscribed.
        """
        local = self._deliver(topic, event)
        channel = self._channel(topic)
        payload = json.dumps({"node": self.node, "event": event}, separators=(",", ":"))
        try:
            if not self._backoff.ready(time.monotonic()):  # failed a moment ago: queue it
                raise _NotYet
            try:
                receivers = int(
                    await asyncio.wait_for(self._cmd.publish(channel, payload), PUBLISH_TIMEOUT)
                )
            except _REDIS_ERRORS:
                self._backoff.failed(time.monotonic())
                raise
            self._backoff.succeeded()
        except (*_REDIS_ERRORS, _NotYet) as exc:
            self._warn("redis publish failed; queued", exc)
            self._outbox.append((time.monotonic(), channel, payload))
            return local
        if self._outbox:
            self._spawn(self._flush_outbox())
        ours = 1 if topic in self._local and self._pubsub is not None else 0
        return local + max(0, receivers - ours)

    async def _flush_outbox(self) -> None:
        while self._outbox:
            stamp, channel, payload = self._outbox[0]
            if time.monotonic() - stamp <= OUTBOX_MAX_AGE:
                try:
                    await asyncio.wait_for(self._cmd.publish(channel, payload), PUBLISH_TIMEOUT)
                except _REDIS_ERRORS:
                    return
            if self._outbox and self._outbox[0][0] == stamp:
                self._outbox.popleft()

    # subscribing -------------------------------------------------------------------
    async def _ensure_subscribed(self, topic: str) -> None:
        channel = self._channel(topic)
        async with self._lock:
            ps = self._pubsub
            if ps is None:
                return  # disconnected: the reconnect subscribes every local topic, then resyncs
            fut = self._confirmed.get(channel)
            if fut is None:
                fut = asyncio.get_running_loop().create_future()
                self._confirmed[channel] = fut
                try:
                    # bounded: the lock is held, and a black-holed Redis must not stall it
                    await asyncio.wait_for(ps.subscribe(channel), SUBSCRIBE_WAIT)
                except _REDIS_ERRORS as exc:
                    self._warn("redis subscribe failed", exc)
                    if not fut.done():
                        fut.set_result(None)
                    await self._abandon(ps)
                    return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(fut), SUBSCRIBE_WAIT)

    async def _maybe_unsubscribe(self, topic: str) -> None:
        channel = self._channel(topic)
        async with self._lock:
            if topic in self._local:
                return  # someone subscribed again meanwhile
            self._confirmed.pop(channel, None)
            ps = self._pubsub
            if ps is None:
                return
            try:
                await asyncio.wait_for(ps.unsubscribe(channel), SUBSCRIBE_WAIT)
            except _REDIS_ERRORS as exc:
                self._warn("redis unsubscribe failed", exc)
                await self._abandon(ps)

    async def _abandon(self, ps: PubSub) -> None:
        """Give up a subscriber connection a command failed on (the caller holds the lock).

        redis-py would quietly reconnect it at the next command, and the events
        published meanwhile would be lost without anyone knowing. Closing it
        instead makes the reader fail, reconnect (subscribing every local topic)
        and wake every local subscriber with "resync", as after any drop.
        """
        if self._pubsub is ps:
            self._pubsub = None
        with contextlib.suppress(Exception):
            await ps.aclose()

    @contextlib.asynccontextmanager
    async def _subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        sub = _QueueSubscription(self._queue_size, recheck=self._recheck)
        self._local.setdefault(topic, set()).add(sub)
        try:
            await self._ensure_subscribed(topic)
            yield sub
        finally:
            subs = self._local.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._local[topic]
                    self._spawn(self._maybe_unsubscribe(topic))

    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        return self._subscribe(topic)

    def subscriber_count(self, topic: str) -> int:
        """Local subscribers of a topic (for tests and metrics)."""
        return len(self._local.get(topic, ()))
