"""Who is asking: the client address, believing a proxy header only from trusted proxies.

Behind a reverse proxy the socket peer is the proxy, so the phone would be
shown the proxy's address (a known complaint about a peer product), and every
client would share one per-address rate limit. So, when the peer is in
``--trusted-proxy``, the relay reads exactly **one** header, the one the
operator's proxy writes (``--proxy-header``: ``X-Forwarded-For``, as the
documented nginx and Caddy setups send, or RFC 7239 ``Forwarded``), and takes
the right-most address in it that is not a trusted proxy.

Why only one: a proxy appends to (or replaces) the header it manages and
passes every other header through untouched. Behind nginx, which writes
``X-Forwarded-For``, a ``Forwarded: for=...`` header reaches the relay exactly
as the client wrote it; a relay that preferred it let any client choose the
address the phone shows and dodge per-address limits by rotating it.

Why right-most: each trusted hop vouches only for the address it appended,
the one before it; an address a client wrote itself sits to the left of its
real address (which its first proxy appended) and is never reached. Only the
right-most :data:`MAX_HOPS` entries are looked at, so a client that pads the
header with hundreds of entries cannot push its real address out of view.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_HOPS = 20
# the header a trusted proxy writes (--proxy-header); the first is the default,
# matching the nginx configuration in docs/deploy.md
PROXY_HEADERS = ("x-forwarded-for", "forwarded")
DEFAULT_PROXY_HEADER = PROXY_HEADERS[0]


def parse_networks(values: Iterable[str]) -> list[Network]:
    """Parse CIDRs / single addresses; ValueError names the bad entry."""
    nets: list[Network] = []
    for value in values:
        for part in str(value).replace(",", " ").split():
            try:
                nets.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(f"--trusted-proxy {part!r} is not an address or CIDR") from None
    return nets


def _parse_addr(text: str) -> Address | None:
    text = text.strip().strip('"')
    if text.startswith("["):  # "[2001:db8::1]:4711"
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:  # "192.0.2.1:4711"
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _last_entries(values: list[str]) -> list[str]:
    """The right-most MAX_HOPS comma-separated entries of the header's lines, in order.

    Several lines of one header are one comma-separated list (RFC 9110 5.3).
    ``rsplit`` bounds the work by MAX_HOPS, whatever the client padded in front.
    """
    entries = ",".join(values).rsplit(",", MAX_HOPS)
    return entries[-MAX_HOPS:]


def _forwarded_for(element: str) -> str:
    """The ``for=`` value of one RFC 7239 element ("" if it has none)."""
    for pair in element.split(";"):
        name, _, value = pair.partition("=")
        if name.strip().lower() == "for":
            return value.strip()
    return ""


def client_address(
    peer: str | None,
    headers: Sequence[tuple[bytes, bytes]],
    trusted: Sequence[Network],
    proxy_header: str,
) -> str:
    """The requester's address as the relay should report and rate-limit it.

    ``proxy_header`` is one of :data:`PROXY_HEADERS`; every other forwarding
    header is ignored, whoever sent it.
    """
    peer_addr = _parse_addr(peer) if peer else None
    if peer_addr is None:
        return peer or "unknown"

    def is_trusted(addr: Address) -> bool:
        return any(addr.version == net.version and addr in net for net in trusted)

    if not trusted or not is_trusted(peer_addr):
        return str(peer_addr)
    wanted = proxy_header.encode("ascii")
    values = [value.decode("latin-1") for name, value in headers if name.lower() == wanted]
    if not values:
        return str(peer_addr)
    hops = _last_entries(values)
    if wanted == b"forwarded":
        hops = [_forwarded_for(element) for element in hops]
    current = peer_addr
    for hop in reversed(hops):
        addr = _parse_addr(hop)
        if addr is None:  # "unknown", an obfuscated id, garbage: stop at the last address we know
            break
        current = addr
        if not is_trusted(addr):
            break
    return str(current)
