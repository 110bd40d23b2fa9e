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
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from unlatch import paths, safejson
from unlatch.agent.handlers import summary
from unlatch.agent.settings import parse_idle_lock
from unlatch.config import ConfigError
from unlatch.desktop import qr
from unlatch.desktop.errors import DesktopError
from unlatch.desktop.settings import ENV_CLIPBOARD, check_clipboard_clear, check_relay_url
from unlatch.desktop.web.pages import CSP as PAGE_CSP
from unlatch.desktop.web.pages import error_page
from unlatch.desktop.web.security import SecurityMiddleware
from unlatch.errors import UnlatchError
from unlatch.relay.errors import RelayError, RelayUnavailable
from unlatch.vault import Item, Vault, VaultLockedError, WrongPasswordError, totp
from unlatch.vault.generator import generate_passphrase, generate_password
from unlatch.vault.items import FIELD_KINDS, TYPE_FIELDS, public_view, types_schema
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


def page_item(item: Item) -> dict[str, Any]:
    """An item as the page shows it before any "Show" or "Copy": no secret at all.

    :func:`~unlatch.vault.items.public_view` (no password, no TOTP secret, no
    secret type field, no hidden custom value), plus which secrets exist
    (``has_password``, ``secret_data``: the keys of the type's secret fields
    that hold a value) so the page can draw their rows masked. A value comes
    only when the user asks for it (``POST /api/items/{id}/reveal``); the
    TOTP secret never comes: the page asks for the current code instead
    (``GET /api/items/{id}/totp``), so the secret that makes every future
    code stays in the agent.
    """
    data = public_view(item)
    data["has_password"] = bool(item.password)
    data["secret_data"] = [k for k in SECRET_KEYS.get(item.type, ()) if item.data.get(k)]
    return data


def edit_view(item: Item) -> dict[str, Any]:
    """The item for its edit form (asked for by pressing "Edit"): every value but the
    TOTP secret, which the form only replaces or removes."""
    data = item.to_dict()
    data["has_totp"] = bool(data.pop("totp_secret"))
    return data


def reveal(item: Item, ref: str) -> str:
    """One secret of ``item``: ``password``, ``data.KEY`` or ``fields.INDEX``."""
    if ref == "password":
        return item.password
    kind, _, key = ref.partition(".")
    if kind == "data" and key in item.data:
        return item.data[key]
    if kind == "fields" and key.isdigit() and int(key) < len(item.fields):
        return item.fields[int(key)].value
    raise BadInput(f"{item.title!r} has no field {ref[:40]!r}")


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


def create_app(rt: DesktopRuntime) -> Starlette:
    """The Starlette app for one runtime."""
    from unlatch.desktop.web.transfer_routes import transfer_routes

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
        async def stream() -> AsyncIterator[bytes]:
            version = -1
            yield b"retry: 1000\n\n"
            while True:
                if await request.is_disconnected():
                    return
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

    @guarded
    async def unlock_password(request: Request) -> Response:
        data = await _body(request)
        await rt.core.unlock_with_password(_str(data, "password"))
        return JSONResponse({"unlocked": True})

    @guarded
    async def unlock_phone(request: Request) -> Response:
        data = await _body(request)
        phone = _str(data, "phone_id", 64, required=False) or None
        attempt = await rt.unlock.start(phone, number_matching=rt.settings.number_matching)
        return JSONResponse(attempt.view())

    @guarded
    async def unlock_cancel(request: Request) -> Response:
        if rt.unlock.current is not None:
            await rt.unlock.cancel(rt.unlock.current.id)
        return JSONResponse({"cancelled": True})

    def unlock_link() -> str | Response:
        """The waiting request's link, or the error page the QR and copy routes answer."""
        attempt = rt.unlock.current
        if attempt is None or attempt.final:
            return _error(404, "no_request", "no unlock request is waiting")
        if attempt.link is None:
            return _error(404, "no_qr", "a number-matching request has no QR code")
        return attempt.link

    @guarded
    async def lock(request: Request) -> Response:
        return JSONResponse({"was_unlocked": await rt.core.lock(reason="ui")})

    @guarded
    async def items_list(request: Request) -> Response:
        query = request.query_params.get("q", "")[:1024]
        found = await rt.core.search(query)
        return JSONResponse({"items": [summary(i) for i in found]})

    @guarded
    async def item_get(request: Request) -> Response:
        item = await rt.core.get_item(request.path_params["item_id"][:64])
        return JSONResponse(page_item(item))

    @guarded
    async def item_reveal(request: Request) -> Response:
        """One secret value, when the user presses its Show or Copy (activity)."""
        ref = _str(await _body(request), "field", 64)
        item = await rt.core.get_item(request.path_params["item_id"][:64])
        return JSONResponse({"value": reveal(item, ref)}, headers={"Cache-Control": "no-store"})

    @guarded
    async def item_full(request: Request) -> Response:
        item = await rt.core.get_item(request.path_params["item_id"][:64])
        return JSONResponse(edit_view(item), headers={"Cache-Control": "no-store"})

    @guarded
    async def item_types(request: Request) -> Response:
        return JSONResponse({"types": types_schema(), "field_kinds": list(FIELD_KINDS)})

    @guarded
    async def item_totp(request: Request) -> Response:
        """The item's current one-time code, computed here from its secret.

        Not activity for the auto-lock: the page asks again every period while
        the item is open, which must not keep an idle vault unlocked.
        """
        ref = request.path_params["item_id"][:64]

        def current(v: Vault) -> dict[str, str | int]:
            item = v.find(ref)
            if not item.totp_secret:
                raise NoTotpError(f"{item.title!r} has no one-time code")
            return totp.current_view(item.totp_secret)

        return JSONResponse(await rt.core.with_vault(current, activity=False))

    @guarded
    async def item_add(request: Request) -> Response:
        fields = _item_fields(await _body(request))
        item = await rt.core.add_item(Item.from_dict(fields))
        return JSONResponse(summary(item), status_code=201)

    @guarded
    async def item_edit(request: Request) -> Response:
        fields = _item_fields(await _body(request))
        item = await rt.core.update_item(request.path_params["item_id"][:64], fields)
        return JSONResponse(summary(item))

    @guarded
    async def item_delete(request: Request) -> Response:
        item = await rt.core.remove_item(request.path_params["item_id"][:64])
        return JSONResponse({"deleted": summary(item)})

    @guarded
    async def generate(request: Request) -> Response:
        data = await _body(request)
        if data.get("kind") == "passphrase":
            words = data.get("words", 6)
            if not isinstance(words, int):
                raise BadInput('"words" must be a number')
            made = generate_passphrase(words)
        else:
            length = data.get("length", 24)
            flags = {k: data.get(k, True) for k in ("lower", "upper", "digits", "symbols")}
            if not isinstance(length, int) or not all(isinstance(v, bool) for v in flags.values()):
                raise BadInput('"length" must be a number and the sets true/false')
            made = generate_password(length, **flags)
        return JSONResponse({"value": made.value, "entropy_bits": round(made.entropy_bits, 1)})

    @guarded
    async def pairing_start(request: Request) -> Response:
        session = await rt.pairing.start()
        return JSONResponse(session.view())

    def pairing_link() -> str | Response:
        session = next((s for s in rt.pairing.sessions.values() if s.state == "waiting"), None)
        if session is None:
            return _error(404, "no_pairing", "no pairing is waiting for a phone")
        return session.link

    @guarded
    async def pairing_confirm(request: Request) -> Response:
        data = await _body(request)
        label = _str(data, "label", 128, required=False) or None
        phone = await rt.pairing.confirm(request.path_params["session_id"][:64], label)
        return JSONResponse({"phone": phone.public_view()})

    @guarded
    async def pairing_reject(request: Request) -> Response:
        await rt.pairing.reject(request.path_params["session_id"][:64])
        return JSONResponse({"rejected": True})

    @guarded
    async def pairing_cancel(request: Request) -> Response:
        await rt.pairing.cancel(request.path_params["session_id"][:64])
        return JSONResponse({"cancelled": True})

    @guarded
    async def phone_rename(request: Request) -> Response:
        data = await _body(request)
        label = _str(data, "label", 128)
        phone = await rt.pairing.rename(request.path_params["phone_id"][:64], label)
        return JSONResponse({"phone": phone.public_view()})

    @guarded
    async def phone_revoke(request: Request) -> Response:
        result = await rt.pairing.revoke(request.path_params["phone_id"][:64])
        await rt.unlock.phone_revoked(result["revoked"]["id"])  # its pending request ends now
        return JSONResponse(result)

    @guarded
    async def settings_put(request: Request) -> Response:
        data = await _body(request)
        # Every value is checked before any is applied: a bad one changes nothing.
        settings = rt.settings
        idle = clip = None
        if "idle_lock_seconds" in data:
            if rt.core.idle_lock_fixed_by:
                raise BadInput(
                    f"the auto-lock time is set by {rt.core.idle_lock_fixed_by} for this agent"
                )
            idle = _seconds(data, "idle_lock_seconds", "auto-lock time", parse_idle_lock)
        if "clipboard_clear_seconds" in data:
            if settings.clipboard_clear_locked:
                raise BadInput(f"the clipboard time is set by {ENV_CLIPBOARD}")
            clip = _seconds(
                data, "clipboard_clear_seconds", "clipboard time", check_clipboard_clear
            )
        if "number_matching" in data and not isinstance(data["number_matching"], bool):
            raise BadInput('"number_matching" must be true or false')
        url = None
        if "relay_url" in data:
            url = _str(data, "relay_url", 200)
            if settings.relay_url_locked and url != settings.relay_url:
                raise BadInput("the relay URL is set by --relay or UNLATCH_DESKTOP_RELAY_URL")
            url = None if url == settings.relay_url else check_relay_url(url)
        if idle is not None:
            rt.core.set_idle_lock(idle)  # the running timer, at once
            settings.saved_idle_lock = idle
        if clip is not None:
            settings.clipboard_clear_seconds = settings.saved_clipboard_clear = int(clip)
        if "number_matching" in data:
            settings.number_matching = data["number_matching"]
        settings.save()
        if url is not None:
            await rt.set_relay_url(url)
        rt.notifier.bump()
        return JSONResponse((await state())["settings"])

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
        Route("/api/unlock/password", unlock_password, methods=["POST"]),
        Route("/api/unlock/phone", unlock_phone, methods=["POST"]),
        Route("/api/unlock/phone/cancel", unlock_cancel, methods=["POST"]),
        *qr_routes("/api/unlock", unlock_link, "unlatch unlock request"),
        Route("/api/lock", lock, methods=["POST"]),
        Route("/api/items", items_list, methods=["GET"]),
        Route("/api/items", item_add, methods=["POST"]),
        Route("/api/items/{item_id}", item_get, methods=["GET"]),
        Route("/api/items/{item_id}/totp", item_totp, methods=["GET"]),
        Route("/api/items/{item_id}/reveal", item_reveal, methods=["POST"]),
        Route("/api/items/{item_id}/full", item_full, methods=["POST"]),
        Route("/api/types", item_types, methods=["GET"]),
        Route("/api/items/{item_id}", item_edit, methods=["PUT"]),
        Route("/api/items/{item_id}", item_delete, methods=["DELETE"]),
        Route("/api/generate", generate, methods=["POST"]),
        Route("/api/pairing", pairing_start, methods=["POST"]),
        *qr_routes("/api/pairing", pairing_link, "unlatch pairing code"),
        Route("/api/pairing/{session_id}/confirm", pairing_confirm, methods=["POST"]),
        Route("/api/pairing/{session_id}/reject", pairing_reject, methods=["POST"]),
        Route("/api/pairing/{session_id}/cancel", pairing_cancel, methods=["POST"]),
        Route("/api/phones/{phone_id}", phone_rename, methods=["PUT"]),
        Route("/api/phones/{phone_id}", phone_revoke, methods=["DELETE"]),
        Route("/api/settings", settings_put, methods=["PUT"]),
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


__all__ = ["create_app"]
