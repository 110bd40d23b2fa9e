"""Agent settings: socket location and the idle auto-lock delay.

Precedence: command-line option, ``UNLATCH_AGENT_IDLE_LOCK_SECONDS``,
``[agent] idle_lock_seconds`` in the config file, default 10 minutes.
``0`` disables the idle lock (the vault then locks only on demand or stop).
"""

from __future__ import annotations

from pathlib import Path

from unlatch import paths
from unlatch.config import ConfigError, load_section
from unlatch.errors import StateDirError

DEFAULT_IDLE_LOCK_SECONDS = 600
MAX_IDLE_LOCK_SECONDS = 7 * 24 * 3600
SOCKET_NAME = "agent.sock"
LOG_NAME = "agent.log"
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the NUL


def socket_path() -> Path:
    """``$UNLATCH_HOME/desktop/agent.sock``; the directory is made 0700."""
    directory = paths.subdir("desktop")
    try:
        directory.chmod(0o700)
    except OSError as exc:
        raise StateDirError(
            f"cannot make {directory} private (mode 0700): {exc.strerror or exc}"
        ) from None
    return directory / SOCKET_NAME


def log_path() -> Path:
    """Where a detached agent writes its log (operations and error types, never secrets)."""
    return paths.subdir("desktop") / LOG_NAME


def parse_idle_lock(value: object, source: str) -> float:
    """Seconds from an option, env var or config value; :class:`ConfigError` if invalid."""
    try:
        seconds = float(str(value))
    except ValueError:
        raise ConfigError(
            f"{source}: idle lock must be a number of seconds, not {value!r}"
        ) from None
    if not 0 <= seconds <= MAX_IDLE_LOCK_SECONDS:
        raise ConfigError(f"{source}: idle lock must be 0 (off) to {MAX_IDLE_LOCK_SECONDS} s")
    return seconds


def idle_lock_seconds(override: float | None = None) -> float:
    """The effective idle auto-lock delay."""
    if override is not None:
        return parse_idle_lock(override, "--idle-lock")
    section = load_section("agent")
    if "idle_lock_seconds" in section:
        return parse_idle_lock(section["idle_lock_seconds"], "[agent] idle_lock_seconds")
    return float(DEFAULT_IDLE_LOCK_SECONDS)
