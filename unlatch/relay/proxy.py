"""Who is asking: the client address, believing proxy headers only from trusted proxies.

Behind a reverse proxy the socket peer is the proxy, so the phone would be
shown the proxy's address (a known complaint about a peer product). Headers
are only believed when the peer is in ``--trusted-proxy``; the client is then
the first *untrusted* address walking ``Forwarded`` (RFC 7239 ``for=``), or
else ``X-Forwarded-For``, from right to left: each trusted hop vouches for the
one before it, and an address a client wrote itself into the header is never
reached unless every proxy after it is trusted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_HOPS = 20


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


def _forwarded_for(header: str) -> list[str]:
    hops: list[str] = []
    for element in header.split(",")[: MAX_HOPS * 2]:
        for pair in element.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                hops.append(value.strip())
    return hops


def client_address(
    peer: str | None, headers: Sequence[tuple[bytes, bytes]], trusted: Sequence[Network]
) -> str:
    """The requester's address as the relay should report and rate-limit it."""
    peer_addr = _parse_addr(peer) if peer else None
    if peer_addr is None:
        return peer or "unknown"

    def is_trusted(addr: Address) -> bool:
        return any(addr.version == net.version and addr in net for net in trusted)

    if not trusted or not is_trusted(peer_addr):
        return str(peer_addr)
    forwarded: list[str] = []
    xff: list[str] = []
    for name, value in headers:
        lname = name.lower()
        if lname == b"forwarded":
            forwarded.extend(_forwarded_for(value.decode("latin-1")))
        elif lname == b"x-forwarded-for":
            xff.extend(v for v in value.decode("latin-1").split(",")[:MAX_HOPS])
    hops = forwarded or xff
    current = peer_addr
    for hop in reversed(hops[-MAX_HOPS:]):
        addr = _parse_addr(hop)
        if addr is None:  # "unknown" or an obfuscated id: stop at the last address we know
            break
        current = addr
        if not is_trusted(addr):
            break
    return str(current)
