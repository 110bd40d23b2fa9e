"""The agent's Unix-socket transport around :class:`AgentCore`.

``$UNLATCH_HOME/desktop/agent.sock``, mode 0600 in a 0700 directory, and
each connection's peer uid is checked (``SO_PEERCRED``) against ours.
One agent per ``UNLATCH_HOME``: an ``flock`` on ``agent.lock`` decides.
The vault locks when the agent stops (``stop`` request, SIGTERM, SIGINT).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import struct
from pathlib import Path
from typing import Any

from unlatch.agent import heap, settings, wire
from unlatch.agent.core import AgentCore
from unlatch.agent.errors import AgentAlreadyRunningError, AgentError, BadRequestError
from unlatch.agent.handlers import HANDLERS
from unlatch.errors import UnlatchError
from unlatch.vault.location import default_vault_path

log = logging.getLogger(__name__)


class AgentServer:
    """Serves :data:`~unlatch.agent.handlers.HANDLERS` on the Unix socket."""

    def __init__(self, core: AgentCore, sock_path: Path) -> None:
        self.core = core
        self.sock_path = sock_path
        self.stopped = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Bind the socket with 0600 permissions (umask set around ``bind``)."""
        if len(os.fsencode(self.sock_path)) > settings.MAX_SOCKET_PATH:
            raise AgentError(
                f"socket path {self.sock_path} is too long for a Unix socket: "
                "set UNLATCH_HOME to a shorter directory"
            )
        with contextlib.suppress(FileNotFoundError):
            self.sock_path.unlink()  # stale: the flock proved no agent owns it
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(
                self._handle, path=os.fspath(self.sock_path), limit=wire.MAX_REQUEST + 1
            )
        finally:
            os.umask(old_umask)
        self.sock_path.chmod(0o600)

    async def close(self) -> None:
        """Stop listening, lock the vault, remove the socket."""
        if self._server is not None:
            self._server.close()
        await self.core.close()
        with contextlib.suppress(FileNotFoundError):
            self.sock_path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not _same_user(writer):
                writer.write(wire.encode(wire.error_reply(AgentError("permission denied"))))
                return
            while not self.stopped.is_set():
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    too_big = BadRequestError(f"request larger than {wire.MAX_REQUEST} bytes")
                    writer.write(wire.encode(wire.error_reply(too_big)))
                    return
                if not line:
                    return
                writer.write(wire.encode(await self._reply(line)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()
                await writer.wait_closed()

    async def _reply(self, line: bytes) -> dict[str, Any]:
        op = "?"
        try:
            op, args = wire.decode_request(line)
            if op == "stop":
                self.stopped.set()
                return {"ok": True, "result": {"stopping": True}}
            if op == "ping":
                return {"ok": True, "result": {"pid": os.getpid()}}
            handler = HANDLERS.get(op)
            if handler is None:
                raise BadRequestError(f"unknown operation {op[:40]!r}")
            result = await handler(self.core, args)
            log.info("op %s ok", op)
            return {"ok": True, "result": result}
        except UnlatchError as exc:
            log.info("op %s failed: %s", op, type(exc).__name__)
            return wire.error_reply(exc)
        except Exception:
            log.exception("op %s crashed", op)
            return wire.error_reply(AgentError("internal error in the agent (see agent.log)"))


def _same_user(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return True
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


@contextlib.contextmanager
def _instance_lock(sock_path: Path) -> Any:
    fd = os.open(sock_path.with_name("agent.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AgentAlreadyRunningError("an agent is already running") from None
        yield
    finally:
        os.close(fd)


async def serve(
    idle_lock_seconds: float, ready: asyncio.Event | None = None, *, fixed_by: str = ""
) -> None:
    """Run the agent until ``stop``, SIGTERM or SIGINT.

    ``fixed_by`` names what set the idle lock when the settings page may not
    change it (:class:`unlatch.agent.settings.IdleLock`).
    """
    sock_path = settings.socket_path()
    core = AgentCore(default_vault_path(), idle_lock_seconds)
    core.idle_lock_fixed_by = fixed_by
    with _instance_lock(sock_path):
        server = AgentServer(core, sock_path)
        await server.start()
        heap.settle()  # what start-up made lives as long as the agent: no full walks of it
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.stopped.set)
        log.info(
            "agent %d listening on %s (idle lock %ss)", os.getpid(), sock_path, idle_lock_seconds
        )
        if ready is not None:
            ready.set()
        try:
            await server.stopped.wait()
        finally:
            await server.close()
            log.info("agent stopped; vault locked")


def run(idle_lock: settings.IdleLock) -> None:
    """Blocking entry point for ``unlatch agent start --foreground``."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s agent[%(process)d] %(levelname)s %(message)s"
    )
    asyncio.run(serve(idle_lock.seconds, fixed_by=idle_lock.fixed_by))
