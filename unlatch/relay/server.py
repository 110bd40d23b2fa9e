"""Running the relay under uvicorn, with a shutdown that tells waiting clients.

uvicorn's own shutdown closes WebSockets without a word; a desktop waiting for
a phone's reply should learn that the relay is restarting (and resume), not
guess from a dropped socket. :class:`RelayServer` first sends every socket
``{"type": "shutdown"}`` and close code 1012, then lets uvicorn finish.

Slow clients are bounded three ways: request bodies have a deadline
(:func:`unlatch.relay.validate.read_json`), at most ``max_connections``
connections are served at once (uvicorn's ``limit_concurrency``: beyond it, 503),
and a WebSocket whose client stops reading is cut off (the stall timer of
:class:`unlatch.relay.socket_driver.SessionSocket`).
Big clients are bounded too: a request head (request line and header fields,
WebSocket upgrades included) over :data:`MAX_HEAD_BYTES` or with more than
:data:`MAX_HEADERS` fields gets 431 (:class:`HeadLimitHttpToolsProtocol`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
from typing import Any
from urllib.parse import unquote

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from unlatch.relay.apierror import ApiError
from unlatch.relay.app import Relay, create_app
from unlatch.relay.config import RelayConfig
from unlatch.relay.logs import log, setup_logging
from unlatch.relay.models import ChannelKind
from unlatch.relay.socket_driver import (
    ChannelSocket,
    ListenerSocket,
    SessionSocket,
    channel_id_of,
)

FD_HEADROOM = 128  # descriptors kept free beyond max_connections (store, bus, logs, pushes)
# A request head (request line + header fields) larger than this, or with more
# fields, is refused with 431. The relay's own clients send well under 2 KiB;
# browsers stay under 8 KiB per line (nginx's default large_client_header_buffers).
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
# after a 431 the relay stops sending but reads (and drops) what the client is still
# sending for this long before closing, so the client gets the answer, not a reset
REFUSE_LINGER = 1.0


_CHANNEL_PATH = re.compile(r"/v1/(pairing|unlock)/([^/]*)/ws")


def channel_route(path: str) -> tuple[bytes | None, ChannelKind] | None:
    """(channel id or None if malformed, kind) for a channel socket's path, else None."""
    match = _CHANNEL_PATH.fullmatch(path)
    if match is None:
        return None
    kind: ChannelKind = "pairing" if match.group(1) == "pairing" else "unlock"
    return channel_id_of(match.group(2)), kind


class _HeadTooLarge(Exception):
    """Raised from a parser callback: stops httptools at once (the request is refused)."""


class HeadLimitHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on the request head: 431 above it.

    httptools (llhttp) has no limit of its own: it buffers a header field of
    any length, by repeated bytes concatenation, before handing it over, so a
    single 64 MiB header took 15 s of CPU and left the relay's memory 67 MiB
    larger. (uvicorn's ``h11_max_incomplete_event_size`` only applies to the
    slower h11 parser.) Two guards here:

    * memory: the parser is fed at most the bytes left in the budget of the
      head being read, and at most one budget at a time otherwise (a body, or
      the end of one request and the start of the next); a head that has not
      ended when its budget is used up is refused before any more of it is
      parsed or buffered. A head counts from the end of the request before it,
      so a pipelined head that begins inside a piece (behind the end of the
      previous request) is counted from the next piece on: at most one budget
      more of it is buffered, never an unbounded network read;
    * exact size and count: each URL chunk and each completed header field is
      added up from the parser's callbacks, so a head that ends inside one
      piece is measured too (a pipelined request following a finished one in
      the same read is often only seen this way).

    The WebSocket upgrade request is parsed by this protocol before it is
    handed to the WebSocket implementation, so it gets the same caps.
    """

    max_head_bytes = MAX_HEAD_BYTES
    max_headers = MAX_HEADERS
    relay: Relay | None = None  # set by build_server: the WebSockets' service
    _in_head = True  # from the end of a request (or the connection's start) to the next head's end
    _head_fed = 0  # bytes given to the parser since then (see the class docstring)
    _head_size = 0  # URL + field names and values seen through callbacks
    _head_fields = 0
    _refused = False
    _refusal_pending = False  # the 431 waits for the answer to an earlier pipelined request

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a 431: dropped unparsed
        rest = memoryview(data)  # pieces without copies (httptools takes memoryviews)
        while rest:
            room = self.max_head_bytes - self._head_fed if self._in_head else self.max_head_bytes
            if room <= 0:
                self._refuse()
                return
            piece, rest = rest[:room], rest[room:]
            if self._in_head:
                self._head_fed += len(piece)
            super().data_received(piece)  # type: ignore[arg-type]
            if (
                self._refused
                or self.parser is None
                or self.transport.is_closing()
                or self.transport.get_protocol() is not self  # upgraded to a WebSocket
            ):
                return

    def handle_websocket_upgrade(self) -> None:
        """Hand the connection to the socket driver of its path (404 for any other path).

        (:mod:`unlatch.relay.socket_driver`: each WebSocket is a state machine,
        without an ASGI task per connection.) The upgrade request is handed over
        as bytes, as uvicorn does for its own WebSocket protocols.
        """
        # (uvicorn has not parsed the URL of an upgrade request into the scope)
        path = unquote(self.url.partition(b"?")[0].decode("latin-1"))
        route = channel_route(path)
        protocol: SessionSocket
        if self.relay is None:  # pragma: no cover - build_server always sets it
            raise RuntimeError("RelayHttpProtocol without its relay")
        if route is not None:
            requester = ("", "")
            if route[1] == "unlock":  # the socket may create its channel: who asks, as a route sees
                requester = self.relay.requester(self.client, self.scope["headers"])
            protocol = ChannelSocket(self.relay.sockets, self.server_state, *route, requester)
        elif path == "/v1/listen":
            protocol = ListenerSocket(self.relay.sockets, self.server_state)
        else:
            self._refuse_upgrade()
            return
        self.connections.discard(self)
        output = [self.scope["method"].encode(), b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.scope["headers"]:
            output += [name, b": ", value, b"\r\n"]
        output.append(b"\r\n")
        protocol.connection_made(self.transport)
        self.transport.set_protocol(protocol)
        protocol.data_received(b"".join(output))

    def _refuse_upgrade(self) -> None:
        """A WebSocket upgrade for a path that has none: 404, as JSON like every refusal."""
        err = ApiError("not_found", "no WebSocket at this path")
        self._answer_and_close(b"404 Not Found", err)

    def _answer_and_close(self, status: bytes, err: ApiError) -> None:
        body = json.dumps(err.body(), separators=(",", ":")).encode()
        head = [b"HTTP/1.1 " + status + b"\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body))
        self.transport.write(b"".join(head) + body)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_size = self._head_fields = 0

    def on_url(self, url: bytes) -> None:
        self._grow(len(url), 0)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow(len(name) + len(value) + 4, 1)  # "name: value\r\n"
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The bytes after a request belong to the next head: its budget starts here.

        (Counted from the next head's first callback instead, the network read in
        which that head began was fed unbudgeted: a pipelined head that began a read
        was buffered whole, up to the size of a read, before it was measured.)
        """
        super().on_message_complete()
        self._in_head = True
        self._head_fed = 0

    def _grow(self, size: int, fields: int) -> None:
        self._head_size += size
        self._head_fields += fields
        if self._head_size > self.max_head_bytes or self._head_fields > self.max_headers:
            self._refuse()
            raise _HeadTooLarge  # httptools stops; uvicorn's handler calls send_400_response

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._refusal_pending:
            self._refusal_pending = False
            self._send_431()

    def _refuse(self) -> None:
        """Stop reading; answer 431 (after any answer in progress) and close.

        The refusal is logged here, when the head is measured, not when the 431 is
        written: the 431 of a pipelined head waits for the answer in progress, which
        may close the connection first (then no 431 is sent, but the head was still
        refused), and a line written before the answer is on the wire is in the log
        by the time the client reads it.
        """
        if self._refused:
            return
        self._refused = True
        size = max(self._head_fed, self._head_size)
        log("request head too large", size=size, count=self._head_fields)
        self.pipeline.clear()  # requests queued behind the one in progress are not served
        if self.cycle is not None and not self.cycle.response_complete:
            self._refusal_pending = True
            return
        self._send_431()

    def _send_431(self) -> None:
        if self.transport.is_closing():
            return
        err = ApiError(
            "headers_too_large",
            f"request head over {self.max_head_bytes} bytes or {self.max_headers} header fields",
        )
        self._answer_and_close(b"431 Request Header Fields Too Large", err)
        if self.transport.can_write_eof():
            # half-close: a close with unread input would reset the connection, and the
            # reset can destroy the 431 before the client (still sending) reads it
            self.transport.write_eof()
            self.loop.call_later(REFUSE_LINGER, self.transport.close)
        else:
            self.transport.close()


def connection_cap(wanted: int) -> int:
    """``wanted`` connections if the open-file limit allows it (raised if it can be).

    Each connection is a file descriptor; past the limit ``accept()`` fails
    and the relay logs errors instead of answering. The soft limit is raised
    towards the hard one when needed; if even that is too low the cap is
    lowered to fit, with a warning.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_HEADROOM
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < need:
        cap = max(16, soft - FD_HEADROOM)
        log(
            "max_connections lowered to fit the open-file limit (raise LimitNOFILE / ulimit -n)",
            logging.WARNING,
            wanted=wanted,
            max_connections=cap,
            nofile=soft,
        )
        return cap
    return wanted


TRIM_EVERY = 2.0  # seconds between looks at how many connections left (see _give_back)
TRIM_AFTER = 256  # connections that must have gone since the last trim


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim`` (None elsewhere, e.g. musl or macOS)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


class RelayServer(uvicorn.Server):
    """A uvicorn server whose shutdown starts with the relay's goodbye to its sockets."""

    def __init__(self, config: uvicorn.Config, relay: Relay) -> None:
        super().__init__(config)
        self.relay = relay
        self._trimmer: asyncio.Task[None] | None = None

    async def _give_back(self) -> None:
        """Return freed memory to the system after many connections left.

        Thousands of closed connections leave glibc's heap full of free chunks
        that it keeps (measured: +37 MiB RSS after 1,000 idle WebSockets came and
        went, for ever). When at least ``TRIM_AFTER`` connections have gone since
        the last look, ``malloc_trim(0)`` hands the free pages back (a few ms).
        """
        trim = _malloc_trim()
        if trim is None:
            return
        peak = 0
        while True:
            await asyncio.sleep(TRIM_EVERY)
            now = len(self.server_state.connections)
            peak = max(peak, now)
            if peak - now >= TRIM_AFTER:
                trim(0)
                peak = now

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._trimmer = asyncio.create_task(self._give_back())
        try:
            await super().startup(sockets)
        except SystemExit:
            # uvicorn exits with status 3 when the app's startup fails; a configuration
            # error (unreachable store, VAPID key mismatch) goes to the CLI with its message
            if self.relay.startup_error is not None:
                raise self.relay.startup_error from None
            raise

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        log("relay shutting down", websockets=self.relay.sockets.open_count)
        if self._trimmer is not None:
            self._trimmer.cancel()
        await self.relay.sockets.notify_shutdown(self.relay.config.shutdown_grace)
        await super().shutdown(sockets)


def build_server(config: RelayConfig) -> RelayServer:
    """A ready-to-run server for ``config`` (logging set up, TLS if cert/key given)."""
    setup_logging(config.log_level)
    app = create_app(config)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        ssl_certfile=config.cert or None,
        ssl_keyfile=config.key or None,
        # httptools (the fast parser), with the relay's caps on the request head
        http=type("RelayHttpProtocol", (HeadLimitHttpToolsProtocol,), {"relay": app.state.relay}),
        proxy_headers=False,  # the relay decides itself, from --trusted-proxy
        server_header=False,
        date_header=True,
        access_log=False,
        log_config=None,
        lifespan="on",
        # never instantiated: every upgrade goes to RelayHttpProtocol.handle_websocket_upgrade
        # (uvicorn only considers upgrades when a WebSocket protocol is configured)
        ws="websockets-sansio",
        timeout_graceful_shutdown=max(1, int(config.shutdown_grace)),
        timeout_keep_alive=30,
        backlog=2048,
        # HTTP and WebSocket connections served at once; beyond, new requests get a 503
        limit_concurrency=connection_cap(config.max_connections),
    )
    return RelayServer(uv_config, app.state.relay)


def run(config: RelayConfig) -> None:
    """Serve until SIGINT/SIGTERM."""
    build_server(config).run()
