"""Serving the phone PWA's built files under ``/app/``.

The app holds the phone's keys, so it gets the strictest headers that still
let it work: a CSP allowing only same-origin code (no eval, no WebAssembly:
the QR decoder is plain JavaScript), no framing, camera allowed for itself
only. ``Service-Worker-Allowed`` lets its worker control ``/app/``. When the
app has not been built, ``/app/`` answers 503 with a message saying so,
rather than a bare 404.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from starlette.responses import JSONResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from unlatch import paths
from unlatch.relay.apierror import ApiError

mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; font-src 'self'; connect-src 'self'; media-src 'self' blob:; "
    "worker-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'; object-src 'none'"
)

APP_HEADERS = {
    "content-security-policy": CSP,
    "service-worker-allowed": "/app/",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "permissions-policy": "camera=(self), microphone=(), geolocation=()",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-cache",
}


class PhoneApp:
    """ASGI app mounted at ``/app``; looks for the build on every request (it may appear later)."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._static: StaticFiles | None = None
        self._static_dir: Path | None = None

    def _files(self) -> StaticFiles | None:
        directory = self._directory or paths.web_dir("phone")
        if not (directory / "index.html").is_file():
            return None
        if self._static is None or self._static_dir != directory:
            self._static = StaticFiles(directory=directory, html=True)
            self._static_dir = directory
        return self._static

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        files = self._files()
        if files is None:
            err = ApiError(
                "app_unavailable",
                "the phone app is not built on this relay"
                " (run: bash scripts/dev.sh setup, or npm run build in web/phone)",
            )
            response = JSONResponse(err.body(), status_code=err.status)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode().lower() not in APP_HEADERS
                ]
                headers += [(k.encode(), v.encode()) for k, v in APP_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await files(scope, receive, send_with_headers)
