"""A version counter that wakes waiters: how the UI's live channel learns of changes.

Services call :meth:`Notifier.bump` whenever something the page shows
changed (an unlock attempt's state, a pairing's state, lock/unlock). The
server-sent-events endpoint waits with :meth:`wait_past` and then sends the
whole current state: no event is "lost" because every push is a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib


class Notifier:
    """Monotonic version plus an event re-armed on every bump."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()

    def bump(self) -> None:
        self.version += 1
        self._event.set()
        self._event = asyncio.Event()

    async def wait_past(self, version: int, timeout: float) -> int:
        """Return the current version once it exceeds ``version`` (or at timeout).

        ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11
        ``wait_for`` wraps the wait in a task of its own, so a bump reached the
        waiter (the page's event stream) three loop steps later instead of one,
        each behind whatever else was ready (issue 15).
        """
        if self.version > version:
            return self.version
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()
        return self.version
