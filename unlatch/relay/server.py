"""Running the relay under uvicorn, with a shutdown that tells waiting clients.

uvicorn's own shutdown closes WebSockets without a word; a desktop waiting for
a phone's reply should learn that the relay is restarting (and resume), not
guess from a dropped socket. :class:`RelayServer` first sends every socket
``{"type": "shutdown"}`` and close code 1012, then lets uvicorn finish.
"""

from __future__ import annotations

import socket

import uvicorn

from unlatch.relay.app import Relay, create_app
from unlatch.relay.config import RelayConfig
from unlatch.relay.logs import log, setup_logging


class RelayServer(uvicorn.Server):
    """A uvicorn server whose shutdown starts with the relay's goodbye to its sockets."""

    def __init__(self, config: uvicorn.Config, relay: Relay) -> None:
        super().__init__(config)
        self.relay = relay

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        log("relay shutting down", websockets=self.relay.sockets.open_count)
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
        proxy_headers=False,  # the relay decides itself, from --trusted-proxy
        server_header=False,
        date_header=True,
        access_log=False,
        log_config=None,
        lifespan="on",
        ws="websockets-sansio",
        ws_max_size=16 * 1024,
        # frames are small JSON with opaque base64 inside: compression saves little,
        # costs CPU per frame and would mix attacker-chosen and secret-derived bytes
        ws_per_message_deflate=False,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        timeout_graceful_shutdown=max(1, int(config.shutdown_grace)),
        timeout_keep_alive=30,
        backlog=2048,
    )
    return RelayServer(uv_config, app.state.relay)


def run(config: RelayConfig) -> None:
    """Serve until SIGINT/SIGTERM."""
    build_server(config).run()
