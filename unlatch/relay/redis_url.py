"""The ``--bus redis://...`` URL and what a failing Redis raises (bus and rate limiter).

Our own option ``prefix`` (default ``unlatch:``) namespaces every key and
pub/sub channel, so several deployments (or test runs) can share one Redis:
pub/sub channels are global to a Redis server, whatever the database number.
Every other part of the URL is handed to redis-py unchanged.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.exceptions import RedisError

from unlatch.relay.errors import RelayConfigError

# What a Redis command raises when Redis or the connection fails. RuntimeError is
# among them: under uvloop (uvicorn's loop) a write on a connection being torn down
# raises RuntimeError("... the handler is closed"), and redis-py raises
# RuntimeError on a PubSub whose connection was released. The relay turns all of
# them into "Redis is unavailable" (the store stays the truth, limits fall back
# to per-node buckets), never into an error for a client.
REDIS_ERRORS = (RedisError, OSError, TimeoutError, RuntimeError)

DEFAULT_PREFIX = "unlatch:"
_PREFIX = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def split_redis_url(url: str) -> tuple[str, str]:
    """``(url for redis-py, key prefix)``; raises RelayConfigError on a bad prefix."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = DEFAULT_PREFIX
    rest = []
    for key, value in query:
        if key == "prefix":
            prefix = value
        else:
            rest.append((key, value))
    if not _PREFIX.match(prefix):
        raise RelayConfigError("--bus: prefix must be 1-64 characters of letters, digits and _.:-")
    clean = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return clean, prefix


def describe(url: str) -> str:
    """``host:port/db`` of a Redis URL, without credentials (for logs and errors)."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"


# After Redis fails, a node tries it again after RETRY_FIRST seconds, doubling up to
# RETRY_CAP: a node uses Redis again within RETRY_CAP (plus one connect) of its
# return, while a Redis that is down or black-holed is tried a few times a second
# at most instead of making every request wait for a connect timeout.
RETRY_FIRST = 0.05
RETRY_CAP = 0.25


class Backoff:
    """When to try Redis again after a failure (shared by the bus and the limiter)."""

    __slots__ = ("_delay", "_next")

    def __init__(self) -> None:
        self._delay = 0.0
        self._next = 0.0

    def ready(self, now: float) -> bool:
        """True if a call may try Redis now."""
        return now >= self._next

    def delay(self, now: float) -> float:
        """Seconds until a call may try Redis again (0: now)."""
        return max(0.0, self._next - now)

    def failed(self, now: float) -> None:
        self._delay = min(RETRY_CAP, max(RETRY_FIRST, self._delay * 2))
        self._next = now + self._delay

    def succeeded(self) -> None:
        self._delay = 0.0
        self._next = 0.0
