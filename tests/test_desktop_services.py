"""PairingService and PhoneUnlockService against a real relay process, in one event loop.

The desktop side is the real service on a real AgentCore/vault; the phone is
the protocol's phone role plus the relay client (what the phone client and
the PWA do), so each test can make the phone misbehave precisely.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fixtures.clock import FakeClock
from fixtures.pwa import served_copy

from unlatch.agent.core import AgentCore
from unlatch.desktop.clock import WALL_CLOCK, Clock
from unlatch.desktop.errors import AppMismatchError
from unlatch.desktop.identity import DesktopIdentity
from unlatch.desktop.notifier import Notifier
from unlatch.desktop.pairing import PairingService
from unlatch.desktop.runtime import DesktopRuntime
from unlatch.desktop.store import PairingStore
from unlatch.desktop.unlock import MESSAGES, PhoneUnlockService
from unlatch.desktop.vault_port import CoreVault
from unlatch.protocol import (
    InvalidState,
    KeyPair,
    PairingState,
    PhonePairing,
    PhonePairingRecord,
    PhoneUnlock,
    UnlockMode,
)
from unlatch.relay.client import RelayClient
from unlatch.relay.device_key import DeviceKey
from unlatch.relay.errors import ChannelGone, RelayError, UnknownChannel
from unlatch.vault import OWASP_MINIMUM
from unlatch.vault.localkeys import LocalKeyStore

PASSWORD = "correct horse battery staple"


class Rig:
    def __init__(
        self, url: str, home: Path, *, websocket: bool = True, clock: Clock = WALL_CLOCK
    ) -> None:
        self.clock = clock
        self.url = url
        self.core = AgentCore(home / "desktop" / "vault.db", idle_lock_seconds=0)
        self.identity = DesktopIdentity.load_or_create()
        self.relay = RelayClient(
            url, self.identity.relay_key, "desktop", prefer_websocket=websocket
        )
        self.store = PairingStore()
        self.vault = CoreVault(self.core)
        self.pairing = PairingService(
            self.identity, self.store, self.vault, self.relay, clock=clock
        )
        self.unlock = PhoneUnlockService(
            self.store, self.vault, self.relay, ttl=30, renewals=0, clock=clock
        )
        self.phone_key = KeyPair.generate(os.urandom)
        self.phone_dev = DeviceKey.generate()
        self.phone = RelayClient(url, self.phone_dev, "phone", prefer_websocket=websocket)
        self.record: PhonePairingRecord | None = None

    async def start(self) -> None:
        await self.core.init_vault(PASSWORD, OWASP_MINIMUM)

    async def hello(self) -> Any:
        session = await self.pairing.start()
        pp = PhonePairing(
            session.link,
            self.phone_key,
            "test phone",
            self.phone_dev.device_id,
            now=self.now(),
        )
        await self.phone.post_hello(pp.channel_id, pp.hello_bytes)
        while session.state == "waiting":
            await self.pairing.wait(session.id, 10)
        assert session.state == "confirm", session.message
        assert session.pending.verification_code == pp.verification_code
        return session, pp

    async def pair(self) -> PhonePairingRecord:
        session, pp = await self.hello()
        confirm = asyncio.create_task(self.pairing.confirm(session.id))
        accept = await self.phone.wait_pairing_message(pp.channel_id, timeout=10)
        self.record = pp.receive_accept(accept.data, now=self.now())
        await confirm
        await self.phone.register_pairing(self.record.keys.routing_id, self.identity.device_id)
        return self.record

    def now(self) -> int:
        return int(self.clock.now())

    async def finish(self, attempt: Any) -> str:
        while not attempt.final:
            await self.unlock.wait(attempt.id, 10)
        return str(attempt.state)

    async def close(self) -> None:
        await self.relay.aclose()
        await self.phone.aclose()
        await self.core.close()


@pytest.fixture
async def rig(relay: Any, unlatch_home: Path) -> Any:
    r = Rig(relay.url, unlatch_home)
    await r.start()
    yield r
    await r.close()


@pytest.fixture
async def fake_rig(relay: Any, unlatch_home: Path) -> Any:
    """The services on a fake clock (the relay and the vault are real)."""
    r = Rig(relay.url, unlatch_home, clock=FakeClock())
    await r.start()
    yield r
    await r.close()


async def until(rig: Rig, attempt: Any, done: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        while not done():
            await rig.unlock.wait(attempt.id, 1)


async def slots(rig: Rig, kind: str = "phone") -> list[Any]:
    return await rig.core.find_slots(kind)


async def test_desktop_unlock_over_long_poll_only(relay: Any, unlatch_home: Path) -> None:
    rig = Rig(relay.url, unlatch_home, websocket=False)
    await rig.start()
    try:
        record = await rig.pair()
        await rig.core.lock()
        attempt = await rig.unlock.start()
        pu = PhoneUnlock.from_qr(attempt.link, [record], rig.phone_key, now=int(time.time()))
        await rig.phone.post_seen(pu.request_id, pu.seen())
        await rig.phone.post_reply(pu.request_id, pu.approve(now=int(time.time())))
        assert await rig.finish(attempt) == "approved"
        assert rig.core.is_unlocked
    finally:
        await rig.close()


async def test_desktop_forged_reply_is_refused_and_vault_stays_locked(rig: Rig) -> None:
    record = await rig.pair()
    await rig.core.lock()
    attempt = await rig.unlock.start()
    # The QR's secret leaked, but the reply is sealed by another phone key:
    # HPKE auth mode rejects it, the request is burnt, nothing unlocks.
    impostor = PhoneUnlock.from_qr(
        attempt.link, [record], KeyPair.generate(os.urandom), now=int(time.time())
    )
    await rig.phone.post_reply(impostor.request_id, impostor.approve(now=int(time.time())))
    assert await rig.finish(attempt) == "failed"
    assert "refused" in attempt.message
    assert not rig.core.is_unlocked


async def test_desktop_pairing_rolls_back_when_the_relay_fails(
    relay: Any, rig: Rig, unlatch_home: Path
) -> None:
    session, _pp = await rig.hello()
    relay.stop()  # the accept cannot be delivered
    with pytest.raises(RelayError):
        await rig.pairing.confirm(session.id)
    assert session.state == "failed"
    assert rig.store.all() == []
    assert await slots(rig) == []
    assert LocalKeyStore().refs() == []


async def test_desktop_revoke_while_locked_removes_slot_at_next_unlock(rig: Rig) -> None:
    record = await rig.pair()
    phone_id = rig.store.all()[0].id
    assert len(await slots(rig)) == 1
    await rig.core.lock()
    result = await rig.pairing.revoke(phone_id)
    assert result["slot_removed"] is False
    assert LocalKeyStore().refs() == []  # K_L gone at once: the share is useless now
    assert len(await slots(rig)) == 1  # the slot waits for the vault key
    await rig.core.unlock_with_password(PASSWORD)
    assert await rig.pairing.remove_orphan_slots() == 1
    assert await slots(rig) == []
    assert (await rig.phone.list_pairings()) == []  # unlinked on the relay too
    assert record.pairing_id  # the phone still has its record, but nothing opens with it


async def test_desktop_unlock_request_with_relay_down_is_a_clear_error(
    relay: Any, rig: Rig
) -> None:
    from unlatch.desktop.web.common import _status_of
    from unlatch.relay.errors import RelayUnavailable

    await rig.pair()
    await rig.core.lock()
    relay.stop()
    with pytest.raises(RelayUnavailable, match="cannot reach the relay") as caught:
        await rig.unlock.start()
    assert _status_of(caught.value) == (502, "relay_down")  # the page says "start the relay"
    assert rig.unlock.current is None


async def test_desktop_reply_naming_another_request_fails_at_once(rig: Rig) -> None:
    """A relay posts one request's reply onto another's channel: reported, not waited out."""
    record = await rig.pair()
    await rig.core.lock()
    first = await rig.unlock.start()
    pu = PhoneUnlock.from_qr(first.link, [record], rig.phone_key, now=int(time.time()))
    reply_for_first = pu.deny(now=int(time.time()))
    await rig.unlock.cancel(first.id)
    second = await rig.unlock.start()
    second_rid = second.request.request_id
    await rig.phone.post_reply(second_rid, reply_for_first)
    assert await rig.finish(second) == "failed"
    assert "another request" in second.message
    assert not rig.core.is_unlocked


async def test_desktop_scanned_but_unanswered_request_expires(fake_rig: Rig) -> None:
    """With QR renewals on (the UI's default), a scan stops the renewals; the request
    must still end as "expired" at its expiry instead of staying "seen" forever."""
    rig, clock = fake_rig, fake_rig.clock
    assert isinstance(clock, FakeClock)
    record = await rig.pair()
    await rig.core.lock()
    rig.unlock.ttl, rig.unlock.renewals = 120, 4
    attempt = await rig.unlock.start()
    pu = PhoneUnlock.from_qr(attempt.link, [record], rig.phone_key, now=rig.now())
    await rig.phone.post_seen(pu.request_id, pu.seen())
    await until(rig, attempt, lambda: attempt.state == "seen")
    expires_at = attempt.request.expires_at
    await clock.advance(106)  # past the renewal time: a scanned request is not renewed
    await asyncio.sleep(0.2)
    assert attempt.state == "seen" and attempt.generation == 1
    await clock.advance(expires_at - clock.now())
    await asyncio.sleep(0.2)
    assert attempt.state == "seen"  # not before its expiry
    await clock.advance(1)
    await until(rig, attempt, lambda: attempt.final)
    assert attempt.state == "expired" and attempt.generation == 1
    assert not rig.core.is_unlocked
    with pytest.raises((ChannelGone, UnknownChannel)):  # closed on the relay too
        await rig.phone.post_reply(pu.request_id, pu.approve(now=rig.now() - 2))


async def test_desktop_qr_renewal_on_a_fake_clock_and_the_predecessor_answers(
    fake_rig: Rig,
) -> None:
    """The UI's defaults (120 s, 4 renewals), no real waiting: the QR is renewed 15 s
    before expiry with a new request on the relay, and a phone that scanned the old QR
    just before the swap still unlocks through it."""
    rig, clock = fake_rig, fake_rig.clock
    assert isinstance(clock, FakeClock)
    record = await rig.pair()
    await rig.core.lock()
    rig.unlock.ttl, rig.unlock.renewals = 120, 4
    attempt = await rig.unlock.start()
    old_link, old_id = attempt.link, attempt.request.request_id
    await clock.advance(104)
    await asyncio.sleep(0.2)
    assert attempt.generation == 1
    await clock.advance(1)
    await until(rig, attempt, lambda: attempt.generation == 2)
    assert attempt.state == "waiting" and attempt.request.request_id != old_id
    assert attempt.link != old_link
    pu = PhoneUnlock.from_qr(old_link, [record], rig.phone_key, now=rig.now())
    await rig.phone.post_seen(pu.request_id, pu.seen())
    await rig.phone.post_reply(pu.request_id, pu.approve(now=rig.now()))
    assert await rig.finish(attempt) == "approved"
    assert attempt.request.request_id == old_id and attempt.generation == 3
    assert rig.core.is_unlocked


async def test_desktop_renewals_run_out_then_the_request_expires(fake_rig: Rig) -> None:
    rig, clock = fake_rig, fake_rig.clock
    assert isinstance(clock, FakeClock)
    await rig.pair()
    await rig.core.lock()
    rig.unlock.ttl, rig.unlock.renewals = 120, 2
    attempt = await rig.unlock.start()
    started = clock.now()
    ids = {attempt.request.request_id}
    while not attempt.final:
        await clock.advance(5)
        await asyncio.sleep(0.05)
        ids.add(attempt.request.request_id)
        assert clock.now() - started < 400
    await until(rig, attempt, lambda: attempt.final)
    assert attempt.state == "expired" and len(ids) == 3 and attempt.generation == 3
    assert clock.now() - started >= 2 * 105 + 120  # two renewals, then the last life


async def test_desktop_revoke_withdraws_the_pending_request(rig: Rig) -> None:
    """Revoked while its request waits: the request ends now ("failed", saying why) and
    its relay channel is closed, so the phone's answer is refused by the relay."""

    record = await rig.pair()
    await rig.core.lock()
    attempt = await rig.unlock.start()
    scanned = attempt.link  # the phone holds the QR; the ended attempt keeps no copy
    phone_id = rig.store.all()[0].id
    await rig.pairing.revoke(phone_id)
    assert await rig.unlock.phone_revoked("0" * 32) is False  # another phone: untouched
    assert attempt.state == "waiting"
    assert await rig.unlock.phone_revoked(phone_id) is True
    assert attempt.state == "failed" and "revoked on this desktop" in attempt.message
    pu = PhoneUnlock.from_qr(scanned, [record], rig.phone_key, now=int(time.time()))
    with pytest.raises((ChannelGone, UnknownChannel)):
        await rig.phone.post_seen(pu.request_id, pu.seen())
    assert await rig.unlock.phone_revoked(phone_id) is False  # already over
    assert not rig.core.is_unlocked


async def test_desktop_reply_from_a_phone_revoked_elsewhere_fails_clearly(rig: Rig) -> None:
    """Revoked by another process (the CLI) that could not tell this one: the relay
    closes the pairing's open request, so the phone's approval is refused there, and
    this service learns from the close (not at expiry) that its phone was revoked."""
    record = await rig.pair()
    await rig.core.lock()
    attempt = await rig.unlock.start()
    await rig.pairing.revoke(rig.store.all()[0].id)  # K_L gone; nobody told rig.unlock
    pu = PhoneUnlock.from_qr(attempt.link, [record], rig.phone_key, now=int(time.time()))
    with pytest.raises(ChannelGone):
        await rig.phone.post_reply(pu.request_id, pu.approve(now=int(time.time())))
    assert await rig.finish(attempt) == "failed"
    assert "revoked on this desktop" in attempt.message
    assert not rig.core.is_unlocked


async def test_desktop_ended_attempts_keep_no_copy_of_their_secrets(fake_rig: Rig) -> None:
    """The protocol objects forget S and the QR secret in their final states; the
    services keep no copy either (their QR links are derived, not stored), also when
    a pairing code expires unused (on the fake clock: no real waiting)."""
    rig, clock = fake_rig, fake_rig.clock
    assert isinstance(clock, FakeClock)
    await rig.pair()
    (paired,) = rig.pairing.sessions.values()
    assert paired.state == "done"
    with pytest.raises(InvalidState):
        paired.link  # the property is what is tested
    await rig.core.lock()
    attempt = await rig.unlock.start()
    pu = PhoneUnlock.from_qr(attempt.link, [rig.record], rig.phone_key, now=rig.now())
    await rig.phone.post_reply(pu.request_id, pu.approve(now=rig.now()))
    assert await rig.finish(attempt) == "approved"
    assert attempt.link is None and attempt.request.qr_bytes is None

    unused = await rig.pairing.start()
    assert unused.link.startswith(rig.url)
    await clock.advance(unused.expires_at - clock.now())
    await asyncio.sleep(0.2)
    assert unused.state == "waiting"  # not before its expiry
    await clock.advance(1)
    async with asyncio.timeout(20):
        while not unused.final:
            await rig.pairing.wait(unused.id, 1)
    assert unused.state == "expired"
    assert unused.desktop.state is PairingState.FAILED
    with pytest.raises(InvalidState):
        unused.link


async def test_attack_relay_serving_a_modified_app_gets_no_pairing_link(
    relay_factory: Any, unlatch_home: Path, phone_app_dist: Path, tmp_path: Path
) -> None:
    """A relay whose /app/app.js has a few lines appended: the desktop shows no link at all.

    The desktop fetches the app at the link's origin and compares it with its own
    build before it makes an offer: so the refusal names that origin, and no
    pairing channel (and so no offer with its secret S) ever reaches the relay.
    """
    served = served_copy(phone_app_dist, tmp_path / "served", tampered=True)
    relay = relay_factory(env={"UNLATCH_RELAY_APP_DIR": str(served)})
    rig = Rig(relay.url, unlatch_home)
    await rig.start()
    try:
        with pytest.raises(AppMismatchError) as refused:
            await rig.pairing.start()
        message = str(refused.value)
        assert message.startswith(f"refusing to show a pairing link to {relay.url}:")
        assert "app.js" in message and "differs from this desktop's build" in message
        assert refused.value.origin == relay.url
        assert rig.pairing.sessions == {}
        assert relay.metric("unlatch_relay_channels_created_total", kind="pairing") == 0
        # The same relay serving the genuine app: the link is made (the check is not blind).
        served.joinpath("app.js").write_bytes(phone_app_dist.joinpath("app.js").read_bytes())
        session = await rig.pairing.start()
        assert session.link.startswith(relay.url + "/app/#m=")
        assert relay.metric("unlatch_relay_channels_created_total", kind="pairing") == 1
        await rig.pairing.cancel(session.id)
    finally:
        await rig.close()


async def test_desktop_pairing_link_points_at_the_app_origin_it_checked(
    relay_factory: Any, unlatch_home: Path, phone_app_dist: Path, tmp_path: Path
) -> None:
    """With app_url, links point at the operator's app origin, and that origin is checked."""
    relay = relay_factory()
    app_host = relay_factory(
        env={"UNLATCH_RELAY_APP_DIR": str(served_copy(phone_app_dist, tmp_path / "app"))}
    )
    bad_host = relay_factory(
        env={
            "UNLATCH_RELAY_APP_DIR": str(
                served_copy(phone_app_dist, tmp_path / "bad", tampered=True)
            )
        }
    )
    rig = Rig(relay.url, unlatch_home)
    await rig.start()
    try:
        rig.pairing.app_url = app_host.url + "/app/"
        session = await rig.pairing.start()
        assert session.link.startswith(app_host.url + "/app/#m=")
        assert relay.metric("unlatch_relay_channels_created_total", kind="pairing") == 1
        await rig.pairing.cancel(session.id)
        rig.pairing.app_url = bad_host.url + "/app/"
        with pytest.raises(AppMismatchError, match=f"pairing link to {bad_host.url}:"):
            await rig.pairing.start()
        rig.pairing.app_url = relay.url + "/nothing-here/"
        with pytest.raises(AppMismatchError, match=r"index\.html \(HTTP 404\)|HTTP 404"):
            await rig.pairing.start()
    finally:
        await rig.close()


async def test_desktop_renew_by_hand_and_not_once_scanned(fake_rig: Rig) -> None:
    from unlatch.desktop.errors import UnlockFailedError

    record = await rig_paired_and_locked(fake_rig)
    attempt = await fake_rig.unlock.start()
    first = attempt.link
    await fake_rig.unlock.renew(attempt.id)
    await until(fake_rig, attempt, lambda: attempt.generation == 2)
    assert attempt.link != first and attempt.state == "waiting"
    pu = PhoneUnlock.from_qr(attempt.link, [record], fake_rig.phone_key, now=fake_rig.now())
    await fake_rig.phone.post_seen(pu.request_id, pu.seen())
    await until(fake_rig, attempt, lambda: attempt.state == "seen")
    with pytest.raises(UnlockFailedError, match="only a QR nobody scanned can be renewed"):
        await fake_rig.unlock.renew(attempt.id)


async def rig_paired_and_locked(rig: Rig) -> PhonePairingRecord:
    record = await rig.pair()
    await rig.core.lock()
    return record


async def test_desktop_learns_the_phone_policy_from_its_reply_and_asks_accordingly(
    rig: Rig,
) -> None:
    """The setting is a wish: a QR until a reply says the phone allows number matching;
    the driver records what the session learnt, and the next press asks for a number."""
    record = await rig.pair()
    allowing = dataclasses.replace(record, allow_number_matching=True)  # allowed on the phone
    await rig.core.lock()
    attempt = await rig.unlock.start(number_matching=True)
    assert attempt.mode is UnlockMode.SCAN and attempt.message == MESSAGES["scan_only"]
    pu = PhoneUnlock.from_qr(attempt.link, [allowing], rig.phone_key, now=rig.now())
    await rig.phone.post_reply(pu.request_id, pu.approve(now=rig.now()))
    assert await rig.finish(attempt) == "approved"
    (phone,) = rig.store.all()
    assert phone.allows_number_matching and attempt.phone.allows_number_matching

    await rig.core.lock()
    second = await rig.unlock.start(number_matching=True)
    assert second.mode is UnlockMode.NUMBER_MATCH and second.link is None
    assert second.message == MESSAGES["waiting_number"]
    await rig.unlock.cancel(second.id)


async def test_a_bump_reaches_the_event_stream_in_one_loop_step() -> None:
    """Notifier.wait_past wakes in the loop step after the bump, not three (issue 15): the
    page's event comes right after the unlock, not behind what else is ready."""
    notifier = Notifier()
    waiting = asyncio.create_task(notifier.wait_past(0, 60))
    await asyncio.sleep(0)  # the waiter now waits
    assert not waiting.done()
    notifier.bump()
    await asyncio.sleep(0)  # one step
    assert waiting.done() and waiting.result() == 1
    assert await notifier.wait_past(0, 60) == 1  # already past: at once


async def test_the_event_stream_follows_bumps_and_ends_when_the_page_leaves(
    unlatch_home: Path,
) -> None:
    """``/api/events`` without its per-event disconnect probe (issue 15): each bump still
    sends a snapshot, and a page that goes away still ends its stream on the server."""
    core = AgentCore(unlatch_home / "vault.db", 600)
    await core.init_vault("bench master password", OWASP_MINIMUM)
    rt = DesktopRuntime(core, relay_url="http://127.0.0.1:9")
    await rt.start_web(0)
    gc.unfreeze()  # start_web froze this test process's heap (unlatch.agent.heap)
    server = rt._server
    assert server is not None
    origin = f"http://127.0.0.1:{rt.port}"
    async with httpx.AsyncClient(base_url=origin, timeout=10) as client:
        launch = await client.get(rt.security.new_launch_url().split(str(rt.port), 1)[1])
        prefix = launch.headers["location"]
        async with client.stream("GET", prefix + "api/events") as resp:
            lines = resp.aiter_lines()
            seen: list[bool] = []
            async for line in lines:
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:])["vault"]["unlocked"])
                    if seen == [True]:
                        await core.lock()  # a bump: the next snapshot says locked
                    else:
                        break
            assert seen == [True, False]
            assert len(server.server_state.tasks) == 1  # the stream's request
        # the page left: its request's task ends (StreamingResponse saw the disconnect)
        deadline = asyncio.get_running_loop().time() + 20
        while server.server_state.tasks:
            assert asyncio.get_running_loop().time() < deadline, "the stream outlived the page"
            await asyncio.sleep(0.05)
    await rt.stop()
    await core.close()
