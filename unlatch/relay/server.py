"""Running the relay under uvicorn, with a shutdown that tells waiting clients.

uvicorn's own shutdown closes WebSockets without a word; a desktop waiting for
a phone's reply should learn that the relay is restarting (and resume), not
guess from a dropped socket. :class:`RelayServer` first sends every socket
``{"type": "shutdown"}`` and close code 1012, then lets uvicorn finish.

Slow clients are bounded three ways: request bodies have a deadline
(:func:`unlatch.relay.validate.read_json`), at most ``max_connections``
connections are served at once (uvicorn's ``limit_concurrency``: beyond it, 503),
and a WebSocket whose client stops reading is cut off (:class:`StallGuardWebSocket`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from unlatch.relay.app import Relay, create_app
from unlatch.relay.config import RelayConfig
from unlatch.relay.logs import log, setup_logging

FD_HEADROOM = 128  # descriptors kept free beyond max_connections (store, bus, logs, pushes)


class StallGuardWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, aborting a connection whose client stopped reading.

    When a client stops reading, the kernel buffers fill (several MB on
    loopback), then asyncio pauses writing and the relay's send times out.
    Closing such a socket is not enough: ``transport.close()`` waits for the
    buffer to drain, which never happens, so the connection, its descriptor
    and megabytes of buffers would stay forever and count against
    ``max_connections``. Here, a transport that stays paused for
    ``stall_timeout`` seconds is aborted (RST, buffers dropped).
    """

    stall_timeout = 10.0
    _stall_timer: asyncio.TimerHandle | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(self.stall_timeout, self._abort_stalled)

    def resume_writing(self) -> None:
        self._cancel_stall_timer()
        super().resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_stall_timer()
        super().connection_lost(exc)

    def _cancel_stall_timer(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _abort_stalled(self) -> None:
        self._stall_timer = None
        log("websocket aborted: the client stopped reading", logging.WARNING)
        self.transport.abort()


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


class RelayServer(uvicorn.Server):
    """A uvicorn server whose shutdown starts with the relay's goodbye to its sockets."""

    def __init__(self, config: uvicorn.Config, relay: Relay) -> None:
        super().__init__(config)
        self.relay = relay

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
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
        await self.relay.sockets.notify_shutdown(self.relay.config.shutdown_grace)
        await super().shutdown(sockets)


def build_server(config: RelayConfig) -> RelayServer:
    """A ready-to-run server for ``config`` (logging set up, TLS if cert/key given)."""
    setup_logging(config.log_level)
    app = create_app(config)
    ws_protocol: Any = type(
        "StallGuardWebSocket", (StallGuardWebSocket,), {"stall_timeout": config.ws_send_timeout}
    )
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        ssl_certfile=config.cert or None,
        ssl_keyfile=config.key or None,
        proxy_headers=False,  # the relay decides itself, from --trusted-proxy
        server_header=False,
        date_header=True,
        access_log=False,
        log_config=None,
        lifespan="on",
        ws=ws_protocol,
        ws_max_size=16 * 1024,
        # frames are small JSON with opaque base64 inside: compression saves little,
        # costs CPU per frame and would mix attacker-chosen and secret-derived bytes
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
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
