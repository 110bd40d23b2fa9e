"""What every route of the local web UI shares: the error shape, the guard that turns
expected errors into JSON answers, bounded input readers, QR routes.

The routes themselves live by concern in ``app`` (the page, state, events),
``device_routes`` (unlock, pairing, phones, settings), ``item_routes`` and
``transfer_routes``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from unlatch import safejson
from unlatch.config import ConfigError
from unlatch.desktop import qr
from unlatch.desktop.errors import DesktopError
from unlatch.errors import UnlatchError
from unlatch.relay.errors import RelayError, RelayUnavailable
from unlatch.vault import VaultLockedError, WrongPasswordError
from unlatch.vault.items import TYPE_FIELDS
from unlatch.vault.vault import EDITABLE_FIELDS

if TYPE_CHECKING:
    from unlatch.desktop.runtime import DesktopRuntime

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
SECRET_KEYS = {t: tuple(f.key for f in specs if f.secret) for t, specs in TYPE_FIELDS.items()}
SSE_KEEPALIVE = 15.0
Endpoint = Callable[[Request], Awaitable[Response]]

#: Extension point: features added later (e.g. passkey unlock) append a function
#: ``provider(runtime) -> list[Route]``; its routes get the same guard (cookie,
#: Host, Origin, CSRF, CSP) as the built-in ones.
ROUTE_PROVIDERS: list[Callable[[DesktopRuntime], list[BaseRoute]]] = []


class BadInput(DesktopError):
    """The page sent something malformed."""

    code = "bad_request"


class NoTotpError(DesktopError):
    """The item has no one-time-code secret."""

    code = "no_totp"
    status = 404


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def _status_of(exc: UnlatchError) -> tuple[int, str]:
    if isinstance(exc, DesktopError):
        return exc.status, exc.code
    if isinstance(exc, RelayUnavailable):
        return 502, "relay_down"
    if isinstance(exc, RelayError):
        return 409, exc.code
    if isinstance(exc, WrongPasswordError):
        return 401, "wrong_password"
    if isinstance(exc, VaultLockedError):
        return 423, "locked"
    name = type(exc).__name__
    if name.endswith("NotFoundError"):
        return 404, "not_found"
    return 400, "refused"


def guarded(fn: Endpoint) -> Endpoint:
    """Turn expected errors into JSON answers; never leak a traceback."""

    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except UnlatchError as exc:
            status, code = _status_of(exc)
            extra: dict[str, Any] = {}
            retry = getattr(exc, "retry_after", None)
            if retry is not None:
                extra["retry_after"] = retry
            return _error(status, code, str(exc), **extra)
        except Exception:
            log.exception("UI request %s %s failed", request.method, request.url.path)
            return _error(500, "internal", "internal error in the agent (see agent.log)")

    return wrapper


async def _body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadInput("send JSON (Content-Type: application/json)")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise BadInput("request too large")
    try:
        data = safejson.loads(raw or b"{}")  # too deep is a 400, not a RecursionError (500)
    except safejson.JSONInputError:
        raise BadInput("the request body is JSON nested too deeply") from None
    except ValueError:
        raise BadInput("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise BadInput("the request body must be a JSON object")
    return data


def _str(data: dict[str, Any], name: str, limit: int = 1024, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise BadInput(f'"{name}" must be text of at most {limit} characters')
    return value


def _item_fields(data: dict[str, Any]) -> dict[str, Any]:
    fields = data.get("item")
    if not isinstance(fields, dict):
        raise BadInput('"item" must be an object')
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise BadInput(f"unknown item field(s): {', '.join(sorted(unknown))}")
    return fields


def _seconds(
    data: dict[str, Any], name: str, what: str, check: Callable[[object, str], float]
) -> float:
    """A JSON number of seconds, checked by the same function as the config value."""
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f'the {what} ("{name}") must be a number of seconds')
    try:
        return check(value, what)
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def qr_routes(prefix: str, find_link: Callable[[], str | Response], title: str) -> list[Route]:
    """``GET <prefix>/qr.svg`` (the QR image) and ``POST <prefix>/link`` (its text alternative).

    ``find_link`` gives the waiting attempt's link, or the error both answer.
    The link goes out as JSON only on that POST (the page's "Copy the link"),
    no-store; it is never in the state the page polls.
    """

    @guarded
    async def image(request: Request) -> Response:
        link = find_link()
        return link if isinstance(link, Response) else _svg(qr.svg(link, title=title))

    @guarded
    async def copy(request: Request) -> Response:
        link = find_link()
        if isinstance(link, Response):
            return link
        return JSONResponse({"link": link}, headers={"Cache-Control": "no-store"})

    return [
        Route(f"{prefix}/qr.svg", image, methods=["GET"]),
        Route(f"{prefix}/link", copy, methods=["POST"]),
    ]


def _svg(text: str) -> Response:
    return Response(text, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})
