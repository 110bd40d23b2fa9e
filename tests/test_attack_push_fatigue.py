""" "I did not ask for this" from the notification, before any scan (issue 11, item 7).

A scan-mode push carries no QR secret, so the phone cannot make an
UnlockReply for a request it has only heard of; it sends an UnlockRefusal (a
MAC under the pairing's seen-MAC key over the request's parameters,
docs/protocol.md 6.9) and blocks the pairing on the relay. Here the Python
phone client does it against the real desktop service (PhoneUnlockService on a
real vault) and a real relay process; and the relay, which does not hold the
seen-MAC key, tries to make the desktop say that the phone refused.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
from fixtures.protocol import NOW, Paired, make_pairing
from test_desktop_services import Rig

from unlatch.desktop.unlock import MESSAGES
from unlatch.phone import PhoneClient
from unlatch.phone.client import Ignored
from unlatch.phone.errors import UserDeclined
from unlatch.phone.requests import RequestView
from unlatch.protocol import (
    AlreadyAnswered,
    AuthenticationFailed,
    Denied,
    DesktopUnlock,
    InvalidState,
    PhoneUnlock,
    ProtocolError,
    RequestExpired,
    UnlockState,
    Verdict,
    WrongRequest,
)
from unlatch.protocol.messages import UnlockRefusal
from unlatch.relay.errors import Blocked


async def _pair_client(rig: Rig, client: PhoneClient) -> None:
    """The Python phone client pairs with the real desktop PairingService."""
    session = await rig.pairing.start()
    attempt = await client.start_pairing(session.link)
    while session.state == "waiting":
        await rig.pairing.wait(session.id, 10)
    assert session.pending.verification_code == attempt.verification_code
    confirm = asyncio.create_task(rig.pairing.confirm(session.id))
    await attempt.finish(timeout=20)
    await confirm


async def _next_request(client: PhoneClient) -> RequestView:
    async def first() -> RequestView:
        async for item in client.listen():
            assert not isinstance(item, Ignored), item
            return item
        raise AssertionError("listen ended")

    return await asyncio.wait_for(first(), 20)


async def test_attack_push_fatigue_blocked_from_the_notification(
    relay: Any, unlatch_home: Path, tmp_path: Path
) -> None:
    """Requests the user never made: refused from the notification, the desktop is told so.

    Before, a scan-mode request could only be refused after scanning its QR
    (`deny --request` said "must be approved by scanning"): a user far from the
    desktop could only ignore the prompts.
    """
    rig = Rig(relay.url, unlatch_home)
    await rig.start()
    client = PhoneClient(tmp_path / "phone")
    try:
        await _pair_client(rig, client)
        await rig.core.lock()
        attempt = await rig.unlock.start()
        view = await _next_request(client)
        assert view.mode == "scan"

        # The confirm step: "no" sends nothing and the desktop keeps waiting.
        with pytest.raises(UserDeclined):
            await client.deny_request(view.request_id, not_me=True, confirm=lambda v: False)
        assert attempt.state == "waiting"

        answer = await client.deny_request(view.request_id, not_me=True, confirm=lambda v: True)
        assert answer.verdict == "not_me" and answer.blocked
        assert await rig.finish(attempt) == "not_me"
        assert attempt.message == MESSAGES["not_me"]
        assert attempt.message.startswith("Your phone says it did not ask for this")
        assert not rig.core.is_unlocked
        assert client.list_pairings()[0]["blocked"] is True
        # The relay refuses this desktop's requests until the phone re-confirms.
        with pytest.raises(Blocked):
            await rig.unlock.start()
        await client.unblock(client.list_pairings()[0]["id"])
        again = await rig.unlock.start()
        await rig.unlock.cancel(again.id)
    finally:
        await rig.close()


def _request(p: Paired, now: int = NOW) -> tuple[DesktopUnlock, PhoneUnlock]:
    du = DesktopUnlock(p.desktop, now=now)
    pushed = PhoneUnlock.open_push(du.push_bytes, [p.phone], now=now + 1)
    return du, PhoneUnlock.for_refusal(pushed, p.phone_identity)


def test_attack_relay_cannot_make_the_desktop_say_the_phone_refused() -> None:
    """The relay has the request id and everything it carried, not the seen-MAC key.

    A forged refusal burns the request (``failed``: one try, as for a forged
    reply), never ``denied``/"not me"; a real refusal cannot be moved to
    another request or replayed; every bit flip is refused.
    """
    p = make_pairing()
    du, _pu = _request(p)
    forged = UnlockRefusal(du.request_id, os.urandom(16)).encode()
    with pytest.raises(AuthenticationFailed):
        du.receive_reply(forged, now=NOW + 2)
    assert du.state is UnlockState.FAILED

    # Another pairing's phone (the relay may run its own) cannot refuse for this one.
    other = make_pairing(desktop_identity=p.desktop_identity)
    du, _ = _request(p)
    pushed = PhoneUnlock.open_push(du.push_bytes, [p.phone], now=NOW + 1)
    stranger = PhoneUnlock(other.phone, other.phone_identity, pushed.params, None)
    with pytest.raises(AuthenticationFailed):
        du.receive_reply(stranger.refuse(now=NOW + 2), now=NOW + 2)

    # A real refusal of request A, posted on request B: refused, B untouched.
    du_a, pu_a = _request(p)
    du_b, _ = _request(p)
    refusal_a = pu_a.refuse(now=NOW + 2)
    with pytest.raises(WrongRequest):
        du_b.receive_reply(refusal_a, now=NOW + 2)
    assert du_b.state is UnlockState.WAITING
    assert du_a.receive_reply(refusal_a, now=NOW + 3) == Denied(Verdict.DENY_NOT_ME, policy=None)
    with pytest.raises(AlreadyAnswered):
        du_a.receive_reply(refusal_a, now=NOW + 3)

    for i in range(len(refusal_a) * 8):
        flipped = bytearray(refusal_a)
        flipped[i // 8] ^= 1 << (i % 8)
        du_c, _ = _request(p)
        with pytest.raises(ProtocolError):
            du_c.receive_reply(bytes(flipped), now=NOW + 2)
        assert du_c.state in (UnlockState.WAITING, UnlockState.FAILED)


def test_refusal_from_a_scan_push_releases_nothing_and_is_single_use() -> None:
    p = make_pairing()
    du, pu = _request(p)
    assert not pu.can_reply
    for step in (lambda: pu.approve(now=NOW + 2), lambda: pu.deny(now=NOW + 2), pu.seen):
        with pytest.raises(InvalidState):
            step()
    refusal = pu.refuse(now=NOW + 2)
    assert p.share not in refusal and len(refusal) == 40
    with pytest.raises(AlreadyAnswered):
        pu.refuse(now=NOW + 2)
    late_du, late = _request(p)
    with pytest.raises(RequestExpired):
        late.refuse(now=NOW + late_du.params.ttl + 31)
    assert du.receive_reply(refusal, now=NOW + 3) == Denied(Verdict.DENY_NOT_ME, policy=None)
