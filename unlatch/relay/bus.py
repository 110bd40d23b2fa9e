"""Publish/subscribe between the parts of the relay that wait and those that post.

The bus carries *wake-ups*, not the truth: every message is first written to
the :class:`~unlatch.relay.store.Store`, then an event is published on the
channel's topic (carrying a copy of the message,
:func:`unlatch.relay.frames.message_event`, which a waiter next in line may
forward instead of reading it back). A waiter subscribes *before* reading the
store, so it cannot miss a message; a lost or dropped event costs at most one
extra store read at the next wake-up. That is what makes a Redis pub/sub
backend, which drops messages when a node restarts, safe to slot in.

A subscription never loses an event silently: when its queue is full, the
events that did not fit are replaced by one ``{"event": "resync"}`` (re-read
the store) delivered after the queued ones. So on a bus that cannot lose
events in flight (the in-process bus) a waiter needs no timer and an idle
waiter costs no CPU. A bus that can (:attr:`Bus.lossy`; Redis: a node killed
between its store write and its publish) says how often its waiters must
re-read the store anyway, in :attr:`Subscription.recheck`, until the service
attaches a reconciler (:mod:`unlatch.relay.reconcile`, :meth:`Bus.reconciled`):
one store query per node and period that wakes the local subscribers of every
channel that changed, so the waiters need no timer there either.

Topics: ``channel:<id>`` (a message was posted / the channel ended) and
``device:<device_id>`` (an unlock notification for a phone's listeners).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from typing import Any

Event = dict[str, Any]
RESYNC: Event = {"event": "resync"}


class Subscription(abc.ABC):
    """A live subscription; :meth:`get` waits for the next event."""

    # Seconds after which a waiter must re-read the store even without an event,
    # because this bus can lose one in flight; None: it cannot (no polling needed).
    recheck: float | None = None

    @abc.abstractmethod
    async def get(self, timeout: float) -> Event | None:
        """The next event, or None after ``timeout`` seconds."""

    @abc.abstractmethod
    def poll(self) -> Event | None:
        """The next queued event, or None: never waits."""

    @abc.abstractmethod
    def watch(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback()`` each time an event is queued (None: stop).

        For a waiter that is a state machine rather than a coroutine (the
        relay's channel sockets): it drains the queue with :meth:`poll` when
        called, so an idle waiter needs neither a task nor a pending future.
        """


class Bus(abc.ABC):
    """Fan-out of small JSON-able events to subscribers of a topic."""

    # True if an event can be lost in flight (a node killed between its store write and
    # its publish, a pub/sub server dropping it): the service then runs a reconciler.
    lossy: bool = False

    def reconciled(self) -> None:
        """A reconciler now wakes this node's subscribers of every channel that changed.

        Called by the service once the reconciler holds its starting point, before
        the node serves; from then on new subscriptions need no re-read timer
        (:attr:`Subscription.recheck` None). Nothing to do on a bus that loses nothing.
        """
        return None

    def local_topics(self) -> Collection[str]:
        """The topics this node's own subscribers wait on."""
        return ()

    def wake_local(self, topics: Iterable[str]) -> int:
        """Send ``resync`` to this node's subscribers of ``topics`` only; how many got it."""
        return 0

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect (no-op in process)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect."""

    @abc.abstractmethod
    async def publish(self, topic: str, event: Event) -> int:
        """Deliver ``event`` to the topic's subscribers; returns how many (on this node)."""

    @abc.abstractmethod
    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        """Subscribe for the duration of an ``async with`` block."""


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _wake_all(subscribers: dict[str, set[_QueueSubscription]], topics: Iterable[str]) -> int:
    """Tell the subscribers of ``topics`` to re-read the store; how many were told."""
    woken = 0
    for topic in topics:
        for sub in subscribers.get(topic, ()):
            sub.resync()
            woken += 1
    return woken


class _QueueSubscription(Subscription):
    """A bounded queue of events for one waiter, light enough for 10,000 idle ones.

    A deque and, while the waiter waits, one future and one timer: no
    ``asyncio.Queue`` and no task per :meth:`get` (``wait_for`` makes one), which
    is most of what an idle waiter holds.
    """

    __slots__ = ("_events", "_maxsize", "_waiter", "_watch", "missed", "recheck")

    def __init__(self, maxsize: int, recheck: float | None = None) -> None:
        self._events: deque[Event] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._watch: Callable[[], None] | None = None
        # events were dropped, or the store changed unannounced: a resync follows the queued ones
        self.missed = False
        self.recheck = recheck

    def offer(self, event: Event) -> bool:
        """Queue ``event``; False if the queue was full (the waiter then gets a resync)."""
        if len(self._events) >= self._maxsize:
            self.missed = True
            return False
        self._events.append(event)
        if self._waiter is not None:
            _wake(self._waiter)
        if self._watch is not None:
            self._watch()
        return True

    def poll(self) -> Event | None:
        return self._next()

    def watch(self, callback: Callable[[], None] | None) -> None:
        self._watch = callback

    def resync(self) -> None:
        """Have the waiter re-read the store: one RESYNC after the events already queued.

        However often it is asked before the waiter looks, it is one re-read.
        """
        self.missed = True
        if self._waiter is not None:
            _wake(self._waiter)
        if self._watch is not None:
            self._watch()

    def _next(self) -> Event | None:
        if self._events:
            return self._events.popleft()
        if self.missed:
            self.missed = False
            return RESYNC
        return None

    async def get(self, timeout: float) -> Event | None:
        event = self._next()
        if event is not None or timeout <= 0:
            return event
        loop = asyncio.get_running_loop()
        fut = self._waiter = loop.create_future()
        timer = loop.call_later(timeout, _wake, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._waiter = None
        return self._next()


class InProcessBus(Bus):
    """The default bus for a single relay process.

    Each subscriber has a bounded queue; a full queue drops the event and the
    subscriber is told to re-read the store instead (``resync``), so one stuck
    WebSocket cannot grow memory without bound and no event is lost unannounced.
    Nothing is lost in flight, so its waiters need no re-read timer.
    """

    def __init__(self, queue_size: int = 64) -> None:
        self._topics: dict[str, set[_QueueSubscription]] = {}
        self._queue_size = queue_size

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._topics.clear()

    def local_topics(self) -> Collection[str]:
        return list(self._topics)

    def wake_local(self, topics: Iterable[str]) -> int:
        return _wake_all(self._topics, topics)

    async def publish(self, topic: str, event: Event) -> int:
        delivered = 0
        for sub in list(self._topics.get(topic, ())):
            if sub.offer(event):
                delivered += 1
        return delivered

    @contextlib.asynccontextmanager
    async def _subscribe(self, topic: str) -> AsyncIterator[Subscription]:
        sub = _QueueSubscription(self._queue_size)
        self._topics.setdefault(topic, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._topics.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._topics[topic]

    def subscribe(self, topic: str) -> contextlib.AbstractAsyncContextManager[Subscription]:
        return self._subscribe(topic)

    def subscriber_count(self, topic: str) -> int:
        """How many subscribers a topic has (for tests and metrics)."""
        return len(self._topics.get(topic, ()))


def open_bus(url: str) -> Bus:
    """Pick a bus by URL: ``memory://`` (default); Redis slots in here."""
    if url in ("", "memory://", "memory"):
        return InProcessBus()
    if url.startswith(("redis://", "rediss://")):
        import importlib

        from unlatch.relay.errors import RelayConfigError

        try:
            module = importlib.import_module("unlatch.relay.bus_redis")
        except ImportError:
            raise RelayConfigError("this relay has no Redis bus backend installed") from None
        bus: Bus = module.RedisBus(url)
        return bus
    from unlatch.relay.errors import RelayConfigError

    raise RelayConfigError(f"unsupported --bus URL (expected memory://): {url}")
