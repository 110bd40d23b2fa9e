"""The asyncio drivers of the relay's WebSockets: bytes in and out, one timer, no task while idle.

The logic of a socket is a sans-IO machine (:class:`unlatch.relay.waiter.ChannelWaiter`
for ``/v1/{pairing,unlock}/{id}/ws``, :class:`unlatch.relay.listener.PhoneListener`
for ``/v1/listen``); this module owns everything they must not: the transport, the
WebSocket framing (websockets' sans-IO :class:`~websockets.server.ServerProtocol`),
protocol-level keep-alive pings, the store and bus calls behind the
machine's commands, and the relay's bookkeeping (connection cap, open-socket
gauge, shutdown).

Why not an ASGI endpoint: under uvicorn and Starlette each waiting socket held
an ASGI task, a reader task, their coroutine frames, a scope, a queue and
uvicorn's protocol object, 34 KiB per idle waiter against 14.6 KiB for a bare
``websockets`` server (issue 15). Here an idle waiter is this object, the
machine, websockets' protocol, one bus subscription and one timer handle;
tasks exist only while an operation (admission, a store read) is in flight.
uvicorn's HTTP protocol hands a connection over at the upgrade
(:meth:`unlatch.relay.server.HeadLimitHttpToolsProtocol.handle_websocket_upgrade`),
after its request-head limits were applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from websockets.frames import Frame as WsFrame
from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from unlatch.relay.apierror import ApiError
from unlatch.relay.codec import CodecError, b64d
from unlatch.relay.config import WS_MAX_MESSAGE, WS_PING_INTERVAL, WS_PING_TIMEOUT
from unlatch.relay.listener import PendingRead, PhoneListener, ReadPending, ReadStates, StatesRead
from unlatch.relay.logs import log, short
from unlatch.relay.models import ChannelKind, Device
from unlatch.relay.service import channel_topic, device_topic
from unlatch.relay.validate import new_unlock
from unlatch.relay.waiter import (
    Admit,
    Admitted,
    BusEvent,
    ChannelWaiter,
    Close,
    EndChannel,
    Failed,
    Frame,
    Gone,
    HandOver,
    Opened,
    Read,
    ReadDone,
    Send,
    Shutdown,
)
from unlatch.statemachine import Command, Event, ScheduleTick, Tick

if TYPE_CHECKING:
    from unlatch.relay.ws import Sockets

CLOSE_WAIT = 2.0  # seconds a closing socket waits for the client's close frame
_NOBODY = ("", "")  # a channel socket's requester once its auth frame was handled
TIMER_SLACK = 1.0  # seconds a deadline may move back without moving the timer (see _arm)
INTERNAL_ERROR = 1011


def channel_id_of(segment: str) -> bytes | None:
    """The 16-byte channel id of a URL path segment, or None if it is not one."""
    try:
        cid = b64d(segment, max_len=16)
    except CodecError:
        return None
    return cid if len(cid) == 16 else None


class SessionSocket(asyncio.Protocol):
    """One WebSocket after the HTTP upgrade, driving one socket machine (subclasses: which)."""

    endpoint: str = ""  # the label of the open-sockets gauge

    __slots__ = (
        "_busy",
        "_close_at",
        "_device",
        "_exit",
        "_frag",
        "_loop",
        "_pending",
        "_ping_at",
        "_ping_payload",
        "_pong_by",
        "_stall",
        "_sub",
        "_tick_at",
        "_timer",
        "_timer_at",
        "conn",
        "machine",
        "server_state",
        "sockets",
        "transport",
    )

    def __init__(self, sockets: Sockets, server_state: Any, machine: Any) -> None:
        self.sockets = sockets
        self.server_state = server_state  # uvicorn's: the connection cap and graceful shutdown
        self.machine = machine
        # no extensions: frames are small JSON with opaque base64 inside, so compression
        # saves little, costs CPU per frame and would mix attacker-chosen and secret bytes
        self.conn = ServerProtocol(max_size=WS_MAX_MESSAGE, logger=_QUIET)
        self.transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._device: Device | None = None
        self._sub: Any = None  # the bus subscription, once admitted
        self._exit: Any = None  # its context manager's exit
        self._frag: list[bytes] | None = None  # a fragmented message being assembled
        self._busy = False  # feeding the machine (events that arrive meanwhile wait)
        self._pending: list[Event] | None = None
        # one timer for everything: the machine's tick, keep-alive ping/pong, closing, stalls
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._tick_at: float | None = None  # loop time
        self._ping_at: float | None = None
        self._pong_by: float | None = None
        self._ping_payload: bytes | None = None
        self._close_at: float | None = None
        self._stall: float | None = None

    # asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.server_state.connections.add(self)
        self.sockets.opened(self, self.endpoint)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self.sockets.closed(self, self.endpoint)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.feed(Gone())
        self._unsubscribe()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        for event in conn.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, WsFrame):
                self._frame(event)
        if conn.handshake_exc is not None and conn.state is State.CONNECTING:
            # an upgrade websockets refuses (bad key or version): its 4xx, or a 400
            out = (
                b"".join(conn.data_to_send())
                or conn.reject(400, "bad WebSocket upgrade\n").serialize()
            )
            self._write_and_close(out)
            return
        self._flush()

    def eof_received(self) -> bool | None:
        self.conn.receive_eof()
        self._flush()
        return None

    def pause_writing(self) -> None:
        # the client stopped reading: give it ws_send_timeout, then drop it (RST, buffers freed)
        self._stall = self._loop.time() + self.sockets.send_timeout
        self._arm()

    def resume_writing(self) -> None:
        self._stall = None
        self._arm()

    def shutdown(self) -> None:
        """uvicorn's server shutdown (after the relay's own goodbye): close now."""
        self.feed(Shutdown())
        if self.transport is not None:
            self.transport.close()

    # the WebSocket -------------------------------------------------------------------------
    def _handshake(self, request: Request) -> None:
        response = self.conn.accept(request)
        self.conn.send_response(response)
        if response.status_code != 101:
            self._write_and_close(b"".join(self.conn.data_to_send()))
            return
        self._flush()
        self._ping_at = self._loop.time() + WS_PING_INTERVAL
        self.feed(Opened(time.time()))

    def _frame(self, frame: WsFrame) -> None:
        op = frame.opcode
        if op is Opcode.TEXT or op is Opcode.BINARY:
            self._frag = [bytes(frame.data)] if not frame.fin else None
            if frame.fin:
                self._message(op is Opcode.TEXT, bytes(frame.data))
            elif op is Opcode.BINARY:
                self._frag = None  # binary messages are ignored; fragments too
        elif op is Opcode.CONT:
            if self._frag is not None:
                self._frag.append(bytes(frame.data))
                if frame.fin:
                    data, self._frag = b"".join(self._frag), None
                    self._message(True, data)
        elif op is Opcode.PONG:
            if self._ping_payload is not None and bytes(frame.data) == self._ping_payload:
                self._ping_payload = None
                self._pong_by = None
                self._ping_at = self._loop.time() + WS_PING_INTERVAL
                self._arm()
        elif op is Opcode.CLOSE:
            self.feed(Gone())  # websockets queued the close reply; _flush ends the TCP connection
        # PING: websockets queued the pong

    def _message(self, is_text: bool, data: bytes) -> None:
        if not is_text:
            self.feed(Frame(None, time.time()))
            return
        try:
            text = data.decode()
        except UnicodeDecodeError:
            # the client's error: close 1007 (RFC 6455), no error line in the log
            log("websocket text frame is not UTF-8; closed 1007", logging.DEBUG)
            self.conn.fail(1007, "text frame is not UTF-8")
            self.feed(Gone())
            return
        self.feed(Frame(text, time.time()))

    def _send_text(self, frame: dict[str, Any]) -> None:
        if self.conn.state is State.OPEN:
            self.conn.send_text(json.dumps(frame, separators=(",", ":")).encode())
            if frame.get("type") == "ping" and self._pong_by is None:
                # the machine's idle ping (every PING_INTERVAL) carries the protocol-level
                # one: one wake-up per idle socket instead of two (WS_PING_INTERVAL is
                # then only the fallback), which is most of what 10,000 idle sockets cost
                self._keepalive_ping(self._loop.time())

    def _keepalive_ping(self, now: float) -> None:
        """A protocol-level ping; no pong within WS_PING_TIMEOUT drops the socket."""
        if self.conn.state is not State.OPEN:
            return
        self._ping_payload = os.urandom(4)
        self.conn.send_ping(self._ping_payload)
        self._ping_at = None
        self._pong_by = now + WS_PING_TIMEOUT
        self._arm()

    def _flush(self) -> None:
        """Write what websockets has to send, in one write (one send, not one per frame)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        chunks = self.conn.data_to_send()
        if not chunks:
            return
        # websockets' end of stream is an empty chunk: the closing handshake is over
        end = b"" in chunks
        if end:
            chunks = chunks[: chunks.index(b"")]
        data = b"".join(chunks)
        if data:
            transport.write(data)
        if end:
            transport.close()

    def _write_and_close(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
            self.transport.close()

    # the machine ---------------------------------------------------------------------------
    def feed(self, event: Event) -> None:
        """Give the machine one event and carry out its commands (re-entrant calls queue)."""
        if self._busy:
            if self._pending is None:
                self._pending = []
            self._pending.append(event)
            return
        self._busy = True
        try:
            while True:
                for command in self.machine.handle(event):
                    self._do(command)
                if not self._pending:
                    break
                event = self._pending.pop(0)
        finally:
            self._busy = False
            self._pending = None
        self._flush()

    def _do(self, command: Command) -> None:
        if isinstance(command, Send):
            self._send_text(command.frame)
        elif isinstance(command, ScheduleTick):
            if command.at is None:
                self._tick_at = None
            else:
                self._tick_at = self._loop.time() + max(0.0, command.at - time.time())
            self._arm()
        elif isinstance(command, Close):
            if self.conn.state is State.OPEN:
                self.conn.send_close(command.code, command.reason)
            self._close_at = self._loop.time() + CLOSE_WAIT
            self._arm()
        else:  # an operation on the store or the bus: its result comes back as an event
            task = self._loop.create_task(self._operate(command))
            self.server_state.tasks.add(task)
            task.add_done_callback(self.server_state.tasks.discard)

    async def _operate(self, command: Command) -> None:
        """Carry out one store/bus command; its result goes back to the machine."""
        try:
            event = await self._carry_out(command)
            if event is not None:
                self.feed(event)
        except ApiError as err:
            self.feed(Failed(err))
        except Exception as exc:  # noqa: BLE001 - one socket must not take the relay down
            log("websocket error", logging.ERROR, error=type(exc).__name__)
            if self.conn.state is State.OPEN:
                self.conn.send_close(INTERNAL_ERROR, "")
                self._flush()
            self.feed(Gone())
            if self.transport is not None:
                self.transport.close()

    async def _carry_out(self, command: Command) -> Event | None:
        raise NotImplementedError

    async def _subscribe(self, device: Device, topic: str) -> Event:
        """Subscribe to the bus topic, then admit (the machine's first read comes after this)."""
        manager = self.sockets.service.bus.subscribe(topic)
        sub = await manager.__aenter__()
        self._device, self._sub, self._exit = device, sub, manager.__aexit__
        if self.machine.final:  # the client left while we were subscribing
            self._unsubscribe()
            return Gone()
        sub.watch(self._on_bus)
        return Admitted(device, sub.recheck, time.time())

    # the one timer -------------------------------------------------------------------------
    def _arm(self) -> None:
        """Keep the one timer set at the earliest deadline, or up to TIMER_SLACK before it.

        A deadline pushed back by less than TIMER_SLACK keeps the timer (when it
        fires it finds nothing due and sets itself again): most steps only push
        the idle ping's deadline back by the time since the last frame, and a
        cancel and a new timer handle per frame cost more than the rare early
        wake-up. A deadline moved further (the auth deadline giving way to the
        idle ping at ``ready``) or earlier moves the timer, so an idle socket
        wakes only when something is due.
        """
        at = min(
            (
                t
                for t in (self._tick_at, self._ping_at, self._pong_by, self._close_at, self._stall)
                if t is not None
            ),
            default=None,
        )
        if at is None:  # a timer still set fires once, finds nothing due and is not renewed
            return
        if self._timer is not None:
            if 0.0 <= at - self._timer_at <= TIMER_SLACK:
                return  # due a little later than set: the timer fires early and sets itself
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self._loop.time()
        transport = self.transport
        if transport is None:
            return
        if (self._stall is not None and now >= self._stall) or (
            self._close_at is not None and now >= self._close_at
        ):
            if self._stall is not None and now >= self._stall:
                log("websocket aborted: the client stopped reading", logging.WARNING)
            transport.abort()  # a socket that does not drain or answer the close: drop it
            return
        if self._pong_by is not None and now >= self._pong_by:
            # dead, or not reading (its buffers full): a close would wait for ever to be sent
            log(
                "websocket dropped: no answer to a keep-alive ping (the client stopped reading"
                " or is gone)"
            )
            transport.abort()
            return
        if self._ping_at is not None and now >= self._ping_at:
            self._keepalive_ping(now)
            self._flush()
        if self._tick_at is not None and now >= self._tick_at:
            self._tick_at = None
            self.feed(Tick(time.time()))
        self._arm()

    def _on_bus(self) -> None:
        sub = self._sub
        while sub is not None and (event := sub.poll()) is not None:
            self.feed(BusEvent(event, time.time()))

    def _unsubscribe(self) -> None:
        if self._sub is None:
            return
        self._sub.watch(None)
        leave: Callable[..., Any] = self._exit
        self._sub = self._exit = None
        task = self._loop.create_task(leave(None, None, None))
        self.server_state.tasks.add(task)
        task.add_done_callback(self.server_state.tasks.discard)


# websockets logs each client's protocol errors; the relay keeps its own log of what matters
_QUIET = logging.getLogger("unlatch.relay.websocket")
_QUIET.propagate = False
_QUIET.addHandler(logging.NullHandler())


class ChannelSocket(SessionSocket):
    """``/v1/pairing/{id}/ws`` and ``/v1/unlock/{id}/ws``: a party waiting on a channel.

    ``requester``: the upgrade request's client address (as the proxy rules
    see it) and user agent, for an unlock socket that creates its channel.
    """

    __slots__ = ("kind", "requester")

    def __init__(
        self,
        sockets: Sockets,
        server_state: Any,
        channel_id: bytes | None,
        kind: ChannelKind,
        requester: tuple[str, str] = _NOBODY,
    ) -> None:
        super().__init__(sockets, server_state, ChannelWaiter(channel_id, kind))
        self.kind = kind
        self.requester = requester

    @property
    def endpoint(self) -> str:  # type: ignore[override]
        return self.kind

    async def _carry_out(self, command: Command) -> Event | None:
        service = self.sockets.service
        cid = self.machine.channel_id
        assert cid is not None
        if isinstance(command, Admit):
            requester, self.requester = self.requester, _NOBODY  # not kept while idle
            if command.create is not None:
                return await self._create(command.token, command.create, cid, requester)
            # subscribe, then ONE read that both checks the party and is the first read
            # (the subscription first, so nothing stored after the read is missed)
            device = await service.authenticate(command.token)
            admitted = await self._subscribe(device, channel_topic(cid))
            if not isinstance(admitted, Admitted):
                return admitted
            try:
                msgs, ch = await service.next_messages(device, cid, self.machine.after)
                service.check_waiter(device, ch, self.kind)
            except ApiError:
                self._unsubscribe()
                raise
            return replace(admitted, first=ReadDone(tuple(msgs), ch, time.time()))
        assert self._device is not None
        if isinstance(command, Read):
            msgs, ch = await service.next_messages(self._device, cid, command.after)
            return ReadDone(tuple(msgs), ch, time.time())
        if isinstance(command, EndChannel):  # the client's {"type": "close"}: as DELETE
            await service.close_channel(self._device, cid, self.kind)
            return None
        if isinstance(command, HandOver):
            msgs = list(command.messages)
            service.metrics.messages_delivered.labels("websocket").inc(len(msgs))
            log("delivered", kind=msgs[-1].type, channel=short(cid), count=len(msgs))
            await service.handed_over(cid, msgs)
            return None
        raise TypeError(f"a channel socket has no command {command!r}")

    async def _create(
        self, token: str | None, create: dict[str, Any], cid: bytes, requester: tuple[str, str]
    ) -> Event:
        """An unlock socket creating its channel: as ``POST /v1/unlock``, then admitted.

        The same checks in the same order as the route (session, fields, then
        the service's pairing, id, rate-limit and cap checks), the subscription
        before the channel exists, and no read: a channel just created is open
        with no messages, and an event that comes meanwhile causes a read.
        """
        service = self.sockets.service
        device = await service.authenticate(token)
        fields = new_unlock(create, service.config.unlock_ttl, with_id=False)
        admitted = await self._subscribe(device, channel_topic(cid))
        if not isinstance(admitted, Admitted):
            return admitted
        address, agent = requester
        try:
            created = await service.create_unlock(device, cid, fields, address, agent)
        except ApiError:
            self._unsubscribe()
            raise
        first = ReadDone((), created.channel, time.time())
        return replace(admitted, first=first, created=created.answer)


class ListenerSocket(SessionSocket):
    """``/v1/listen``: a phone in the foreground hearing its requests and their fate."""

    __slots__ = ()
    endpoint = "listen"

    def __init__(self, sockets: Sockets, server_state: Any) -> None:
        super().__init__(sockets, server_state, PhoneListener())

    async def _carry_out(self, command: Command) -> Event | None:
        service = self.sockets.service
        if isinstance(command, Admit):
            device = await service.authenticate(command.token)
            if device.kind != "phone":  # the machine says so; no subscription for it
                return Admitted(device, None, time.time())
            return await self._subscribe(device, device_topic(device.device_id))
        assert self._device is not None
        if isinstance(command, ReadPending):
            notes = await service.pending_unlock(self._device)
            return PendingRead(tuple(notes), time.time())
        if isinstance(command, ReadStates):
            frames = []
            for rid in command.request_ids:
                with contextlib.suppress(ApiError, CodecError):
                    frames.append(await service.unlock_state(self._device, b64d(rid)))
            return StatesRead(tuple(frames), time.time())
        raise TypeError(f"a listener socket has no command {command!r}")
