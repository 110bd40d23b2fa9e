"""Import and export in the web UI (Settings > Import and export).

Import, in three requests so the page can show the report before anything
changes (what ``unlatch import --dry-run`` prints):

1. ``POST /api/import/file`` - the file's bytes as the body
   (``application/octet-stream``, at most ``MAX_FILE_BYTES``) -> ``{token}``.
   The agent keeps one upload at a time, for :data:`UPLOAD_LIFE` seconds,
   and forgets it when the vault locks.
2. ``POST /api/import/check {token, format, password?}`` - the file is parsed
   by :mod:`unlatch.vault.transfer.worker` in a process of its own (never in
   the agent, which holds the vault key) -> the report: ``found``,
   ``titles`` (the first :data:`MAX_TITLES`), ``skipped`` (entry and why),
   ``ignored``. Nothing is written.
3. ``POST /api/import/commit {token}`` - the checked items are added in one
   transaction (all or none) -> ``{imported}``.

Export: ``POST /api/export {format, password?, unencrypted?}`` answers the
file itself as a download (``Content-Disposition: attachment``, no-store):
``unlatch`` and ``keepass`` are encrypted with the password given (at least 8
characters); ``csv`` holds every secret in the clear and is refused unless
``unencrypted`` is ``true`` (the page asks for that confirmation).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from unlatch.desktop.errors import DesktopError
from unlatch.desktop.web.common import BadInput, _body, _str, guarded
from unlatch.vault.items import EDITABLE_FIELDS, Item
from unlatch.vault.transfer import EXPORTERS, IMPORTERS, export_items
from unlatch.vault.transfer.base import MAX_FILE_BYTES
from unlatch.vault.transfer.worker import TIMEOUT

if TYPE_CHECKING:
    from unlatch.desktop.runtime import DesktopRuntime

log = logging.getLogger(__name__)

UPLOAD_LIFE = 600.0
MAX_TITLES = 50


class ImportFailed(DesktopError):
    """The file could not be imported; the message says why (line or entry)."""

    code = "bad_file"


class NoUpload(DesktopError):
    """The token names no upload (expired, replaced, or the vault locked)."""

    code = "no_upload"
    status = 404


@dataclass
class Upload:
    token: str
    data: bytes
    at: float
    items: list[Item] | None = None  # set by a successful check
    report: dict[str, Any] = field(default_factory=dict)


class Uploads:
    """The one pending import of this UI (a new upload replaces it)."""

    def __init__(self) -> None:
        self.current: Upload | None = None

    def put(self, data: bytes) -> Upload:
        self.current = Upload(secrets.token_urlsafe(16), data, time.monotonic())
        return self.current

    def get(self, token: object) -> Upload:
        up = self.current
        if (
            up is None
            or not isinstance(token, str)
            or not secrets.compare_digest(token.encode(), up.token.encode())
            or time.monotonic() - up.at > UPLOAD_LIFE
        ):
            raise NoUpload(
                "that upload is gone (replaced, expired or the vault locked): choose the file again"
            )
        return up

    def clear(self) -> None:
        self.current = None


async def parse_in_worker(fmt: str, password: str | None, data: bytes) -> dict[str, Any]:
    """Run :mod:`unlatch.vault.transfer.worker` on ``data``; its JSON answer."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "unlatch.vault.transfer.worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    request = json.dumps({"format": fmt, "password": password}).encode() + b"\n"
    try:
        out, err = await asyncio.wait_for(proc.communicate(request + data), TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ImportFailed(f"reading the file took more than {int(TIMEOUT)} s: gave up") from None
    try:
        answer = json.loads(out)
        if not isinstance(answer, dict):
            raise ValueError
    except ValueError:
        # A parser crash: its traceback goes to the log (never to the page), not the values.
        log.error(
            "import worker exited %s: %s", proc.returncode, err.decode(errors="replace")[-2000:]
        )
        raise ImportFailed(
            "the file could not be read (the importer failed; see agent.log)"
        ) from None
    return answer


def transfer_routes(rt: DesktopRuntime) -> list[BaseRoute]:
    """The import and export routes of one runtime."""
    uploads = Uploads()
    rt.core.add_listener(lambda event: uploads.clear() if event == "locked" else None)

    @guarded
    async def formats(request: Request) -> Response:
        return JSONResponse(
            {
                "import": [
                    {"name": i.name, "description": i.description, "password": i.needs_password}
                    for i in IMPORTERS.values()
                ],
                "export": [
                    {"name": e.name, "description": e.description, "encrypted": e.encrypted}
                    for e in EXPORTERS.values()
                ],
                "max_file_bytes": MAX_FILE_BYTES,
            }
        )

    @guarded
    async def upload(request: Request) -> Response:
        if (
            request.headers.get("content-type", "").split(";")[0].strip()
            != "application/octet-stream"
        ):
            raise BadInput("send the file as application/octet-stream")
        await rt.core.with_vault(lambda v: None)  # only into an unlocked vault
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_FILE_BYTES:
                raise BadInput(f"the file is larger than {MAX_FILE_BYTES // 1048576} MiB")
            chunks.append(chunk)
        if not size:
            raise BadInput("the file is empty")
        return JSONResponse({"token": uploads.put(b"".join(chunks)).token, "bytes": size})

    @guarded
    async def check(request: Request) -> Response:
        data = await _body(request)
        up = uploads.get(data.get("token"))
        fmt = _str(data, "format", 32)
        if fmt not in IMPORTERS:
            raise BadInput(f"unknown import format (one of {', '.join(IMPORTERS)})")
        password = _str(data, "password", 1024, required=False) or None
        up.items = None
        answer = await parse_in_worker(fmt, password, up.data)
        if not answer.get("ok"):
            error = ImportFailed(str(answer.get("message", "the file could not be read")))
            error.code = str(answer.get("error", "bad_file"))
            raise error
        items = [_item(d) for d in answer.get("items", [])]
        up.items = items
        up.report = {
            "format": answer.get("format", fmt),
            "found": len(items),
            "titles": [i.title for i in items[:MAX_TITLES]],
            "skipped": answer.get("skipped", []),
            "ignored": answer.get("ignored", []),
        }
        return JSONResponse(up.report)

    @guarded
    async def commit(request: Request) -> Response:
        data = await _body(request)
        up = uploads.get(data.get("token"))
        if up.items is None:
            raise BadInput("check the file first (its report shows what will be imported)")
        added = await rt.core.import_items(up.items) if up.items else []
        uploads.clear()
        return JSONResponse({**up.report, "imported": len(added)})

    @guarded
    async def export(request: Request) -> Response:
        data = await _body(request)
        fmt = _str(data, "format", 32)
        exporter = EXPORTERS.get(fmt)
        if exporter is None:
            raise BadInput(f"unknown export format (one of {', '.join(EXPORTERS)})")
        password = None
        if exporter.encrypted:
            password = _str(data, "password", 1024)
        elif data.get("unencrypted") is not True:
            raise BadInput(
                f"a {fmt} export holds every password in the clear: confirm that it is "
                "unencrypted, or choose an encrypted format"
            )
        items = await rt.core.export_items()
        body = await asyncio.to_thread(export_items, fmt, items, password)
        name = f"unlatch-export-{time.strftime('%Y%m%d')}{exporter.suffix}"
        return Response(
            body,
            media_type="application/octet-stream",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
                "X-Item-Count": str(len(items)),
            },
        )

    return [
        Route("/api/transfer/formats", formats, methods=["GET"]),
        Route("/api/import/file", upload, methods=["POST"]),
        Route("/api/import/check", check, methods=["POST"]),
        Route("/api/import/commit", commit, methods=["POST"]),
        Route("/api/export", export, methods=["POST"]),
    ]


def _item(data: object) -> Item:
    """An item the worker made: checked like any item from a page (types, known keys)."""
    if not isinstance(data, dict) or set(data) - set(EDITABLE_FIELDS):
        raise ImportFailed("the importer gave a malformed item")
    item = Item.from_dict(data)
    item.validate()
    return item


__all__ = ["transfer_routes"]
