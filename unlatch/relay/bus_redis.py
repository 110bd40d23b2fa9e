"""The Redis :class:`~unlatch.relay.bus.Bus`: wake-ups between relay nodes over Redis pub/sub.

Chosen by ``--bus redis://host:port/db?prefix=unlatch:``.

Why pub/sub and not streams: the bus carries *wake-ups*, not messages. Every
message is committed to the shared store (PostgreSQL) before its event is
published, and stays there until the desktop acknowledges it or the channel
expires; a waiter that (re)connects reads the store from ``after=<seq>``. So
the bus never needs to store or replay anything: a lost event costs latency,
never a message. Streams would add per-event storage, trimming and consumer
bookkeeping to guarantee something the store already guarantees. Pub/sub is
fire-and-forget and keeps no payload.

Why one subscription per node, not one per waiter: a waiter lives for one
exchange (an unlock request's channel is new each time), so a Redis
subscription per topic cost a SUBSCRIBE, its confirmation and an UNSUBSCRIBE
per exchange, about 0.3 ms of relay CPU plus a lock and a task. Instead every
node subscribes once, when it connects, to one channel (``<prefix>bus``) that
carries every event with its topic, and hands each to its own subscribers of
that topic: a waiter's subscription is a dict insert, and leaving is a dict
removal. The price is the fan-out: every node receives every event of the
deployment (its own too). The node's own reader (:func:`~unlatch.relay.redis_pipe.read_reply`) and a
few bytes compared before any decoding keep that at about 10 us per event
and node (14 us when a local waiter gets it). An exchange makes about five
events, so with N nodes each node spends about 50 us x N receiving per
exchange of its own, against the 0.3 ms the per-waiter subscriptions cost:
one channel is the cheaper choice up to five or six nodes. A deployment of
many more nodes would rather hash topics into shards and have each node
subscribe to the shards its waiters use (this relay does not).

How delivery survives failures:

* A waiter subscribes *before* it reads the store, and the node's Redis
  SUBSCRIBE is confirmed before :meth:`RedisBus.subscribe` returns (at once
  while it is live; a waiter joining while it is being made waits for the
  confirmation, or a short timeout), so a post that lands after the read is
  always announced.
* An event lost in flight (a node killed between its store write and its
  publish; the outbox full or too old) is made up for by the node's
  reconciler (:mod:`unlatch.relay.reconcile`): once per ``sweep_interval``
  one store query asks which channels changed, and the local subscribers of
  those (only) get a ``resync``. Waiters therefore keep no timer
  (:attr:`~unlatch.relay.bus.Subscription.recheck` None) once the service
  has called :meth:`RedisBus.reconciled`; a bus used without a reconciler
  keeps the old safety net, a re-read every ``RECHECK`` seconds per waiter.
* When this node's subscriber connection comes back after a drop, every local
  subscriber gets a ``{"event": "resync"}`` wake-up once Redis has confirmed
  the new subscription, and re-reads the store at once: events published
  while the connection was down are not needed.
* A publish never waits for Redis: its event goes to an outbox that one task
  sends, everything queued at once in one write
  (:class:`~unlatch.relay.redis_pipe.RedisPipe`); while Redis is unreachable
  the outbox keeps the events (up to ``OUTBOX_SIZE``, for ``OUTBOX_MAX_AGE``
  seconds) and sends them, in order, when Redis answers again.
* Subscribers on the publishing node are woken directly, without Redis, so a
  single node keeps working while Redis is down.

A waiting node that restarts loses its sockets; the clients reconnect (to any
node) with ``after`` and get everything from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Collection, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError
from redis.retry import Retry

from unlatch.relay.bus import RESYNC, Bus, Event, Subscription, _QueueSubscription, _wake_all
from unlatch.relay.codec import json_loads
from unlatch.relay.logs import log
from unlatch.relay.redis_pipe import MAX_BATCH, RedisPipe, read_reply, streams
from unlatch.relay.redis_url import (
    REDIS_ERRORS,
    RETRY_CAP,
    RETRY_FIRST,
    Backoff,
    describe,
    split_redis_url,
)

SUBSCRIBE_WAIT = 1.0  # how long subscribe() waits for Redis to confirm the node's subscription
CONNECT_WAIT = 3.0  # connecting the subscriber (TCP, TLS, HELLO) and sending its SUBSCRIBE
# A batch of publishes that Redis has not answered within this is failed and kept in the
# outbox: an unreachable (even black-holed) Redis delays wake-ups, it never blocks a request.
PUBLISH_TIMEOUT = 1.0
PING_EVERY = 5.0  # ping the subscriber connection after this much silence
DEAD_AFTER = 15.0  # no answer for this long: reconnect
# An event can be lost in flight here (a node killed between its store write and its
# publish; the outbox full or too old): without a reconciler, waiters re-read the store
# this often anyway.
RECHECK = 5.0
OUTBOX_SIZE = 1000
OUTBOX_MAX_AGE = 30.0
PING = b"*1\r\n$4\r\nPING\r\n"
NODE_ID_LEN = 16  # hex digits of a node's id, the first thing in every event it publishes
_REDIS_ERRORS = REDIS_ERRORS


def _retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a failed reply's error as seen (the failure was handled and logged once)."""
    if not fut.cancelled():
        fut.exception()


class RedisBus(Bus):
    """Pub/sub over one Redis server (or a Sentinel-managed primary behind one address)."""

    lossy = True

    def __init__(self, url: str, *, queue_size: int = 64) -> None:
        self._recheck: float | None = RECHECK  # None once a reconciler covers lost events
        self.url, self.prefix = split_redis_url(url)
        self.where = describe(self.url)
        self.node = secrets.token_hex(NODE_ID_LEN // 2)  # our own events come back: skipped
        self._node_bytes = self.node.encode()
        self._channel_bytes = self.channel.encode()
        self._queue_size = queue_size
        self._local: dict[str, set[_QueueSubscription]] = {}
        # done once Redis confirmed the node's subscription on the current connection
        self._live: asyncio.Future[None] | None = None
        # the subscriber connection, once its SUBSCRIBE is sent; None while it is down
        self._subscriber: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # (time queued, payload): every publish goes through it, in order
        self._outbox: deque[tuple[float, str]] = deque(maxlen=OUTBOX_SIZE)
        self._outbox_ready = asyncio.Event()
        self._drained = asyncio.Event()  # set while the outbox is empty
        self._others = 0  # other nodes subscribed, as Redis last counted them
        self._connected = asyncio.Event()
        self._last_error = 0.0
        self._closing = False
        self._backoff = Backoff()  # for publishes
        self.reconnects = 0
        self._cmd = Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 0),
        )
        self._pipe = RedisPipe(self._cmd, PUBLISH_TIMEOUT)
        self._sub = Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=None,
            retry=Retry(NoBackoff(), 0),
        )

    @property
    def channel(self) -> str:
        """The one Redis channel every node of the deployment publishes and listens on."""
        return f"{self.prefix}bus"

    # lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read_loop())
        self._sender = asyncio.create_task(self._send_loop())
        try:  # until Redis confirmed the node's subscription, and counted the nodes
            await asyncio.wait_for(self._connected.wait(), 3.0)
            await self._count_nodes()
        except TimeoutError:
            log(
                "redis bus not connected yet; retrying in background",
                logging.WARNING,
                redis=self.where,
            )

    async def close(self) -> None:
        # what was published just before (a shutdown's own events) goes out first, briefly
        if self._sender is not None and self._outbox and self._subscriber is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), PUBLISH_TIMEOUT)
        self._closing = True
        # Cancel until it is done: redis-py can swallow a cancellation that lands while
        # its own read timeout fires (the read then ends in TimeoutError instead), and a
        # single cancel() left close() waiting for ever on a reader that went on reading.
        for task in (self._reader, self._sender):
            while task is not None and not task.done():
                task.cancel()
                await asyncio.wait({task}, timeout=0.2)
        for task in list(self._tasks):
            task.cancel()
        self._local.clear()
        await self._pipe.close()
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
        loop = asyncio.get_running_loop()
        while not self._closing:
            # a bare connection, not redis-py's PubSub: its per-message machinery cost
            # about 30 us of each event's 45 (every node receives every event)
            conn = self._sub.connection_pool.make_connection()
            self._live = loop.create_future()
            try:
                async with asyncio.timeout(CONNECT_WAIT):
                    await conn.connect()
                    await conn.send_command("SUBSCRIBE", self.channel, check_health=False)
                self._subscriber = conn
                backoff = RETRY_FIRST
                if not first:
                    self.reconnects += 1
                    log("redis bus reconnected", redis=self.where, waiting=len(self._local))
                first = False
                await self._pump(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - this task must outlive any failure
                self._warn("redis bus connection lost", exc)
            finally:
                self._subscriber = None
                self._connected.clear()
                if not self._live.done():  # a waiter joining now does not wait for it
                    self._live.set_result(None)
                with contextlib.suppress(Exception):
                    await conn.disconnect(nowait=True)
            # capped low: the node subscribes again (and resyncs its waiters) within
            # RETRY_CAP of Redis's return; a refused connect is cheap
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RETRY_CAP)

    async def _pump(self, conn: AbstractConnection) -> None:
        """Read pub/sub replies until the connection fails (raises) or goes silent.

        The stream is read by :func:`~unlatch.relay.redis_pipe.read_reply`
        (bounded), not redis-py's ``PubSub``: about 10 us an event instead of
        43 (every node receives every event). Silence is watched by a timer
        rather than a timeout on each read (a timeout context per event cost
        about a quarter of its CPU): after ``PING_EVERY`` without a byte it
        pings, after ``DEAD_AFTER`` it aborts the connection, which ends the
        read with an error.
        """
        stream, writer = streams(conn)
        live = self._live
        loop = asyncio.get_running_loop()
        heard = [time.monotonic()]
        watch: asyncio.TimerHandle | None = None

        def watchdog() -> None:
            nonlocal watch
            silent = time.monotonic() - heard[0]
            if silent > DEAD_AFTER:
                # abort, not close: a close waits to flush what a black-holed Redis never
                # takes; an abort ends the read at once (an error: reconnect)
                writer.transport.abort()
                return
            if silent > PING_EVERY:
                writer.write(PING)
            watch = loop.call_later(PING_EVERY, watchdog)

        watch = loop.call_later(PING_EVERY, watchdog)
        try:
            while True:
                reply = await read_reply(stream)
                heard[0] = time.monotonic()
                if isinstance(reply, ResponseError):
                    raise ConnectionError("redis refused the subscriber: " + str(reply))
                if not isinstance(reply, list) or len(reply) < 3:
                    continue  # the answer to our PING, or nothing we know
                kind = reply[0]
                if kind == b"message":
                    self._dispatch(reply[2])
                elif kind == b"subscribe" and reply[1] == self._channel_bytes:
                    if live is not None and not live.done():
                        live.set_result(None)
                    self._connected.set()
                    # Live again: whatever was published while it was not is unknown, so
                    # every waiter re-reads the store (none on the first connect); and how
                    # many other nodes listen, for publish()'s count, until a publish says
                    self._resync()
                    self._spawn(self._count_nodes())
                    self._hello()
        finally:
            if watch is not None:
                watch.cancel()

    def _dispatch(self, data: Any) -> None:
        """One received event, ``<node><topic>\\n<JSON>``: ours and unwatched ones cost little."""
        if not isinstance(data, bytes) or data.startswith(self._node_bytes):
            return  # ours (already delivered locally) or not an event
        end = data.find(b"\n", NODE_ID_LEN)
        if end < 0:
            return
        try:
            topic = data[NODE_ID_LEN:end].decode()
        except UnicodeDecodeError:
            return
        if not topic:  # another node's hello: it just (re)subscribed
            self._spawn(self._count_nodes())
            return
        subs = self._local.get(topic)
        if not subs:
            return  # nobody here waits on that topic: not even decoded
        try:
            event = json_loads(data[end + 1 :])
        except ValueError:
            return
        if isinstance(event, dict):
            for sub in list(subs):
                sub.offer(event)  # a full queue: that subscriber gets a resync instead

    def _deliver(self, topic: str, event: Event) -> int:
        delivered = 0
        for sub in list(self._local.get(topic, ())):
            if sub.offer(event):  # a full queue: that subscriber gets a resync instead
                delivered += 1
        return delivered

    def _resync(self) -> None:
        """Wake every local subscriber to re-read the store (events may have been missed)."""
        for topic in list(self._local):
            self._deliver(topic, RESYNC)

    @property
    def other_nodes(self) -> int:
        """The other nodes listening on the bus, as Redis last counted them."""
        return self._others

    def _hello(self) -> None:
        """Tell the other nodes this one (re)subscribed, so they count the nodes again."""
        self._outbox.append((time.monotonic(), self.node + "\n"))
        self._outbox_ready.set()

    async def _count_nodes(self) -> None:
        with contextlib.suppress(*_REDIS_ERRORS, ValueError, TypeError, IndexError):
            reply = await self._pipe.call("PUBSUB", "NUMSUB", self.channel)
            self._others = max(0, int(reply[1]) - 1)

    # the reconciler --------------------------------------------------------------------
    def reconciled(self) -> None:
        self._recheck = None

    def local_topics(self) -> Collection[str]:
        return list(self._local)

    def wake_local(self, topics: Iterable[str]) -> int:
        return _wake_all(self._local, topics)

    # publishing --------------------------------------------------------------------
    async def publish(self, topic: str, event: Event) -> int:
        """Wake local subscribers directly, other nodes through Redis; never raises nor waits.

        Returns the local subscribers woken plus the other nodes the event goes
        to (as Redis last counted the nodes listening; each may have any
        number of subscribers of the topic, or none).
        """
        if not topic or "\n" in topic:
            raise ValueError("a bus topic is not empty and has no line break")
        local = self._deliver(topic, event)
        payload = self.node + topic + "\n" + json.dumps(event, separators=(",", ":"))
        self._outbox.append((time.monotonic(), payload))  # full: the oldest is dropped
        self._outbox_ready.set()
        self._drained.clear()
        # while the node is cut off from Redis, it cannot tell who will hear it
        return local + (self._others if self._subscriber is not None else 0)

    async def _send_loop(self) -> None:
        """Send the outbox in order, everything queued in one write; keep it while Redis fails."""
        outbox = self._outbox
        while True:
            if not outbox:
                self._outbox_ready.clear()
                self._drained.set()
                await self._outbox_ready.wait()
                continue
            now = time.monotonic()
            if not self._backoff.ready(now):  # failed a moment ago: not again yet
                await asyncio.sleep(self._backoff.delay(now))
                continue
            while outbox and now - outbox[0][0] > OUTBOX_MAX_AGE:
                outbox.popleft()  # too old to matter: the reconciler has covered it
            batch = list(itertools.islice(outbox, MAX_BATCH))
            replies = [self._pipe.call("PUBLISH", self.channel, p) for _t, p in batch]
            sent = 0
            try:
                for reply in replies:
                    receivers = int(await reply)
                    sent += 1
                    self._others = max(0, receivers - (1 if self._subscriber is not None else 0))
            except _REDIS_ERRORS as exc:
                self._backoff.failed(time.monotonic())
                self._warn("redis publish failed; queued", exc)
            else:
                self._backoff.succeeded()
            finally:
                for reply in replies[sent:]:  # failed with the batch: already logged once
                    reply.add_done_callback(_retrieve)
            for entry in batch[:sent]:
                if outbox and outbox[0] is entry:  # not dropped meanwhile by a full outbox
                    outbox.popleft()

    # subscribing -------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        sub = _QueueSubscription(self._queue_size, recheck=self._recheck)
        self._local.setdefault(topic, set()).add(sub)
        try:
            live = self._live
            if self._subscriber is not None and live is not None and not live.done():
                # the node's subscription is being made: confirmed before the waiter reads
                # (if the connection is down instead, its return resyncs this waiter)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(live), SUBSCRIBE_WAIT)
            yield sub
        finally:
            subs = self._local.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._local[topic]

    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        return self._subscribe(topic)

    def subscriber_count(self, topic: str) -> int:
        """Local subscribers of a topic (for tests and metrics)."""
        return len(self._local.get(topic, ()))
