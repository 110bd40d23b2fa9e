"""Token buckets shared by every relay node, in Redis (chosen with ``--bus redis://...``).

One Lua script checks all the buckets of a request and takes a token from
each *only if all* have one, exactly like
:class:`~unlatch.relay.ratelimit.MemoryRateLimiter`; Redis runs a script
atomically, so two nodes can never both take the last token. The script reads
the clock with Redis ``TIME``, so every node measures refills on the same
clock whatever the skew between the nodes' own clocks. A bucket is a small
hash that expires once it would be full again, so idle keys cost nothing.

If Redis cannot be reached, the limiter falls back to per-node in-memory
buckets (and logs it, and calls ``on_fallback`` for each such check: the relay
counts them in ``unlatch_relay_rate_limit_fallbacks_total``): limits stay in
force, each node enforcing them on its own share of the traffic, rather than
the relay refusing every request. With N nodes a client may then get up to N
times its budget, so the metric is worth an alert. After a failure Redis is
tried again after 0.05 s, doubling up to :data:`~unlatch.relay.redis_url.RETRY_CAP`
(0.25 s), so the shared buckets are back in use within that of Redis's return.

A request's checks are one ``EVALSHA`` (one round trip, whatever the number of
buckets), sent on the limiter's own pipelined connection
(:class:`~unlatch.relay.redis_pipe.RedisPipe`): through redis-py's client call
the same script cost about 220 us of relay CPU per request, mostly the client's
per-call machinery rather than the round trip (issue 15).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from unlatch.relay.logs import log
from unlatch.relay.ratelimit import Denied, MemoryRateLimiter, RateLimiter, Rule
from unlatch.relay.redis_pipe import RedisPipe
from unlatch.relay.redis_url import REDIS_ERRORS, Backoff, describe, split_redis_url

# KEYS: the buckets. ARGV: for each bucket burst, rate (tokens/s), ttl (ms).
# Returns {0, "0"} when every bucket gave a token, else {index, "seconds to wait"}
# for the bucket that needs the longest wait (strings keep float precision).
BUCKET_SCRIPT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local levels = {}
local worst, worst_wait = 0, 0
for i = 1, #KEYS do
  local burst = tonumber(ARGV[i * 3 - 2])
  local rate = tonumber(ARGV[i * 3 - 1])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'stamp')
  local tokens, stamp = tonumber(v[1]), tonumber(v[2])
  if tokens == nil or stamp == nil then
    tokens, stamp = burst, now
  end
  local level = math.min(burst, tokens + math.max(0, now - stamp) * rate)
  levels[i] = level
  if level < 1 then
    local wait = (1 - level) / rate
    if wait > worst_wait then
      worst, worst_wait = i, wait
    end
  end
end
if worst > 0 then
  return {worst, tostring(worst_wait)}
end
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'tokens', tostring(levels[i] - 1), 'stamp', tostring(now))
  redis.call('PEXPIRE', KEYS[i], ARGV[i * 3])
end
return {0, '0'}
"""

# how Redis names a cached script (EVALSHA): its SHA-1, not a security use
BUCKET_SCRIPT_SHA = hashlib.sha1(BUCKET_SCRIPT_LUA.encode(), usedforsecurity=False).hexdigest()
CHECK_TIMEOUT = 1.0  # a black-holed Redis must not make every request slow
_REDIS_ERRORS = REDIS_ERRORS


class _NotYet(Exception):
    """Redis failed a moment ago; it is tried again after the back-off."""


class RedisRateLimiter(RateLimiter):
    """Atomic multi-bucket token bucket in Redis, with an in-memory fallback."""

    def __init__(self, url: str, *, on_fallback: Callable[[], None] | None = None) -> None:
        self.url, self.prefix = split_redis_url(url)
        self._on_fallback = on_fallback
        self.where = describe(self.url)
        self._redis = Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=1,
            socket_timeout=2,
            retry=Retry(NoBackoff(), 1),
        )
        self._pipe = RedisPipe(self._redis, CHECK_TIMEOUT)
        self._fallback = MemoryRateLimiter()
        self._last_warning = 0.0
        self._backoff = Backoff()
        self.fallbacks = 0

    def key(self, key: str) -> str:
        return f"{self.prefix}rl:{key}"

    async def acquire(self, checks: list[tuple[str, str, Rule]]) -> Denied | None:
        if not checks:
            return None
        keys = [self.key(key) for _scope, key, _rule in checks]
        args: list[str | int] = []
        for _scope, _key, rule in checks:
            args += [rule.burst, repr(rule.rate), int(rule.period * 1000) + 1000]
        now = time.monotonic()
        try:
            if not self._backoff.ready(now):  # failed a moment ago: not again yet
                raise _NotYet
            try:
                async with asyncio.timeout(CHECK_TIMEOUT):
                    index, wait = await self._run(keys, args)
            except _REDIS_ERRORS:
                self._backoff.failed(time.monotonic())
                raise
            self._backoff.succeeded()
        except (*_REDIS_ERRORS, _NotYet) as exc:
            self.fallbacks += 1
            if self._on_fallback is not None:
                self._on_fallback()
            if now - self._last_warning > 5.0:
                self._last_warning = now
                log(
                    "redis rate limiter unavailable; using per-node limits",
                    logging.WARNING,
                    redis=self.where,
                    error=type(exc).__name__,
                )
            return await self._fallback.acquire(checks)
        index = int(index)
        if index == 0:
            return None
        return Denied(checks[index - 1][0], float(wait))

    async def _run(self, keys: list[str], args: list[str | int]) -> list[Any]:
        """The script's reply; it is sent whole (EVAL) only if Redis does not have it cached."""
        try:
            reply = await self._pipe.call("EVALSHA", BUCKET_SCRIPT_SHA, len(keys), *keys, *args)
        except NoScriptError:  # a new or restarted Redis: it caches the script from now on
            reply = await self._pipe.call("EVAL", BUCKET_SCRIPT_LUA, len(keys), *keys, *args)
        return list(reply)

    async def close(self) -> None:
        await self._pipe.close()
        try:
            await self._redis.aclose()
        except _REDIS_ERRORS:
            return
