"""Agent settings: socket location and the idle auto-lock delay.

Precedence for the idle lock, highest first: ``unlatch agent start
--idle-lock``, ``UNLATCH_AGENT_IDLE_LOCK_SECONDS``, the value saved by the
desktop UI's settings page (``$UNLATCH_HOME/desktop/settings.json``, see
:mod:`unlatch.desktop.settings`), ``[agent] idle_lock_seconds`` in the config
file, default 10 minutes. ``0`` disables the idle lock (the vault then locks
only on demand or stop). The first two fix it for the agent's life: the
settings page shows it but cannot change it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from unlatch import paths
from unlatch.config import ConfigError, load_section
from unlatch.desktop.files import read_json
from unlatch.errors import StateDirError

DEFAULT_IDLE_LOCK_SECONDS = 600
MAX_IDLE_LOCK_SECONDS = 7 * 24 * 3600
ENV_IDLE_LOCK = "UNLATCH_AGENT_IDLE_LOCK_SECONDS"
#: What the desktop UI's settings page saves (relay, number matching, timers), in
#: the ``desktop`` state directory; read here for the idle lock it may set.
SAVED_SETTINGS = "settings.json"
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


def saved_settings_path() -> Path:
    """``$UNLATCH_HOME/desktop/settings.json``: the settings page's choices."""
    return paths.subdir("desktop") / SAVED_SETTINGS


@dataclass(frozen=True)
class IdleLock:
    """The effective idle auto-lock delay and what fixed it.

    ``fixed_by`` names the option or variable that set it for this agent's
    life ("" when the settings page may change it).
    """

    seconds: float
    fixed_by: str = ""


def idle_lock(override: float | None = None) -> IdleLock:
    """The effective idle auto-lock delay (see the module docstring for the order)."""
    if override is not None:
        return IdleLock(parse_idle_lock(override, "--idle-lock"), "--idle-lock")
    if os.environ.get(ENV_IDLE_LOCK):
        return IdleLock(parse_idle_lock(os.environ[ENV_IDLE_LOCK], ENV_IDLE_LOCK), ENV_IDLE_LOCK)
    path = saved_settings_path()
    saved = read_json(path) or {}
    if saved.get("idle_lock_seconds") is not None:
        return IdleLock(parse_idle_lock(saved["idle_lock_seconds"], str(path)))
    section = load_section("agent")
    if "idle_lock_seconds" in section:
        return IdleLock(parse_idle_lock(section["idle_lock_seconds"], "[agent] idle_lock_seconds"))
    return IdleLock(float(DEFAULT_IDLE_LOCK_SECONDS))


def idle_lock_seconds(override: float | None = None) -> float:
    """The effective idle auto-lock delay in seconds."""
    return idle_lock(override).seconds
