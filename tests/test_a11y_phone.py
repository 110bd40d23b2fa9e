"""Accessibility of the phone app (PWA): axe-core (WCAG 2.1 A/AA) on every screen, in real Chromium.

The app is served by a real relay and paired with a desktop played by the
protocol code (fixtures.pwa); axe-core is injected as an init script, which
the app's strict CSP does not apply to.
"""

from __future__ import annotations

import pytest
from fixtures.a11y import AXE_RUN, assert_accessible, axe_source
from fixtures.pwa import Phone, pair_by_link, pending_card, wait_js

from unlatch.protocol import DesktopUnlock, app_link

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def pwa_check(ph: Phone, screen: str, seen: list[str]) -> None:
    await wait_js(ph.page, "typeof axe !== 'undefined'")
    assert_accessible(await ph.page.evaluate(AXE_RUN), f"phone app {screen}", seen)


async def test_a11y_phone_app_screens(pwa_phone: Phone) -> None:
    ph = pwa_phone
    seen: list[str] = []
    await ph.context.add_init_script(axe_source())
    await ph.open_app("#/")
    await ph.page.reload()
    await wait_js(ph.page, "window.unlatchApp && unlatchApp.state.ready")
    await pwa_check(ph, "home, not paired", seen)
    screens = (("#/settings", "#uv-toggle"), ("#/devices", ".screen"), ("#/scan", ".screen"))
    for route, selector in screens:
        await ph.open_app(route)
        await ph.page.wait_for_selector(selector)
        await pwa_check(ph, route, seen)

    await pair_by_link(ph)
    await pwa_check(ph, "home, paired", seen)
    await ph.open_app("#/devices")
    await ph.page.wait_for_selector(".screen")
    await pwa_check(ph, "devices, one desktop", seen)

    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    await ph.open_app("#/")
    rid = await pending_card(ph, du)
    await pwa_check(ph, "home, request card", seen)
    await ph.page.click(f'[data-request="{rid}"] a')
    await ph.page.wait_for_selector("text=Looking for a QR code")
    await pwa_check(ph, "scanner for a request", seen)

    await ph.page.goto(app_link(ph.desktop.app_url, du.qr_bytes))  # the QR, as a link
    await ph.expect("#approve")
    await pwa_check(ph, "approve", seen)
    await ph.page.click("#approve")
    await ph.page.wait_for_selector('#approve-result[data-verdict="approve"]')
    await pwa_check(ph, "approved", seen)

    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    await ph.page.goto(app_link(ph.desktop.app_url, du.qr_bytes))
    await ph.expect("#deny")
    await ph.page.click("#deny")
    await ph.page.wait_for_selector("#approve-result")
    await pwa_check(ph, "denied", seen)
    assert len(seen) == 11
