"""Sending one push: encryption, VAPID, RFC 8030 headers, retries, outcome.

The relay calls :meth:`PushDispatcher.send` and acts on the returned
:class:`PushResult`: ``gone`` means the push service forgot the subscription
(404/410) and the relay deletes it; ``failed`` means this push is lost (and
why); ``delivered`` means the push service accepted it. Nothing here raises
for a push service's answer, so one bad subscription cannot break a fan-out.
Errors are raised only for the caller's own mistakes (payload too large,
bad TTL/Urgency/Topic), before any network traffic.

Retries: 429, any 5xx and connection errors/timeouts are retried up to
``max_attempts`` in total, waiting an exponentially growing delay with
jitter, and never less than a ``Retry-After`` the service sent. A
``Retry-After`` longer than ``max_retry_after`` ends the attempts at once:
an unlock request lives about two minutes, so waiting longer is pointless.
A timeout after the request was sent may deliver twice; senders that mind
give a ``topic`` so the push service replaces the older copy.

Logging names only the endpoint's origin, status and attempt: never the
endpoint path (a capability), the payload or any key.

Server-side request forgery: the endpoint comes from a phone. Unless the
dispatcher is made with ``allow_private=True``, a host name that resolves to
a loopback, private or link-local address is refused before anything is sent
(:class:`~unlatch.push.errors.InvalidPushTarget`); IP literals were already
refused when the :class:`PushTarget` was parsed. The name is resolved again
by the HTTP client when it connects, so a DNS server that answers
differently the second time (rebinding) is not stopped by this check alone;
a relay on a network with sensitive services should also have an egress
firewall.
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import logging
import math
import random
import re
import socket
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Literal
from urllib.parse import urlsplit

import httpx

from unlatch.push import encryption
from unlatch.push.errors import InvalidPushOptions, InvalidPushTarget, PayloadTooLarge
from unlatch.push.target import PushTarget, is_public_address, literal_address
from unlatch.push.vapid import DEFAULT_TOKEN_LIFETIME, VapidKeys, check_subject

log = logging.getLogger(__name__)


class _RedactEndpointPaths(logging.Filter):
    """Cut ``httpx``'s "HTTP Request: POST <url>" log lines down to the origin.

    httpx logs every request's full URL at INFO, and a push endpoint's path
    is a capability (anyone holding it can push to that phone), so a relay
    logging at INFO would otherwise write every phone's capability to disk.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 2:
            url = record.args[1]
            if isinstance(url, httpx.URL) and url.raw_path not in (b"", b"/"):
                record.args = (record.args[0], url.copy_with(raw_path=b"/..."), *record.args[2:])
        return True


def _install_log_redaction() -> None:
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactEndpointPaths) for f in httpx_log.filters):
        httpx_log.addFilter(_RedactEndpointPaths())


_install_log_redaction()

PushOutcome = Literal["delivered", "gone", "failed"]
URGENCIES = ("very-low", "low", "normal", "high")
MAX_TTL = 28 * 24 * 3600  # four weeks: what the large push services keep at most
MAX_PLAIN_PAYLOAD = 4096  # UnifiedPush distributors must accept 4096-byte bodies
MAX_BACKOFF = 8.0
MAX_ANSWER_BYTES = 4096  # of a push service's answer body that is read
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")  # RFC 8030 section 5.4
_GONE = frozenset({404, 410})
_TOKEN_REFRESH_MARGIN = 3600  # re-sign a cached VAPID token an hour before it expires


@dataclass(frozen=True)
class PushResult:
    """What happened to one push, for the relay to act on and count."""

    outcome: PushOutcome
    status: int | None
    detail: str
    attempts: int


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    Returns None when absent or unparsable (then plain backoff applies).
    """
    if value is None:
        return None
    value = value.strip()[:64]
    if value.isdigit():
        return float(int(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _check_options(ttl: int, urgency: str, topic: str | None) -> None:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
        raise InvalidPushOptions(f"push TTL must be a whole number of seconds, 0..{MAX_TTL}")
    if urgency not in URGENCIES:
        raise InvalidPushOptions(f"push urgency must be one of {', '.join(URGENCIES)}")
    if topic is not None and not _TOPIC.fullmatch(topic):
        raise InvalidPushOptions(
            "push topic must be 1-32 characters of the base64url alphabet (A-Z a-z 0-9 - _)"
        )


def _short_reason(raw: bytes) -> str:
    """A printable, bounded snippet of a push service's error body."""
    text = raw[:160].decode("utf-8", errors="replace")
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return f": {cleaned}" if cleaned else ""


@dataclass(frozen=True)
class _Answer:
    status: int
    retry_after: str | None
    body_start: bytes


class PushDispatcher:
    """Delivers payloads to :class:`PushTarget`\\ s; share one per relay process.

    ``client`` may be given to share connection pools (the dispatcher then
    does not close it); otherwise one is made and closed by :meth:`aclose`.
    ``allow_private`` lets pushes go to host names that resolve to loopback or
    private addresses (tests, a push service on the operator's own network).
    """

    def __init__(
        self,
        vapid: VapidKeys,
        subject: str,
        *,
        client: httpx.AsyncClient | None = None,
        max_attempts: int = 4,
        base_backoff: float = 0.5,
        max_retry_after: float = 30.0,
        timeout: float = 10.0,
        allow_private: bool = False,
    ) -> None:
        if max_attempts < 1:
            raise InvalidPushOptions("max_attempts must be at least 1")
        if not (base_backoff >= 0 and math.isfinite(base_backoff)):
            raise InvalidPushOptions("base_backoff must be a non-negative number of seconds")
        self._vapid = vapid
        self._subject = check_subject(subject)
        self._own_client = client is None
        # Pushes go to a handful of push-service origins; keeping as many
        # idle connections as may be open avoids a new TCP/TLS handshake per
        # push in a burst.
        self._client = client or httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
        )
        self._max_attempts = max_attempts
        self._base_backoff = base_backoff
        self._max_retry_after = max_retry_after
        self._timeout = timeout
        self._allow_private = allow_private
        self._tokens: dict[str, tuple[str, float]] = {}

    async def __aenter__(self) -> PushDispatcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this dispatcher made it."""
        if self._own_client:
            await self._client.aclose()

    def _authorization(self, origin: str) -> str:
        """A VAPID header for ``origin``, reusing a signed token while fresh."""
        now = time.time()
        cached = self._tokens.get(origin)
        if cached is not None and cached[1] - _TOKEN_REFRESH_MARGIN > now:
            return cached[0]
        header = self._vapid.authorization(origin, self._subject, now=now)
        if len(self._tokens) > 1024:  # bounded: one entry per push service origin
            self._tokens.clear()
        self._tokens[origin] = (header, now + DEFAULT_TOKEN_LIFETIME)
        return header

    def _build(
        self, target: PushTarget, payload: bytes, ttl: int, urgency: str, topic: str | None
    ) -> tuple[dict[str, str], bytes]:
        headers = {"TTL": str(ttl), "Urgency": urgency}
        if topic is not None:
            headers["Topic"] = topic
        if target.encrypted:
            body = b""
            if payload:
                ua_public, auth = target.key_bytes()
                body = encryption.encrypt(payload, ua_public, auth)
                headers["Content-Encoding"] = encryption.CONTENT_ENCODING
                headers["Content-Type"] = "application/octet-stream"
            # Web Push always identifies the relay; UnifiedPush in its
            # "webpush" mode (keys present) follows RFC 8030/8291/8292 too.
            headers["Authorization"] = self._authorization(target.origin)
            return headers, body
        if len(payload) > MAX_PLAIN_PAYLOAD:
            raise PayloadTooLarge(
                f"push payload is {len(payload)} bytes; a UnifiedPush message carries "
                f"at most {MAX_PLAIN_PAYLOAD} bytes"
            )
        headers["Content-Type"] = "application/octet-stream"
        return headers, payload

    async def _post(self, endpoint: str, headers: dict[str, str], body: bytes) -> _Answer:
        """POST once; read at most :data:`MAX_ANSWER_BYTES` of the answer.

        The endpoint comes from a phone, so the server behind it is not
        trusted: its body is read raw (no decompression) and bounded.
        Redirects are not followed (a 3xx is a refusal), so an endpoint
        cannot bounce the relay's request elsewhere.
        """
        async with self._client.stream("POST", endpoint, headers=headers, content=body) as resp:
            start = b""
            async for chunk in resp.aiter_raw():
                start += chunk
                if len(start) >= MAX_ANSWER_BYTES:
                    break
            return _Answer(resp.status_code, resp.headers.get("Retry-After"), start)

    async def _check_resolved(self, endpoint: str) -> None:
        """Refuse a host name that resolves to a non-public address (see the module doc).

        A name that does not resolve now is let through: the POST then fails
        and is retried like any unreachable push service.
        """
        if self._allow_private:
            return
        parts = urlsplit(endpoint)
        host = parts.hostname or ""
        if literal_address(host) is not None:
            return  # judged when the target was parsed
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = await asyncio.wait_for(
                asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
                self._timeout,
            )
        except (OSError, TimeoutError):
            return
        for info in infos:
            try:
                addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
            except ValueError:
                continue
            if not is_public_address(addr):
                raise InvalidPushTarget(
                    "push endpoint's host name resolves to a loopback, private or link-local"
                    " address; this relay only pushes to public push services"
                )

    def _backoff(self, attempt: int) -> float:
        """Delay before attempt ``attempt + 1``: exponential with "equal jitter"."""
        delay = min(MAX_BACKOFF, self._base_backoff * (2 ** (attempt - 1)))
        return delay / 2 + random.uniform(0, delay / 2)

    async def send(
        self,
        target: PushTarget,
        payload: bytes,
        *,
        ttl: int = 120,
        urgency: str = "high",
        topic: str | None = None,
    ) -> PushResult:
        """Deliver ``payload`` to ``target``; see the module docstring for outcomes.

        Raises :class:`PayloadTooLarge` or :class:`InvalidPushOptions` for
        the caller's mistakes, and :class:`InvalidPushTarget` for an endpoint
        whose name resolves to a private address, before sending anything.
        """
        _check_options(ttl, urgency, topic)
        headers, body = self._build(target, payload, ttl, urgency, topic)
        await self._check_resolved(target.endpoint)
        origin = target.origin
        status: int | None = None
        detail = ""
        for attempt in range(1, self._max_attempts + 1):
            wait: float | None = None
            try:
                answer = await self._post(target.endpoint, headers, body)
            except (httpx.HTTPError, httpx.StreamError) as exc:
                status = None
                detail = f"could not reach the push service ({type(exc).__name__})"
            else:
                status = answer.status
                if 200 <= status < 300:
                    log.debug(
                        "push delivered origin=%s status=%s attempt=%s", origin, status, attempt
                    )
                    return PushResult("delivered", status, f"accepted ({status})", attempt)
                if status in _GONE:
                    log.info("push subscription gone origin=%s status=%s", origin, status)
                    return PushResult(
                        "gone",
                        status,
                        f"the push service no longer knows this subscription ({status})",
                        attempt,
                    )
                if status != 429 and status < 500:
                    log.warning("push refused origin=%s status=%s", origin, status)
                    return PushResult(
                        "failed",
                        status,
                        f"refused by the push service ({status}){_short_reason(answer.body_start)}",
                        attempt,
                    )
                detail = f"push service busy or failing ({status})"
                wait = parse_retry_after(answer.retry_after)
                if wait is not None and wait > self._max_retry_after:
                    log.warning("push deferred too long origin=%s retry_after=%.0f", origin, wait)
                    return PushResult(
                        "failed",
                        status,
                        f"{detail}; it asked to retry after {wait:.0f} s, "
                        f"more than the {self._max_retry_after:.0f} s limit",
                        attempt,
                    )
            log.info("push attempt failed origin=%s status=%s attempt=%s", origin, status, attempt)
            if attempt < self._max_attempts:
                await asyncio.sleep(max(wait or 0.0, self._backoff(attempt)))
        return PushResult(
            "failed",
            status,
            f"{detail}; gave up after {self._max_attempts} attempts",
            self._max_attempts,
        )
