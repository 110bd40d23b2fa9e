"""The phone app when things go sideways: an old browser, the wrong one.

* A browser without WebCrypto X25519 (iOS 16.x Safari) is told which versions
  work, instead of failing on an engine error.
* An unlock link opened in a browser with no pairings at all (on an iPhone,
  the Camera app opens links in Safari, whose storage is not the Home Screen
  app's) says exactly that, not "not from your paired desktop".
"""

from __future__ import annotations

import os

import pytest
from fixtures.pwa import NO_X25519, Phone, now

from unlatch.protocol import (
    DesktopPairing,
    DesktopUnlock,
    KeyPair,
    PhonePairing,
    app_link,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_pwa_without_webcrypto_x25519_names_the_browsers_it_needs(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    await ph.context.add_init_script(NO_X25519)
    await page.reload()
    card = page.locator("#boot-error")
    await card.wait_for(timeout=15000)
    text = await card.inner_text()
    assert "too old for unlatch" in text
    assert "needs iOS 17 / Safari 17 or newer" in text
    assert "Chrome 133" in text and "update iOS" in text
    assert await page.evaluate("unlatchApp.state.ready") is False  # nothing else started


async def test_pwa_unlock_link_in_a_browser_without_pairings_says_to_use_the_paired_app(
    pwa_phone: Phone,
) -> None:
    ph = pwa_phone
    page = ph.page
    # A desktop paired with this person's phone app, just not in this browser.
    desktop, phone = KeyPair.generate(os.urandom), KeyPair.generate(os.urandom)
    dp = DesktopPairing(desktop, ph.relay.url, now=now())
    pp = PhonePairing(dp.offer_bytes, phone, "Home Screen app", "phone-x", now=now())
    dp.receive_hello(pp.hello_bytes, now=now())
    _, record, _ = dp.confirm("Ada's laptop", "desktop-x", now=now())
    link = app_link(ph.desktop.app_url, DesktopUnlock(record, now=now()).qr_bytes)
    assert await page.evaluate("unlatchApp.state.pairings.length") == 0

    for opened in ("link", "camera"):
        if opened == "link":  # the Camera app opened the QR code's link in the browser
            await page.goto(link)
        else:  # the app's own scanner
            await ph.show(link)
            await page.goto(ph.relay.url + "/app/#/scan")
        notice = page.locator(".notice")
        await notice.wait_for(timeout=15000)
        text = await notice.inner_text()
        assert "This browser has no paired desktops" in text, (opened, text)
        assert "open the unlatch app from your Home Screen and scan there, or pair first" in text
        assert "Not from your paired desktop" not in text
        assert await page.locator("#approve").count() == 0
        await page.goto(ph.relay.url + "/app/#/")
