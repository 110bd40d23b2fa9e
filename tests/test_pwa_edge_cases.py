"""The phone app when things go sideways: an old browser, the wrong one, the network, two copies.

* A browser without WebCrypto X25519 (iOS 16.x Safari) is told which versions
  work, instead of failing on an engine error.
* An unlock link opened in a browser with no pairings at all (on an iPhone,
  the Camera app opens links in Safari, whose storage is not the Home Screen
  app's) says exactly that, not "not from your paired desktop".
* A reply whose sending fails is kept and "Send again" sends the same bytes,
  whether the first try never reached the relay or only its answer was lost.
* Two open copies of the app share one replay guard in IndexedDB: a request
  is answered once, and neither copy erases the other's entries.
* A service worker that never becomes active (its install failed) does not
  leave the pairing waiting for ever at its notifications step.
"""

from __future__ import annotations

import os

import pytest
from fixtures.pwa import NO_X25519, VIEWPORT, Phone, now, pair_by_link, wait_js
from playwright.async_api import Page, Request, Route

from unlatch.protocol import (
    Approved,
    Denied,
    DesktopPairing,
    DesktopUnlock,
    KeyPair,
    PhonePairing,
    Verdict,
    app_link,
)
from unlatch.protocol.encoding import b64e

pytestmark = pytest.mark.asyncio(loop_scope="module")

REPLY_URL = "**/v1/unlock/*/reply"

# The app's service worker never gets installed (as when fetching one of its files fails).
SERVICE_WORKER_NEVER_STARTS = """ServiceWorkerContainer.prototype.register = function () {
  return new Promise(() => {});
};"""

READ_REPLAY_GUARD = """() => new Promise((resolve, reject) => {
  const open = indexedDB.open("unlatch-phone");
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const get = open.result.transaction("kv").objectStore("kv").get("replay");
    get.onsuccess = () => { resolve(Object.keys(get.result || {})); open.result.close(); };
    get.onerror = () => reject(get.error);
  };
})"""


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


async def test_pwa_a_failed_send_keeps_the_reply_and_send_again_delivers_the_same_bytes(
    pwa_phone: Phone,
) -> None:
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph)

    # 1. The network drops the reply on its way to the relay.
    bodies: list[str | None] = []

    async def drop_first(route: Route, request: Request) -> None:
        bodies.append(request.post_data)
        if len(bodies) == 1:
            await route.abort("internetdisconnected")
        else:
            await route.continue_()

    await page.route(REPLY_URL, drop_first)
    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    await page.goto(app_link(ph.desktop.app_url, du.qr_bytes))
    await page.click("#approve")
    retry = page.locator("#send-again")
    await retry.wait_for(timeout=15000)
    assert "Not sent yet" in await page.inner_text(".approve-error")
    for answer in ("#approve", "#deny", "#not-me"):  # made once: only sending is left
        assert await page.is_disabled(answer)
    await retry.click()
    outcome = await ph.desktop.outcome(du)
    assert isinstance(outcome, Approved) and outcome.phone_share == ph.desktop.phone_share
    await page.wait_for_selector('#approve-result[data-verdict="approve"]')
    assert len(bodies) == 2 and bodies[0] == bodies[1]  # the very same reply
    await page.unroute(REPLY_URL)

    # 2. The reply reaches the relay, but its answer is lost: "Send again" finds it there.
    bodies.clear()
    kept: list[int] = []

    async def lose_answer(route: Route, request: Request) -> None:
        bodies.append(request.post_data)
        if len(bodies) == 1:
            response = await route.fetch()  # the relay gets and keeps the reply ...
            kept.append(response.status)
            await route.abort("connectionreset")  # ... the phone never hears back
        else:
            await route.continue_()

    await page.route(REPLY_URL, lose_answer)
    du2 = await ph.desktop.request_unlock()
    assert isinstance(du2, DesktopUnlock)
    await page.goto(app_link(ph.desktop.app_url, du2.qr_bytes))
    await page.click("#deny")
    await page.locator("#send-again").click(timeout=15000)
    await page.wait_for_selector('#approve-result[data-verdict="deny"]')
    outcome = await ph.desktop.outcome(du2)
    assert isinstance(outcome, Denied) and outcome.verdict is Verdict.DENY
    assert kept == [202]  # the first try had arrived; the second was told "already answered"
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    await page.unroute(REPLY_URL)


async def test_pwa_two_open_copies_share_one_replay_guard(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph)
    other = await ph.context.new_page()
    ph.watch(other)
    await other.goto(ph.relay.url + "/app/#/")
    await wait_js(other, "window.unlatchApp && unlatchApp.state.ready")
    replies_from_other: list[str] = []
    other.on(
        "request",
        lambda r: replies_from_other.append(r.url) if r.url.endswith("/reply") else None,
    )

    a, b, c = [await ph.desktop.request_unlock() for _ in range(3)]
    assert isinstance(a, DesktopUnlock) and isinstance(b, DesktopUnlock)
    assert isinstance(c, DesktopUnlock)
    # (taken now: the desktop forgets a request's QR code once it is answered)
    links = {du.request_id: app_link(ph.desktop.app_url, du.qr_bytes) for du in (a, b, c)}

    async def open_request(p: Page, du: DesktopUnlock) -> None:
        await p.goto(links[du.request_id])
        await p.wait_for_selector("#approve")

    # B is on the other copy's screen while this copy answers A: the other copy's
    # answer to B must not drop A from the stored guard.
    await open_request(other, b)
    await open_request(page, a)
    await page.click("#approve")
    assert isinstance(await ph.desktop.outcome(a), Approved)
    await other.click("#deny")
    assert isinstance(await ph.desktop.outcome(b), Denied)
    stored = set(await page.evaluate(READ_REPLAY_GUARD))
    assert {b64e(a.request_id), b64e(b.request_id)} <= stored

    # Both copies on C's Approve screen: the first answer wins; the other copy hears from
    # the relay that it was answered (issue 13) and sends nothing.
    await open_request(page, c)
    await open_request(other, c)
    await page.click("#approve")
    assert isinstance(await ph.desktop.outcome(c), Approved)
    await page.wait_for_selector('#approve-result[data-verdict="approve"]')
    await other.wait_for_selector('#approve-result[data-outcome="ended.answered"]')
    assert "Already answered" in await other.inner_text("#approve-result")
    assert await other.locator("#approve").count() == 0
    assert await other.locator("#send-again").count() == 0
    assert replies_from_other == [ph.relay.url + f"/v1/unlock/{b64e(b.request_id)}/reply"]
    # And A again, scanned on the other copy: refused at once.
    await other.goto(links[a.request_id])
    await other.wait_for_selector("text=Already answered")
    await other.close()


async def test_pwa_pairing_ends_even_if_the_service_worker_never_starts(pwa_phone: Phone) -> None:
    ph = pwa_phone
    context = await ph.browser.new_context(viewport=VIEWPORT)
    try:
        await context.grant_permissions(["notifications"], origin=ph.relay.url)
        await context.add_init_script(SERVICE_WORKER_NEVER_STARTS)
        page = await context.new_page()
        phone = Phone(page, context, ph.browser, ph.camera, ph.desktop, ph.relay, ph.shots)
        phone.watch(page)
        await phone.open_app()
        await pair_by_link(phone)  # the Done button comes (after the app gives up waiting)
        push = await page.evaluate("unlatchApp.state.push")
        assert push["enabled"] is False and "service worker did not start" in push["reason"]
        assert await page.evaluate("unlatchApp.state.pairings.length") == 1
    finally:
        await context.close()
    assert not phone.problems, phone.problems
