"""The relay's direct dispatch of its API routes agrees with Starlette's router and answers.

:mod:`unlatch.relay.fastpath` calls a plain route's endpoint without going
through Starlette's router: for every request it takes, it must pick the route
and path parameters Starlette would, and its JSON answers must be the bytes and
headers of Starlette's ``JSONResponse``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Route

from unlatch.relay.apierror import ApiError
from unlatch.relay.app import create_app
from unlatch.relay.codec import b64e
from unlatch.relay.config import load_config
from unlatch.relay.fastpath import API_HEADERS, ApiJSON, RouteTable, api_error_response
from unlatch.relay.logs import short

METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
WORDS = ["", "v1", "unlock", "pairing", "pairings", "pending", "wait", "state", "reply", "seen"]
WORDS += ["hello", "accept", "block", "unblock", "ws", "listen", "app", "devices", "me", "push"]
WORDS += ["auth", "challenge", "session", "info", "healthz", "metrics", "openapi.json", "x", "a.b"]


def _routes(tmp_path: Path, **settings: Any) -> list[BaseRoute]:
    app = create_app(load_config({"db": str(tmp_path / "relay.db"), **settings}))
    return list(app.routes)


def _starlette(routes: list[BaseRoute], method: str, path: str) -> tuple[Any, Any] | None:
    """What Starlette's router calls: the first route fully matching (None: 404/405/mount)."""
    scope = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            return (route, child.get("path_params")) if isinstance(route, Route) else None
    return None


def _paths(routes: list[BaseRoute]) -> list[str]:
    """Every route's path with sample values, and near misses around them."""
    out = ["/", "//", "/nope", "/healthz/", "/v1/unlock/", "/v1/unlock//reply", "/app/x.js"]
    for route in routes:
        path = getattr(route, "path", "/")
        filled = path.replace("{channel_id}", "abc").replace("{routing_id}", "r1")
        filled = filled.replace("{msg_type}", "reply").replace("{action}", "block")
        out += [filled, filled + "/", filled + "/x", filled.rsplit("/", 1)[0] + "/pending"]
    return out


@pytest.mark.parametrize("app_url", ["", "https://app.example/"])
def test_route_table_picks_the_route_starlette_picks(tmp_path: Path, app_url: str) -> None:
    routes = _routes(tmp_path, app_url=app_url)
    table = RouteTable(routes)
    taken = 0
    for method in METHODS:
        for path in _paths(routes):
            found = table.match(method, path)
            expected = _starlette(routes, method, path)
            if found is None:
                # not taken: Starlette answers it (a 404, a 405, a redirect, the app's routes)
                assert expected is None or expected[0].path.startswith("/app/"), (method, path)
                continue
            taken += 1
            assert expected is not None, (method, path)
            assert found[0] is expected[0] and found[2] == expected[1], (method, path)
    assert taken > 40


@pytest.fixture(scope="module")
def relay_routes(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[BaseRoute], RouteTable]:
    routes = _routes(tmp_path_factory.mktemp("fastpath"))
    return routes, RouteTable(routes)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(METHODS),
    st.lists(st.sampled_from(WORDS) | st.text(max_size=4), min_size=1, max_size=5),
)
def test_route_table_agrees_on_any_path(
    relay_routes: tuple[list[BaseRoute], RouteTable], method: str, segments: list[str]
) -> None:
    routes, table = relay_routes
    path = "/" + "/".join(segments)
    found = table.match(method, path)
    expected = _starlette(routes, method, path)
    if found is None:
        assert expected is None, (method, path)
    else:
        assert expected is not None and found[0] is expected[0] and found[2] == expected[1]


@pytest.mark.parametrize(
    "data",
    [{"ok": True}, {"a": "é ✓ \u2028", "n": [1, 2.5, None]}, {"seq": 3, "delivery": "queued"}],
)
@pytest.mark.parametrize("status", [200, 201, 202, 404])
def test_api_json_is_starlettes_json_response(data: dict[str, Any], status: int) -> None:
    ours = ApiJSON(data, status)
    theirs = JSONResponse(data, status_code=status, headers=API_HEADERS)
    assert (ours.status_code, ours.body, ours.raw_headers) == (
        theirs.status_code,
        theirs.body,
        theirs.raw_headers,
    )
    with pytest.raises(ValueError):
        ApiJSON({"x": float("nan")})


def test_a_refusal_keeps_its_headers() -> None:
    err = ApiError("rate_limited", "slow down", retry_after=2.5, close_connection=True)
    ours = api_error_response(err)
    theirs = JSONResponse(
        err.body(), status_code=err.status, headers={**API_HEADERS, **err.headers()}
    )
    assert (ours.status_code, ours.body, ours.raw_headers) == (
        theirs.status_code,
        theirs.body,
        theirs.raw_headers,
    )


@given(st.binary(max_size=40))
def test_short_ids_are_the_first_characters_of_the_whole_text(value: bytes) -> None:
    assert short(value) == b64e(value)[:8]


async def test_the_app_answers_routed_and_unrouted_requests(tmp_path: Path) -> None:
    """Through the ASGI app: a direct route, a 405 with its Allow header, a 404, the mount."""
    app = create_app(load_config({"db": str(tmp_path / "relay.db")}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relay") as http:
        info = await http.get("/v1/info")
        assert info.status_code == 200 and info.headers["cache-control"] == "no-store"
        assert info.headers["x-content-type-options"] == "nosniff"
        wrong = await http.put("/v1/unlock")
        assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
        assert "POST" in wrong.headers["allow"]
        missing = await http.get("/v1/nothing/here")
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        unauthenticated = await http.delete("/v1/unlock/" + b64e(bytes(16)))
        assert unauthenticated.status_code == 401
        assert unauthenticated.json()["error"] == "unauthorized"
