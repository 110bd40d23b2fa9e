"""Where a push goes: a validated Web Push or UnifiedPush subscription.

A :class:`PushTarget` arrives from a phone (through the relay) as JSON, so
it is parsed strictly and with bounds: the relay will later make outbound
HTTP requests to the endpoint, and the keys feed an ECDH computation. A
target that passes :meth:`PushTarget.from_json` is safe to store and use.

The endpoint must be ``https://`` (push services all are). Because the
endpoint comes from a phone and the relay POSTs to it, it is also a
server-side request forgery risk: anyone who registers a phone could make
the relay talk to services on its own loopback or private network. So by
default an endpoint that *names* a loopback, private, link-local or
otherwise non-global address (an IP literal in any spelling the resolver
accepts, ``localhost`` or ``*.localhost``) is refused, and the dispatcher
refuses a host name that *resolves* to one. ``allow_private=True`` (the
relay's ``push_allow_private`` setting, for tests, the demo and a push
service on the operator's own network) lifts that, and then also allows
plain ``http://`` to a loopback host, so a local push service needs no
certificate. Plain HTTP to any other host is never allowed: a network
attacker could read the push traffic's metadata and drop messages.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import InitVar, dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from unlatch.push import base64url
from unlatch.push.errors import InvalidPushTarget

PushKind = Literal["webpush", "unifiedpush"]
KINDS: tuple[PushKind, ...] = ("webpush", "unifiedpush")

MAX_ENDPOINT_CHARS = 2048
P256DH_BYTES = 65
AUTH_BYTES = 16
_ALLOWED_FIELDS = frozenset({"kind", "type", "endpoint", "keys", "expirationTime"})
_ALLOWED_KEY_FIELDS = frozenset({"p256dh", "auth"})
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _is_localhost_name(host: str) -> bool:
    """``localhost`` and its subdomains, which resolvers map to loopback (RFC 6761)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, if it is an IP literal in any form a resolver accepts.

    Besides the standard forms this catches the legacy IPv4 spellings that
    ``inet_aton`` (and so ``getaddrinfo``) accept, such as ``127.1``,
    ``2130706433`` or ``0x7f.0.0.1``, which would otherwise pass as names.
    """
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_public_address(addr: IPAddress) -> bool:
    """Whether ``addr`` is a globally routable unicast address (not loopback, private,
    link-local, shared, reserved, multicast or unspecified); IPv4-mapped IPv6
    addresses are judged by their IPv4 address."""
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


def _names_private_host(host: str) -> bool:
    if _is_localhost_name(host):
        return True
    addr = literal_address(host)
    return addr is not None and not is_public_address(addr)


def _is_loopback(host: str) -> bool:
    if _is_localhost_name(host):
        return True
    addr = literal_address(host)
    return addr is not None and addr.is_loopback


def check_endpoint(endpoint: object, *, allow_private: bool = False) -> str:
    """Validate a push endpoint URL and return it unchanged.

    Messages never include the URL itself: its path is the capability.
    ``allow_private`` admits loopback/private hosts and plain ``http://`` to
    loopback (see the module docstring).
    """
    if not isinstance(endpoint, str) or not endpoint:
        raise InvalidPushTarget("push target needs an 'endpoint' URL (a non-empty string)")
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise InvalidPushTarget(
            f"push endpoint is too long ({len(endpoint)} characters, limit {MAX_ENDPOINT_CHARS})"
        )
    if not endpoint.isascii() or any(ch.isspace() or ord(ch) < 0x20 for ch in endpoint):
        raise InvalidPushTarget("push endpoint must be plain ASCII without spaces")
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise InvalidPushTarget("push endpoint is not a valid URL") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidPushTarget("push endpoint must not contain a user name or password")
    if parts.fragment:
        raise InvalidPushTarget("push endpoint must not contain a #fragment")
    if not host:
        raise InvalidPushTarget("push endpoint has no host name")
    if parts.scheme not in ("https", "http"):
        raise InvalidPushTarget(
            f"push endpoint must be an https:// URL, not {parts.scheme or 'a relative'!s} URL"
        )
    if not allow_private and _names_private_host(host):
        raise InvalidPushTarget(
            "push endpoint names a loopback, private or link-local address; this relay only "
            "pushes to public push services (its operator can allow private endpoints)"
        )
    if parts.scheme == "https":
        return endpoint
    if allow_private and _is_loopback(host):
        return endpoint
    raise InvalidPushTarget(
        "push endpoint must use https:// (plain http:// is accepted only for loopback,"
        " on a relay that allows private endpoints)"
    )


def endpoint_origin(endpoint: str) -> str:
    """The origin (scheme://host[:port]) of an endpoint: VAPID's ``aud`` claim.

    The default port is left out, as browsers serialise origins.
    """
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    default = {"https": 443, "http": 80}.get(parts.scheme)
    if port is None or port == default:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


def _decode_key(value: object, name: str, size: int) -> bytes:
    if not isinstance(value, str):
        raise InvalidPushTarget(f"push key '{name}' must be a base64url string")
    try:
        raw = base64url.decode(value, max_chars=4 * size)
    except ValueError as exc:
        raise InvalidPushTarget(f"push key '{name}' is invalid: {exc}") from None
    if len(raw) != size:
        raise InvalidPushTarget(f"push key '{name}' must be {size} bytes, got {len(raw)}")
    return raw


def check_p256dh(value: object) -> bytes:
    """Decode ``p256dh`` and check it is an uncompressed point on P-256."""
    raw = _decode_key(value, "p256dh", P256DH_BYTES)
    if raw[0] != 0x04:
        raise InvalidPushTarget("push key 'p256dh' must be an uncompressed P-256 point")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise InvalidPushTarget("push key 'p256dh' is not a point on the P-256 curve") from None
    return raw


def check_auth(value: object) -> bytes:
    """Decode the 16-byte ``auth`` secret."""
    return _decode_key(value, "auth", AUTH_BYTES)


@dataclass(frozen=True, repr=False)
class PushTarget:
    """One phone's push subscription.

    ``p256dh`` and ``auth`` are the browser's base64url strings; both are
    present (payloads are encrypted per RFC 8291) or both absent (UnifiedPush
    without encryption: the distributor sees the payload as sent).
    Construct through :meth:`from_json` for untrusted input; the constructor
    checks the same rules. ``allow_private`` (not stored) admits endpoints on
    loopback/private addresses, see :func:`check_endpoint`.
    """

    kind: PushKind
    endpoint: str
    p256dh: str | None = None
    auth: str | None = None
    allow_private: InitVar[bool] = False

    def __post_init__(self, allow_private: bool) -> None:
        if self.kind not in KINDS:
            raise InvalidPushTarget(
                f"push target kind must be one of {', '.join(KINDS)}, not {self.kind!r}"
            )
        check_endpoint(self.endpoint, allow_private=allow_private)
        if (self.p256dh is None) != (self.auth is None):
            raise InvalidPushTarget("push keys 'p256dh' and 'auth' must be given together")
        if self.p256dh is None and self.kind == "webpush":
            raise InvalidPushTarget(
                "a webpush target needs 'keys' with 'p256dh' and 'auth' "
                "(Web Push payloads must be encrypted)"
            )
        if self.p256dh is not None:
            check_p256dh(self.p256dh)
            check_auth(self.auth)

    @property
    def encrypted(self) -> bool:
        """Whether payloads to this target are encrypted (RFC 8291)."""
        return self.p256dh is not None

    @property
    def origin(self) -> str:
        """The endpoint's origin: safe to log and the VAPID audience."""
        return endpoint_origin(self.endpoint)

    def key_bytes(self) -> tuple[bytes, bytes]:
        """The decoded (p256dh, auth) pair; only for encrypted targets."""
        if self.p256dh is None or self.auth is None:
            raise InvalidPushTarget("this push target has no encryption keys")
        return check_p256dh(self.p256dh), check_auth(self.auth)

    @classmethod
    def from_json(cls, data: object, *, allow_private: bool = False) -> PushTarget:
        """Parse ``{"kind", "endpoint", "keys": {"p256dh", "auth"}}``.

        This is ``PushSubscription.toJSON()`` plus ``kind`` (default
        ``"webpush"``; ``type`` is accepted as its alias, the relay API's
        spelling); ``expirationTime`` is accepted and ignored. Unknown
        fields are refused so a client bug shows up at registration, not as
        a silent loss of pushes later.
        """
        if not isinstance(data, dict):
            raise InvalidPushTarget("push target must be a JSON object")
        obj = cast(dict[str, Any], data)
        unknown = sorted(str(k)[:40] for k in obj if k not in _ALLOWED_FIELDS)
        if unknown:
            raise InvalidPushTarget(f"push target has unknown field(s): {', '.join(unknown[:5])}")
        kind = obj.get("kind", obj.get("type", "webpush"))
        if "kind" in obj and "type" in obj and obj["kind"] != obj["type"]:
            raise InvalidPushTarget("push target has different 'kind' and 'type'; give one")
        if kind not in KINDS:
            raise InvalidPushTarget(
                f"push target kind must be one of {', '.join(KINDS)}, not {str(kind)[:40]!r}"
            )
        expiration = obj.get("expirationTime")
        if expiration is not None and (
            isinstance(expiration, bool) or not isinstance(expiration, int | float)
        ):
            raise InvalidPushTarget("push target 'expirationTime' must be a number or null")
        endpoint = check_endpoint(obj.get("endpoint"), allow_private=allow_private)
        keys = obj.get("keys")
        p256dh: str | None = None
        auth: str | None = None
        if keys is not None:
            if not isinstance(keys, dict):
                raise InvalidPushTarget("push target 'keys' must be an object")
            key_obj = cast(dict[str, Any], keys)
            unknown = sorted(str(k)[:40] for k in key_obj if k not in _ALLOWED_KEY_FIELDS)
            if unknown:
                raise InvalidPushTarget(
                    f"push target 'keys' has unknown field(s): {', '.join(unknown[:5])}"
                )
            if "p256dh" not in key_obj or "auth" not in key_obj:
                raise InvalidPushTarget("push target 'keys' needs both 'p256dh' and 'auth'")
            check_p256dh(key_obj["p256dh"])
            check_auth(key_obj["auth"])
            p256dh, auth = key_obj["p256dh"], key_obj["auth"]
        return cls(
            kind=cast(PushKind, kind),
            endpoint=endpoint,
            p256dh=p256dh,
            auth=auth,
            allow_private=allow_private,
        )

    def to_json(self) -> dict[str, Any]:
        """The inverse of :meth:`from_json` (keys omitted when absent)."""
        out: dict[str, Any] = {"kind": self.kind, "endpoint": self.endpoint}
        if self.p256dh is not None:
            out["keys"] = {"p256dh": self.p256dh, "auth": self.auth}
        return out

    def __repr__(self) -> str:
        # The endpoint path is a capability and auth is a secret: keep both
        # out of reprs, which end up in logs and tracebacks.
        return f"PushTarget(kind={self.kind!r}, origin={self.origin!r}, encrypted={self.encrypted})"
