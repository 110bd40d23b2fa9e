"""Token-bucket rate limits (push fatigue, abuse) behind :class:`RateLimiter`.

A rule ``burst/period`` allows ``burst`` actions at once and refills
``burst`` tokens per ``period`` seconds. :meth:`RateLimiter.acquire` checks
several buckets (per pairing, device, IP, phone) and takes a token from each
*only if all* have one, so a refused request never drains the others' budget.
A shared backend (Redis) implements the same call atomically across nodes.
"""

from __future__ import annotations

import abc
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """``burst`` tokens, refilled at ``burst / period`` tokens per second."""

    burst: int
    period: float

    @property
    def rate(self) -> float:
        return self.burst / self.period

    @classmethod
    def parse(cls, text: str) -> Rule:
        """Parse ``"10/60"`` (10 per 60 s); raises ValueError with a clear message."""
        try:
            burst_s, period_s = str(text).split("/", 1)
            burst, period = int(burst_s), float(period_s)
        except ValueError:
            raise ValueError(
                f"rate limit {text!r} must look like BURST/SECONDS, e.g. 10/60"
            ) from None
        if burst < 1 or period <= 0:
            raise ValueError(f"rate limit {text!r}: burst must be >= 1 and seconds > 0")
        return cls(burst, period)


@dataclass(frozen=True)
class Denied:
    """Which bucket refused and how long until it has a token."""

    scope: str
    retry_after: float


class RateLimiter(abc.ABC):
    """Shared token buckets keyed by strings such as ``unlock:pairing:<id>``."""

    @abc.abstractmethod
    async def acquire(self, checks: list[tuple[str, str, Rule]]) -> Denied | None:
        """Take one token from every ``(scope, key, rule)`` bucket, or none if any is empty."""

    async def close(self) -> None:
        """Release resources (none in memory)."""
        return None


class MemoryRateLimiter(RateLimiter):
    """In-process buckets, LRU-bounded so a flood of distinct keys cannot exhaust memory.

    Evicting a bucket only forgets a partially-used budget (it becomes full
    again), which errs towards availability under an address-spraying attack;
    ``max_keys`` is large enough that honest traffic never sees it.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max_keys = max_keys

    def _level(self, key: str, rule: Rule, now: float) -> float:
        tokens, stamp = self._buckets.get(key, (float(rule.burst), now))
        return min(float(rule.burst), tokens + (now - stamp) * rule.rate)

    async def acquire(self, checks: list[tuple[str, str, Rule]]) -> Denied | None:
        # no await from the check to the take: atomic on the event loop, without a lock
        now = time.monotonic()
        worst: Denied | None = None
        for scope, key, rule in checks:
            level = self._level(key, rule, now)
            if level < 1.0:
                wait = (1.0 - level) / rule.rate
                if worst is None or wait > worst.retry_after:
                    worst = Denied(scope, wait)
        if worst is not None:
            return worst
        for _scope, key, rule in checks:
            self._buckets[key] = (self._level(key, rule, now) - 1.0, now)
            self._buckets.move_to_end(key)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return None


def open_limiter(url: str, *, on_fallback: Callable[[], None] | None = None) -> RateLimiter:
    """Pick the limiter by the bus URL: in memory unless a shared backend is configured.

    ``on_fallback`` is called for each check a shared limiter could not make
    (its backend unreachable) and made with this node's own buckets instead.
    """
    if url.startswith(("redis://", "rediss://")):
        import importlib

        from unlatch.relay.errors import RelayConfigError

        try:
            module = importlib.import_module("unlatch.relay.ratelimit_redis")
        except ImportError:
            raise RelayConfigError("this relay has no Redis rate limiter installed") from None
        limiter: RateLimiter = module.RedisRateLimiter(url, on_fallback=on_fallback)
        return limiter
    return MemoryRateLimiter()
