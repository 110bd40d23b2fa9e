"""The installed phone app pins its code: a relay that changes it is refused, visibly.

The relay here serves its own copy of the built app (``UNLATCH_RELAY_APP_DIR``)
so a test can change what it serves, as a malicious relay would. The phone is
the real app in real Chromium, installed (service worker active) and paired
with a desktop; then the relay starts serving an ``app.js`` with a few lines
appended that post the phone's K_P to the relay (what an outside test did),
and a byte-changed ``sw.js`` so the browser installs a new worker.
docs/phone-app.md, "Pinned code", and docs/security.md section 1.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.pwa import (
    LEAK_JS,
    VIEWPORT,
    FakeDesktop,
    Phone,
    pair_by_link,
    pending_card,
    served_copy,
    wait_js,
)
from fixtures.relay import RelayProcess, free_port, start_relay
from playwright.async_api import Browser, Request

from unlatch.desktop.appcheck import check_app

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def app_dir(phone_app_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The relay's copy of the build: the test changes it as the relay's operator could."""
    return served_copy(phone_app_dist, tmp_path_factory.mktemp("served-app") / "app")


@pytest.fixture(scope="module")
def pwa_relay(app_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    """As fixtures.pwa's relay (http://localhost:PORT), serving ``app_dir`` under /app/."""
    port = free_port()
    relay = start_relay(
        tmp_path_factory.mktemp("pwa-relay"),
        port=port,
        args=["--public-url", f"http://localhost:{port}"],
        env={"UNLATCH_RELAY_PUSH_ALLOW_PRIVATE": "true", "UNLATCH_RELAY_APP_DIR": str(app_dir)},
    )
    relay.url = f"http://localhost:{port}"
    yield relay
    relay.stop()


def carries(body: bytes, secret: bytes) -> bool:
    """Whether ``body`` holds ``secret`` raw, in hex, base64(url) or as a JSON list of bytes."""
    forms = [
        secret,
        secret.hex().encode(),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
        json.dumps(list(secret)).replace(" ", "").encode(),
    ]
    return any(form in body for form in forms)


async def integrity_text(ph: Phone) -> str:
    await ph.expect("#integrity-warning:not([hidden])")
    return await ph.page.inner_text("#integrity-warning")


async def test_attack_relay_serves_modified_app_js_to_an_installed_phone(
    pwa_phone: Phone, app_dir: Path
) -> None:
    ph = pwa_phone
    page = ph.page
    await wait_js(page, "navigator.serviceWorker.controller !== null", timeout=30)
    await pair_by_link(ph)
    k_p = ph.desktop.phone_share
    assert len(k_p) == 32
    seen: list[tuple[str, bytes]] = []

    def record(request: Request) -> None:
        seen.append((request.url, request.post_data_buffer or b""))

    ph.context.on("request", record)
    original_js = (app_dir / "app.js").read_bytes()

    # 1. The relay serves a modified app.js (sw.js unchanged: no update for the browser).
    (app_dir / "app.js").write_bytes(original_js + LEAK_JS.encode())
    await page.reload()
    await wait_js(page, "window.unlatchApp && unlatchApp.state.ready")
    changed = await integrity_text(ph)

    # 2. ... and a byte-changed sw.js, so the browser fetches it and installs a new worker,
    #    which would fetch (and, on the old code, cache and run) the modified app.js.
    sw = app_dir / "sw.js"
    sw.write_bytes(sw.read_bytes() + b"\n// 2\n")
    await page.evaluate("navigator.serviceWorker.getRegistration().then((r) => r.update())")
    for _ in range(2):
        await page.reload()
        await wait_js(page, "window.unlatchApp && unlatchApp.state.ready")
    await ph.expect("#integrity-warning :text('An app update was refused')")
    refused = await page.inner_text("#integrity-warning")
    await page.reload()  # the worker update has ended (refused): this start shows what runs now
    await wait_js(page, "window.unlatchApp && unlatchApp.state.ready")

    # The modified code never ran, and no secret reached the relay.
    assert await page.evaluate("document.documentElement.dataset.tampered") is None
    assert not [url for url, _ in seen if "/v1/leak" in url]
    assert not [url for url, body in seen if carries(body, k_p) or carries(url.encode(), k_p)]

    # The warnings name the server and the file, and say the installed code keeps running.
    origin = ph.relay.url
    assert "the app's server changed its code" in changed
    assert f"{origin} now serves a version of app.js that differs" in changed
    assert "keeps running its installed code" in changed
    assert f"{origin} offered version" in refused and "app.js" in refused
    # The pinned app still works: it is paired and talks to its relay.
    assert await page.evaluate("unlatchApp.state.pairings.length") == 1

    # 3. The relay serves the genuine app again: the warning goes away on the next start.
    (app_dir / "app.js").write_bytes(original_js)
    await page.reload()
    await wait_js(page, "window.unlatchApp && unlatchApp.state.ready")
    await wait_js(
        page, "document.getElementById('integrity-warning').dataset.state === 'same'", timeout=15
    )


@pytest.fixture(scope="module")
def app_origin(phone_app_dist: Path) -> Iterator[str]:
    """The app on an origin of its own (a plain static server), as ``--app-url`` deploys it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=phone_app_dist,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://localhost:{port}/"
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "index.html", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


async def test_pwa_served_from_its_own_origin_pairs_through_the_relay(
    chromium: Browser, app_origin: str, camera_file: Path, tmp_path: Path
) -> None:
    """--app-url: the app is served apart from the relay, the desktop checks that origin,
    the phone adopts the relay its first pairing names and keeps it."""
    port = free_port()
    relay = start_relay(
        tmp_path / "relay",
        port=port,
        args=["--public-url", f"http://localhost:{port}", "--app-url", app_origin],
        env={"UNLATCH_RELAY_PUSH_ALLOW_PRIVATE": "true"},
    )
    relay.url = f"http://localhost:{port}"
    context = await chromium.new_context(viewport=VIEWPORT, device_scale_factor=2)
    await context.grant_permissions(["camera", "notifications"], origin=app_origin.rstrip("/"))
    page = await context.new_page()
    desktop = FakeDesktop(relay.url)
    desktop.app_url = app_origin
    ph = Phone(page, context, chromium, camera_file, desktop, relay, tmp_path)
    ph.watch(page)
    try:
        assert (await check_app(app_origin)).files  # what the desktop does before a pairing link
        redirect = httpx.get(relay.url + "/app/x", follow_redirects=False)
        assert redirect.status_code == 307 and redirect.headers["location"] == app_origin + "x"
        await page.goto(app_origin)
        await wait_js(page, "window.unlatchApp && unlatchApp.state.ready")
        await wait_js(page, "navigator.serviceWorker.controller !== null", timeout=30)
        await pair_by_link(ph)
        assert await page.evaluate("unlatchApp.relay.baseUrl") == relay.url
        # The next start talks to the same relay: an unlock request arrives and is listed.
        await page.goto(app_origin)
        await wait_js(page, "window.unlatchApp && unlatchApp.state.ready")
        assert await page.evaluate("unlatchApp.relay.baseUrl") == relay.url
        du = await desktop.request_unlock()
        await pending_card(ph, du)
    finally:
        await desktop.aclose()
        await context.close()
        relay.stop()
    assert not ph.problems, ph.problems
