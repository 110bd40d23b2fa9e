"""The UI's listening sockets: one port on *both* loopback addresses, or no UI.

The UI's links say ``http://localhost:PORT/`` (passkeys need a host name as
their WebAuthn RP id, see docs/passkey.md), and a browser resolves
``localhost`` to ``::1`` and ``127.0.0.1`` - Chromium tries ``::1`` first.
Any local user may listen on a loopback port nobody holds. So if the agent
held only ``127.0.0.1:PORT``, another user's process on ``[::1]:PORT`` would
receive the launch link (its single-use secret) and could serve a fake
master-password page at the UI's own origin.

:func:`bind_loopback` therefore binds and listens on both addresses with the
same port before the UI exists, and refuses to start when either one is
taken (with an explicit ``--port``), or tries another port (port 0). Once
both sockets listen, nobody else can bind either address at that port, nor
the wildcard address (Linux refuses overlapping binds while one listens, and
``SO_REUSEPORT`` sharing needs the same user).

A machine without an IPv6 loopback (no IPv6 in the kernel: ``EAFNOSUPPORT``;
``::1`` not configured: ``EADDRNOTAVAIL``) gets the IPv4 socket alone: there
nobody can listen on ``::1`` either, and browsers fall back to ``127.0.0.1``.
"""

from __future__ import annotations

import errno
import logging
import socket

from unlatch.desktop.errors import PortTaken

log = logging.getLogger(__name__)

IPV4 = "127.0.0.1"
IPV6 = "::1"
PORT_TRIES = 20  # port 0: how many ports to try before giving up (each try is two binds)
BACKLOG = 128
#: bind/socket errors meaning "this machine has no IPv6 loopback" (nobody can listen there)
NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


def where(host: str, port: int) -> str:
    """``127.0.0.1:8471`` or ``[::1]:8471``."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _listen(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    """A non-blocking socket listening on ``host:port``; OSError as the kernel said.

    Made with ``IPPROTO_TCP`` named, not left 0: asyncio turns Nagle off
    (``TCP_NODELAY``) only on sockets whose ``proto`` says TCP, and connections
    accepted here inherit it. Without it the page's event stream sat behind
    Nagle and the browser's delayed ACK: an "unlocked" snapshot written right
    after the previous one reached the page 13-18 ms late (p90, issue 15).
    """
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # SO_REUSEADDR only lets us reuse a port in TIME_WAIT: Linux still refuses
        # a port another socket listens on, whoever owns it.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)  # listen at once: a bound, idle socket can still be shared
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _taken(host: str, port: int, exc: OSError) -> PortTaken:
    why = exc.strerror or str(exc)
    return PortTaken(
        f"cannot listen on {where(host, port)}: {why}. The UI's address localhost:{port} "
        f"means both 127.0.0.1 and ::1, and another program holds one of them; the UI "
        f"does not start (a browser could reach that program instead). Choose another "
        f"--port, or leave it out to get a free one."
    )


def bind_loopback(port: int = 0) -> list[socket.socket]:
    """Listening sockets on ``127.0.0.1:P`` and ``[::1]:P`` (the same P), P = ``port`` or free.

    Raises :class:`PortTaken` when ``port`` is given and either address is
    held; with port 0, retries other ports (:data:`PORT_TRIES`). Returns the
    IPv4 socket alone on a machine without an IPv6 loopback.
    """
    tries = PORT_TRIES if port == 0 else 1
    for _ in range(tries):
        try:
            v4 = _listen(socket.AF_INET, IPV4, port)
        except OSError as exc:
            raise _taken(IPV4, port, exc) from None
        chosen = int(v4.getsockname()[1])
        try:
            v6 = _listen(socket.AF_INET6, IPV6, chosen)
        except OSError as exc:
            if exc.errno in NO_IPV6:
                log.info("no IPv6 loopback here: the UI listens on 127.0.0.1 only")
                return [v4]
            v4.close()
            if port:
                raise _taken(IPV6, chosen, exc) from None
            log.info("port %d is taken on [::1]; trying another", chosen)
            continue
        return [v4, v6]
    raise PortTaken(
        f"found no port free on both 127.0.0.1 and [::1] in {PORT_TRIES} tries: "
        "another program is holding IPv6 loopback ports; choose one with --port"
    )


__all__ = ["bind_loopback", "where"]
