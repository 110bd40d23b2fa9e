"""The phone app's scanner: both QR decoders, both polarities, the torch, no camera.

Headless Linux Chromium has no BarcodeDetector, no torch and no refusing
user, so each is made the way a phone would present it: an init script gives
the page a BarcodeDetector (fed the real camera frames) or a torch-capable
track, and a browser without Chromium's auto-accept flag refuses the camera
unless the test grants it. The camera itself is Chromium's fake camera
playing a Y4M of the desktop's QR code (tests/fixtures/pwa.py).
"""

from __future__ import annotations

import pytest
from fixtures.pwa import (
    BARCODE_DETECTOR,
    CHROMIUM,
    CHROMIUM_ARGS,
    TORCH,
    VIEWPORT,
    FakeDesktop,
    Phone,
    pair_by_link,
    pending_card,
    wait_js,
    write_qr_y4m,
)
from fixtures.relay import RelayProcess
from playwright.async_api import async_playwright

from unlatch.protocol import Approved, DesktopPairing, DesktopUnlock, app_link

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def scan_and_approve(ph: Phone, du: DesktopUnlock) -> None:
    """Open the scanner from the request's card; the camera reads the QR; approve; K_P arrives."""
    page = ph.page
    await page.goto(ph.relay.url + "/app/#/")
    rid = await pending_card(ph, du)
    await page.click(f'[data-request="{rid}"] a')
    await ph.expect("#approve")
    await page.click("#approve")
    outcome = await ph.desktop.outcome(du)
    assert isinstance(outcome, Approved) and outcome.phone_share == ph.desktop.phone_share


async def test_pwa_scanner_reads_an_inverted_qr_code(pwa_phone: Phone) -> None:
    """Light modules on dark, as `unlatch unlock --phone` prints it on a light terminal."""
    ph = pwa_phone
    await pair_by_link(ph)
    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    write_qr_y4m(ph.camera, app_link(ph.desktop.app_url, du.qr_bytes), invert=True)
    assert await ph.page.evaluate("'BarcodeDetector' in window") is False  # jsQR decodes here
    await scan_and_approve(ph, du)


async def test_pwa_scanner_uses_a_native_barcode_detector_and_the_torch(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    await ph.emulate(BARCODE_DETECTOR, TORCH)
    await pair_by_link(ph)
    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    link = app_link(ph.desktop.app_url, du.qr_bytes)

    # A code the camera cannot read yet: the scanner keeps looking, with the torch on offer.
    write_qr_y4m(ph.camera, link, spoil=True)
    await page.goto(ph.relay.url + "/app/#/scan")
    await page.wait_for_selector("text=Looking for a QR code")
    assert await page.get_attribute(".viewfinder", "data-engine") == "BarcodeDetector"
    await wait_js(page, "window.__barcodeDetect.length >= 3")  # frame after frame
    assert set(await page.evaluate("window.__barcodeDetect")) == {"VIDEO"}
    assert await page.evaluate("typeof window.unlatchJsQR") == "function"  # (the stub's decoder)
    torch = page.locator("#torch")
    await torch.wait_for(state="visible")
    await torch.click()
    await wait_js(page, "window.__torch.length === 1")
    assert await torch.get_attribute("aria-pressed") == "true"
    await torch.click()
    await wait_js(page, "window.__torch.length === 2")
    assert await page.evaluate("window.__torch") == [[True], [False]]
    assert await torch.get_attribute("aria-pressed") == "false"

    # The real code: the detector's rawValue goes through the same checks to Approve.
    await ph.show(link)
    await scan_and_approve(ph, du)


async def test_pwa_scanner_without_camera_permission_opens_the_paste_box(
    pwa_relay: RelayProcess,
) -> None:
    """The user refused the camera: the scanner says so and the paste box is open and works."""
    problems: list[str] = []
    desktop = FakeDesktop(pwa_relay.url)
    async with async_playwright() as p:
        # A camera exists, but without --use-fake-ui-for-media-stream nobody accepts the prompt.
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream"]
        )
        try:
            context = await browser.new_context(viewport=VIEWPORT)
            await context.grant_permissions(["notifications"], origin=pwa_relay.url)
            page = await context.new_page()
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            await page.goto(pwa_relay.url + "/app/#/scan")
            notice = page.locator(".scan-error .notice")
            await notice.wait_for(timeout=15000)
            assert "Camera access was refused" in await notice.inner_text()
            assert await page.get_attribute("details.paste", "open") is not None
            assert await page.locator(".paste-input").is_visible()

            dp = await desktop.offer()
            assert isinstance(dp, DesktopPairing)
            await page.fill(".paste-input", app_link(desktop.app_url, dp.offer_bytes))
            await page.click("#use-link")
            await page.wait_for_selector("#pair-start")
        finally:
            await desktop.aclose()
            await browser.close()
    assert not problems, problems
