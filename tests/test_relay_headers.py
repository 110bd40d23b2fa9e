"""What a client can do with request headers to a real relay on loopback.

* Spoofing its address through a forwarding header (issue 11, item 4): from a
  trusted proxy the relay reads only the one header the operator configured
  (``--proxy-header``), right-most untrusted address first. The test client
  plays the documented proxy: it sends what nginx would forward, the client's
  own headers untouched plus the header the proxy writes.
* Huge or numerous headers (issue 11, item 10): the relay itself answers 431
  and its memory does not grow; a refused head pipelined behind a request in
  progress gets its 431 after that request's answer, in every ordering of the
  reads and the answer (the protocol driven by hand, no loop, no sockets).
* Text frames that are not UTF-8 on a WebSocket (issue 15): a client error,
  closed with 1007, no ERROR line in the log.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

import httpx
import pytest
from fixtures.relay import RelayProcess, make_pair, read_http_response
from uvicorn.config import Config
from uvicorn.server import ServerState
from websockets.asyncio.client import connect

from unlatch.relay.codec import b64e
from unlatch.relay.proxy import MAX_HOPS, client_address, parse_networks
from unlatch.relay.server import (
    MAX_HEAD_BYTES,
    MAX_HEADERS,
    REFUSE_LINGER,
    HeadLimitHttpToolsProtocol,
)

REAL = "198.51.100.20"  # the client's real address, as the proxy saw it


def _post_unlock(
    relay: RelayProcess, token: str, routing_id: bytes, headers: dict[str, str]
) -> tuple[httpx.Response, bytes]:
    rid = os.urandom(16)
    r = httpx.post(
        relay.url + "/v1/unlock",
        json={"request_id": b64e(rid), "routing_id": b64e(routing_id), "push": "eA"},
        headers={"authorization": f"Bearer {token}", **headers},
    )
    return r, rid


async def _spoofing_is_ignored(
    relay_factory: Callable[..., RelayProcess],
    proxy_args: list[str],
    spoofed: Callable[[int], dict[str, str]],
) -> None:
    """A relay behind a trusted proxy on loopback, 3 unlock requests per address: three
    requests with rotating spoofed headers all show REAL on the phone, the fourth is
    refused by REAL's per-address limit."""
    relay = relay_factory(
        args=["--trusted-proxy", "127.0.0.0/8", *proxy_args],
        env={"UNLATCH_RELAY_RATE_UNLOCK_IP": "3/300"},
    )
    pair = await make_pair(relay.url)
    try:
        token = await pair.desktop.login()
        for i in range(3):
            r, rid = _post_unlock(relay, token, pair.routing_id, spoofed(i))
            assert r.status_code == 201, r.text
            note = await pair.phone.get_unlock(rid)
            assert note.requester_address == REAL, spoofed(i)
        r, _ = _post_unlock(relay, token, pair.routing_id, spoofed(3))
        assert r.status_code == 429, r.text
        assert r.json()["scope"] == "ip"
    finally:
        await pair.aclose()


async def test_attack_forwarded_header_spoofing_behind_an_x_forwarded_for_proxy(
    relay_factory: Callable[..., RelayProcess],
) -> None:
    # the documented nginx: appends the peer to X-Forwarded-For, passes Forwarded untouched
    def spoofed(i: int) -> dict[str, str]:
        return {"forwarded": f"for=203.0.113.{i + 1}", "x-forwarded-for": f"192.0.2.{i}, {REAL}"}

    await _spoofing_is_ignored(relay_factory, [], spoofed)


async def test_attack_x_forwarded_for_spoofing_behind_a_forwarded_proxy(
    relay_factory: Callable[..., RelayProcess],
) -> None:
    # a proxy that writes RFC 7239 Forwarded and passes X-Forwarded-For untouched
    def spoofed(i: int) -> dict[str, str]:
        return {
            "x-forwarded-for": f"203.0.113.{i + 1}",
            "forwarded": f'for=192.0.2.{i + 1};proto=https, for="{REAL}:4711";proto=https',
        }

    await _spoofing_is_ignored(relay_factory, ["--proxy-header", "forwarded"], spoofed)


async def test_attack_padded_forwarding_header_cannot_push_the_real_address_out(
    relay_factory: Callable[..., RelayProcess],
) -> None:
    """More than MAX_HOPS client-written entries in front of the proxy's own."""
    pad = ", ".join(f"203.0.113.{n}" for n in range(1, MAX_HOPS + 10))
    await _spoofing_is_ignored(
        relay_factory, [], lambda i: {"x-forwarded-for": f"{pad}, {i}.1.1.1, {REAL}"}
    )


TRUSTED = parse_networks(["10.0.0.0/8", "127.0.0.1"])
XFF, FWD = "x-forwarded-for", "forwarded"


@pytest.mark.parametrize(
    ("peer", "header", "headers", "expected"),
    [
        ("203.0.113.5", XFF, [(b"x-forwarded-for", b"1.2.3.4")], "203.0.113.5"),  # untrusted
        ("10.0.0.2", XFF, [(b"x-forwarded-for", b"1.2.3.4")], "1.2.3.4"),
        ("10.0.0.2", XFF, [(b"x-forwarded-for", b"6.6.6.6, 1.2.3.4, 10.9.9.9")], "1.2.3.4"),
        ("10.0.0.2", XFF, [(b"x-forwarded-for", b"10.1.1.1, 10.2.2.2")], "10.1.1.1"),
        # several lines are one list, in order
        (
            "10.0.0.2",
            XFF,
            [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"1.2.3.4")],
            "1.2.3.4",
        ),
        ("10.0.0.2", XFF, [(b"x-forwarded-for", b"garbage, 1.2.3.4")], "1.2.3.4"),
        ("10.0.0.2", XFF, [(b"x-forwarded-for", b"1.2.3.4, garbage")], "10.0.0.2"),
        ("10.0.0.2", XFF, [], "10.0.0.2"),
        ("::ffff:127.0.0.1", XFF, [(b"x-forwarded-for", b"5.5.5.5")], "5.5.5.5"),
        ("127.0.0.1", XFF, [(b"x-forwarded-for", b"5.5.5.5:1234")], "5.5.5.5"),
        # the header not configured is ignored, both ways
        (
            "10.0.0.2",
            XFF,
            [(b"forwarded", b"for=6.6.6.6"), (b"x-forwarded-for", b"1.2.3.4")],
            "1.2.3.4",
        ),
        ("10.0.0.2", XFF, [(b"forwarded", b"for=6.6.6.6")], "10.0.0.2"),
        (
            "10.0.0.2",
            FWD,
            [(b"x-forwarded-for", b"6.6.6.6"), (b"forwarded", b"for=1.2.3.4")],
            "1.2.3.4",
        ),
        ("10.0.0.2", FWD, [(b"x-forwarded-for", b"6.6.6.6")], "10.0.0.2"),
        ("10.0.0.2", FWD, [(b"forwarded", b'for="[2001:db8::1]:99", for=10.3.3.3')], "2001:db8::1"),
        ("10.0.0.2", FWD, [(b"forwarded", b"for=unknown")], "10.0.0.2"),
        ("10.0.0.2", FWD, [(b"forwarded", b"for=6.6.6.6, proto=https")], "10.0.0.2"),
    ],
)
def test_client_address(peer: str, header: str, headers: list, expected: str) -> None:
    assert client_address(peer, headers, TRUSTED, header) == expected


def test_attack_padding_either_header_keeps_the_real_address() -> None:
    pad = ",".join(f"6.6.{n // 250}.{n % 250}" for n in range(1000))
    for header, value in (
        (XFF, f"{pad}, 1.2.3.4"),
        (FWD, ",".join(f"for={a}" for a in pad.split(",")) + ", for=1.2.3.4"),
    ):
        got = client_address("10.0.0.2", [(header.encode(), value.encode())], TRUSTED, header)
        assert got == "1.2.3.4", header


def test_an_unknown_proxy_header_is_a_clear_startup_error(tmp_path) -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "unlatch", "relay", "--port", "1"],
        env={
            **os.environ,
            "UNLATCH_HOME": str(tmp_path),
            "UNLATCH_RELAY_PROXY_HEADER": "x-real-ip",
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0 and "proxy-header" in r.stderr and "Traceback" not in r.stderr


# -- header size and count ----------------------------------------------------------------


def _request(relay: RelayProcess, head: bytes, *, chunk: int = 1 << 20) -> tuple[int, bytes]:
    """Send ``head`` (and nothing after it) on a raw socket; (status, body) of the answer."""
    with socket.create_connection(("127.0.0.1", relay.port), timeout=60) as s:
        try:
            for i in range(0, len(head), chunk):
                s.sendall(head[i : i + chunk])
        except OSError:
            pass  # the relay stopped reading after it refused: its answer is waiting
        status, _headers, body = read_http_response(s)
        return status, body


def _read_response(stream: BinaryIO) -> tuple[int, bytes]:
    """(status, body) of the next response on a buffered stream.

    Pipelined answers can arrive in one segment: what follows this response stays
    in ``stream``'s buffer for the next call (``read_http_response`` reads whole
    segments from the socket and drops what follows the first response in them).
    """
    status_line = stream.readline(1024)
    if not status_line:
        raise ConnectionError("connection closed before a response")
    length = 0
    while (line := stream.readline(MAX_HEAD_BYTES)) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(status_line.split()[1]), stream.read(length)


def _head(path: str, fields: list[tuple[str, str]], *, ws: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1"]
    if ws:
        lines += [
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Version: 13",
            "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(),
        ]
    lines += [f"{name}: {value}" for name, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_attack_a_64_mib_header_is_refused_at_once_without_growing_memory(
    relay: RelayProcess,
) -> None:
    before = relay.rss_kib()
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], relay.rss_kib())
            done.wait(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        status, body = _request(relay, _head("/healthz", [("X-Big", "A" * (64 << 20))]))
    finally:
        done.set()
        sampler.join()
    took = time.monotonic() - started
    assert status == 431 and b"headers_too_large" in body
    assert took < 5, took
    # the old relay grew by ~100 MiB while parsing; allow a few MiB of socket buffers
    assert peak[0] - before < 8 * 1024, (before, peak[0])
    assert httpx.get(relay.url + "/healthz").status_code == 200


def test_attack_header_size_and_count_caps_hold_on_http_and_websocket_upgrades(
    relay: RelayProcess,
) -> None:
    under = [("X-Pad", "a" * (MAX_HEAD_BYTES - 1024))]
    many = [(f"X-F{n}", "1") for n in range(MAX_HEADERS + 1)]
    few = [(f"X-F{n}", "1") for n in range(MAX_HEADERS - 10)]
    over = [("X-Pad", "a" * MAX_HEAD_BYTES)]
    split_over = [(f"X-P{n}", "a" * 4000) for n in range(5)]  # no single field is large
    assert _request(relay, _head("/healthz", under))[0] == 200
    assert _request(relay, _head("/healthz", few))[0] == 200
    for fields in (over, many, split_over):
        assert _request(relay, _head("/healthz", fields))[0] == 431
        # the WebSocket upgrade goes through the same parser first
        assert _request(relay, _head("/v1/listen", fields, ws=True))[0] == 431
    # a long URL counts too
    assert _request(relay, _head("/healthz?" + "q" * MAX_HEAD_BYTES, []))[0] == 431
    # a refused head right behind an answered request in the same write (pipelining);
    # both answers often come in one segment: read them from one buffer
    refusals = relay.logs().count("request head too large")
    with socket.create_connection(("127.0.0.1", relay.port), timeout=30) as s:
        s.sendall(_head("/healthz", []) + _head("/healthz", over))
        stream = s.makefile("rb")
        assert _read_response(stream)[0] == 200
        assert _read_response(stream)[0] == 431
        assert stream.read() == b""  # and nothing after it: the relay closed
    # logged before the 431 was written
    assert relay.logs().count("request head too large") == refusals + 1
    # an upgrade within the caps still works
    assert _request(relay, _head("/v1/listen", few, ws=True))[0] == 101
    assert "Traceback" not in relay.logs()


# -- a pipelined refusal, every ordering forced by hand --------------------------------------


class _Transport(asyncio.Transport):
    """Records what the protocol writes; half-close and close are flags."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.eof = False
        self.closed = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: Any) -> None:
        assert not self.eof and not self.closed, "written after the end"
        self.out += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol


class _Loop:
    """The protocol's loop run by hand: an ASGI task or a timer runs only when told."""

    def __init__(self) -> None:
        self.tasks: list[Any] = []
        self.timers: list[tuple[float, Callable[..., Any]]] = []

    def create_task(self, coro: Any, context: Any = None) -> Any:
        self.tasks.append(coro)

        class Task:
            def add_done_callback(self, _callback: Any) -> None: ...

        return Task()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        timers = self.timers
        timers.append((delay, callback))

        class Timer:
            def cancel(self) -> None:
                timers.remove((delay, callback))

        return Timer()

    def run_tasks(self) -> None:
        """Run every request's ASGI task to its end (the app below never waits)."""
        while self.tasks:
            with pytest.raises(StopIteration):
                self.tasks.pop(0).send(None)


class _Parser:
    """httptools' parser, counting the bytes the protocol gives it."""

    def __init__(self, parser: Any) -> None:
        self._parser = parser
        self.fed = 0

    def feed_data(self, data: Any) -> None:
        self.fed += len(data)
        self._parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)


def _app(*, close: bool) -> Callable[..., Any]:
    async def app(scope: dict, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"2")] + ([(b"connection", b"close")] if close else [])
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def _protocol(*, close: bool = False) -> tuple[HeadLimitHttpToolsProtocol, _Transport, _Loop]:
    config = Config(_app(close=close), log_config=None, proxy_headers=False, lifespan="off")
    loop = _Loop()
    protocol = HeadLimitHttpToolsProtocol(config, ServerState(), {}, _loop=loop)  # type: ignore[arg-type]
    protocol.parser = _Parser(protocol.parser)  # type: ignore[assignment]
    transport = _Transport()
    transport.protocol = protocol
    protocol.connection_made(transport)
    return protocol, transport, loop


_FIRST = _head("/healthz", [])
_OVER = _head("/healthz", [("X-Pad", "a" * MAX_HEAD_BYTES)])
# a head that never ends, as long as a whole network read (asyncio reads 256 KiB at most)
_UNENDING = _head("/healthz", [])[:-4] + b"\r\nX-Pad: " + b"a" * (256 * 1024)
_SPLITS = [None, 1, len(_FIRST) - 1, len(_FIRST), len(_FIRST) + 1, len(_FIRST) + 30, -5, -1]


def _refusals(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage() == "request head too large" for r in caplog.records)


@pytest.mark.parametrize("second", [_OVER, _UNENDING], ids=["measured", "budget"])
@pytest.mark.parametrize("answer_between", [False, True], ids=["answer-after", "answer-between"])
@pytest.mark.parametrize("split", _SPLITS)
def test_a_refused_pipelined_head_is_answered_after_the_request_in_progress(
    caplog: pytest.LogCaptureFixture, second: bytes, answer_between: bool, split: int | None
) -> None:
    """The two requests arrive in one read or two (split at ``split``), the first one's
    answer finishes before or after the second read: always 200, then 431, then the
    half-close and the delayed close, and one log line. The head is refused either by
    its measured size or, never ending, by the bytes fed to the parser: of those, at most
    one budget more than the budget (a head that begins inside a piece is counted from
    the next one), whichever read it begins in."""
    caplog.set_level(logging.INFO, logger="unlatch.relay")
    protocol, transport, loop = _protocol()
    data = _FIRST + second
    reads = [data] if split is None else [data[:split], data[split:]]
    for n, chunk in enumerate(reads):
        protocol.data_received(chunk)
        if answer_between and n == 0:
            loop.run_tasks()
    loop.run_tasks()
    stream = io.BytesIO(bytes(transport.out))  # all of it at once, as in one segment
    assert _read_response(stream) == (200, b"ok")
    status, body = _read_response(stream)
    assert status == 431 and b"headers_too_large" in body
    assert stream.read() == b""
    assert transport.eof and not transport.closed  # closed after the linger
    assert (REFUSE_LINGER, transport.close) in loop.timers
    assert _refusals(caplog) == 1
    assert protocol.parser.fed <= len(_FIRST) + 2 * MAX_HEAD_BYTES


@pytest.mark.parametrize("read_size", [None, 1000, MAX_HEAD_BYTES + 7])
def test_a_long_body_is_not_a_head_and_a_head_within_the_caps_behind_it_is_served(
    caplog: pytest.LogCaptureFixture, read_size: int | None
) -> None:
    """A request with a head near the cap and a body three budgets long, then a pipelined
    head just under both caps: nothing is refused (the body is fed in pieces but not
    counted, each head has a budget of its own), whatever the reads."""
    caplog.set_level(logging.INFO, logger="unlatch.relay")
    protocol, transport, loop = _protocol()
    body = b"b" * (3 * MAX_HEAD_BYTES)
    pad = ("X-Pad", "a" * (MAX_HEAD_BYTES - 2000))
    post = _head("/healthz", [pad, ("Content-Length", str(len(body)))]).replace(b"GET", b"POST")
    fields = [(f"X-F{n}", "1") for n in range(MAX_HEADERS - 2)] + [pad]
    data = post + body + _head("/healthz", fields)
    size = read_size or len(data)
    for i in range(0, len(data), size):
        protocol.data_received(data[i : i + size])
        loop.run_tasks()
    stream = io.BytesIO(bytes(transport.out))
    assert [_read_response(stream), _read_response(stream)] == [(200, b"ok")] * 2
    assert stream.read() == b"" and not transport.eof and not transport.closed
    assert _refusals(caplog) == 0


def test_a_refused_pipelined_head_behind_a_closing_answer_is_still_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The answer in progress closes the connection (``connection: close``): no 431
    can follow it, but the refusal is logged all the same, when the head is measured."""
    caplog.set_level(logging.INFO, logger="unlatch.relay")
    protocol, transport, loop = _protocol(close=True)
    protocol.data_received(_FIRST + _OVER)
    assert transport.out == b"" and _refusals(caplog) == 1  # refused before any answer
    loop.run_tasks()
    stream = io.BytesIO(bytes(transport.out))
    assert _read_response(stream) == (200, b"ok")
    assert stream.read() == b"" and transport.closed
    assert _refusals(caplog) == 1


# -- WebSocket text frames that are not UTF-8 -----------------------------------------------


async def test_attack_invalid_utf8_websocket_frames_write_no_error_log(relay: RelayProcess) -> None:
    from websockets.frames import Frame, Opcode

    pair = await make_pair(relay.url)
    try:
        rid = os.urandom(16)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"p")
        base = relay.url.replace("http", "ws")
        token = await pair.desktop.login()
        for path, auth_first in (
            (f"/v1/unlock/{b64e(rid)}/ws", False),
            (f"/v1/unlock/{b64e(rid)}/ws", True),
            ("/v1/listen", False),
        ):
            for _ in range(5):
                ws = await connect(base + path)
                if auth_first:
                    await ws.send(json.dumps({"type": "auth", "token": token}))
                    await asyncio.wait_for(ws.recv(), 5)  # "ready"
                # a TEXT frame whose payload is not UTF-8 (the library would not send one)
                frame = Frame(Opcode.TEXT, b"\xff\xfe{not utf-8")
                ws.transport.write(frame.serialize(mask=True))
                with pytest.raises(Exception):
                    while True:
                        await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1007, (path, ws.close_code)
        assert (await asyncio.to_thread(httpx.get, relay.url + "/healthz")).status_code == 200
    finally:
        await pair.aclose()
    logs = relay.logs()
    assert '"level":"error"' not in logs, [ln for ln in logs.splitlines() if '"error"' in ln][:3]
    assert "Traceback" not in logs
