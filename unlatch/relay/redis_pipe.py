"""One Redis connection that pipelines the commands of every caller, and the bounded reply reader.

Why not redis-py's client calls: each ``await client.publish(...)`` or script
call takes a connection from a pool, wraps the call in retry and health-check
machinery, a timeout task and a general reply parser, and gives the
connection back: about 120 us (publish) to 220 us (the rate-limit script) of
relay CPU per command on the development VM, most of what the Redis bus added
per exchange (issue 15). Here one task owns one connection: whatever was
queued while the previous batch was in flight goes out in one write and its
replies are read in order, straight from the connection's stream by
:func:`read_reply`. redis-py still makes the connection (URL, credentials,
TLS, database, HELLO); once its handshake is over nothing of the stream is
left in its hands, so reading the stream ourselves is safe.

Failures: a batch that fails (Redis unreachable, a reset, no answer within
``timeout``) fails every command in it with that error and drops the
connection (its state is unknown); the next batch connects again. Callers
decide when to try again (:class:`~unlatch.relay.redis_url.Backoff`). An error
*reply* (``NOSCRIPT``, a wrong type) fails only its own command: the reply was
read, so the connection stays in step. A connection that sat idle while Redis
restarted (or a middlebox reset it) fails the first batch after the return
before any reply: Redis never got it, so it is sent once more on a fresh
connection, and the node is back on Redis at once rather than after a
back-off (redis-py's own client retried once too).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import NoScriptError, ResponseError

from unlatch.relay.redis_url import REDIS_ERRORS

MAX_BATCH = 256  # commands per write: a burst is sent in slices
# Bounds of read_reply: what this relay's commands and pub/sub get back is small
MAX_LINE = 512  # a type-and-length line, or a simple string or error
MAX_BULK = 1 << 20  # one bulk string (an event: a message of at most a few KiB, as JSON)
MAX_ITEMS = 64  # items of one array, push or map
MAX_DEPTH = 3  # nesting


class RedisPipe:
    """Commands queued by any caller, sent in order on one connection, replies in order."""

    def __init__(self, client: Redis, timeout: float) -> None:
        # the client's pool only builds the connection (URL, credentials, TLS, database)
        self._conn = client.connection_pool.make_connection()
        self._timeout = timeout
        self._queue: deque[tuple[bytes, asyncio.Future[Any]]] = deque()
        self._task: asyncio.Task[None] | None = None

    def call(self, *args: str | int | bytes) -> asyncio.Future[Any]:
        """Queue one command; the future gets its reply, bulk strings as bytes (or the error)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((b"".join(self._conn.pack_command(*args)), fut))
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return fut

    async def _run(self) -> None:
        try:
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(MAX_BATCH, len(self._queue)))]
                try:
                    async with asyncio.timeout(self._timeout):
                        await self._exchange(batch)
                except asyncio.CancelledError:  # close(): what was in flight did not happen
                    _fail(batch, ConnectionError("redis pipe closed"))
                    raise
                except Exception as exc:  # noqa: BLE001 - no caller may be left waiting
                    error = exc if isinstance(exc, REDIS_ERRORS) else ConnectionError(str(exc))
                    _fail(batch, error)
                    with contextlib.suppress(Exception):
                        await self._conn.disconnect(nowait=True)
        finally:
            self._task = None

    async def _exchange(self, batch: list[tuple[bytes, asyncio.Future[Any]]]) -> None:
        data = b"".join(command for command, _fut in batch)
        reused = self._conn.is_connected
        try:
            stream = await self._send(data)
            first = await read_reply(stream)
        except REDIS_ERRORS:
            if not reused:
                raise
            with contextlib.suppress(Exception):  # stale: once more on a fresh connection
                await self._conn.disconnect(nowait=True)
            stream = await self._send(data)
            first = await read_reply(stream)
        _settle(batch[0][1], first)
        for _command, fut in batch[1:]:
            _settle(fut, await read_reply(stream))

    async def _send(self, data: bytes) -> asyncio.StreamReader:
        conn = self._conn
        if not conn.is_connected:
            await conn.connect()
        reader, writer = streams(conn)
        writer.write(data)
        await writer.drain()
        return reader

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
        _fail(list(self._queue), ConnectionError("redis pipe closed"))
        self._queue.clear()
        with contextlib.suppress(Exception):
            await self._conn.disconnect()


def streams(conn: AbstractConnection) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The connected redis-py connection's stream pair (RuntimeError: none, a Redis failure)."""
    reader, writer = getattr(conn, "_reader", None), getattr(conn, "_writer", None)
    if not isinstance(reader, asyncio.StreamReader) or not isinstance(writer, asyncio.StreamWriter):
        raise RuntimeError("redis connection has no stream (closed, or an unknown redis-py)")
    return reader, writer


async def read_reply(stream: asyncio.StreamReader, depth: int = 0) -> Any:
    """One RESP2/RESP3 reply, bounded: bulk and simple strings as bytes, arrays, pushes and
    maps as lists (a map's keys and values in turn), an error reply as a ResponseError
    *returned* (read whole, so the connection stays in step). Anything out of bounds or
    unknown raises ConnectionError: the connection is out of step and must be dropped."""
    line = await _line(stream)
    kind, body = line[:1], line[1:]
    if kind in (b"$", b"="):  # bulk string, verbatim string
        if body == b"-1":
            return None
        size = _length(body, MAX_BULK)
        try:
            data = await stream.readexactly(size + 2)
        except asyncio.IncompleteReadError:
            raise ConnectionError("redis connection closed") from None
        if data[-2:] != b"\r\n":
            raise ConnectionError("redis connection out of step")
        return data[:-2]
    if kind == b":":
        return _integer(body)
    if kind in (b"+", b",", b"#", b"("):  # simple string, double, boolean, big number
        return body
    if kind == b"-":
        message = body.decode("utf-8", "replace")
        return NoScriptError(message) if body.startswith(b"NOSCRIPT") else ResponseError(message)
    if kind == b"_":  # RESP3 null
        return None
    if kind in (b"*", b">", b"~", b"%"):  # array, push, set, map
        if body == b"-1":
            return None
        count = _length(body, MAX_ITEMS) * (2 if kind == b"%" else 1)
        if depth >= MAX_DEPTH:
            raise ConnectionError("redis reply nested too deeply")
        return [await read_reply(stream, depth + 1) for _ in range(count)]
    raise ConnectionError("unexpected redis reply")


async def _line(stream: asyncio.StreamReader) -> bytes:
    try:
        line = await stream.readuntil(b"\r\n")
    except asyncio.IncompleteReadError:
        raise ConnectionError("redis connection closed") from None
    except asyncio.LimitOverrunError:
        raise ConnectionError("redis reply line too long") from None
    if len(line) > MAX_LINE:
        raise ConnectionError("redis reply line too long")
    return line[:-2]


def _integer(body: bytes) -> int:
    try:
        return int(body)
    except ValueError:
        raise ConnectionError("bad integer in a redis reply") from None


def _length(body: bytes, limit: int) -> int:
    value = _integer(body)
    if not 0 <= value <= limit:
        raise ConnectionError("length out of bounds in a redis reply")
    return value


def _fail(batch: list[tuple[bytes, asyncio.Future[Any]]], exc: BaseException) -> None:
    for _command, fut in batch:
        if not fut.done():
            fut.set_exception(exc)


def _settle(fut: asyncio.Future[Any], reply: Any) -> None:
    if fut.done():  # a caller that gave up (its own timeout) cancelled it
        return
    if isinstance(reply, ResponseError):
        fut.set_exception(reply)
    else:
        fut.set_result(reply)
