"""Unlocking (password, phone), pairing a phone, paired phones and the settings page."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from unlatch.agent.settings import parse_idle_lock
from unlatch.desktop.settings import ENV_CLIPBOARD, check_clipboard_clear, check_relay_url

if TYPE_CHECKING:
    from unlatch.desktop.runtime import DesktopRuntime
from unlatch.desktop.web.common import (
    BadInput,
    _body,
    _error,
    _seconds,
    _str,
    guarded,
    qr_routes,
)


def device_routes(rt: DesktopRuntime) -> list[BaseRoute]:
    """Unlocking (password, phone), pairing a phone, paired phones and the settings page."""
    state = rt.snapshot

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

    return [
        Route("/api/unlock/password", unlock_password, methods=["POST"]),
        Route("/api/unlock/phone", unlock_phone, methods=["POST"]),
        Route("/api/unlock/phone/cancel", unlock_cancel, methods=["POST"]),
        *qr_routes("/api/unlock", unlock_link, "unlatch unlock request"),
        Route("/api/pairing", pairing_start, methods=["POST"]),
        *qr_routes("/api/pairing", pairing_link, "unlatch pairing code"),
        Route("/api/pairing/{session_id}/confirm", pairing_confirm, methods=["POST"]),
        Route("/api/pairing/{session_id}/reject", pairing_reject, methods=["POST"]),
        Route("/api/pairing/{session_id}/cancel", pairing_cancel, methods=["POST"]),
        Route("/api/phones/{phone_id}", phone_rename, methods=["PUT"]),
        Route("/api/phones/{phone_id}", phone_revoke, methods=["DELETE"]),
        Route("/api/settings", settings_put, methods=["PUT"]),
    ]
