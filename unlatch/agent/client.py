"""The CLI's side of the agent socket, and starting the agent on demand.

Synchronous on purpose: each CLI command sends one or two requests. When
no agent answers, :func:`connect` spawns ``python -m unlatch agent start
--foreground`` detached (own session, output to ``agent.log``) and waits
for the socket, like ``ssh-agent`` but without the shell dance.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from unlatch import safejson
from unlatch.agent import settings, wire
from unlatch.agent.errors import (
    AgentAlreadyRunningError,
    AgentError,
    AgentNotRunningError,
    AgentStartError,
)

START_TIMEOUT = 15.0


class AgentClient:
    """One connection to the agent; requests are answered in order."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")

    def call(self, op: str, **args: Any) -> Any:
        """Send ``op`` with keyword arguments; see :meth:`request`."""
        return self.request(op, args)

    def request(
        self, op: str, args: Mapping[str, Any] | None = None, timeout: float = 120.0
    ) -> Any:
        """Send ``op`` and return its result, or raise the typed error it reports."""
        args = dict(args or {})
        self._sock.settimeout(timeout)
        try:
            self._sock.sendall(wire.encode({"op": op, "args": args}))
            line = self._file.readline(wire.MAX_REPLY + 1)
        except TimeoutError:
            raise AgentError(f"the agent did not answer {op!r} within {timeout:.0f} s") from None
        except OSError as exc:
            raise AgentError(f"lost the connection to the agent: {exc.strerror}") from None
        if not line:
            raise AgentError("the agent closed the connection")
        if len(line) > wire.MAX_REPLY:
            raise AgentError("the agent's reply is too large")
        try:
            reply = safejson.loads(line)
        except ValueError:
            raise AgentError("the agent sent an unreadable reply") from None
        if not isinstance(reply, dict):
            raise AgentError("the agent sent an unreadable reply")
        if not reply.get("ok"):
            wire.raise_error(reply.get("error"))
        return reply.get("result")

    def unlock_slot(self, slot_id: str, kek: bytes) -> Any:
        """Unlock with a KEK (for phone / passkey unlock paths run in the CLI)."""
        return self.call("unlock_slot", slot_id=slot_id, kek=base64.b64encode(kek).decode())

    def close(self) -> None:
        """Close the connection."""
        self._file.close()
        self._sock.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _try_connect(path: Path) -> AgentClient | None:
    if len(os.fsencode(path)) > settings.MAX_SOCKET_PATH:
        raise AgentError(
            f"the agent's socket path {path} is {len(os.fsencode(path))} bytes, over the "
            f"{settings.MAX_SOCKET_PATH}-byte limit of Unix socket paths: "
            "set UNLATCH_HOME to a shorter directory"
        )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except OSError as exc:
        sock.close()
        # Some failures (e.g. "AF_UNIX path too long") carry no errno, so no strerror.
        raise AgentError(f"cannot reach the agent at {path}: {exc.strerror or exc}") from None
    return AgentClient(sock)


def connect(*, start: bool = True, idle_lock: float | None = None) -> AgentClient:
    """A client for the running agent, starting one if needed (and ``start``).

    After spawning, waits for the socket, but gives up as soon as the child
    exits (a bad ``config.toml``, an unusable state directory): the error then
    carries the last line the child logged, so the cause is shown at once
    rather than after :data:`START_TIMEOUT` seconds.
    """
    path = settings.socket_path()
    client = _try_connect(path)
    if client is not None:
        return client
    if not start:
        raise AgentNotRunningError("the agent is not running")
    log = settings.log_path()
    log_start = _size(log)
    child = spawn(idle_lock)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        client = _try_connect(path)
        if client is not None:
            return client
        code = child.poll()
        if code is not None and code != AgentAlreadyRunningError.exit_code:
            client = _try_connect(path)  # another agent may have won the race meanwhile
            if client is not None:
                return client
            raise AgentStartError(
                f"the agent could not start (exit code {code}): "
                f"{_last_log_line(log, log_start) or 'no message'} (log: {log})"
            )
        # Exit code 3 means another agent won the start race: wait for its socket.
        time.sleep(0.05)
    last = _last_log_line(log, log_start)
    raise AgentStartError(
        f"the agent did not start within {START_TIMEOUT:.0f} s"
        + (f": {last}" if last else "")
        + f" (see {log})"
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _last_log_line(path: Path, start: int, limit: int = 16 * 1024) -> str:
    """The last non-empty line written to ``path`` after offset ``start`` (bounded).

    The agent logs operations and error messages, never secrets, so its last
    line is safe to show.
    """
    try:
        with path.open("rb") as fh:
            fh.seek(max(start, _size(path) - limit))
            tail = fh.read(limit)
    except OSError:
        return ""
    lines = [ln.strip() for ln in tail.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def spawn(idle_lock: float | None = None) -> subprocess.Popen[bytes]:
    """Start a detached agent process and return it.

    The child exits at once, with :class:`AgentAlreadyRunningError`'s exit
    code, if another agent won the race. The caller polls the returned
    process to notice a failed start early; a healthy agent outlives it.
    """
    cmd = [sys.executable, "-m", "unlatch", "agent", "start", "--foreground"]
    if idle_lock is not None:
        cmd += ["--idle-lock", str(idle_lock)]
    log = settings.log_path()
    try:
        log_fd = os.open(log, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
    except OSError as exc:
        raise AgentStartError(f"cannot open the agent's log {log}: {exc.strerror or exc}") from None
    try:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            start_new_session=True,
            close_fds=True,
        )
    finally:
        os.close(log_fd)
