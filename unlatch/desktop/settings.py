"""Desktop settings: relay URL, number matching, unlock request lifetime, clipboard time.

Precedence for the relay URL, highest first: ``--relay URL``, the
``UNLATCH_DESKTOP_RELAY_URL`` environment variable, the value saved from the
web UI's settings page (``$UNLATCH_HOME/desktop/settings.json``),
``[desktop] relay_url`` in the config file, then ``http://127.0.0.1:8470``.

The phone app's URL (where pairing and unlock links point): the
``UNLATCH_DESKTOP_APP_URL`` environment variable or ``[desktop] app_url``,
else ``<relay URL>/app/`` (the relay serves the app: a trust assumption,
docs/security.md section 1). It is the desktop's own setting, never learned
from the relay, which is not trusted to say where the app is.

The clipboard clear time (how long a secret copied in the web UI stays on
the clipboard) follows the same order without a command-line option:
``UNLATCH_DESKTOP_CLIPBOARD_CLEAR_SECONDS``, the settings page,
``[desktop] clipboard_clear_seconds``, then 30 s. The settings page also
saves the agent's idle auto-lock time in the same file
(:func:`unlatch.agent.settings.idle_lock` reads it).

The web UI's port: ``unlatch desktop --port N``, else
``UNLATCH_DESKTOP_UI_PORT`` or ``[desktop] ui_port``, else
:data:`DEFAULT_UI_PORT` (8471, next to the relay's 8470), so the UI is at the
same address every time (``http://localhost:8471/``). A port given by an
option or the configuration is held or the UI does not start; the default,
when another program (or another user's unlatch) holds it, gives way to a
free port, and ``unlatch desktop`` says so. ``0`` means a free port.

Number matching ("approve from the notification") is OFF by default
(design brief, property 4): with it, a phone can approve without seeing
the desktop's screen, so only the number the user picks proves presence.
The setting is only the desktop's wish: each phone allows it or not for its
pairing (docs/protocol.md 6.8) and refuses it otherwise, so editing this
file (a stolen disk) cannot turn it on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from unlatch.agent.settings import parse_idle_lock, saved_settings_path
from unlatch.config import ConfigError, load_section
from unlatch.desktop.files import read_json, write_json
from unlatch.protocol.constants import DEFAULT_UNLOCK_TTL, MAX_TTL_SECONDS, MAX_URL_BYTES

DEFAULT_RELAY_URL = "http://127.0.0.1:8470"
DEFAULT_UI_PORT = 8471
ENV_UI_PORT = "UNLATCH_DESKTOP_UI_PORT"
ENV_RELAY = "UNLATCH_DESKTOP_RELAY_URL"
ENV_TTL = "UNLATCH_DESKTOP_UNLOCK_TTL"
ENV_APP_URL = "UNLATCH_DESKTOP_APP_URL"
ENV_CLIPBOARD = "UNLATCH_DESKTOP_CLIPBOARD_CLEAR_SECONDS"
MIN_UNLOCK_TTL = 5
DEFAULT_CLIPBOARD_CLEAR_SECONDS = 30
# A copied secret must not linger: at most 10 minutes, no "never".
MIN_CLIPBOARD_CLEAR_SECONDS, MAX_CLIPBOARD_CLEAR_SECONDS = 5, 600


def check_relay_url(url: str, source: str = "relay URL") -> str:
    """An http(s) URL without path, query or fragment; returned without a trailing slash."""
    url = url.strip().rstrip("/") if isinstance(url, str) else ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source}: {url!r} is not an http(s) URL like http://127.0.0.1:8470")
    if parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ConfigError(f"{source}: give only scheme://host[:port], without a path")
    if len(url.encode()) > MAX_URL_BYTES:
        raise ConfigError(f"{source}: the URL is longer than {MAX_URL_BYTES} bytes")
    return url


def check_app_url(url: str, source: str = "app URL") -> str:
    """An http(s) URL of a directory (ends with ``/``), without query or fragment."""
    url = url.strip() if isinstance(url, str) else ""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source}: {url!r} is not an http(s) URL like https://app.example/")
    if parts.query or parts.fragment or "#" in url or not parts.path.endswith("/"):
        raise ConfigError(f"{source}: give the app's directory, ending with /, without ? or #")
    if len(url.encode()) > MAX_URL_BYTES:
        raise ConfigError(f"{source}: the URL is longer than {MAX_URL_BYTES} bytes")
    return url


def check_port(value: object, source: str) -> int:
    """A TCP port, 0..65535 (0: a free one)."""
    try:
        port = int(str(value))
    except ValueError:
        raise ConfigError(f"{source}: {value!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"{source}: a port is 0..65535 (0: a free one)")
    return port


def configured_ui_port() -> int | None:
    """The UI port set by ``UNLATCH_DESKTOP_UI_PORT`` or ``[desktop] ui_port``, if any.

    Read by the command (``unlatch desktop``, the demo), in the user's own
    environment, not by the agent, whose environment is the one of whatever
    command started it. An empty value is no value (the default).
    """
    value = load_section("desktop").get("ui_port", "")
    if str(value) == "":
        return None
    return check_port(value, f"{ENV_UI_PORT} / [desktop] ui_port")


def check_ttl(value: object, source: str) -> int:
    """An unlock request lifetime in seconds (5..600)."""
    try:
        ttl = int(str(value))
    except ValueError:
        raise ConfigError(f"{source}: {value!r} is not a number of seconds") from None
    if not MIN_UNLOCK_TTL <= ttl <= MAX_TTL_SECONDS:
        raise ConfigError(f"{source}: must be {MIN_UNLOCK_TTL}..{MAX_TTL_SECONDS} seconds")
    return ttl


def check_clipboard_clear(value: object, source: str) -> int:
    """Seconds a copied secret stays on the clipboard (5..600, whole seconds)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{source}: the clipboard time must be a number of seconds")
    try:
        number = float(str(value))
    except ValueError:
        raise ConfigError(f"{source}: {value!r} is not a number of seconds") from None
    if number != int(number):
        raise ConfigError(f"{source}: the clipboard time must be whole seconds")
    if not MIN_CLIPBOARD_CLEAR_SECONDS <= number <= MAX_CLIPBOARD_CLEAR_SECONDS:
        raise ConfigError(
            f"{source}: the clipboard time must be {MIN_CLIPBOARD_CLEAR_SECONDS} to "
            f"{MAX_CLIPBOARD_CLEAR_SECONDS} seconds"
        )
    return int(number)


@dataclass
class DesktopSettings:
    """The effective settings plus the path where UI changes are saved."""

    relay_url: str
    relay_url_locked: bool  # set by --relay or the environment: the UI cannot change it
    number_matching: bool
    unlock_ttl: int
    path: Path
    app_url_setting: str = ""  # empty: the relay serves the app (<relay URL>/app/)

    clipboard_clear_seconds: int = DEFAULT_CLIPBOARD_CLEAR_SECONDS
    clipboard_clear_locked: bool = False  # set by the environment
    saved_clipboard_clear: int | None = None  # as saved by the UI (kept under the env var)
    saved_idle_lock: float | None = None  # the agent's auto-lock, as saved by the UI

    @property
    def app_url(self) -> str:
        """Where pairing and unlock links point: the phone app's directory URL."""
        return self.app_url_setting or f"{self.relay_url}/app/"

    @classmethod
    def load(
        cls,
        relay_override: str | None = None,
        ttl_override: int | None = None,
        app_url_override: str | None = None,
    ) -> DesktopSettings:
        path = saved_settings_path()
        saved = read_json(path) or {}
        section = load_section("desktop")
        file_section: dict[str, Any] = {
            k: v for k, v in section.items() if f"UNLATCH_DESKTOP_{k.upper()}" not in os.environ
        }
        locked = True
        if relay_override:
            relay = check_relay_url(relay_override, "--relay")
        elif os.environ.get(ENV_RELAY):
            relay = check_relay_url(os.environ[ENV_RELAY], ENV_RELAY)
        else:
            locked = False
            if isinstance(saved.get("relay_url"), str):
                relay = check_relay_url(saved["relay_url"], str(path))
            elif "relay_url" in file_section:
                relay = check_relay_url(str(file_section["relay_url"]), "[desktop] relay_url")
            else:
                relay = DEFAULT_RELAY_URL
        if ttl_override is not None:
            ttl = check_ttl(ttl_override, "--unlock-ttl")
        elif "unlock_ttl" in section:
            ttl = check_ttl(section["unlock_ttl"], f"{ENV_TTL} / [desktop] unlock_ttl")
        else:
            ttl = DEFAULT_UNLOCK_TTL
        number = saved.get("number_matching", False) is True
        if app_url_override:
            app_url = check_app_url(app_url_override, "--app-url")
        elif "app_url" in section:
            app_url = check_app_url(str(section["app_url"]), f"{ENV_APP_URL} / [desktop] app_url")
        else:
            app_url = ""
        saved_clip = saved.get("clipboard_clear_seconds")
        if saved_clip is not None:
            saved_clip = check_clipboard_clear(saved_clip, str(path))
        clip_locked = bool(os.environ.get(ENV_CLIPBOARD))
        if clip_locked:
            clip = check_clipboard_clear(os.environ[ENV_CLIPBOARD], ENV_CLIPBOARD)
        elif saved_clip is not None:
            clip = saved_clip
        elif "clipboard_clear_seconds" in file_section:
            source = "[desktop] clipboard_clear_seconds"
            clip = check_clipboard_clear(file_section["clipboard_clear_seconds"], source)
        else:
            clip = DEFAULT_CLIPBOARD_CLEAR_SECONDS
        idle = saved.get("idle_lock_seconds")
        saved_idle = None if idle is None else parse_idle_lock(idle, str(path))
        return cls(
            relay,
            locked,
            number,
            ttl,
            path,
            app_url_setting=app_url,
            clipboard_clear_seconds=clip,
            clipboard_clear_locked=clip_locked,
            saved_clipboard_clear=saved_clip,
            saved_idle_lock=saved_idle,
        )

    def save(self) -> None:
        """Persist what the UI may change (relay URL unless locked, number matching, timers)."""
        data: dict[str, Any] = {"version": 1, "number_matching": self.number_matching}
        for key, value in (
            ("idle_lock_seconds", self.saved_idle_lock),
            ("clipboard_clear_seconds", self.saved_clipboard_clear),
        ):
            if value is not None:
                data[key] = value
        old = read_json(self.path) or {}
        if not self.relay_url_locked:
            data["relay_url"] = self.relay_url
        else:
            if isinstance(old.get("relay_url"), str):
                data["relay_url"] = old["relay_url"]
        write_json(self.path, data)

    def public_view(self) -> dict[str, Any]:
        return {
            "relay_url": self.relay_url,
            "relay_url_locked": self.relay_url_locked,
            "number_matching": self.number_matching,
            "unlock_ttl": self.unlock_ttl,
            "app_url": self.app_url,
            "clipboard_clear_seconds": self.clipboard_clear_seconds,
            "clipboard_clear_locked": self.clipboard_clear_locked,
        }
