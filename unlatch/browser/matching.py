"""Which saved logins belong to the page in a tab: scheme, host, registrable domain.

A login is offered (and may be filled) on a page only when:

* both are ``http``/``https`` URLs; a login saved for ``https`` is never
  offered on ``http`` (a network attacker could serve that page), while one
  saved for ``http`` is offered on the ``https`` page of the same site;
* the hosts are equal, or they share a **registrable domain** (the label
  below the public suffix, from the Public Suffix List: ``login.example.co.uk``
  and ``www.example.co.uk`` share ``example.co.uk``; ``a.github.io`` and
  ``b.github.io`` do not, since ``github.io`` is a public suffix);
* an IP address or a single-label host (``localhost``) matches only itself,
  with the same port when the saved URL names one.

Hosts are compared in their IDNA (punycode) form, so a lookalike written in
another script (``exаmple.com`` with a Cyrillic "а") is another host. A saved
entry without a scheme (``example.com``) counts as ``https://example.com``.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from publicsuffixlist import PublicSuffixList

MAX_URL = 4096


class Match(enum.IntEnum):
    """How well a saved URL matches a page; higher is closer."""

    NONE = 0
    DOMAIN = 1  # same registrable domain
    HOST = 2  # same host name
    ORIGIN = 3  # same scheme, host and port


@dataclass(frozen=True)
class Site:
    scheme: str
    host: str  # lower case, IDNA ASCII
    port: int | None  # as written; None = the scheme's default

    @property
    def effective_port(self) -> int:
        return self.port or (443 if self.scheme == "https" else 80)


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def parse_site(url: str, *, default_scheme: str | None = None) -> Site | None:
    """The scheme, host and port of ``url``; None when it is not an http(s) URL."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        return None
    if default_scheme and "://" not in url:
        url = f"{default_scheme}://{url}"
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    try:
        host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    return Site(parts.scheme, host.rstrip("."), port)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def registrable_domain(host: str) -> str | None:
    """``example.co.uk`` for ``www.example.co.uk``; None for IPs, suffixes, single labels."""
    if _is_ip(host) or "." not in host:
        return None
    domain = _psl().privatesuffix(host)
    return domain if isinstance(domain, str) else None


def match(saved_url: str, page_url: str) -> Match:
    """How the login saved for ``saved_url`` matches the page at ``page_url``."""
    saved = parse_site(saved_url, default_scheme="https")
    page = parse_site(page_url)
    if saved is None or page is None:
        return Match.NONE
    if saved.scheme == "https" and page.scheme != "https":
        return Match.NONE  # never downgrade a secure login to a plain-text page
    if saved.host == page.host:
        if saved.port is not None and saved.effective_port != page.effective_port:
            return Match.NONE
        if saved.scheme == page.scheme and saved.effective_port == page.effective_port:
            return Match.ORIGIN
        return Match.HOST
    domain = registrable_domain(saved.host)
    if domain is not None and domain == registrable_domain(page.host):
        return Match.DOMAIN
    return Match.NONE


def best_match(saved_urls: list[str], page_url: str) -> Match:
    """The closest match of any of an item's URLs."""
    return max((match(u, page_url) for u in saved_urls), default=Match.NONE)
