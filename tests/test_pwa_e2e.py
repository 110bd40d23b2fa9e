"""The phone app end to end: real headless Chromium, a real relay process, the real protocol.

The desktop is played by :class:`fixtures.pwa.FakeDesktop` (``unlatch.protocol``
+ ``unlatch.relay.client``); the phone is the built PWA served by the relay
under ``/app/``. QR codes reach the app the ways a person's would: through the
camera (Chromium's fake camera playing a Y4M of the QR code), as a link
opened from the phone's own camera app (``#m=...``), or pasted.
"""

from __future__ import annotations

import asyncio
import json
import os

import httpx
import pytest
from fixtures.push_endpoint import LocalPushService, Subscription
from fixtures.pwa import (
    Phone,
    click_notification,
    deliver_push,
    now,
    pair_by_link,
    pending_card,
    push_manager_script,
    relay_messages,
    start_pairing_on_page,
    wait_for_notifications,
    wait_js,
    write_qr_y4m,
)

from unlatch.protocol import (
    Approved,
    Denied,
    DesktopPairing,
    DesktopUnlock,
    KeyPair,
    PhonePairing,
    UnlockPolicy,
    Verdict,
    app_link,
)
from unlatch.protocol.encoding import b64e
from unlatch.relay.errors import Blocked

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_pwa_pairs_by_link_then_unlocks_by_scanning_with_the_camera(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph, screenshot=True)
    # The pairing is on the relay, linked, with the desktop's device id.
    pairings = await ph.desktop.client.list_pairings()
    assert [p.linked for p in pairings] == [True]
    assert pairings[0].peer_device_id == ph.desktop.phone_device_id
    assert "Ada's laptop" in await page.inner_text(".list")
    # Headless Chromium has no push service: the app says so instead of failing.
    push_state = await page.evaluate("unlatchApp.state.push")
    assert push_state["enabled"] is False and "push service" in push_state["reason"]

    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    rid = await pending_card(ph, du)  # the foreground listener (/v1/listen) delivered it
    assert "Unlock request from Ada's laptop" in await page.inner_text(f'[data-request="{rid}"]')
    await ph.screenshot("pwa-home-pending.png")

    # The scanner, looking at the desktop's screen (a QR it cannot read yet).
    write_qr_y4m(ph.camera, app_link(ph.desktop.app_url, du.qr_bytes), spoil=True)
    await page.click(f'[data-request="{rid}"] a')
    await page.wait_for_selector("text=Looking for a QR code")
    assert "Ada's laptop" in await page.inner_text(".subtitle")
    engine = await page.get_attribute(".viewfinder", "data-engine")
    native = await page.evaluate("'BarcodeDetector' in window")
    assert engine == ("BarcodeDetector" if native else "jsQR")
    await page.wait_for_timeout(700)
    await ph.screenshot("pwa-scanner.png")

    # Now the real QR code: scan, check, approve.
    await ph.show(app_link(ph.desktop.app_url, du.qr_bytes))
    await page.goto(ph.relay.url + "/app/#/")
    await page.click(f'[data-request="{rid}"] a')
    await ph.expect("#approve")
    assert await page.inner_text("#approve-desktop") == "Ada's laptop"
    assert await page.inner_text("#approve-from") == "127.0.0.1"
    countdown = await page.inner_text("#approve-countdown")
    minutes, seconds = countdown.split(":")
    assert 60 <= int(minutes) * 60 + int(seconds) <= 120
    await ph.screenshot("pwa-approve.png")
    await page.click("#approve")
    outcome = await ph.desktop.outcome(du)
    assert isinstance(outcome, Approved)
    assert outcome.phone_share == ph.desktop.phone_share  # K_P reached the desktop
    assert du.state.value == "approved"
    await page.wait_for_selector('#approve-result[data-verdict="approve"]')
    assert "Approved" in await page.inner_text("#approve-result")
    await ph.screenshot("pwa-approved.png")


async def test_pwa_pairs_through_the_camera_and_refuses_a_phishing_qr(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    dp = await ph.desktop.offer()
    assert isinstance(dp, DesktopPairing)
    await ph.show(app_link(ph.desktop.app_url, dp.offer_bytes))
    await page.click("a.tab[href='#/scan']")
    await start_pairing_on_page(ph, dp, screenshot=False)

    # Another desktop (paired with some other phone) shows its own unlock QR.
    attacker = KeyPair.generate(os.urandom)
    other_phone = KeyPair.generate(os.urandom)
    adp = DesktopPairing(attacker, ph.relay.url, now=now())
    opp = PhonePairing(adp.offer_bytes, other_phone, "victim's other phone", "x", now=now())
    adp.receive_hello(opp.hello_bytes, now=now())
    _, attacker_record, _ = adp.confirm("Ada's laptop", "desktop-x", now=now())
    phishing = DesktopUnlock(attacker_record, now=now())
    await ph.show(app_link(ph.desktop.app_url, phishing.qr_bytes))
    await page.click("a.tab[href='#/scan']")
    notice = page.locator(".notice.danger")
    await notice.wait_for(timeout=15000)
    text = await notice.inner_text()
    assert "Not from your paired desktop" in text
    assert "nothing was sent" in text
    assert await page.locator("#approve").count() == 0
    await ph.screenshot("pwa-phishing.png")

    # A QR code that is not unlatch's at all.
    await ph.show("https://example.org/menu")
    await page.click("#scan-again")
    await page.wait_for_selector("text=Not an unlatch code", timeout=15000)


async def test_pwa_push_subscription_delivery_notification_and_its_click(
    pwa_phone: Phone, push_service: LocalPushService
) -> None:
    """Subscribe -> the relay stores the target -> the relay's real push -> notification -> click.

    Headless Chromium has no push service, so ``pushManager.subscribe`` is
    answered by an init script with a subscription of the local push service
    (tests/fixtures/push_endpoint.py). Everything else is real: the app
    registers it with the relay, the relay sends its Web Push (VAPID-signed,
    aes128gcm-encrypted to the subscription's keys) to that service, which
    checks and decrypts it; the body the relay sent is delivered to the app's
    service worker with ServiceWorker.deliverPushMessage, and the worker's own
    notificationclick listener handles the click.
    """
    ph = pwa_phone
    page = ph.page
    async with httpx.AsyncClient() as http:
        answer = await http.get(ph.relay.url + "/v1/push/vapid-public-key", timeout=10)
    vapid = answer.json()["public_key"]
    sub = push_service.subscribe(application_server_key=vapid)
    await ph.emulate(push_manager_script(sub.to_json()))
    await pair_by_link(ph)
    push_state = await page.evaluate("unlatchApp.state.push")
    assert push_state["enabled"] is True, push_state
    assert await page.evaluate("window.__pushSubscribeKey") == vapid  # the relay's VAPID key
    me = await page.evaluate("unlatchApp.relay.me()")
    assert me["push"] == {"type": "webpush", "endpoint": sub.endpoint}  # stored on the relay

    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    rid = b64e(du.request_id)
    body = await pushed_body(sub)
    notification = json.loads(body)
    assert notification["request_id"] == rid
    assert notification["push"] == b64e(du.push_bytes)  # the desktop's sealed bytes, as made
    await deliver_push(page, ph.relay.url, body.decode())

    shown = await wait_for_notifications(page, 1)
    assert shown[0]["title"] == "Unlock request from Ada's laptop"
    assert shown[0]["tag"] == f"unlatch-{rid}"
    assert "127.0.0.1" in shown[0]["body"]

    # Tapping it opens the app on the scanner for this request.
    await page.goto(ph.relay.url + "/app/#/settings")
    await ph.show(app_link(ph.desktop.app_url, du.qr_bytes))
    await click_notification(page, f"unlatch-{rid}")
    await wait_js(page, f"location.hash === '#/scan?request={rid}'")
    assert await wait_for_notifications(page, 0) == []  # the click closed it
    # ... and the scan goes on to the approve screen for that request.
    await ph.expect("#approve")
    await page.click("#approve")
    outcome = await ph.desktop.outcome(du)
    assert isinstance(outcome, Approved) and outcome.phone_share == ph.desktop.phone_share

    # A push the stored pairings cannot open is shown as such, never as a desktop's request.
    forged = dict(notification, push=b64e(b"UL\x01\x11" + os.urandom(180)))
    await deliver_push(page, ph.relay.url, json.dumps(forged))
    titles = [n["title"] for n in await wait_for_notifications(page, 1)]
    assert titles == ["Unlock request not from your desktops"]


async def pushed_body(sub: Subscription, timeout: float = 30) -> bytes:
    """The plaintext of the first push the relay delivered to ``sub`` (checked and decrypted)."""
    for _ in range(int(timeout / 0.05)):
        if sub.delivered:
            plaintext = sub.delivered[0].plaintext
            assert plaintext is not None
            return plaintext
        await asyncio.sleep(0.05)
    raise AssertionError(f"the relay pushed nothing to the subscription: {sub.attempts}")


async def test_pwa_deny_and_not_me_block_the_desktop(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph)

    # Deny, through the paste-a-link fallback.
    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    link = app_link(ph.desktop.app_url, du.qr_bytes)  # (the desktop forgets it once answered)
    await page.goto(ph.relay.url + "/app/#/scan")
    await page.click("summary")
    await page.fill(".paste-input", link)
    await page.click("#use-link")
    await page.wait_for_selector("#deny")
    await page.click("#deny")
    outcome = await ph.desktop.outcome(du)
    assert isinstance(outcome, Denied) and outcome.verdict is Verdict.DENY
    await page.wait_for_selector('#approve-result[data-verdict="deny"]')

    # The same QR again, even after the app restarts: refused (the guard is in IndexedDB).
    await page.goto(ph.relay.url + "/app/#/")
    await page.reload()
    await page.goto(ph.relay.url + "/app/#/scan")
    await page.click("summary")
    await page.fill(".paste-input", link)
    await page.click("#use-link")
    await page.wait_for_selector("text=Already answered")

    # "I did not ask for this", from a link opened by the phone's camera app.
    du2 = await ph.desktop.request_unlock()
    assert isinstance(du2, DesktopUnlock)
    await page.goto(app_link(ph.desktop.app_url, du2.qr_bytes))
    await page.wait_for_selector("#not-me")
    assert "#m=" not in page.url  # the code never stays in the address bar or history
    await page.click("#not-me")
    outcome = await ph.desktop.outcome(du2)
    assert isinstance(outcome, Denied) and outcome.not_me
    await page.wait_for_selector('#approve-result[data-verdict="not_me"]')
    assert "blocked" in await page.inner_text("#approve-result")
    # The relay now refuses this desktop's requests ...
    with pytest.raises(Blocked):
        await ph.desktop.request_unlock()
    # ... until the phone unblocks it under Desktops.
    await page.goto(ph.relay.url + "/app/#/devices")
    await page.wait_for_selector(".badge.bad")
    await ph.screenshot("pwa-devices-blocked.png")
    await page.click("text=Unblock")
    await page.wait_for_selector(".badge.ok")
    du3 = await ph.desktop.request_unlock()
    assert isinstance(du3, DesktopUnlock)


async def test_pwa_number_matching_from_the_pending_list(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph, allow_number_matching=True)
    du = await ph.desktop.request_unlock(number_match=True)
    assert isinstance(du, DesktopUnlock) and du.number is not None
    rid = await pending_card(ph, du)
    await page.click(f'[data-request="{rid}"] a')
    await page.wait_for_selector(".btn.number")
    await ph.screenshot("pwa-number-match.png")
    shown = sorted(int(n) for n in await page.locator(".btn.number").all_inner_texts())
    assert du.number in shown and len(shown) == 3
    await page.click(f'.btn.number[data-number="{du.number}"]')
    outcome = await ph.desktop.outcome(du)
    assert isinstance(outcome, Approved) and outcome.phone_share == ph.desktop.phone_share
    assert outcome.policy is UnlockPolicy.NUMBER_MATCHING  # the desktop learns it

    # A wrong pick releases nothing; here the app is started cold on the link a
    # notification opens (#/scan?request=...), before it has heard of the request.
    du2 = await ph.desktop.request_unlock(number_match=True)
    assert isinstance(du2, DesktopUnlock)
    fresh = await ph.context.new_page()
    ph.watch(fresh)
    await fresh.goto(f"{ph.relay.url}/app/#/scan?request={b64e(du2.request_id)}")
    await fresh.wait_for_selector(".btn.number", timeout=15000)
    wrong = next(
        n for n in await fresh.locator(".btn.number").all_inner_texts() if int(n) != du2.number
    )
    await fresh.click(f'.btn.number[data-number="{wrong}"]')
    outcome = await ph.desktop.outcome(du2)
    assert isinstance(outcome, Denied) and outcome.wrong_number
    await fresh.wait_for_selector("text=Wrong number")
    await fresh.close()


async def test_attack_pwa_refuses_number_matching_its_pairing_did_not_allow(
    pwa_phone: Phone,
) -> None:
    """A desktop whose files were edited (or copied) asks the app for number matching.
    The pairing allows scanning only (the default): the request shows the refusal and no
    numbers, nothing reaches the relay, and "Deny" tells the desktop the policy. Allowing
    it under Desktops (the phone's consent) is what makes the numbers appear."""
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph)
    du = await ph.desktop.request_unlock(number_match=True)
    assert isinstance(du, DesktopUnlock) and du.number is not None
    rid = await pending_card(ph, du)
    await page.click(f'[data-request="{rid}"] a')
    await page.wait_for_selector("#mode-refused")
    text = await page.inner_text("#mode-refused")
    assert "which you did not allow for it" in text
    assert "someone may have copied the desktop's files" in text
    assert await page.locator(".btn.number").count() == 0  # nothing to tap blindly
    await ph.screenshot("pwa-mode-refused.png")
    assert await relay_messages(ph, du, timeout=1) == []  # nothing was sent
    await page.click("#deny")
    outcome = await ph.desktop.outcome(du)
    assert outcome == Denied(Verdict.DENY, UnlockPolicy.SCAN_ONLY)

    # The phone's consent, under Desktops: then the same kind of request shows the numbers.
    await page.goto(ph.relay.url + "/app/#/devices")
    await page.click(".policy-allow")
    await page.click(".policy-allow-confirm")
    await page.wait_for_selector('[data-number-matching="true"]')
    du2 = await ph.desktop.request_unlock(number_match=True)
    assert isinstance(du2, DesktopUnlock)
    await page.goto(ph.relay.url + "/app/#/")
    rid2 = await pending_card(ph, du2)
    await page.click(f'[data-request="{rid2}"] a')
    await page.wait_for_selector(".btn.number")
    await page.click(f'.btn.number[data-number="{du2.number}"]')
    outcome = await ph.desktop.outcome(du2)
    assert isinstance(outcome, Approved) and outcome.policy is UnlockPolicy.NUMBER_MATCHING


async def test_pwa_user_verification_gates_approval(pwa_phone: Phone) -> None:
    """With verification on, Approve needs a WebAuthn user-verified assertion first."""
    ph = pwa_phone
    page = ph.page
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "ctap2Version": "ctap2_1",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
    }
    auth = await cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
    authenticator = auth["authenticatorId"]
    await pair_by_link(ph)
    await page.goto(ph.relay.url + "/app/#/settings")
    await page.click(".switch")
    await wait_js(page, "document.getElementById('uv-toggle').checked")
    await wait_js(page, "!document.getElementById('uv-toggle').disabled")
    assert await page.evaluate("unlatchApp.state.settings.uvCredentialId") is not None
    await ph.screenshot("pwa-settings.png")

    # The person holding the phone cannot verify: nothing is sent.
    await cdp.send(
        "WebAuthn.setUserVerified", {"authenticatorId": authenticator, "isUserVerified": False}
    )
    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    await page.goto(app_link(ph.desktop.app_url, du.qr_bytes))
    await page.wait_for_selector("#approve")
    await page.click("#approve")
    await page.wait_for_selector(".approve-error .notice")
    assert "nothing was sent" in await page.inner_text(".approve-error")
    # On the relay: the "seen" (long-polled until it is there), and after it, for a while, nothing.
    seen = await relay_messages(ph, du, timeout=20)
    assert [m["type"] for m in seen] == ["seen"]
    assert await relay_messages(ph, du, after=int(seen[-1]["seq"]), timeout=3) == []  # no reply

    # The owner verifies: the approval goes through.
    await cdp.send(
        "WebAuthn.setUserVerified", {"authenticatorId": authenticator, "isUserVerified": True}
    )
    await page.click("#approve")
    outcome = await ph.desktop.outcome(du)
    assert isinstance(outcome, Approved) and outcome.phone_share == ph.desktop.phone_share
    await cdp.detach()


async def test_pwa_rename_and_unpair(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph)
    await page.click("a.tab[href='#/devices']")
    await page.wait_for_selector(".badge.ok")
    await page.click("text=Rename")
    await page.fill(".device-actions .text-input", "Work laptop")
    await page.click(".device-actions >> text=Save")
    await page.wait_for_selector(".device-name >> text=Work laptop")
    assert "Ada's laptop" in await page.inner_text(".device")  # the desktop's own name stays
    await page.click("a.tab[href='#/']")
    assert "Work laptop" in await page.inner_text(".list")
    await page.reload()
    await page.wait_for_selector(".list")
    assert "Work laptop" in await page.inner_text(".list")  # stored (encrypted) in IndexedDB

    await page.click("a.tab[href='#/devices']")
    await page.click(".device-actions >> text=Unpair")
    await page.click(".device-actions .btn.danger")
    await page.wait_for_selector("text=No desktop is paired")
    assert await ph.desktop.client.list_pairings() == []  # gone on the relay too
    assert await page.evaluate("unlatchApp.state.pairings.length") == 0


async def test_pwa_starts_offline_from_its_service_worker(pwa_phone: Phone) -> None:
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph)
    await wait_js(page, "navigator.serviceWorker.controller !== null")
    manifest = await page.evaluate("fetch('manifest.webmanifest').then(r => r.json())")
    assert manifest["display"] == "standalone" and manifest["start_url"] == "./"
    for icon in manifest["icons"]:
        status = await page.evaluate(f"fetch('{icon['src']}').then(r => r.status)")
        assert status == 200
    await ph.context.set_offline(True)
    try:
        await page.reload()
        await page.wait_for_selector(".list")
        assert "Ada's laptop" in await page.inner_text(".list")  # records decrypted offline
    finally:
        await ph.context.set_offline(False)
