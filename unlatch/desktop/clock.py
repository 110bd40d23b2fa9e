"""The drivers' clock: the one place the desktop sessions' time comes from.

The sessions never read a clock; their drivers feed them ``now`` and sleep
until the tick a session asked for. Both go through a :class:`Clock`, so the
tests can drive a whole unlock or pairing (renewals, expiry) on a fake clock
instead of waiting real seconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (the protocol's times are Unix times)."""
        ...

    async def sleep_until(self, when: float) -> None:
        """Return once ``now() >= when``."""
        ...


class WallClock:
    """The real clock. Sleeps in slices so a wall-clock jump (suspend) is noticed."""

    def now(self) -> float:
        return time.time()

    async def sleep_until(self, when: float) -> None:
        while (left := when - time.time()) > 0:
            await asyncio.sleep(min(left, 5.0))


WALL_CLOCK = WallClock()
