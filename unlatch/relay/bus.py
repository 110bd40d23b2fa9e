"""Publish/subscribe between the parts of the relay that wait and those that post.

The bus carries *wake-ups*, not the truth: every message is first written to the
:class:`~unlatch.relay.store.Store`, then a small event is published on the
channel's topic. A waiter subscribes *before* reading the store, so it cannot
miss a message; a lost or dropped event costs at most one extra store read at
the next wake-up (waiters also re-read on a timer). That is what makes a Redis
pub/sub backend, which drops messages when a node restarts, safe to slot in.

Topics: ``channel:<id>`` (a message was posted / the channel ended) and
``device:<device_id>`` (an unlock notification for a phone's listeners).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

Event = dict[str, Any]


class Subscription(abc.ABC):
    """A live subscription; :meth:`get` waits for the next event."""

    @abc.abstractmethod
    async def get(self, timeout: float) -> Event | None:
        """The next event, or None after ``timeout`` seconds."""


class Bus(abc.ABC):
    """Fan-out of small JSON-able events to subscribers of a topic."""

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


class _QueueSubscription(Subscription):
    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)

    async def get(self, timeout: float) -> Event | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout=max(timeout, 0.0))
        except TimeoutError:
            return None


class InProcessBus(Bus):
    """The default bus for a single relay process.

    Each subscriber has a bounded queue; a full queue drops the event (the
    subscriber re-reads the store anyway), so one stuck WebSocket cannot grow
    memory without bound.
    """

    def __init__(self, queue_size: int = 64) -> None:
        self._topics: dict[str, set[_QueueSubscription]] = {}
        self._queue_size = queue_size

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._topics.clear()

    async def publish(self, topic: str, event: Event) -> int:
        delivered = 0
        for sub in list(self._topics.get(topic, ())):
            try:
                sub.queue.put_nowait(event)
                delivered += 1
            except asyncio.QueueFull:
                continue
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
