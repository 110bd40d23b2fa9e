"""The local web UI's guard: who may talk to the agent over HTTP, and how.

A web page on any site can make the user's browser send requests to
``127.0.0.1``; a malicious DNS name can even be rebound to it. So:

* **Launch secret -> cookie + path.** ``unlatch desktop`` opens
  ``http://localhost:PORT/?k=<secret>`` (localhost, not 127.0.0.1, because
  passkeys need a host name as their WebAuthn RP id; the server listens on
  127.0.0.1 and ::1, both or none: :mod:`~unlatch.desktop.web.listen`)
  through a 0600 launch file, so the secret is in no process's arguments
  (:mod:`~unlatch.desktop.web.launch`); ``--no-browser`` prints the link
  instead. The secret is single-use: the first request with it gets
  a fresh session token in an ``HttpOnly; SameSite=Strict`` cookie and a
  redirect to ``/<prefix>/``, which drops the secret from the address bar and
  history. ``<prefix>`` is random per agent run; the UI, its API and its
  static files exist only under it, and the cookie is scoped to it
  (``Path=/<prefix>/``).
* **Why the path too.** Cookies ignore ports: any server on localhost, at
  any port, that the browser visits receives the cookies of ``localhost``
  whose path matches. With ``Path=/<prefix>/`` the browser only sends the
  session cookie to URLs under the secret prefix, and the agent refuses the
  cookie anywhere else; a cookie that leaked alone (without the prefix) opens
  nothing. Every request needs both.
* **Session lifetime.** A session lasts :data:`SESSION_LIFE` (12 hours) from
  the launch link, then every request is refused; ``unlatch desktop`` gives
  a fresh link.
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
import json
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from unlatch.desktop.web.launch import LaunchFiles
from unlatch.desktop.web.pages import CSP as PAGE_CSP
from unlatch.desktop.web.pages import error_page

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
CSP_HEADER = b"content-security-policy"
LAUNCH_SECRET_LIFE = 600.0
SESSION_LIFE = 12 * 3600.0  # a working day; then `unlatch desktop` again
MAX_LAUNCH_SECRETS = 16
MAX_SESSIONS = 64
PUBLIC_PATHS = ("/static/",)  # relative to the prefix: the app's own code, nothing secret


class UISecurity:
    """Launch secrets, the path prefix, sessions and CSRF tokens of one running UI."""

    def __init__(
        self,
        *,
        session_life: float = SESSION_LIFE,
        clock: Callable[[], float] = time.monotonic,
        launch_files: LaunchFiles | None = None,
    ) -> None:
        self.port = 0
        self.prefix = secrets.token_urlsafe(18)  # 144 bits; URL-safe, no "/"
        self.session_life = session_life
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._launch: dict[str, float] = {}  # digest -> expires at (clock)
        self._files = launch_files if launch_files is not None else LaunchFiles(LAUNCH_SECRET_LIFE)
        self._sessions: dict[str, float] = {}  # digest -> created at (clock)

    @property
    def base_path(self) -> str:
        """Where the UI lives: ``/<prefix>/`` (the page, ``api/``, ``static/``)."""
        return f"/{self.prefix}/"

    def split_path(self, path: str) -> str | None:
        """``/<prefix>/rest`` -> ``/rest``; None when the path is not under the prefix.

        The prefix is a secret: compared in constant time.
        """
        if not path.startswith("/") or "/" not in path[1:]:
            return None
        first, rest = path[1:].split("/", 1)
        if not hmac.compare_digest(first.encode("latin-1", "replace"), self.prefix.encode()):
            return None
        return "/" + rest

    @property
    def cookie_name(self) -> str:
        return f"unlatch_ui_{self.port}"

    @property
    def origins(self) -> tuple[str, str]:
        return (f"http://127.0.0.1:{self.port}", f"http://localhost:{self.port}")

    @property
    def hosts(self) -> tuple[str, str]:
        return (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    def _new_launch_secret(self) -> str:
        self.purge()
        while len(self._launch) >= MAX_LAUNCH_SECRETS:
            self._spend(next(iter(self._launch)))
        secret = secrets.token_urlsafe(32)
        self._launch[_digest(secret)] = self._clock() + LAUNCH_SECRET_LIFE
        return secret

    @property
    def address(self) -> str:
        """The UI's address as links give it (no secret): ``http://localhost:PORT/``."""
        return f"http://localhost:{self.port}/"

    def _launch_url(self, secret: str) -> str:
        return f"{self.address}?k={secret}"

    def new_launch_url(self) -> str:
        """A fresh single-use URL that opens a session (``unlatch desktop --no-browser``)."""
        return self._launch_url(self._new_launch_secret())

    def new_handover_url(self) -> str:
        """A fresh single-use link for a page that is not on localhost to open the UI with.

        ``http://localhost:PORT/<prefix>/static/launch.html#k=<secret>``: the
        secret is in the fragment (never sent), and that page opens ``/?k=``
        itself, a same-site navigation, so the ``SameSite=Strict`` cookie set
        by the answer is sent on its redirect (a navigation started on
        ``file://`` or ``127.0.0.1`` is cross-site and would arrive without it).
        """
        secret = self._new_launch_secret()
        return self._handover_url(secret)

    def _handover_url(self, secret: str) -> str:
        return f"{self.address.rstrip('/')}{self.base_path}static/launch.html#k={secret}"

    def new_launch_file(self) -> Path:
        """A fresh single-use URL, in a 0600 file that redirects to it (to open a browser).

        The file is deleted when its secret is spent (:meth:`redeem`,
        :meth:`purge`, :meth:`close`); only its path goes on a command line.
        """
        secret = self._new_launch_secret()
        return self._files.write(_digest(secret), self._handover_url(secret))

    def _spend(self, key: str) -> None:
        self._launch.pop(key, None)
        self._files.remove(key)

    def purge(self) -> None:
        """Forget expired launch secrets and delete their files (also run by a timer)."""
        now = self._clock()
        for key in [k for k, t in self._launch.items() if t <= now]:
            self._spend(key)

    def close(self) -> None:
        """Spend every launch secret and delete their files (agent exit)."""
        for key in list(self._launch):
            self._spend(key)
        self._files.remove_all()

    def redeem(self, secret: str) -> str | None:
        """Trade a launch secret (once) for a new session token."""
        now = self._clock()
        key = _digest(secret)
        expires = self._launch.get(key)
        self._spend(key)
        if expires is None or expires <= now:
            return None
        self._sessions = {k: t for k, t in self._sessions.items() if now - t < self.session_life}
        while len(self._sessions) >= MAX_SESSIONS:
            self._sessions.pop(next(iter(self._sessions)))
        token = secrets.token_urlsafe(32)
        self._sessions[_digest(token)] = now
        return token

    def valid_session(self, token: str | None) -> bool:
        """A known session that has not outlived :attr:`session_life` (then it is dropped)."""
        if not token:
            return False
        key = _digest(token)
        created = self._sessions.get(key)
        if created is None:
            return False
        if self._clock() - created >= self.session_life:
            del self._sessions[key]
            return False
        return True

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
        if headers.get("host", "") not in self.sec.hosts:
            await _deny(send, 421, "wrong_host", "this UI only answers on 127.0.0.1 / localhost")
            return
        if scope["path"] == "/" and method == "GET":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if "k" in query:
                await self._redeem(query["k"][0], send)
                return
        path = self.sec.split_path(scope["path"])
        if path is None:  # outside the secret prefix: nothing here, with or without a cookie
            page = method == "GET" and "text/html" in headers.get("accept", "")
            if page or scope["path"] == "/":
                await _login_needed(send)
            else:
                await _deny(send, 401, "no_session", "open the link printed by `unlatch desktop`")
            return
        # The routes see paths relative to the prefix ("/", "/api/...", "/static/...").
        scope = dict(scope, path=path, raw_path=path.encode("latin-1", "replace"))
        if not path.startswith(PUBLIC_PATHS):
            session = session_from(scope, self.sec.cookie_name)
            if not self.sec.valid_session(session):
                if path == "/" and method == "GET":
                    await _login_needed(send)
                else:
                    await _deny(
                        send, 401, "no_session", "open the link printed by `unlatch desktop`"
                    )
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
                    await _deny(
                        send, 403, "bad_csrf", "missing or wrong CSRF token: reload the page"
                    )
                    return
            scope.setdefault("state", {})["session"] = session

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                    (b"cross-origin-resource-policy", b"same-origin"),
                ]
                own = [v for k, v in message.get("headers", []) if k.lower() == CSP_HEADER]
                if own != [PAGE_CSP.encode()]:  # only the error pages' (stricter) one stands alone
                    extra.append((CSP_HEADER, CSP.encode()))
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
        base = self.sec.base_path
        life = int(self.sec.session_life)
        cookie = (
            f"{self.sec.cookie_name}={token}; HttpOnly; SameSite=Strict; "
            f"Path={base}; Max-Age={life}"
        )
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", base.encode()),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


async def _deny(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": code, "message": message}).encode()
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
    if expired:
        title, why = (
            "This link was already used",
            (
                "A launch link opens one window, once, within 10 minutes: this one was used "
                "or has expired."
            ),
        )
    else:
        title, why = (
            "This window is closed",
            (
                "It needs a fresh launch link: its session ended (after 12 hours), or the "
                "unlatch agent restarted since it was opened."
            ),
        )
    body = error_page(title, why)
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"text/html; charset=utf-8"),
                (b"cache-control", b"no-store"),
                (b"content-security-policy", PAGE_CSP.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
