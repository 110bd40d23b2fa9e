"""The phone app's guards against push fatigue and a copied browser storage (issue 11, 7 and 9).

Real headless Chromium, a real relay process, the real protocol (the desktop
is :class:`fixtures.pwa.FakeDesktop`): "I did not ask for this" from a request
card, before any QR is scanned; and the pairing shares wrapped with a key
derived from a WebAuthn PRF, so a copy of the app's IndexedDB is of no use
without the authenticator.
"""

from __future__ import annotations

import base64

import pytest
from fixtures.pwa import Phone, pair_by_link, pending_card, relay_messages, wait_js
from test_passkey_browser import AUTHENTICATOR  # the CDP virtual platform authenticator

from unlatch.protocol import Approved, Denied, DesktopUnlock, MessageType, Verdict, app_link
from unlatch.protocol.encoding import b64d, b64e
from unlatch.relay.errors import Blocked

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_attack_push_fatigue_blocked_from_the_card(pwa_phone: Phone) -> None:
    """Someone keeps asking: the user refuses from the card, without the QR they never saw.

    The desktop learns that the phone refused (an authenticated refusal, not
    just a closed channel) and the relay refuses that desktop's next request.
    """
    ph = pwa_phone
    page = ph.page
    await pair_by_link(ph)
    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    rid = await pending_card(ph, du)
    card = f'[data-request="{rid}"]'

    # A confirm step: Cancel sends nothing.
    await page.click(f"{card} .not-me")
    assert "block its requests" in await page.inner_text(f"{card} .confirm-text")
    await page.click(f"{card} .refuse >> text=Cancel")
    await page.wait_for_selector(f"{card} .not-me")
    assert await relay_messages(ph, du, timeout=1) == []

    await page.click(f"{card} .not-me")
    await page.click(f"{card} .confirm-not-me")
    # What the relay carries is the refusal: request id and MAC, no QR secret, no share.
    (reply,) = await relay_messages(ph, du, timeout=15)
    data = b64d(str(reply["data"]), "reply")
    assert reply["type"] == "reply" and data[3] == MessageType.UNLOCK_REFUSAL and len(data) == 40
    outcome = await ph.desktop.outcome(du)
    assert isinstance(outcome, Denied) and outcome.verdict is Verdict.DENY_NOT_ME
    assert du.state.value == "denied"
    await page.wait_for_selector(".notice >> text=is blocked")
    assert "was told you did not ask for this" in await page.inner_text(".notice")
    assert await page.locator(card).count() == 0

    # The relay refuses this desktop's next request until the phone unblocks it.
    with pytest.raises(Blocked):
        await ph.desktop.request_unlock()


# What a copy of the app's storage gives, at best: every stored value, and each
# encrypted one opened with the records' own wrap key (a copied browser profile
# can use it) under every label the app uses. The labels are public (the code is).
DUMP_STORAGE = """async () => {
  const db = await new Promise((ok, ko) => {
    const r = indexedDB.open("unlatch-phone");
    r.onsuccess = () => ok(r.result);
    r.onerror = () => ko(r.error);
  });
  const kv = db.transaction("kv").objectStore("kv");
  const all = await new Promise((ok) => {
    const out = {};
    kv.openCursor().onsuccess = (e) => {
      const c = e.target.result;
      if (!c) return ok(out);
      out[c.key] = c.value;
      c.continue();
    };
  });
  const labels = ["unlatch-phone/pairings/v1", "unlatch-phone/shares/v1"];
  const opened = {}, sealed = [], plain = {};
  for (const [key, value] of Object.entries(all)) {
    if (value && value.iv && value.ct) {
      let text = null;
      for (const label of labels) {
        try {
          const pt = await crypto.subtle.decrypt(
            {name: "AES-GCM", iv: value.iv, additionalData: new TextEncoder().encode(label)},
            all["wrap-key"], value.ct);
          text = new TextDecoder().decode(pt);
        } catch {}
      }
      if (text === null) sealed.push(key); else opened[key] = text;
    } else if (!(value instanceof CryptoKey) && !(value && value.privateKey)) {
      plain[key] = JSON.stringify(value, (k, v) => v instanceof Uint8Array ? Array.from(v) : v);
    }
  }
  return {opened, sealed, plain};
}"""


async def _authenticator(ph: Phone, *, prf: bool) -> tuple[object, str]:
    cdp = await ph.page.context.new_cdp_session(ph.page)
    await cdp.send("WebAuthn.enable")
    answer = await cdp.send(
        "WebAuthn.addVirtualAuthenticator", {"options": {**AUTHENTICATOR, "hasPrf": prf}}
    )
    return cdp, str(answer["authenticatorId"])


async def _turn_on_verification(ph: Phone) -> None:
    page = ph.page
    await page.goto(ph.relay.url + "/app/#/settings")
    await page.click(".switch")
    await wait_js(page, "document.getElementById('uv-toggle').checked")
    await wait_js(page, "!document.getElementById('uv-toggle').disabled")
    assert await page.evaluate("unlatchApp.state.settings.uvCredentialId") is not None


async def _approve_by_link(ph: Phone) -> DesktopUnlock:
    du = await ph.desktop.request_unlock()
    assert isinstance(du, DesktopUnlock)
    await ph.page.goto(app_link(ph.desktop.app_url, du.qr_bytes))
    await ph.page.wait_for_selector("#approve")
    await ph.page.click("#approve")
    return du


def _leaks(share: bytes, texts: list[str]) -> bool:
    forms = (share.hex(), b64e(share), base64.b64encode(share).decode())
    return any(form in text for text in texts for form in forms)


async def test_attack_copied_pwa_storage_without_authenticator(pwa_phone: Phone) -> None:
    """A copy of the browser's storage, with the authenticator left behind, holds no K_P.

    With a platform authenticator that has PRF, the pairing shares are sealed
    under a key derived from its PRF output; the records keep zeros. Before,
    every K_P sat in the records, which the copied wrap key opens.
    """
    ph = pwa_phone
    page = ph.page
    cdp, authenticator = await _authenticator(ph, prf=True)
    await pair_by_link(ph)
    await _turn_on_verification(ph)

    dump = await page.evaluate(DUMP_STORAGE)
    texts = list(dump["opened"].values()) + list(dump["plain"].values())
    assert "pairings" in dump["opened"]  # the copy opens the records ...
    assert not _leaks(ph.desktop.phone_share, texts)  # ... which hold no K_P
    assert dump["sealed"] == ["shares"]  # the K_P are in what the copy cannot open
    protection = page.locator("#share-protection")
    assert await protection.get_attribute("data-kind") == "prf"
    assert "cannot release them" in await protection.inner_text()

    # The owner, with the authenticator: the approval releases the real K_P.
    du = await _approve_by_link(ph)
    outcome = await ph.desktop.outcome(du)
    assert isinstance(outcome, Approved) and outcome.phone_share == ph.desktop.phone_share
    dump = await page.evaluate(DUMP_STORAGE)
    assert not _leaks(ph.desktop.phone_share, list(dump["opened"].values()))

    # The copy in another browser: its own authenticator (with PRF), not the phone's.
    # Approving sends nothing: there is no K_P to send.
    await cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator", {"options": {**AUTHENTICATOR, "hasPrf": True}}
    )
    du = await _approve_by_link(ph)
    await page.wait_for_selector(".approve-error .notice")
    assert "nothing was sent" in await page.inner_text(".approve-error")
    seen = await relay_messages(ph, du, timeout=20)
    assert [m["type"] for m in seen] == ["seen"]
    assert await relay_messages(ph, du, after=int(seen[-1]["seq"]), timeout=2) == []
    await cdp.detach()


async def test_pwa_without_prf_keeps_the_device_key_and_says_so(pwa_phone: Phone) -> None:
    """An authenticator without PRF: verification still gates Approve, the keys stay as before."""
    ph = pwa_phone
    page = ph.page
    cdp, _ = await _authenticator(ph, prf=False)
    await pair_by_link(ph)
    await _turn_on_verification(ph)
    protection = page.locator("#share-protection")
    await wait_js(page, "document.getElementById('share-protection').dataset.kind === 'device'")
    assert "this browser's own storage key" in await protection.inner_text()
    du = await _approve_by_link(ph)
    outcome = await ph.desktop.outcome(du)
    assert isinstance(outcome, Approved) and outcome.phone_share == ph.desktop.phone_share
    await cdp.detach()
