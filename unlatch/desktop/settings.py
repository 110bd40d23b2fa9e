"""Desktop settings: relay URL, number matching, unlock request lifetime.

Precedence for the relay URL, highest first: ``--relay URL``, the
``UNLATCH_DESKTOP_RELAY_URL`` environment variable, the value saved from the
web UI's settings page (``$UNLATCH_HOME/desktop/settings.json``),
``[desktop] relay_url`` in the config file, then ``http://127.0.0.1:8470``.

The phone app's URL (where pairing and unlock links point): the
``UNLATCH_DESKTOP_APP_URL`` environment variable or ``[desktop] app_url``,
else ``<relay URL>/app/`` (the relay serves the app: a trust assumption,
docs/security.md section 1). It is the desktop's own setting, never learned
from the relay, which is not trusted to say where the app is.

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

from unlatch import paths
from unlatch.config import ConfigError, load_section
from unlatch.desktop.files import read_json, write_json
from unlatch.protocol.constants import DEFAULT_UNLOCK_TTL, MAX_TTL_SECONDS, MAX_URL_BYTES

DEFAULT_RELAY_URL = "http://127.0.0.1:8470"
SETTINGS_FILE = "settings.json"
ENV_RELAY = "UNLATCH_DESKTOP_RELAY_URL"
ENV_TTL = "UNLATCH_DESKTOP_UNLOCK_TTL"
ENV_APP_URL = "UNLATCH_DESKTOP_APP_URL"
MIN_UNLOCK_TTL = 5


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


def check_ttl(value: object, source: str) -> int:
    """An unlock request lifetime in seconds (5..600)."""
    try:
        ttl = int(str(value))
    except ValueError:
        raise ConfigError(f"{source}: {value!r} is not a number of seconds") from None
    if not MIN_UNLOCK_TTL <= ttl <= MAX_TTL_SECONDS:
        raise ConfigError(f"{source}: must be {MIN_UNLOCK_TTL}..{MAX_TTL_SECONDS} seconds")
    return ttl


@dataclass
class DesktopSettings:
    """The effective settings plus the path where UI changes are saved."""

    relay_url: str
    relay_url_locked: bool  # set by --relay or the environment: the UI cannot change it
    number_matching: bool
    unlock_ttl: int
    path: Path
    app_url_setting: str = ""  # empty: the relay serves the app (<relay URL>/app/)

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
        path = paths.subdir("desktop") / SETTINGS_FILE
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
        return cls(relay, locked, number, ttl, path, app_url)

    def save(self) -> None:
        """Persist what the UI may change (relay URL unless locked, number matching)."""
        data: dict[str, Any] = {"version": 1, "number_matching": self.number_matching}
        if not self.relay_url_locked:
            data["relay_url"] = self.relay_url
        else:
            old = read_json(self.path) or {}
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
        }
