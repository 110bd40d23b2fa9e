"""The local web UI refuses what a hostile web page or DNS rebinding could send.

A real agent process serves the UI; requests come from httpx, shaped the way
a browser would send them from another origin. Each refusal is checked
against the same request made correctly, so a test cannot pass by the UI
refusing everything.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fixtures.desktop import Desktop


@pytest.fixture
def ui(desktop_env: Any) -> tuple[Desktop, httpx.Client, str, str]:
    desktop = desktop_env("http://127.0.0.1:9")  # no relay needed here
    launch = desktop.start_ui()
    base = f"http://localhost:{desktop.port}"
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=10)
    first = client.get(launch.removeprefix(base))
    assert first.status_code == 303 and first.headers["location"] == "/"
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = client.get("/")
    assert page.status_code == 200
    csrf = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text).group(1)
    yield desktop, client, csrf, base
    client.close()


def good_headers(base: str, csrf: str) -> dict[str, str]:
    return {"Origin": base, "X-CSRF-Token": csrf, "Content-Type": "application/json"}


def test_desktop_ui_launch_secret_is_single_use(ui: Any) -> None:
    desktop, _client, _csrf, base = ui
    launch = desktop.start_ui()
    fresh = httpx.Client(base_url=base, follow_redirects=False)
    assert fresh.get(launch.removeprefix(base)).status_code == 303
    again = httpx.get(launch, follow_redirects=False)
    assert again.status_code == 401 and "set-cookie" not in again.headers


def test_desktop_ui_headers(ui: Any) -> None:
    _d, client, _csrf, _base = ui
    resp = client.get("/api/state")
    assert resp.status_code == 200
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["x-content-type-options"] == "nosniff"


def test_desktop_ui_refuses_foreign_host(ui: Any) -> None:
    _d, client, _csrf, _base = ui
    assert client.get("/api/state").status_code == 200
    rebound = client.get("/api/state", headers={"Host": "evil.example:80"})
    assert rebound.status_code == 421


def test_desktop_ui_refuses_missing_cookie(ui: Any) -> None:
    _d, client, csrf, base = ui
    stranger = httpx.Client(base_url=base)
    assert stranger.get("/api/state").status_code == 401
    assert stranger.get("/api/items").status_code == 401
    assert stranger.post("/api/lock", headers=good_headers(base, csrf), json={}).status_code == 401
    assert client.get("/api/state").status_code == 200


def test_desktop_ui_refuses_foreign_origin(ui: Any) -> None:
    desktop, client, csrf, base = ui
    bad = {**good_headers(base, csrf), "Origin": "https://evil.example"}
    assert client.post("/api/lock", headers=bad, json={}).status_code == 403
    no_origin = {k: v for k, v in good_headers(base, csrf).items() if k != "Origin"}
    assert client.post("/api/lock", headers=no_origin, json={}).status_code == 403
    cross = {**good_headers(base, csrf), "Sec-Fetch-Site": "cross-site"}
    assert client.post("/api/lock", headers=cross, json={}).status_code == 403
    assert desktop.status()["unlocked"] is True  # none of them locked it
    assert client.post("/api/lock", headers=good_headers(base, csrf), json={}).status_code == 200
    assert desktop.status()["unlocked"] is False


def test_desktop_ui_refuses_missing_or_wrong_csrf(ui: Any) -> None:
    _desktop, client, csrf, base = ui
    item = {"item": {"title": "x"}}
    missing = {k: v for k, v in good_headers(base, csrf).items() if k != "X-CSRF-Token"}
    assert client.post("/api/items", headers=missing, json=item).status_code == 403
    wrong = {**good_headers(base, csrf), "X-CSRF-Token": "0" * 64}
    assert client.post("/api/items", headers=wrong, json=item).status_code == 403
    assert client.delete("/api/phones/x", headers=wrong).status_code == 403
    assert client.get("/api/items").json()["items"] == []
    ok = client.post("/api/items", headers=good_headers(base, csrf), json=item)
    assert ok.status_code == 201


def test_desktop_ui_bad_input_is_a_clear_error(ui: Any) -> None:
    _d, client, csrf, base = ui
    h = good_headers(base, csrf)
    resp = client.post("/api/items", headers=h, content=b"{not json")
    assert resp.status_code == 400 and resp.json()["error"] == "bad_request"
    resp = client.post("/api/items", headers=h, json={"item": {"title": "x", "evil": 1}})
    assert resp.status_code == 400 and "unknown item field" in resp.json()["message"]
    resp = client.post("/api/unlock/phone", headers=h, json={})
    assert resp.status_code == 404 and resp.json()["error"] == "not_paired"
