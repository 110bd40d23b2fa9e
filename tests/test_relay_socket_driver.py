"""The WebSocket driver's own duties (unlatch/relay/socket_driver.py): keep-alive and stalls.

The socket machines are tested on a fake clock (tests/test_relay_waiter.py,
tests/test_relay_listener.py) and the whole relay over real sockets
(tests/test_relay_abuse.py); here the driver alone, with a transport that
records what is written, so its timers can be driven without waiting.
"""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

from unlatch.relay import socket_driver as sd
from unlatch.relay.config import WS_PING_TIMEOUT

UPGRADE = (
    b"GET /v1/listen HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Gauge:
    def labels(self, *_: str) -> Gauge:
        return self

    def inc(self, *_: Any) -> None: ...

    def dec(self, *_: Any) -> None: ...


def listener() -> tuple[sd.ListenerSocket, Transport]:
    """A /v1/listen socket after its handshake (the bookkeeping object is a stand-in)."""
    sockets: Any = SimpleNamespace(
        opened=lambda *a: None, closed=lambda *a: None, send_timeout=10.0, service=None
    )
    state = SimpleNamespace(connections=set(), tasks=set())
    sock = sd.ListenerSocket(sockets, state)
    transport = Transport()
    sock.connection_made(transport)
    sock.data_received(UPGRADE)
    assert transport.out.startswith(b"HTTP/1.1 101")
    transport.out.clear()
    return sock, transport


async def test_the_idle_ping_carries_the_protocol_ping() -> None:
    sock, transport = listener()
    sock._send_text({"type": "ping"})
    sock._flush()
    opcodes = [b & 0x0F for b in frames_first_bytes(bytes(transport.out))]
    assert opcodes == [0x1, 0x9]  # the text ping, then a protocol ping, one wake-up
    assert sock._pong_by is not None and sock._ping_at is None
    sock.connection_lost(None)


async def test_no_pong_in_time_aborts_and_says_so(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="unlatch.relay")
    sock, transport = listener()
    sock._keepalive_ping(sock._loop.time() - WS_PING_TIMEOUT - 1)  # sent long ago
    sock._on_timer()
    assert transport.aborted  # not a close: that would wait behind full buffers
    assert "the client stopped reading or is gone" in caplog.text
    sock.connection_lost(None)


async def test_a_client_that_stops_reading_is_aborted_after_the_send_timeout(caplog: Any) -> None:
    sock, transport = listener()
    sock.pause_writing()
    assert not transport.aborted
    sock._stall = sock._loop.time() - 0.01  # the send timeout has passed
    sock._on_timer()
    assert transport.aborted and "the client stopped reading" in caplog.text
    sock.connection_lost(None)


async def test_the_timer_moves_only_for_an_earlier_or_much_later_deadline() -> None:
    """A deadline pushed back a little keeps the timer (it fires early, finds nothing due,
    sets itself for the real one); an earlier deadline, or one further than TIMER_SLACK
    (so an idle socket does not wake for nothing), replaces it; none is lost either way."""
    sock, _ = listener()
    now = sock._loop.time()
    sock._tick_at = now + 5.0
    sock._arm()
    first = sock._timer
    assert first is not None and sock._timer_at == now + 5.0
    sock._tick_at = now + 5.0 + sd.TIMER_SLACK / 2  # pushed back a little: the same timer
    sock._arm()
    assert sock._timer is first
    sock._tick_at = now + 1.0  # earlier: replaced
    sock._arm()
    assert sock._timer is not first and first.cancelled() and sock._timer_at == now + 1.0
    second = sock._timer
    sock._tick_at = now + 20.0  # much later (auth deadline -> idle ping): moved too
    sock._arm()
    assert sock._timer is not second and second.cancelled()
    assert sock._timer_at == min(now + 20.0, sock._ping_at or 1e18)
    # a timer that fires before anything is due sets itself for the earliest deadline
    sock._tick_at = now + 20.0 + sd.TIMER_SLACK / 2
    sock._on_timer()
    assert sock._timer is not None
    assert sock._timer_at == min(now + 20.0 + sd.TIMER_SLACK / 2, sock._ping_at or 1e18)
    sock.connection_lost(None)


async def test_frames_of_one_step_go_out_in_one_write() -> None:
    sock, transport = listener()
    writes: list[bytes] = []
    transport.write = writes.append  # type: ignore[method-assign]
    sock._send_text({"type": "a"})
    sock._send_text({"type": "b"})
    sock._flush()
    assert len(writes) == 1 and frames_first_bytes(writes[0]) == [0x81, 0x81]
    sock.connection_lost(None)


def frames_first_bytes(data: bytes) -> list[int]:
    """The first byte of each server frame in ``data`` (unmasked, small payloads)."""
    out, i = [], 0
    while i < len(data):
        out.append(data[i])
        i += 2 + (data[i + 1] & 0x7F)
    return out
