"""The relay's WebSockets: the bookkeeping they share (open count, gauge, shutdown).

Every WebSocket of the relay (``/v1/pairing/{id}/ws``, ``/v1/unlock/{id}/ws``,
``/v1/listen``) is a sans-IO state machine (:mod:`unlatch.relay.waiter`,
:mod:`unlatch.relay.listener`) driven outside ASGI by
:mod:`unlatch.relay.socket_driver`, which uvicorn's HTTP protocol hands the
connection at the upgrade (:mod:`unlatch.relay.server`). :class:`Sockets`
knows every open one: the ``unlatch_relay_websockets_open`` gauge, and on
shutdown each is told ``{"type": "shutdown"}`` and closed with 1012 (service
restart). A client that stops reading is dropped after ``ws_send_timeout``
with its buffers (the driver's stall timer), so it cannot hold memory.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from unlatch.relay.service import RelayService
from unlatch.relay.waiter import Shutdown

if TYPE_CHECKING:
    from unlatch.relay.socket_driver import SessionSocket


class Sockets:
    """The open WebSockets of one relay process, for the gauge and for shutdown."""

    def __init__(self, service: RelayService) -> None:
        self.service = service
        # a client that stops reading fills the buffers; after this long it is dropped
        self.send_timeout = service.config.ws_send_timeout
        self.open_count = 0
        self._open: set[SessionSocket] = set()

    async def notify_shutdown(self, grace: float) -> None:
        """Tell every socket to go (1012) and wait up to ``grace`` s for them to close."""
        self.service.shutting_down.set()
        for sock in list(self._open):
            sock.feed(Shutdown())
        deadline = time.monotonic() + grace
        while self.open_count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def opened(self, sock: SessionSocket, endpoint: str) -> None:
        """A socket connected (told at once if the relay is already stopping)."""
        self._open.add(sock)
        self.service.metrics.websockets_open.labels(endpoint).inc()
        self.open_count += 1
        if self.service.shutting_down.is_set():
            sock.feed(Shutdown())

    def closed(self, sock: SessionSocket, endpoint: str) -> None:
        if sock in self._open:
            self._open.discard(sock)
            self.service.metrics.websockets_open.labels(endpoint).dec()
            self.open_count -= 1
