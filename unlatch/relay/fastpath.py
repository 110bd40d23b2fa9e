"""The API routes served without Starlette's per-request machinery, and the JSON answers.

Starlette hands a request through its exception middleware, its router (which
tries every route's regex in turn: 23 of them for ``DELETE /v1/unlock/{id}``,
each building a scope dict) and two exception-handling wrappers before the
route runs. Profiled under ``bench/bench_relay.py`` (``bench/profile_relay.py``),
that machinery cost as much CPU as the relay's own handling of the 3 HTTP
requests of an exchange, store calls aside: 7-8% of the relay's CPU.

:class:`FastRoutes` is a pure-ASGI middleware in front of Starlette's: it
matches the plain API routes (``Route`` with ``{name}`` segments) as Starlette
would (:class:`RouteTable`: one expression per method) and calls the endpoint
directly. What
it does not match exactly (a 404, a 405, a trailing slash, the phone app's
mount) goes on to Starlette unchanged, so routing answers stay Starlette's.
The route table stays the one list in :meth:`unlatch.relay.app.Relay.routes`.

:class:`ApiJSON` is the relay's JSON answer: Starlette's ``JSONResponse``
bytes and headers, built without re-encoding the fixed headers per response.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from unlatch.relay.apierror import ApiError

# on every API answer: never cached, never sniffed
API_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
_API_RAW = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in API_HEADERS.items()]
_JSON_TYPE = (b"content-type", b"application/json")
# what Starlette's JSONResponse renders (compact, UTF-8, no NaN), with the encoder made once
_encode = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode

Endpoint = Callable[[Request], Awaitable[Response]]
# a route as one method's expression finds it: the route, its endpoint, (parameter, group number)
_Found = tuple[Route, Endpoint, tuple[tuple[str, int], ...]]


class ApiJSON(Response):
    """A JSON answer with the API headers (and ``extra`` ones), as ``JSONResponse`` sends it."""

    media_type = "application/json"

    def __init__(
        self, data: Any, status: int = 200, extra: Mapping[str, str] | None = None
    ) -> None:
        self.status_code = status
        self.background = None
        self.body = _encode(data).encode("utf-8")
        headers = [*_API_RAW]
        for name, value in (extra or {}).items():
            headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        headers += [(b"content-length", str(len(self.body)).encode("latin-1")), _JSON_TYPE]
        self.raw_headers = headers


def api_error_response(exc: ApiError) -> Response:
    """A refusal's JSON answer: ``{"error", "message", ...}`` and its headers."""
    return ApiJSON(exc.body(), exc.status, exc.headers())


def http_error_response(exc: HTTPException) -> Response:
    """Starlette's own 404/405 as registry errors; a 405 keeps its ``Allow`` header (RFC 9110)."""
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    err = ApiError(code)
    return ApiJSON(err.body(), err.status, exc.headers)


class RouteTable:
    """Starlette's first-match routing over the plain routes, as one regular expression per method.

    A route is *plain* when its endpoint is a request function and each
    parameter is a ``{name}`` segment (Starlette's ``str`` convertor: one
    non-empty segment). The table stops at the first route that is not plain
    (a mount, a ``{path:path}``), so a request it matches is one Starlette
    would give the same route: nothing before it in the list could have
    matched. WebSocket routes never match HTTP requests and are skipped.

    For each method, the routes taking it become the alternatives of one
    expression, in the table's order: the first alternative that matches the
    whole path is the first route Starlette would fully match (a route with
    the path but not the method is never a full match: Starlette goes on, and
    answers 405 only if no later route takes the request). One C-level match
    replaces Starlette's loop over every route's expression.
    """

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        plain: list[Route] = []
        for route in routes:
            if isinstance(route, WebSocketRoute):
                continue
            if not isinstance(route, Route) or not self._plain(route):
                break
            plain.append(route)
        # method -> (expression, outer group number -> (route, endpoint, parameter groups))
        self._by_method: dict[str, tuple[re.Pattern[str], dict[int, _Found]]] = {}
        for method in sorted({m for route in plain for m in route.methods or ()}):
            alternatives: list[str] = []
            found: dict[int, _Found] = {}
            group = 0
            for route in plain:
                if method not in (route.methods or ()):
                    continue
                group += 1
                outer, pieces, params = group, [], []  # each alternative is an outer group
                for segment in route.path.split("/")[1:]:
                    if segment.startswith("{"):
                        group += 1
                        params.append((segment[1:-1], group))
                        pieces.append("([^/]+)")
                    else:
                        pieces.append(re.escape(segment))
                alternatives.append("(/" + "/".join(pieces) + ")")
                found[outer] = (route, route.endpoint, tuple(params))
            self._by_method[method] = (re.compile("|".join(alternatives)), found)

    @staticmethod
    def _plain(route: Route) -> bool:
        if not route.methods:
            return False
        if not (inspect.ismethod(route.endpoint) or inspect.isfunction(route.endpoint)):
            return False
        for segment in route.path.split("/"):
            if "{" in segment or "}" in segment:
                if not (segment.startswith("{") and segment.endswith("}")) or ":" in segment:
                    return False
        return True

    def match(self, method: str, path: str) -> tuple[Route, Endpoint, dict[str, str]] | None:
        """The route, endpoint and path parameters Starlette would call, or None."""
        entry = self._by_method.get(method)
        if entry is None:
            return None
        matched = entry[0].fullmatch(path)
        if matched is None or matched.lastindex is None:
            return None
        route, endpoint, params = entry[1][matched.lastindex]
        return route, endpoint, {name: matched.group(index) for name, index in params}


class FastRoutes:
    """Calls a plain API route's endpoint directly; everything else goes to Starlette.

    Inside the access log and CORS (they see both paths alike), in place of
    Starlette's exception middleware and router: the scope gets the same
    ``route``, ``endpoint`` and ``path_params``, refusals (:class:`ApiError`)
    get the same JSON answers, and any other exception goes up to the access
    log, as from Starlette.
    """

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.table = RouteTable(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        found = self.table.match(scope["method"], scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        route, endpoint, params = found
        scope["route"] = route
        scope["endpoint"] = endpoint
        scope["path_params"] = params
        try:
            response = await endpoint(Request(scope, receive, send))
        except ApiError as exc:
            response = api_error_response(exc)
        except HTTPException as exc:
            response = http_error_response(exc)
        await response(scope, receive, send)
