"""The local web UI's guard: who may talk to the agent over HTTP, and how.

A web page on any site can make the user's browser send requests to
``127.0.0.1``; a malicious DNS name can even be rebound to it. So:

* **Launch secret -> cookie.** ``unlatch desktop`` prints/opens
  ``http://localhost:PORT/?k=<secret>`` (localhost, not 127.0.0.1, because
  passkeys need a host name as their WebAuthn RP id; the server listens on
  127.0.0.1 only). The secret is single-use: the first
  request with it gets a fresh session token in an ``HttpOnly;
  SameSite=Strict`` cookie (name includes the port: cookies ignore ports)
  and a redirect to ``/`` that drops the secret from the address bar and
  history. Every other request needs the cookie.
* **Host check** (DNS rebinding): ``Host`` must be ``127.0.0.1:PORT`` or
  ``localhost:PORT`` exactly.
* **Origin check**: every state-changing request (anything but GET/HEAD)
  needs ``Origin`` equal to one of those two origins, and
  ``Sec-Fetch-Site``, when sent, must be ``same-origin``.
* **CSRF token**: per session, ``HMAC(server key, session token)``, put in a
  ``<meta>`` tag of the page and required in ``X-CSRF-Token`` on every
  state change (compared in constant time).
* **Headers**: strict CSP (no inline script), ``frame-ancestors 'none'``,
  ``no-store`` on everything dynamic, ``nosniff``, ``no-referrer``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
    "object-src 'none'"
)
SAFE_METHODS = ("GET", "HEAD")
LAUNCH_SECRET_LIFE = 600.0
MAX_LAUNCH_SECRETS = 16
MAX_SESSIONS = 64
PUBLIC_PATHS = ("/static/", "/favicon.ico")


class UISecurity:
    """Launch secrets, sessions and CSRF tokens of one running UI."""

    def __init__(self) -> None:
        self.port = 0
        self._key = secrets.token_bytes(32)
        self._launch: dict[str, float] = {}
        self._sessions: dict[str, float] = {}

    @property
    def cookie_name(self) -> str:
        return f"unlatch_ui_{self.port}"

    @property
    def origins(self) -> tuple[str, str]:
        return (f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}")

    @property
    def hosts(self) -> tuple[str, str]:
        return (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    def new_launch_url(self) -> str:
        """A fresh single-use URL that opens a session (for ``unlatch desktop``)."""
        now = time.monotonic()
        self._launch = {k: t for k, t in self._launch.items() if t > now}
        while len(self._launch) >= MAX_LAUNCH_SECRETS:
            self._launch.pop(next(iter(self._launch)))
        secret = secrets.token_urlsafe(32)
        self._launch[_digest(secret)] = now + LAUNCH_SECRET_LIFE
        return f"http://localhost:{self.port}/?k={secret}"

    def redeem(self, secret: str) -> str | None:
        """Trade a launch secret (once) for a new session token."""
        expires = self._launch.pop(_digest(secret), None)
        if expires is None or expires < time.monotonic():
            return None
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        token = secrets.token_urlsafe(32)
        self._sessions[_digest(token)] = time.time()
        return token

    def valid_session(self, token: str | None) -> bool:
        return bool(token) and _digest(token or "") in self._sessions

    def csrf_token(self, session: str) -> str:
        return hmac.new(self._key, b"csrf\x00" + session.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session: str, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf_token(session), token)


def _digest(value: str) -> str:
    # Secrets are kept only hashed: a dict lookup then compares digests, not secrets.
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in scope.get("headers", []):
        out.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
    return out


def session_from(scope: Scope, cookie_name: str) -> str | None:
    """The session cookie's value, if any."""
    raw = _headers(scope).get("cookie", "")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # noqa: BLE001 - a malformed Cookie header is just "no cookie"
        return None
    morsel = jar.get(cookie_name)
    return morsel.value if morsel else None


class SecurityMiddleware:
    """ASGI middleware enforcing :class:`UISecurity` on HTTP requests."""

    def __init__(self, app: ASGIApp, security: UISecurity) -> None:
        self.app = app
        self.sec = security

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":  # the UI uses SSE; refuse sockets outright
                await send({"type": "websocket.close", "code": 4403})
                return
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        method = scope["method"]
        path = scope["path"]
        if headers.get("host", "") not in self.sec.hosts:
            await _deny(send, 421, "wrong_host", "this UI only answers on 127.0.0.1 / localhost")
            return
        if path == "/" and method == "GET":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if "k" in query:
                await self._redeem(query["k"][0], send)
                return
        if not path.startswith(PUBLIC_PATHS):
            session = session_from(scope, self.sec.cookie_name)
            if not self.sec.valid_session(session):
                if path == "/" and method == "GET":
                    await _login_needed(send)
                else:
                    await _deny(send, 401, "no_session", "open the link printed by `unlatch desktop`")
                return
            assert session is not None
            if method not in SAFE_METHODS:
                origin = headers.get("origin")
                if origin not in self.sec.origins:
                    await _deny(send, 403, "bad_origin", "cross-origin request refused")
                    return
                if headers.get("sec-fetch-site", "same-origin") != "same-origin":
                    await _deny(send, 403, "bad_origin", "cross-site request refused")
                    return
                if not self.sec.check_csrf(session, headers.get("x-csrf-token")):
                    await _deny(send, 403, "bad_csrf", "missing or wrong CSRF token: reload the page")
                    return
            scope.setdefault("state", {})["session"] = session

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ]
                names = {k.lower() for k, _ in message.get("headers", [])}
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _redeem(self, secret: str, send: Send) -> None:
        token = self.sec.redeem(secret)
        if token is None:
            await _login_needed(send, expired=True)
            return
        cookie = f"{self.sec.cookie_name}={token}; HttpOnly; SameSite=Strict; Path=/"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", b"/"),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


async def _deny(send: Send, status: int, code: str, message: str) -> None:
    body = ('{"error": "%s", "message": "%s"}' % (code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
                (b"content-security-policy", CSP.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _login_needed(send: Send, *, expired: bool = False) -> None:
    why = "This link was already used or has expired." if expired else "This page needs its launch link."
    body = (
        "<!doctype html><meta charset=utf-8><title>unlatch</title>"
        "<body>"
        f"<h1>unlatch</h1><p>{why}</p><p>Run <code>unlatch desktop</code> to open the "
        "vault window (it prints a fresh link).</p></body>"
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"content-security-policy", b"default-src 'none'"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
