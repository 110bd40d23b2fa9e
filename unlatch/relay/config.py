"""The relay's settings: built-in defaults < ``[relay]`` in the config file <
``UNLATCH_RELAY_*`` environment variables < command-line options.

Every value is checked here, once, so a typo in the file is a clear startup
error instead of a surprise under load.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlatch import config as unlatch_config
from unlatch import paths
from unlatch.relay.auth import canonical_origin
from unlatch.relay.errors import RelayConfigError
from unlatch.relay.proxy import DEFAULT_PROXY_HEADER, PROXY_HEADERS, Network, parse_networks
from unlatch.relay.ratelimit import Rule

DEFAULT_PORT = 8470

# Fixed API limits (sizes of the decoded bytes), read by the routes, the OpenAPI
# document and GET /v1/info, so each is written once.
MAX_PAIRING_MESSAGE = 4096  # hello / accept
MAX_PUSH_PAYLOAD = 1024  # an unlock's push payload
MAX_SEEN = 256
MAX_REPLY = 1024
MAX_WAIT = 30  # long-poll timeout, seconds
DEFAULT_WAIT = 25
MAX_AFTER = 2**31 - 1  # the `after` sequence number a waiter resumes from
WS_MAX_MESSAGE = 16 * 1024  # bytes of one client WebSocket message (frames: small JSON)
# seconds between protocol-level pings of an idle WebSocket when nothing else sends one
# (the sockets' own idle pings, every 25 s, carry one: unlatch/relay/socket_driver.py)
WS_PING_INTERVAL = 30.0
WS_PING_TIMEOUT = 20.0  # seconds for its pong before the socket is closed (a dead peer)
MAX_REPLY_WAIT = 10  # seconds a reply POST (`wait`) may wait to learn whether a desktop took it


@dataclass
class RelayConfig:
    """Everything the relay process needs to know."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    db: str = ""  # empty: sqlite file under paths.subdir("relay")
    bus: str = "memory://"
    public_url: str = ""  # empty: http(s)://host:port
    trusted_proxy: list[str] = field(default_factory=list)
    # the one header a trusted proxy writes (unlatch.relay.proxy); read only from those
    proxy_header: str = DEFAULT_PROXY_HEADER
    cert: str = ""
    key: str = ""
    vapid_key: str = ""  # empty: vapid.pem under paths.subdir("relay")
    push_subject: str = ""  # VAPID "sub": mailto: or https: (default from public_url)
    # the store records the public VAPID key of the first node to start; a node with
    # another key refuses to start unless this is set (once, after a deliberate change)
    vapid_key_replace: bool = False
    push_enabled: bool = True
    # push endpoints on loopback/private/link-local addresses (and plain http:// to
    # loopback): off, so a phone cannot make the relay POST into its own network (SSRF)
    push_allow_private: bool = False
    app_dir: str = ""  # empty: the packaged/built phone PWA (unlatch.paths.web_dir("phone"))
    # where the phone app is served when not by this relay (another origin the operator
    # chooses, so the app's code does not rest on the relay: docs/security.md section 1).
    # Set: /app/ redirects there, and that origin may call the API (CORS). Empty: /app/.
    app_url: str = ""
    log_level: str = "info"
    # life times, seconds
    unlock_ttl: int = 120
    pairing_ttl: int = 600
    session_ttl: int = 3600
    challenge_ttl: int = 60
    tombstone_ttl: int = 900
    # seconds between a node's background looks at the store: expiring channels and, on the
    # Redis bus, its reconciler's query for changed channels (the most a lost event is late)
    sweep_interval: float = 1.0
    shutdown_grace: float = 5.0
    # slow clients: a request body must arrive within body_timeout; a WebSocket whose
    # client stops reading is dropped after ws_send_timeout; at most max_connections
    # connections (HTTP and WebSocket) are served at once, beyond that 503
    body_timeout: float = 10.0
    ws_send_timeout: float = 10.0
    max_connections: int = 10000
    # caps
    max_pending_unlock: int = 16
    max_pending_pairing: int = 8
    # rate limits, BURST/SECONDS
    rate_unlock_pairing: str = "6/300"
    rate_unlock_device: str = "30/300"
    rate_unlock_ip: str = "60/60"
    rate_push: str = "10/300"
    rate_auth_ip: str = "60/60"

    # derived, filled by finalize()
    origin: str = ""
    app_origin: str = ""  # the origin of app_url, "" when the relay serves the app
    trusted_networks: list[Network] = field(default_factory=list)
    rules: dict[str, Rule] = field(default_factory=dict)

    def finalize(self) -> RelayConfig:
        """Fill defaults that depend on other values and validate everything."""
        if not 0 < self.port < 65536:
            raise RelayConfigError(f"port {self.port} is out of range")
        if not self.db:
            self.db = "sqlite:///" + str(paths.subdir("relay") / "relay.db")
        if not self.vapid_key:
            self.vapid_key = str(paths.subdir("relay") / "vapid.pem")
        if bool(self.cert) != bool(self.key):
            raise RelayConfigError("--cert and --key go together")
        for name in ("cert", "key"):
            value = getattr(self, name)
            if value and not Path(value).is_file():
                raise RelayConfigError(f"--{name} {value}: no such file")
        scheme = "https" if self.cert else "http"
        if not self.public_url:
            host = self.host
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            if ":" in host:
                host = f"[{host}]"
            self.public_url = f"{scheme}://{host}:{self.port}"
        try:
            self.origin = canonical_origin(self.public_url)
        except ValueError:
            raise RelayConfigError(
                f"--public-url {self.public_url!r} is not an http(s) URL"
            ) from None
        self.public_url = self.public_url.rstrip("/")
        if self.app_url:
            if not self.app_url.endswith("/") or "?" in self.app_url or "#" in self.app_url:
                raise RelayConfigError(
                    f"--app-url {self.app_url!r}: give the app's directory, ending with /,"
                    " without ? or #"
                )
            try:
                self.app_origin = canonical_origin(self.app_url)
            except ValueError:
                raise RelayConfigError(
                    f"--app-url {self.app_url!r} is not an http(s) URL"
                ) from None
        if not self.push_subject:
            self.push_subject = (
                self.origin
                if self.origin.startswith("https://")
                else "mailto:relay@unlatch.invalid"
            )
        self.proxy_header = self.proxy_header.strip().lower()
        if self.proxy_header not in PROXY_HEADERS:
            raise RelayConfigError(
                f"--proxy-header {self.proxy_header!r} must be one of: {', '.join(PROXY_HEADERS)}"
            )
        try:
            self.trusted_networks = parse_networks(self.trusted_proxy)
            self.rules = {
                "unlock_pairing": Rule.parse(self.rate_unlock_pairing),
                "unlock_device": Rule.parse(self.rate_unlock_device),
                "unlock_ip": Rule.parse(self.rate_unlock_ip),
                "push": Rule.parse(self.rate_push),
                "auth_ip": Rule.parse(self.rate_auth_ip),
            }
        except ValueError as exc:
            raise RelayConfigError(str(exc)) from None
        for name in ("unlock_ttl", "pairing_ttl", "session_ttl", "challenge_ttl", "tombstone_ttl"):
            if getattr(self, name) <= 0:
                raise RelayConfigError(f"{name} must be positive")
        if self.unlock_ttl > 600 or self.pairing_ttl > 3600:
            raise RelayConfigError("unlock_ttl must be <= 600 s and pairing_ttl <= 3600 s")
        if self.max_pending_unlock < 1 or self.max_pending_pairing < 1:
            raise RelayConfigError("max_pending_* must be >= 1")
        for name in ("body_timeout", "ws_send_timeout"):
            if not 0 < getattr(self, name) <= 300:
                raise RelayConfigError(f"{name} must be between 0 and 300 seconds")
        if self.max_connections < 16:
            raise RelayConfigError("max_connections must be at least 16")
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(RelayConfig)}
_DERIVED = {"origin", "app_origin", "trusted_networks", "rules"}


def _convert(name: str, value: Any) -> Any:
    default = _FIELDS[name].default
    if name == "trusted_proxy":
        if isinstance(value, str):
            return [v for v in value.replace(",", " ").split() if v]
        if isinstance(value, list):
            return [str(v) for v in value]
        raise RelayConfigError("trusted_proxy must be a list of CIDRs")
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError):
        raise RelayConfigError(f"relay setting {name} = {value!r} is not valid") from None
    return str(value)


def load_config(overrides: dict[str, Any] | None = None) -> RelayConfig:
    """File + environment (``[relay]`` / ``UNLATCH_RELAY_*``) + explicit overrides."""
    values: dict[str, Any] = {}
    for key, value in unlatch_config.load_section("relay").items():
        name = key.replace("-", "_").lower()
        if name not in _FIELDS or name in _DERIVED:
            raise RelayConfigError(f"unknown relay setting {key!r}")
        values[name] = _convert(name, value)
    for key, value in (overrides or {}).items():
        if value is None or value == () or value == []:
            continue
        values[key] = _convert(key, list(value) if isinstance(value, tuple) else value)
    return RelayConfig(**values).finalize()
