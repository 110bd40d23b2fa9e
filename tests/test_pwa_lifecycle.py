"""One request's life, as the phone app (Chromium PWA) shows it (issue 13, first list).

The desktop is the real protocol and relay client (fixtures.pwa.FakeDesktop);
the relay is a real process. Each test asserts what the phone's screen says:

* a request cancelled on the desktop leaves no card behind (within 1 s with
  the app open; at the next start with it closed);
* a renewed QR replaces the old card: one card, not two;
* approving a request no desktop waits for (the desktop restarted) says
  "Not delivered ... request again on the desktop", never "Approved";
* a desktop that removed this phone shows as removed, with "Forget"; its old
  QR says so; pairing it again leaves one entry;
* a pairing the desktop refused ("they differ") says the codes differed;
* a stale (already answered) QR says what to do next.
"""

from __future__ import annotations

import time

import pytest
from fixtures.pwa import Phone, pair_by_link, pending_card

from unlatch.protocol import Approved, DesktopPairing, DesktopUnlock, app_link

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEARD_WITHIN = 1.0  # s: an open app hears the relay's word this fast


async def _gone_within(ph: Phone, selector: str, since: float) -> None:
    await ph.page.wait_for_selector(selector, state="detached", timeout=5000)
    took = time.monotonic() - since
    assert took < HEARD_WITHIN + 0.3, f"{selector} still shown {took:.2f} s later"


async def test_pwa_lifecycle_cancel_and_renewal_leave_one_card(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph)
    client = ph.desktop.client

    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    rid = await pending_card(ph, du)
    t = time.monotonic()
    await client.close_unlock(du.request_id)  # "Cancel" on the desktop
    await _gone_within(ph, f'[data-request="{rid}"]', t)

    old = await ph.desktop.request_unlock()
    old_rid = await pending_card(ph, old)
    t = time.monotonic()
    new = await ph.desktop.request_unlock()  # the desktop renews its QR
    new_rid = await pending_card(ph, new)
    await _gone_within(ph, f'[data-request="{old_rid}"]', t)
    assert await page.locator(".card.request").count() == 1
    assert await page.get_attribute(".card.request", "data-request") == new_rid

    # The app closed while the desktop cancels: at its next start, no card.
    await page.goto("about:blank")
    await client.close_unlock(new.request_id)
    await ph.open_app()
    await page.wait_for_timeout(1500)  # the listener is live and has read the pending list
    assert await page.locator(".card.request").count() == 0

    # A renewed request's old QR, scanned: the new code is on the desktop.
    first = await ph.desktop.request_unlock()
    await ph.desktop.request_unlock()
    assert isinstance(first, DesktopUnlock)
    await page.goto(app_link(ph.desktop.app_url, first.qr_bytes))
    await page.wait_for_selector("#approve")
    t = time.monotonic()
    await client.close_unlock(first.request_id)
    await page.wait_for_selector('#approve-result[data-outcome="ended.cancelled"]', timeout=5000)
    assert time.monotonic() - t < HEARD_WITHIN + 0.3
    text = await page.inner_text("#approve-result")
    assert "Cancelled on the desktop" in text and "start a new request on the desktop" in text


async def test_pwa_lifecycle_no_false_approved_when_no_desktop_waits(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph)
    du = await ph.desktop.request_unlock()  # then nobody waits on the open request
    assert isinstance(du, DesktopUnlock)
    await page.goto(app_link(ph.desktop.app_url, du.qr_bytes))
    await page.click("#approve")
    await page.wait_for_selector('#approve-result[data-outcome="queued"]', timeout=15000)
    text = await page.inner_text("#approve-result")
    assert "Approved" not in text
    assert "Ada's laptop has not taken your answer yet" in text
    assert "request again on the desktop" in text

    # with the desktop waiting, the same gesture is confirmed
    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    link = app_link(ph.desktop.app_url, du.qr_bytes)
    await page.goto(link)
    await page.wait_for_selector("#approve")
    import asyncio

    waiting = asyncio.create_task(ph.desktop.outcome(du))
    await asyncio.sleep(0.5)
    await page.click("#approve")
    assert isinstance(await waiting, Approved)
    await page.wait_for_selector('#approve-result[data-outcome="done.approve"]', timeout=15000)
    assert "Approved" in await page.inner_text("#approve-result")

    # a stale QR (already answered): what to do next, not just "Already answered"
    await page.goto(link)
    await page.wait_for_selector(".notice")
    notice = await page.inner_text(".notice")
    assert "Already answered" in notice and "start a new unlock there" in notice


async def test_pwa_lifecycle_revoked_desktop_shows_removed_and_repairs_once(
    pwa_phone: Phone,
) -> None:
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph)
    record = ph.desktop.record
    du = await ph.desktop.request_unlock()
    rid = await pending_card(ph, du)
    t = time.monotonic()
    await ph.desktop.client.delete_pairing(record.keys.routing_id)  # type: ignore[attr-defined]
    await _gone_within(ph, f'[data-request="{rid}"]', t)
    await page.wait_for_selector(".list >> text=Removed by the desktop", timeout=5000)
    assert time.monotonic() - t < HEARD_WITHIN + 0.5

    # its old QR says so (nothing is sent)
    assert isinstance(du, DesktopUnlock)
    await page.goto(app_link(ph.desktop.app_url, du.qr_bytes))
    await page.wait_for_selector(".notice")
    notice = await page.inner_text(".notice")
    assert "Desktop removed" in notice and "pair again from the desktop" in notice

    await page.goto(ph.relay.url + "/app/#/devices")
    await page.wait_for_selector("#forget-removed")
    assert "removed this phone" in await page.inner_text(".device")

    # pairing the same desktop again replaces the entry
    await pair_by_link(ph)
    await page.goto(ph.relay.url + "/app/#/devices")
    await page.wait_for_selector(".device")
    assert await page.locator(".device").count() == 1
    assert await page.locator("#forget-removed").count() == 0


async def test_pwa_lifecycle_refused_pairing_says_the_codes_differed(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    dp = await ph.desktop.offer()
    assert isinstance(dp, DesktopPairing)
    await page.goto(app_link(ph.desktop.app_url, dp.offer_bytes))
    await page.wait_for_selector("#pair-start")
    await page.fill("#phone-name", "Test phone")
    await page.click("#pair-start")
    await ph.desktop.receive_hello(dp)
    await page.wait_for_selector("#verification-code")
    await ph.desktop.client.close_pairing_channel(dp.channel_id)  # "They differ" on the desktop
    await page.wait_for_selector("text=The codes did not match", timeout=30000)
    text = await page.inner_text("main")
    assert "Start pairing again on the desktop" in text
    assert "The relay said no" not in text
