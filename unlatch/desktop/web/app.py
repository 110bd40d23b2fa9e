"""Routes of the local web UI (Starlette), all behind :class:`SecurityMiddleware`.

The paths below are what the routes see: the middleware serves them only
under the run's secret prefix (``/<prefix>/api/state`` ...) and strips it, so
the page uses relative URLs throughout.

JSON in, JSON out; errors are ``{"error": code, "message": text}`` with a 4xx
status, the same shape as the relay's. The page follows state through
``GET /api/events`` (server-sent events, one full snapshot per change) and
falls back to polling ``GET /api/state``. QR codes are SVG images made here
(``/api/unlock/qr.svg``, ``/api/pairing/qr.svg``): the link they hold (its
#fragment carries the request's secret) never appears in a URL, nor in the
state the page polls or streams. The one exception is the QR's text
alternative: ``POST /api/unlock/link`` and ``POST /api/pairing/link`` hand the
link to the page (no-store) only when the user presses "Copy link", for people
who cannot scan a screen, as the phone app offers "Paste a link instead".
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from unlatch import paths
from unlatch.desktop.web.common import (
    ROUTE_PROVIDERS,
    SSE_KEEPALIVE,
    _error,
    guarded,
)
from unlatch.desktop.web.device_routes import device_routes
from unlatch.desktop.web.item_routes import item_routes
from unlatch.desktop.web.pages import CSP as PAGE_CSP
from unlatch.desktop.web.pages import error_page
from unlatch.desktop.web.security import SecurityMiddleware
from unlatch.desktop.web.transfer_routes import transfer_routes

if TYPE_CHECKING:
    from unlatch.desktop.runtime import DesktopRuntime


def create_app(rt: DesktopRuntime) -> Starlette:
    """The Starlette app for one runtime."""

    web_root = paths.web_dir("desktop")
    template = (web_root / "index.html").read_text("utf-8")

    state = rt.snapshot

    async def index(request: Request) -> Response:
        csrf = rt.security.csrf_token(request.scope["state"]["session"])
        return HTMLResponse(template.replace("{{csrf}}", csrf))

    @guarded
    async def api_state(request: Request) -> Response:
        return JSONResponse(await state())

    async def events(request: Request) -> Response:
        """The page's live state: a full snapshot after every bump, a comment when idle.

        No ``request.is_disconnected()`` probe per event: StreamingResponse
        already listens for the disconnect and cancels this stream (uvicorn
        speaks ASGI 2.3), and the probe (a cancelled receive) cost two event
        loop steps before every snapshot, each behind whatever else was ready:
        the page learnt of an unlock milliseconds late (issue 15).
        """

        async def stream() -> AsyncIterator[bytes]:
            version = -1
            yield b"retry: 1000\n\n"
            while True:
                if rt.notifier.version != version:
                    version = rt.notifier.version
                    yield b"event: state\ndata: " + json.dumps(await state()).encode() + b"\n\n"
                new = await rt.notifier.wait_past(version, SSE_KEEPALIVE)
                if new == version:
                    yield b": keepalive\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            body = error_page(
                "No such page",
                "This address is not a page of the vault window.",
                link=(rt.security.base_path, "Back to the vault"),
            )
            return HTMLResponse(
                body, status_code=404, headers={"Content-Security-Policy": PAGE_CSP}
            )
        return _error(404, "not_found", "no such page")

    async def bad_method(request: Request, exc: Exception) -> Response:
        return _error(405, "method_not_allowed", "method not allowed")

    routes: list[BaseRoute] = [
        Route("/", index, methods=["GET"]),
        Route("/api/state", api_state, methods=["GET"]),
        Route("/api/events", events, methods=["GET"]),
        *device_routes(rt),
        *item_routes(rt),
    ]
    routes.extend(transfer_routes(rt))
    for provider in ROUTE_PROVIDERS:
        routes.extend(provider(rt))
    routes.append(Mount("/static", app=StaticFiles(directory=web_root), name="static"))
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, security=rt.security)],
        exception_handlers={404: not_found, 405: bad_method},
    )
