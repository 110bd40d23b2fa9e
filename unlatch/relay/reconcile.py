"""A node's reconciler: wake-ups for store changes whose bus event was lost, one query a period.

Why it exists: on a bus that can lose an event in flight (:attr:`Bus.lossy`;
Redis: a node killed between its store commit and its publish, an outbox entry
that grew too old), a waiter used to re-read the store on a timer, every 5 s
(phone listeners every 10 s): with 1,000 idle waiters, 1,000 reads every few
seconds and 6.5% of a core on PostgreSQL + Redis, for nothing. Instead, every
``sweep_interval`` each node asks the store *once* which channels changed since
its last look (:meth:`~unlatch.relay.store.Store.channel_changes`) and tells
only its own subscribers of those channels (and of their phones' pending
lists) to re-read the store, with a ``resync`` event through their normal
subscription. Idle, a node costs one small query per period, whatever the
number of waiters, and a waiter keeps no timer beyond its keep-alive.

Why nothing is lost unannounced, and how late a lost event can be:

* everything a waiter waits for is a store change (a message posted, an unlock
  request created, a channel closed or expired), and the store records each in
  the writing transaction itself (triggers and column defaults, not the
  service's code, so no code path can forget one);
* a waiter subscribes before it reads the store; a change committed before its
  read is in what it read; one committed after is reported by a later look of
  the reconciler, at the latest the first look that starts after the commit
  (the store's contract holds whatever order concurrent transactions commit
  in), and the waiter is still subscribed then, so it is told;
* so a change whose event was lost reaches its waiters at most
  ``sweep_interval`` plus one query after its commit (1 s by default; the
  timer re-read it replaces allowed 5-10 s). While the store cannot answer,
  the reconciler keeps its cursor and the next look that succeeds reports
  everything since (the waiters could not read meanwhile either);
* a look that cannot tell what changed (the reconciler has no starting point
  yet, or SQLite trimmed its change log past it) wakes every local waiter.

Changes already announced on the bus are reported too (the store cannot tell
which events were lost): a waiter still waiting on such a channel re-reads the
store once more, which costs one read per change, not per period. What is woken:
a new unlock request wakes its phone's listeners (no one waits on a channel
before it exists); a message wakes the channel's waiters, and a reply also the
phone's (the request leaves its pending list); a channel's end wakes both.
"""

from __future__ import annotations

import asyncio
import logging
import time

from unlatch.relay.bus import Bus
from unlatch.relay.frames import channel_topic, device_topic
from unlatch.relay.logs import log
from unlatch.relay.metrics import RelayMetrics
from unlatch.relay.store import CHANNEL_CREATED, CHANNEL_ENDED, ChangeCursor, Changes, Store

WARN_EVERY = 10.0  # seconds between two warnings about failing looks (an outage, not a flood)
# the message type that takes an unlock request off its phone's pending list
REPLY = "reply"


def topics_of(changes: Changes) -> set[str]:
    """The bus topics whose waiters must re-read the store after these changes."""
    topics: set[str] = set()
    for change in changes.channels:
        phone = change.peer if change.kind == "unlock" else None
        if change.what != CHANNEL_CREATED:
            topics.add(channel_topic(change.channel_id))
        if phone and change.what in (CHANNEL_CREATED, CHANNEL_ENDED, REPLY):
            topics.add(device_topic(phone))
    return topics


class Reconciler:
    """One node's look at the store's changes, once a period; wakes only its own waiters."""

    def __init__(self, store: Store, bus: Bus, metrics: RelayMetrics) -> None:
        self.store = store
        self.bus = bus
        self.metrics = metrics
        self._cursor: ChangeCursor | None = None
        self._last_warning = 0.0

    async def start(self) -> None:
        """Take the starting point; before the node serves, so it precedes every waiter's read.

        If the store cannot answer now, the first look that succeeds wakes every
        local waiter instead (it cannot tell what changed before it).
        """
        try:
            await self.tick()
        except Exception as exc:  # noqa: BLE001 - retried at the next period
            self._warn(exc)

    async def tick(self) -> int:
        """Look once; wake the local subscribers of what changed. Returns how many were woken."""
        since = self._cursor
        changes = await self.store.channel_changes(since)
        self._cursor = changes.cursor
        if since is None or not changes.complete:
            topics = set(self.bus.local_topics())  # a gap it cannot see into
        else:
            topics = topics_of(changes)
        woken = self.bus.wake_local(topics) if topics else 0
        if woken:
            self.metrics.reconcile_wakeups.inc(woken)
        return woken

    async def run(self, period: float) -> None:
        """Look every ``period`` seconds until cancelled; a failed look is retried next period."""
        while True:
            await asyncio.sleep(period)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the reconciler must outlive a bad look
                self._warn(exc)

    def _warn(self, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY:
            self._last_warning = now
            log("reconciler: store look failed", logging.WARNING, error=type(exc).__name__)
