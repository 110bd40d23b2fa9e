"""The relay's ASGI application (Starlette): HTTP routes, WebSockets, the PWA, operations.

Routes only parse and bound input (:mod:`unlatch.relay.validate`) and call
:class:`~unlatch.relay.service.RelayService`; the API is documented in
docs/relay.md and listed in ``/openapi.json`` (:mod:`unlatch.relay.openapi`).
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from unlatch import __version__
from unlatch.push import InvalidPushTarget
from unlatch.relay.apierror import ApiError, bad_request
from unlatch.relay.bus import open_bus
from unlatch.relay.codec import b64e
from unlatch.relay.config import (
    DEFAULT_WAIT,
    MAX_AFTER,
    MAX_PAIRING_MESSAGE,
    MAX_REPLY,
    MAX_REPLY_WAIT,
    MAX_SEEN,
    MAX_WAIT,
    RelayConfig,
)
from unlatch.relay.errors import RelayConfigError
from unlatch.relay.fastpath import (
    ApiJSON,
    FastRoutes,
    api_error_response,
    http_error_response,
)
from unlatch.relay.logs import log
from unlatch.relay.metrics import RelayMetrics
from unlatch.relay.models import Device, DeviceKind
from unlatch.relay.openapi import info_document, openapi_document
from unlatch.relay.proxy import client_address
from unlatch.relay.push_gateway import parse_target
from unlatch.relay.ratelimit import open_limiter
from unlatch.relay.service import RelayService, message_json
from unlatch.relay.static import PhoneApp
from unlatch.relay.store import open_store
from unlatch.relay.validate import Fields, bearer_token, new_unlock, path_id, query_int, read_json
from unlatch.relay.ws import Sockets


def ok(data: dict[str, Any], status: int = 200) -> Response:
    return ApiJSON(data, status)


HEALTH_LOG_EVERY = 10.0  # seconds between two "health check failed" lines


class Relay:
    """Everything one relay process holds: config, service, sockets, metrics."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self.metrics = RelayMetrics()
        self.service = RelayService(
            config,
            open_store(config.db),
            open_bus(config.bus),
            open_limiter(config.bus, on_fallback=self.metrics.rate_limit_fallbacks.inc),
            self.metrics,
        )
        self.sockets = Sockets(self.service)
        self._health_logged = -HEALTH_LOG_EVERY  # when /healthz last logged a failed check
        # a configuration problem found while starting (store, VAPID record): the server
        # re-raises it after uvicorn gave up, so the CLI prints it instead of a traceback
        self.startup_error: RelayConfigError | None = None

    # helpers -------------------------------------------------------------------
    def client_ip(self, request: Request) -> str:
        peer = request.client.host if request.client else None
        return client_address(
            peer,
            request.scope.get("headers", []),
            self.config.trusted_networks,
            self.config.proxy_header,
        )

    def requester(
        self, client: tuple[str, int] | None, headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[str, str]:
        """Who asks, from a request head: the address (proxy rules applied) and user agent."""
        peer = client[0] if client else None
        headers = list(headers)
        address = client_address(
            peer, headers, self.config.trusted_networks, self.config.proxy_header
        )
        agent = next((v for k, v in headers if k == b"user-agent"), b"")
        return address, agent.decode("latin-1")

    async def body(self, request: Request) -> dict[str, Any]:
        """The JSON body, bounded in size and in time (``body_timeout``)."""
        return await read_json(request, timeout=self.config.body_timeout)

    async def device(self, request: Request, kind: DeviceKind | None = None) -> Device:
        device = await self.service.authenticate(bearer_token(request))
        if kind is not None and device.kind != kind:
            raise ApiError("forbidden", f"only a {kind} may do this")
        return device

    # auth and devices -------------------------------------------------------------
    async def auth_challenge(self, request: Request) -> Response:
        Fields(await self.body(request), set())
        return ok(await self.service.issue_challenge(self.client_ip(request)))

    async def auth_session(self, request: Request) -> Response:
        f = Fields(await self.body(request), {"public_key", "kind", "challenge", "signature"})
        public_key = f.b64("public_key", exact=65)
        kind = f.choice("kind", ("desktop", "phone"))
        challenge = f.b64("challenge", exact=32)
        signature = f.b64("signature", exact=64)
        result = await self.service.open_session(
            public_key, "desktop" if kind == "desktop" else "phone", challenge, signature
        )
        return ok(result)

    async def device_me(self, request: Request) -> Response:
        device = await self.device(request)
        device = await self.service.store.get_device(device.device_id) or device
        push = None
        if device.push_target:
            push = {
                "type": device.push_target.get("kind"),
                "endpoint": device.push_target.get("endpoint"),
            }
        return ok(
            {
                "device_id": device.device_id,
                "kind": device.kind,
                "created_at": device.created_at,
                "push": push,
            }
        )

    async def push_target(self, request: Request) -> Response:
        device = await self.device(request, "phone")
        if request.method == "DELETE":
            await self.service.set_push_target(device, None)
            return ok({"ok": True})
        body = await self.body(request)
        try:
            target = parse_target(body, allow_private=self.config.push_allow_private)
        except InvalidPushTarget as exc:
            raise bad_request(str(exc)) from None
        await self.service.set_push_target(device, target.to_json())
        return ok({"ok": True})

    async def vapid_key(self, request: Request) -> Response:
        if self.service.push is None:
            raise ApiError("push_unavailable", "push is disabled on this relay")
        return ok({"public_key": self.service.push.public_key_b64url})

    # pairing channels -----------------------------------------------------------------
    async def pairing_create(self, request: Request) -> Response:
        device = await self.device(request)
        f = Fields(await self.body(request), {"channel_id", "ttl"})
        channel_id = f.b64("channel_id", exact=16)
        ttl = f.opt_int("ttl", 1, self.config.pairing_ttl)
        ch = await self.service.create_pairing_channel(device, channel_id, ttl)
        return ok({"channel_id": b64e(channel_id), "expires_at": ch.expires_at}, 201)

    async def pairing_post(self, request: Request) -> Response:
        msg_type = request.path_params["msg_type"]
        if msg_type not in ("hello", "accept"):
            raise ApiError("not_found", "no such route")
        device = await self.device(request)
        channel_id = path_id(request, "channel_id")
        f = Fields(await self.body(request), {"data"})
        data = f.b64("data", max_len=MAX_PAIRING_MESSAGE)
        msg = await self.service.post_pairing(device, channel_id, msg_type, data)
        return ok({"seq": msg.seq}, 202)

    async def pairing_wait(self, request: Request) -> Response:
        return await self._wait(request, "pairing")

    async def pairing_delete(self, request: Request) -> Response:
        device = await self.device(request)
        await self.service.close_channel(device, path_id(request, "channel_id"), "pairing")
        return ok({"ok": True})

    async def _wait(self, request: Request, kind: Any) -> Response:
        device = await self.device(request)
        channel_id = path_id(request, "channel_id")
        after = query_int(request, "after", 0, 0, MAX_AFTER)
        timeout = query_int(request, "timeout", DEFAULT_WAIT, 0, MAX_WAIT)
        msgs, ch = await self.service.wait(device, channel_id, kind, after, float(timeout))
        now = time.time()
        answer: dict[str, Any] = {
            "messages": [message_json(m) for m in msgs],
            "state": self.service.state_of(ch, now),
            "expires_at": ch.expires_at if ch else None,
        }
        outcome = self.service.outcome_of(ch)
        if outcome is not None:
            answer["outcome"] = outcome
        return ok(answer)

    # pairings ----------------------------------------------------------------------------
    async def pairings_register(self, request: Request) -> Response:
        device = await self.device(request)
        f = Fields(await self.body(request), {"routing_id", "peer_device_id"})
        routing_id = f.b64("routing_id", exact=16)
        peer = f.text("peer_device_id", max_len=22)
        return ok(await self.service.register_pairing(device, routing_id, peer))

    async def pairings(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.pairings_register(request)
        return await self.pairings_list(request)

    async def pairings_list(self, request: Request) -> Response:
        device = await self.device(request)
        return ok({"pairings": await self.service.list_pairings(device)})

    async def pairings_delete(self, request: Request) -> Response:
        device = await self.device(request)
        await self.service.delete_pairing(device, path_id(request, "routing_id"))
        return ok({"ok": True})

    async def pairings_block(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ("block", "unblock"):
            raise ApiError("not_found", "no such route")
        device = await self.device(request)
        Fields(await self.body(request), set())
        routing_id = path_id(request, "routing_id")
        return ok(await self.service.set_blocked(device, routing_id, action == "block"))

    # unlock channels ------------------------------------------------------------------------
    async def unlock_create(self, request: Request) -> Response:
        device = await self.device(request)
        fields = new_unlock(await self.body(request), self.config.unlock_ttl, with_id=True)
        assert fields.request_id is not None  # with_id: the body names it
        created = await self.service.create_unlock(
            device,
            fields.request_id,
            fields,
            self.client_ip(request),
            request.headers.get("user-agent", ""),
        )
        return ok(created.answer, 201)

    async def unlock_pending(self, request: Request) -> Response:
        device = await self.device(request)
        return ok({"requests": await self.service.pending_unlock(device)})

    async def unlock_get(self, request: Request) -> Response:
        device = await self.device(request)
        return ok(await self.service.get_unlock(device, path_id(request, "channel_id")))

    async def unlock_post(self, request: Request) -> Response:
        msg_type = request.path_params["msg_type"]
        if msg_type not in ("seen", "reply"):
            raise ApiError("not_found", "no such route")
        device = await self.device(request)
        channel_id = path_id(request, "channel_id")
        if msg_type == "seen":
            f = Fields(await self.body(request), {"data"})
            msg = await self.service.post_unlock(
                device, channel_id, "seen", f.b64("data", max_len=MAX_SEEN)
            )
            return ok({"seq": msg.seq}, 202)
        f = Fields(await self.body(request), {"data", "wait"})
        data = f.b64("data", max_len=MAX_REPLY)
        wait = f.opt_int("wait", 0, MAX_REPLY_WAIT)
        if not wait:
            msg = await self.service.post_unlock(device, channel_id, "reply", data)
            return ok({"seq": msg.seq}, 202)
        msg, delivery = await self.service.post_reply_and_wait(device, channel_id, data, wait)
        return ok({"seq": msg.seq, "delivery": delivery}, 202)

    async def unlock_state(self, request: Request) -> Response:
        device = await self.device(request)
        return ok(await self.service.unlock_state(device, path_id(request, "channel_id")))

    async def unlock_wait(self, request: Request) -> Response:
        return await self._wait(request, "unlock")

    async def unlock_channel(self, request: Request) -> Response:
        if request.method == "DELETE":
            return await self.unlock_delete(request)
        return await self.unlock_get(request)

    async def unlock_delete(self, request: Request) -> Response:
        device = await self.device(request)
        await self.service.close_channel(device, path_id(request, "channel_id"), "unlock")
        return ok({"ok": True})

    # operations -----------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        try:
            await self.service.store.ping()
        except Exception as exc:  # noqa: BLE001 - report, never crash, on a sick store
            # WARNING, at most every HEALTH_LOG_EVERY s: any client can call this route,
            # so it must not let one write ERROR lines (or a line per call) during an outage.
            now = time.monotonic()
            if now - self._health_logged >= HEALTH_LOG_EVERY:
                self._health_logged = now
                log("health check failed", logging.WARNING, error=type(exc).__name__)
            err = ApiError("store_unavailable")
            return JSONResponse({"ok": False, "error": err.code}, status_code=err.status)
        return ok({"ok": True, "version": __version__})

    async def info(self, request: Request) -> Response:
        """What a client must follow on this relay (docs/relay.md "Limits"), before it acts."""
        return ok(info_document(self.config))

    async def metrics_endpoint(self, request: Request) -> Response:
        counts = await self.service.store.count_open_channels()
        for kind, n in counts.items():
            self.metrics.channels_open.labels(kind).set(n)
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi(self, request: Request) -> Response:

        return ok(openapi_document(self.config))

    async def root(self, request: Request) -> Response:
        return RedirectResponse(self.config.app_url or "/app/", status_code=307)

    async def app_elsewhere(self, request: Request) -> Response:
        """/app/... when the app has its own origin: there (a link's #fragment survives)."""
        rest = request.path_params.get("path", "")
        return RedirectResponse(self.config.app_url + rest, status_code=307)

    # (the WebSockets, /v1/{pairing,unlock}/{id}/ws and /v1/listen, are served before
    # ASGI: unlatch.relay.socket_driver, handed the connection by unlatch.relay.server)

    def routes(self) -> list[Any]:
        return [
            Route("/", self.root, methods=["GET"]),
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", self.metrics_endpoint, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/v1/info", self.info, methods=["GET"]),
            Route("/v1/auth/challenge", self.auth_challenge, methods=["POST"]),
            Route("/v1/auth/session", self.auth_session, methods=["POST"]),
            Route("/v1/devices/me", self.device_me, methods=["GET"]),
            Route("/v1/devices/me/push", self.push_target, methods=["PUT", "DELETE"]),
            Route("/v1/push/vapid-public-key", self.vapid_key, methods=["GET"]),
            Route("/v1/pairing", self.pairing_create, methods=["POST"]),
            Route("/v1/pairing/{channel_id}/wait", self.pairing_wait, methods=["GET"]),
            Route("/v1/pairing/{channel_id}/{msg_type}", self.pairing_post, methods=["POST"]),
            Route("/v1/pairing/{channel_id}", self.pairing_delete, methods=["DELETE"]),
            # one Route per path, so a 405's Allow header lists every method of the path
            Route("/v1/pairings", self.pairings, methods=["GET", "POST"]),
            Route("/v1/pairings/{routing_id}", self.pairings_delete, methods=["DELETE"]),
            Route("/v1/pairings/{routing_id}/{action}", self.pairings_block, methods=["POST"]),
            Route("/v1/unlock", self.unlock_create, methods=["POST"]),
            Route("/v1/unlock/pending", self.unlock_pending, methods=["GET"]),
            Route("/v1/unlock/{channel_id}/wait", self.unlock_wait, methods=["GET"]),
            Route("/v1/unlock/{channel_id}/state", self.unlock_state, methods=["GET"]),
            Route("/v1/unlock/{channel_id}/{msg_type}", self.unlock_post, methods=["POST"]),
            Route("/v1/unlock/{channel_id}", self.unlock_channel, methods=["GET", "DELETE"]),
            self._app_route(),
        ]

    def _app_route(self) -> Any:
        if self.config.app_url:
            return Route("/app/{path:path}", self.app_elsewhere, methods=["GET"])
        return Mount(
            "/app",
            app=PhoneApp(Path(self.config.app_dir) if self.config.app_dir else None),
            name="app",
        )


class AccessLog:
    """Outermost middleware: access log + metrics, and a JSON 500 for real faults.

    Logs the route *template* (never ids, query strings or bodies). An
    unexpected exception is logged by type and code location only, and the
    client gets ``{"error": "internal"}``: no traceback leaves the process.
    """

    def __init__(self, app: ASGIApp, relay: Relay) -> None:
        self.app = app
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.monotonic()
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # noqa: BLE001 - turn any fault into a JSON 500, no traceback
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else "?"
            log("internal error", logging.ERROR, error=f"{type(exc).__name__} at {where}")
            if status == 0:
                status = 500
                err = ApiError("internal")
                response = JSONResponse(err.body(), status_code=err.status)
                with contextlib.suppress(Exception):
                    await response(scope, receive, send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if template == "/app":
                template = "/app/*"
            metrics = self.relay.metrics
            metrics.child(metrics.http_requests, template, str(status)).inc()
            log(
                "http",
                logging.INFO if status < 500 else logging.ERROR,
                method=scope.get("method"),
                route=template,
                status=status,
                ms=round((time.monotonic() - start) * 1000, 1),
            )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return api_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return http_error_response(exc)


def create_app(config: RelayConfig) -> Starlette:
    """The relay's ASGI app; ``app.state.relay`` is the :class:`Relay`."""
    relay = Relay(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await relay.service.start()
        except RelayConfigError as exc:
            relay.startup_error = exc
            raise
        log(
            "relay started",
            public_url=config.public_url,
            tls=bool(config.cert),
            trusted_proxies=len(config.trusted_networks),
            proxy_header=config.proxy_header if config.trusted_networks else None,
            version=__version__,
        )
        try:
            yield
        finally:
            await relay.sockets.notify_shutdown(0.5)
            await relay.service.stop()
            log("relay stopped")

    routes = relay.routes()
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.state.relay = relay
    # innermost: the plain API routes skip Starlette's router (unlatch.relay.fastpath)
    app.add_middleware(FastRoutes, routes=routes)
    if config.app_origin and config.app_origin != config.origin:
        # The app on its own origin calls this API from there (bearer tokens, never cookies).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[config.app_origin],
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["authorization", "content-type"],
            allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(AccessLog, relay=relay)
    return app
