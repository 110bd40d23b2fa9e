"""The relay's WebSockets: bookkeeping for all of them, and the phone's ``/v1/listen``.

Channel sockets (``/v1/pairing/{id}/ws``, ``/v1/unlock/{id}/ws``) are state
machines driven outside ASGI (:mod:`unlatch.relay.waiter`,
:mod:`unlatch.relay.channel_socket`); :class:`Sockets` counts them with the
others and tells them all when the relay stops. ``/v1/listen`` is an ASGI
endpoint here. Each socket authenticates with its first frame (browsers
cannot set headers on a WebSocket and tokens never go in URLs). Sends are
bounded in time so a client that stops reading is dropped instead of holding
memory. On shutdown every socket is told ``{"type": "shutdown"}`` and closed
with 1012 (service restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from unlatch.relay.apierror import ApiError
from unlatch.relay.codec import b64d
from unlatch.relay.logs import log
from unlatch.relay.models import Device
from unlatch.relay.service import RelayService, device_topic
from unlatch.relay.waiter import (
    AUTH_TIMEOUT,
    CLOSE_RESTART,
    PING_INTERVAL,
    SHUTDOWN_FRAME,
    Shutdown,
    is_ping,
    parse_auth,
)

if TYPE_CHECKING:
    from unlatch.relay.channel_socket import ChannelSocket

LISTEN_RECHECK = 10.0  # a phone listener re-reads its pending requests this often


class _Closed(Exception):
    """The socket is done (client gone, or we closed it)."""


class Sockets:
    """Runs the WebSocket endpoints and tracks them for shutdown."""

    def __init__(self, service: RelayService) -> None:
        self.service = service
        # a client that stops reading fills the buffers, then a send waits: this long at most
        self.send_timeout = service.config.ws_send_timeout
        self.open_count = 0
        self._shutdown: asyncio.Future[None] | None = None
        self._machines: set[ChannelSocket] = set()  # channel sockets (driven outside ASGI)

    def _shutdown_future(self) -> asyncio.Future[None]:
        if self._shutdown is None:
            self._shutdown = asyncio.get_running_loop().create_future()
            if self.service.shutting_down.is_set():
                self._shutdown.set_result(None)
        return self._shutdown

    async def notify_shutdown(self, grace: float) -> None:
        """Tell every socket to go (1012) and wait up to ``grace`` s for them to close."""
        self.service.shutting_down.set()
        fut = self._shutdown_future()
        if not fut.done():
            fut.set_result(None)
        for sock in list(self._machines):
            sock.feed(Shutdown())
        deadline = time.monotonic() + grace
        while self.open_count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def opened(self, sock: ChannelSocket, endpoint: str) -> None:
        """A channel socket connected (counted like the ASGI ones, told at shutdown)."""
        self._machines.add(sock)
        self.service.metrics.websockets_open.labels(endpoint).inc()
        self.open_count += 1
        if self.service.shutting_down.is_set():
            sock.feed(Shutdown())

    def closed(self, sock: ChannelSocket, endpoint: str) -> None:
        if sock in self._machines:
            self._machines.discard(sock)
            self.service.metrics.websockets_open.labels(endpoint).dec()
            self.open_count -= 1

    @contextlib.contextmanager
    def _track(self, endpoint: str) -> Iterator[None]:
        gauge = self.service.metrics.websockets_open.labels(endpoint)
        gauge.inc()
        self.open_count += 1
        try:
            yield
        finally:
            gauge.dec()
            self.open_count -= 1

    # framing helpers --------------------------------------------------------------
    async def _send(self, ws: WebSocket, lock: asyncio.Lock, obj: dict[str, Any]) -> None:
        if ws.application_state != WebSocketState.CONNECTED:
            raise _Closed
        try:
            async with lock:
                await asyncio.wait_for(
                    ws.send_text(json.dumps(obj, separators=(",", ":"))), self.send_timeout
                )
        except (TimeoutError, WebSocketDisconnect, RuntimeError, OSError):
            raise _Closed from None

    @staticmethod
    async def _close(ws: WebSocket, code: int, reason: str = "") -> None:
        with contextlib.suppress(Exception):
            if ws.application_state == WebSocketState.CONNECTED:
                await asyncio.wait_for(ws.close(code, reason), 2.0)

    async def _fail(self, ws: WebSocket, lock: asyncio.Lock, err: ApiError) -> None:
        with contextlib.suppress(_Closed):
            await self._send(ws, lock, {"type": "error", "error": err.code, "message": err.message})
        await self._close(ws, err.ws_close, err.code)

    async def _authenticate(self, ws: WebSocket) -> Device:
        try:
            msg = await asyncio.wait_for(ws.receive(), AUTH_TIMEOUT)
        except TimeoutError:
            raise ApiError("unauthorized", 'send {"type": "auth", ...} first') from None
        if msg["type"] == "websocket.disconnect":
            raise _Closed
        token, _after = parse_auth(msg.get("text"))  # the channel sockets' rules, one place
        device = await self.service.authenticate(token)
        return device

    async def _reader(self, ws: WebSocket, lock: asyncio.Lock) -> None:
        """Consume client frames: answer pings, notice disconnects, ignore the rest."""
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                return
            if is_ping(msg.get("text")):
                await self._send(ws, lock, {"type": "pong"})

    async def _wait(self, get: asyncio.Future[Any], reader: asyncio.Task[None]) -> tuple[bool, Any]:
        """Wait for a bus event, the client leaving, or shutdown: (keep going?, event)."""
        shutdown = self._shutdown_future()
        done, _ = await asyncio.wait({get, reader, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        if get not in done:
            get.cancel()
            return (reader not in done and shutdown not in done), None
        return True, get.result()

    async def _shutdown_close(self, ws: WebSocket, lock: asyncio.Lock) -> None:
        with contextlib.suppress(_Closed):
            await self._send(ws, lock, SHUTDOWN_FRAME)
        await self._close(ws, CLOSE_RESTART, "service restart")

    # endpoints ------------------------------------------------------------------------------
    async def listen(self, ws: WebSocket) -> None:
        """``/v1/listen``: a phone in the foreground hears its requests and their fate.

        Frames: each new unlock notification; ``request`` frames when one of
        its requests is renewed, answered, cancelled, expired or closed;
        ``pairing`` frames when a pairing is removed. The relay's store is the
        truth: a bus event can be lost (Redis restart, a node killed between
        its store write and its publish), so the store is re-read on "resync"
        and every LISTEN_RECHECK seconds, and a request that left the pending
        list without a frame gets one then.
        """
        await ws.accept()
        lock = asyncio.Lock()
        with self._track("listen"):
            reader: asyncio.Task[None] | None = None
            try:
                device = await self._authenticate(ws)
                if device.kind != "phone":
                    raise ApiError("forbidden", "only phones listen for unlock requests")
                async with self.service.bus.subscribe(device_topic(device.device_id)) as sub:
                    reader = asyncio.create_task(self._reader(ws, lock))
                    await self._send(ws, lock, {"type": "ready"})
                    await self._listen_loop(ws, lock, device, sub, reader)
            except ApiError as err:
                await self._fail(ws, lock, err)
            except (_Closed, WebSocketDisconnect):
                pass
            except Exception as exc:  # noqa: BLE001 - one socket must not take the relay down
                log("websocket error", logging.ERROR, error=type(exc).__name__)
                await self._close(ws, 1011)
            finally:
                if reader is not None:
                    reader.cancel()
                    with contextlib.suppress(BaseException):
                        await reader

    async def _listen_loop(
        self,
        ws: WebSocket,
        lock: asyncio.Lock,
        device: Device,
        sub: Any,
        reader: asyncio.Task[None],
    ) -> None:
        service = self.service
        # request id -> its expiry, for each request this socket announced (kept until a
        # minute past expiry, so a late or replayed bus event never announces it twice)
        seen: dict[str, float] = {}
        ended: set[str] = set()  # announced requests whose end this socket has told

        async def announce_pending() -> bool:
            sent = False
            current = {n["request_id"]: n for n in await service.pending_unlock(device)}
            for rid, note in current.items():
                if rid not in seen:
                    seen[rid] = note["expires_at"]
                    await self._send(ws, lock, note)
                    sent = True
            for rid in [r for r in seen if r not in current and r not in ended]:
                ended.add(rid)  # it left the pending list without a frame we saw
                with contextlib.suppress(ApiError):
                    await self._send(ws, lock, await service.unlock_state(device, b64d(rid)))
                    sent = True
            return sent

        await announce_pending()
        last_sent = last_check = time.monotonic()
        # re-read on a timer only if the bus can lose an event (sub.recheck)
        recheck = LISTEN_RECHECK if sub.recheck is not None else math.inf
        while True:
            if service.shutting_down.is_set():
                await self._shutdown_close(ws, lock)
                return
            if time.monotonic() - last_check >= recheck:
                last_check = time.monotonic()
                if await announce_pending():
                    last_sent = time.monotonic()
            idle = max(0.05, PING_INTERVAL - (time.monotonic() - last_sent))
            idle = min(idle, max(0.05, recheck - (time.monotonic() - last_check)))
            keep, event = await self._wait(asyncio.ensure_future(sub.get(idle)), reader)
            if event and event.get("event") == "resync":
                last_check = -math.inf  # the bus reconnected or overflowed: re-read now
                continue
            if not keep:
                if not reader.done():
                    await self._shutdown_close(ws, lock)
                return
            kind = event.get("event") if event else None
            if kind == "unlock":
                note = event["notification"]
                if note["request_id"] in seen:
                    continue
                now = time.time()
                for rid in [r for r, exp in seen.items() if exp <= now - 60]:
                    del seen[rid]
                    ended.discard(rid)
                seen[note["request_id"]] = note["expires_at"]
                await self._send(ws, lock, note)
                last_sent = time.monotonic()
            elif kind == "frame":
                frame = event["frame"]
                if frame.get("type") == "request" and frame.get("state") != "open":
                    ended.add(frame.get("request_id", ""))
                await self._send(ws, lock, frame)
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent >= PING_INTERVAL:
                await self._send(ws, lock, {"type": "ping"})
                last_sent = time.monotonic()
