"""The floor for bench/bench_relay.py: a bare `websockets` forwarder doing the same exchange.

A desktop opens ``ws://HOST:WS_PORT/wait/<id>`` and is sent ``{"type": "ready"}``
once it is registered; a phone sends ``POST /reply/<id>`` (any body, with a
Content-Length) to ``http://HOST:HTTP_PORT``; the body goes to the waiting
socket as one text frame and the phone gets ``202`` (``404`` if nobody waits).
No authentication, no store, no framework: what is left is the cost of the
WebSocket and the HTTP request themselves, on the same event loop (uvloop) the
relay runs on. (The `websockets` server accepts only GET, so the POST has its
own few-line HTTP/1.1 listener in the same process.)

Run: python bench/bare_forwarder.py WS_PORT HTTP_PORT
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys

import uvloop
from websockets.asyncio.server import ServerConnection, serve

waiters: dict[str, ServerConnection] = {}


async def wait(ws: ServerConnection) -> None:
    key = (ws.request.path if ws.request else "").rsplit("/", 1)[-1]
    waiters[key] = ws
    try:
        await ws.send('{"type":"ready"}')
        await ws.wait_closed()
    finally:
        if waiters.get(key) is ws:
            del waiters[key]


async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            path = lines[0].split(b" ")[1]
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length)
            ws = waiters.get(path.rsplit(b"/", 1)[-1].decode())
            status = b"404 Not Found"
            if ws is not None:
                frame = {"type": "message", "kind": "reply", "body": body.decode()}
                await ws.send(json.dumps(frame))
                status = b"202 Accepted"
            writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(ws_port: int, http_port: int) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    http = await asyncio.start_server(reply, "127.0.0.1", http_port, backlog=2048)
    async with serve(wait, "127.0.0.1", ws_port, ping_interval=20, compression=None, backlog=2048):
        async with http:
            await asyncio.Future()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
