"""The desktop UI's listening sockets (desktop/web/listen.py): Nagle off on every connection.

asyncio sets ``TCP_NODELAY`` on an accepted connection only when the socket's
``proto`` is ``IPPROTO_TCP``; a socket made with ``proto`` 0 kept Nagle on, so
the page's event stream waited for the browser's delayed ACK before a small
snapshot went out (issue 15: 13-18 ms at p90 between the "unlocked" write and
the page reading it). Checked on the real sockets, through asyncio, as the UI
serves them.
"""

from __future__ import annotations

import asyncio
import socket

from unlatch.desktop.web.listen import bind_loopback


async def test_every_connection_to_the_ui_has_nagle_off() -> None:
    loop = asyncio.get_running_loop()
    sockets = bind_loopback(0)
    try:
        for sock in sockets:
            accepted: asyncio.Future[asyncio.BaseTransport] = loop.create_future()

            class Keep(asyncio.Protocol):
                def connection_made(self, transport: asyncio.BaseTransport) -> None:
                    accepted.set_result(transport)

            server = await loop.create_server(Keep, sock=sock)
            host, port = sock.getsockname()[:2]
            _reader, writer = await asyncio.open_connection(host, port)
            transport = await asyncio.wait_for(accepted, 5)
            conn = transport.get_extra_info("socket")
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1, host
            transport.close()
            writer.close()
            server.close()
            await server.wait_closed()
    finally:
        for sock in sockets:
            sock.close()
