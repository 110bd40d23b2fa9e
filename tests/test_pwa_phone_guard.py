"""The phone app's guards against push fatigue and a copied browser storage (issue 11, 7 and 9).

Real headless Chromium, a real relay process, the real protocol (the desktop
is :class:`fixtures.pwa.FakeDesktop`): "I did not ask for this" from a request
card, before any QR is scanned; and the pairing shares wrapped with a key
derived from a WebAuthn PRF, so a copy of the app's IndexedDB is of no use
without the authenticator.
"""

from __future__ import annotations

import pytest
from fixtures.pwa import Phone, pair_by_link, pending_card, relay_messages

from unlatch.protocol import Denied, DesktopUnlock, MessageType, Verdict
from unlatch.protocol.encoding import b64d
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
