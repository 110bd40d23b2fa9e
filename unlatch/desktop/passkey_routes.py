"""HTTP routes of passkey unlock, mounted into the local web UI.

They are added through :data:`unlatch.desktop.web.app.ROUTE_PROVIDERS`, so
they sit behind the UI's :class:`~unlatch.desktop.web.security.SecurityMiddleware`
like every built-in route: session cookie, ``Host`` check, ``Origin`` and
``Sec-Fetch-Site`` checks and the CSRF token on every POST/PUT/DELETE. That
same-origin, cookie- and CSRF-protected connection to 127.0.0.1 is the only
way a PRF output travels from the page to the agent.

Ceremonies (add, unlock) are refused unless the page is on the canonical
host (``localhost``, the RP id); ``POST /api/passkeys/switch-host`` hands a
page on 127.0.0.1 a fresh single-use launch link on localhost. Paths are
relative to the UI's secret prefix (``/<prefix>/api/passkeys``...).

=======  ==================================  ===========================================
Method   Path                                What
=======  ==================================  ===========================================
GET      /api/passkeys                       list (works locked), RP id, origin
POST     /api/passkeys/register/options      creation options (vault unlocked)
POST     /api/passkeys/register              attestation (+PRF) -> slot, or a follow-up
POST     /api/passkeys/register/prf          follow-up assertion carrying the PRF output
PUT      /api/passkeys/{slot_id}             rename
DELETE   /api/passkeys/{slot_id}             remove
POST     /api/passkeys/unlock/options        request options with per-credential salts
POST     /api/passkeys/unlock                assertion (+PRF) -> unlocked
POST     /api/passkeys/switch-host           a launch link on http://localhost:PORT/
=======  ==================================  ===========================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from unlatch.desktop.passkey import CANONICAL_HOST, RP_ID, PasskeyService
from unlatch.desktop.web.common import ROUTE_PROVIDERS, _body, _str, guarded

if TYPE_CHECKING:
    from unlatch.desktop.runtime import DesktopRuntime


def _session(request: Request) -> str:
    return str(request.scope["state"]["session"])


def routes(rt: DesktopRuntime) -> list[BaseRoute]:
    """The passkey routes bound to one runtime (a provider for ``ROUTE_PROVIDERS``)."""
    svc = PasskeyService(rt.core, lambda: rt.port)

    def ceremony_host(request: Request) -> None:
        svc.check_host(request.headers.get("host", ""))

    @guarded
    async def list_passkeys(request: Request) -> Response:
        return JSONResponse(
            {
                "passkeys": await svc.views(),
                "rp_id": RP_ID,
                "origin": svc.origin,
                "canonical_host": CANONICAL_HOST,
            }
        )

    @guarded
    async def register_options(request: Request) -> Response:
        ceremony_host(request)
        data = await _body(request)
        label = _str(data, "label", 64, required=False)
        return JSONResponse(await svc.registration_options(_session(request), label))

    @guarded
    async def register(request: Request) -> Response:
        ceremony_host(request)
        data = await _body(request)
        result = await svc.register(_session(request), data.get("token"), data.get("credential"))
        return JSONResponse(result, status_code=201 if "passkey" in result else 200)

    @guarded
    async def register_prf(request: Request) -> Response:
        ceremony_host(request)
        data = await _body(request)
        result = await svc.register_prf(
            _session(request), data.get("token"), data.get("credential")
        )
        return JSONResponse(result, status_code=201)

    @guarded
    async def rename(request: Request) -> Response:
        data = await _body(request)
        slot_id = request.path_params["slot_id"][:64]
        return JSONResponse({"passkey": await svc.rename(slot_id, _str(data, "label", 64))})

    @guarded
    async def remove(request: Request) -> Response:
        return JSONResponse(await svc.remove(request.path_params["slot_id"][:64]))

    @guarded
    async def unlock_options(request: Request) -> Response:
        ceremony_host(request)
        await _body(request)
        return JSONResponse(await svc.unlock_options(_session(request)))

    @guarded
    async def unlock(request: Request) -> Response:
        ceremony_host(request)
        data = await _body(request)
        return JSONResponse(
            await svc.unlock(_session(request), data.get("token"), data.get("credential"))
        )

    @guarded
    async def switch_host(request: Request) -> Response:
        # The session already has full access: a second launch link grants nothing new.
        # The secret travels in the #fragment to a static page on localhost, which
        # opens the launch link itself: a navigation started on 127.0.0.1 would be
        # cross-site, and the SameSite=Strict session cookie would not follow it.
        answer: dict[str, Any] = {"url": rt.security.new_handover_url()}
        return JSONResponse(answer)

    return [
        Route("/api/passkeys", list_passkeys, methods=["GET"]),
        Route("/api/passkeys/register/options", register_options, methods=["POST"]),
        Route("/api/passkeys/register", register, methods=["POST"]),
        Route("/api/passkeys/register/prf", register_prf, methods=["POST"]),
        Route("/api/passkeys/unlock/options", unlock_options, methods=["POST"]),
        Route("/api/passkeys/unlock", unlock, methods=["POST"]),
        Route("/api/passkeys/switch-host", switch_host, methods=["POST"]),
        Route("/api/passkeys/{slot_id}", rename, methods=["PUT"]),
        Route("/api/passkeys/{slot_id}", remove, methods=["DELETE"]),
    ]


def install() -> None:
    """Mount the passkey routes in every UI app created from now on (idempotent)."""
    if routes not in ROUTE_PROVIDERS:
        ROUTE_PROVIDERS.append(routes)


__all__ = ["install", "routes"]
