"""The local web UI refuses what a hostile web page or DNS rebinding could send.

A real agent process serves the UI; requests come from httpx, shaped the way
a browser would send them from another origin. Each refusal is checked
against the same request made correctly, so a test cannot pass by the UI
refusing everything.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.desktop import good_headers


def session_cookie(client: httpx.Client) -> str:
    (cookie,) = list(client.cookies.jar)
    return f"{cookie.name}={cookie.value}"


def test_desktop_ui_launch_secret_is_single_use(ui: Any) -> None:
    desktop, client, _csrf, _origin = ui
    launch = desktop.start_ui()
    first = httpx.get(launch, follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == client.base_url.path
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
    stranger = httpx.Client(base_url=client.base_url)  # the right prefix, no cookie
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


def test_attack_desktop_ui_deeply_nested_json_is_a_400(ui: Any) -> None:
    # 10,000 "[" (10 KiB, under the 64 KiB body limit) made the standard parser raise
    # RecursionError: the UI answered 500 "internal". It is bad input like any other.
    desktop, client, csrf, base = ui
    h = good_headers(base, csrf)
    for depth in (2_000, 10_000):
        for body in (b"[" * depth, b'{"item": ' + b'{"a": ' * depth):
            for path in ("/api/items", "/api/unlock/password", "/api/settings"):
                method = client.put if path == "/api/settings" else client.post
                resp = method(path, headers=h, content=body)
                assert resp.status_code == 400, (path, depth, resp.text)
                assert resp.json()["error"] == "bad_request"
                assert "nested too deeply" in resp.json()["message"]
    # The same request, well formed, is served: the refusal is about the nesting.
    ok = client.post("/api/items", headers=h, content=b'{"item": {"title": "flat"}}')
    assert ok.status_code == 201
    assert desktop.status()["unlocked"] is True


def test_desktop_ui_cookie_alone_is_useless_outside_the_secret_prefix(ui: Any) -> None:
    """Cookies ignore ports, so another local server may see the session cookie: without
    the per-run path prefix it opens nothing (no page, no CSRF token, no data, no action)."""
    desktop, client, csrf, origin = ui
    leaked = {"Cookie": session_cookie(client)}
    prefix = client.base_url.path
    assert httpx.get(origin + prefix + "api/state", headers=leaked).status_code == 200  # control
    forged = "/" + ("A" if prefix[1] != "A" else "B") + prefix[2:]  # same length, wrong
    for path in ("/", "/api/state", "/api/items", forged, forged + "api/items", "/x" + prefix):
        answer = httpx.get(origin + path, headers=leaked)
        assert answer.status_code == 401, path
        assert "csrf-token" not in answer.text and "items" not in answer.text
    action = {**leaked, **good_headers(origin, csrf)}
    for path in ("/api/lock", forged + "api/lock"):
        assert httpx.post(origin + path, headers=action, json={}).status_code == 401
    assert desktop.status()["unlocked"] is True  # none of them locked it


async def test_desktop_ui_session_expires() -> None:
    """The middleware itself, with a controlled clock: a session older than its life
    is refused (and forgotten), also on the right path with the right cookie."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from unlatch.desktop.web.security import SESSION_LIFE, SecurityMiddleware, UISecurity

    assert 3600 <= SESSION_LIFE <= 24 * 3600
    now = [1000.0]
    sec = UISecurity(session_life=60, clock=lambda: now[0])
    sec.port = 1234

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = SecurityMiddleware(Starlette(routes=[Route("/api/hello", hello)]), sec)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost:1234") as c:
        first = await c.get(sec.new_launch_url().removeprefix("http://localhost:1234"))
        assert first.status_code == 303 and first.headers["location"] == sec.base_path
        url = sec.base_path + "api/hello"
        assert (await c.get(url)).text == "hello"
        now[0] += 59
        assert (await c.get(url)).status_code == 200
        now[0] += 1
        expired = await c.get(url)
        assert expired.status_code == 401 and expired.json()["error"] == "no_session"
        now[0] -= 30  # the session was dropped, not just out of date
        assert (await c.get(url)).status_code == 401


def test_desktop_ui_launch_files_are_private_and_die_with_their_secret(
    unlatch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Launch files (the browser's way in, see unlatch.desktop.web.launch): 0600 in a
    private 0700 directory, holding a hand-over link, deleted when the secret is spent
    (redeemed, expired, evicted, agent exit), with a controlled clock."""
    from unlatch.desktop.web.security import LAUNCH_SECRET_LIFE, MAX_LAUNCH_SECRETS, UISecurity

    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    now = [1000.0]
    sec = UISecurity(clock=lambda: now[0])
    sec.port = 1234
    (runtime / "unlatch").mkdir(mode=0o700)
    left = runtime / "unlatch" / "launch-killed-agent.html"  # an agent died with it
    other = runtime / "unlatch" / "launch-other-agent.html"  # another agent's, still live
    for path, age in ((left, LAUNCH_SECRET_LIFE + 5), (other, 5)):
        path.write_text("x")
        os.utime(path, (time.time() - age, time.time() - age))

    first = sec.new_launch_file()
    assert not left.exists() and other.exists()
    other.unlink()
    assert first.parent == runtime / "unlatch"
    assert stat.S_IMODE(first.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(first.stat().st_mode) == 0o600 and first.stat().st_uid == os.geteuid()
    text = first.read_text()
    secret = re.search(r"static/launch\.html#k=([A-Za-z0-9_-]{43})\"", text).group(1)
    assert f"http://localhost:1234{sec.base_path}static/launch.html#k={secret}" in text
    assert sec.redeem(secret) is not None and not first.exists()  # redeemed: gone
    assert sec.redeem(secret) is None  # and single-use as ever

    second = sec.new_launch_file()
    now[0] += LAUNCH_SECRET_LIFE
    sec.purge()  # the agent's timer
    assert not second.exists()

    files = [sec.new_launch_file() for _ in range(MAX_LAUNCH_SECRETS + 1)]
    assert not files[0].exists() and all(f.exists() for f in files[1:])  # evicted: gone
    sec.close()  # agent exit
    assert not any(f.exists() for f in files) and list(first.parent.iterdir()) == []


def test_desktop_ui_launch_dir_is_never_a_shared_one(
    unlatch_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unlatch.desktop.web.launch import LaunchFileError, launch_dir

    fallback = unlatch_home / "desktop" / "launch"
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    for runtime in (str(shared), "relative/dir", str(tmp_path / "missing")):
        monkeypatch.setenv("XDG_RUNTIME_DIR", runtime)
        assert launch_dir() == fallback  # an XDG_RUNTIME_DIR others can enter is not used
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    fallback.chmod(0o755)
    assert launch_dir() == fallback and stat.S_IMODE(fallback.stat().st_mode) == 0o700
    fallback.rmdir()
    fallback.symlink_to(shared)  # planted link: refused, nothing written through it
    with pytest.raises(LaunchFileError, match="not a private directory"):
        launch_dir()
    assert list(shared.iterdir()) == []
