"""The phone client's life cycle end to end: sealed state and PIN, unpairing,
reconnecting after a relay restart, and the in-process Python API.

Same setting as test_phone_flow (whose Phone/Desktop helpers are reused): a
real relay process, the CLI as a subprocess, the desktop played by the real
protocol state machines and relay client.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from test_phone_flow import Desktop, Phone, _b64, pair

from unlatch.phone.errors import RequestClosed
from unlatch.phone.requests import RequestView
from unlatch.protocol import Approved, Denied, UnlockMode, Verdict, bare_link
from unlatch.relay.errors import NotPaired

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def phone(tmp_path: Path) -> Phone:
    return Phone(tmp_path / "phone", tmp_path / "unlatch")


def _leaks(root: Path, secret: bytes) -> list[str]:
    forms = {
        secret,
        secret.hex().encode(),
        base64.b64encode(secret).rstrip(b"="),
        base64.urlsafe_b64encode(secret).rstrip(b"="),
    }
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path.name}" for form in forms if form in data]
    return found


async def test_state_is_sealed_at_rest_and_pin_protects_it(relay, phone) -> None:
    desktop = Desktop(relay.url)
    await pair(phone, desktop)
    assert desktop.share is not None and desktop.record is not None
    assert _leaks(phone.home, desktop.share) == []
    assert _leaks(phone.home, desktop.record.keys.push_key) == []
    for path in phone.home.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    assert phone.home.stat().st_mode & 0o077 == 0

    result = await phone.run("set-pin", env={"UNLATCH_PHONE_NEW_PIN": "482913"})
    assert result.rc == 0, result.err
    assert json.loads((phone.home / "state.sealed").read_text())["kdf"]["name"] == "argon2id"
    assert _leaks(phone.home, desktop.share) == []

    wrong = await phone.run("list", env={"UNLATCH_PHONE_PIN": "000000"})
    assert wrong.rc != 0 and "wrong PIN" in wrong.err
    ok = await phone.run("list", input="482913\n")
    assert ok.rc == 0 and "Work laptop" in ok.out

    # approving asks the PIN first, then the confirmation
    du = await desktop.request()
    waiter = asyncio.create_task(desktop.outcome(du))
    result = await phone.run("approve", bare_link(du.qr_bytes), input="482913\ny\n")
    assert result.rc == 0, result.err
    outcome, _ = await waiter
    assert outcome == Approved(desktop.share)

    result = await phone.run("set-pin", "--remove", env={"UNLATCH_PHONE_PIN": "482913"})
    assert result.rc == 0, result.err
    assert (await phone.run("list")).rc == 0
    await desktop.relay.aclose()


def phone_id(phone: Phone) -> str:
    from unlatch.relay.device_key import DeviceKey

    return DeviceKey.load(phone.home / "device.pem").device_id


async def test_unpair_removes_the_relay_pairing(relay, phone) -> None:
    desktop = Desktop(relay.url)
    await pair(phone, desktop)
    assert desktop.record is not None
    routing_id = desktop.record.keys.routing_id
    assert routing_id in {p.routing_id for p in await desktop.relay.list_pairings()}
    # The relay forgets the pairing (the desktop deleted it): `sync` registers it again.
    await desktop.relay.delete_pairing(routing_id)
    (row,) = json.loads((await phone.run("list", "--relay", "--json")).out)
    assert row["relay_state"] == "missing"
    result = await phone.run("sync", "--json")
    assert result.rc == 0, result.err
    assert json.loads(result.out)[0]["relay_state"] == "pending"
    await desktop.relay.register_pairing(routing_id, phone_id(phone))
    (row,) = json.loads((await phone.run("list", "--relay", "--json")).out)
    assert row["relay_state"] == "linked"

    result = await phone.run("rename", "Work laptop", "Office")
    assert result.rc == 0, result.err
    result = await phone.run("unpair", "Office", "--yes")
    assert result.rc == 0, result.err
    assert routing_id not in {p.routing_id for p in await desktop.relay.list_pairings()}
    with pytest.raises(NotPaired):
        await desktop.request()
    assert json.loads((await phone.run("list", "--json")).out) == []
    missing = await phone.run("unpair", "Office", "--yes")
    assert missing.rc != 0 and "no paired desktop" in missing.err
    await desktop.relay.aclose()


async def test_python_api_pair_listen_approve_deny_unpair(relay, tmp_path, monkeypatch) -> None:
    """The in-process API the desktop's end-to-end tests drive."""
    from unlatch.phone import Ignored, PhoneClient, RequestView

    monkeypatch.setenv("UNLATCH_HOME", str(tmp_path / "unlatch"))
    client = PhoneClient(tmp_path / "api-phone")
    desktop = Desktop(relay.url, "Studio")
    dp = await desktop.offer()
    codes: list[str] = []
    pairing = asyncio.create_task(
        client.pair(
            bare_link(dp.offer_bytes),
            phone_name="Test phone",
            on_code=lambda attempt: codes.append(attempt.verification_code),
        )
    )
    desktop_code = await desktop.complete(dp)
    result = await pairing
    assert codes == [desktop_code]
    assert result.pairing.label == "Studio"
    assert client.list_pairings()[0]["desktop_device_id"] == desktop.relay.device_id

    async def first_request() -> RequestView | Ignored:
        async for item in client.listen():
            return item
        raise AssertionError("listen ended")

    listening = asyncio.create_task(first_request())
    await asyncio.sleep(0.5)
    du = await desktop.request()
    view = await asyncio.wait_for(listening, 20)
    assert isinstance(view, RequestView) and view.desktop == "Studio"
    assert view.request_id == _b64(du.request_id)

    asked: list[RequestView] = []
    waiter = asyncio.create_task(desktop.outcome(du))
    answer = await client.approve(bare_link(du.qr_bytes), confirm=lambda v: asked.append(v) or True)
    assert answer.approved and asked and asked[0].requester_address == "127.0.0.1"
    assert (await waiter)[0] == Approved(desktop.share)

    du = await desktop.request(UnlockMode.NUMBER_MATCH)
    waiter = asyncio.create_task(desktop.outcome(du))
    answer = await client.deny_request(_b64(du.request_id))
    assert answer.verdict == "denied"
    assert (await waiter)[0] == Denied(Verdict.DENY)

    assert await client.set_push("https://push.example.org/up/abc") == 1
    async with client.relay_client(relay.url) as as_phone:
        assert (await as_phone.me())["push"] == {
            "type": "unifiedpush",
            "endpoint": "https://push.example.org/up/abc",
        }

    await client.unpair("Studio")
    assert client.list_pairings() == []
    await desktop.relay.aclose()


async def test_listen_reconnects_after_a_relay_restart(relay_factory, phone) -> None:
    first = relay_factory()
    desktop = Desktop(first.url)
    await pair(phone, desktop)
    listener = await phone.start("listen", "--once", "--json", "--timeout", "45")
    await asyncio.sleep(1.5)
    first.stop()  # the listener's socket drops (close 1012), it keeps trying
    await asyncio.sleep(1.0)
    second = relay_factory(port=first.port, db_path=first.db_path)
    du = await desktop.request()
    out, err = await asyncio.wait_for(listener.communicate(), 50)
    assert listener.returncode == 0, err.decode()
    (note,) = [json.loads(x) for x in out.decode().splitlines()]
    assert note["request_id"] == _b64(du.request_id) and note["desktop"] == "Work laptop"
    assert second.proc.poll() is None
    await desktop.relay.aclose()


async def _api_phone(relay, tmp_path, monkeypatch, desktop: Desktop):
    """An in-process PhoneClient paired with ``desktop`` through the real pairing flow."""
    from unlatch.phone import PhoneClient

    monkeypatch.setenv("UNLATCH_HOME", str(tmp_path / "unlatch"))
    client = PhoneClient(tmp_path / "api-phone")
    dp = await desktop.offer()
    pairing = asyncio.create_task(client.pair(bare_link(dp.offer_bytes), phone_name="Phone"))
    await desktop.complete(dp)
    await pairing
    return client


async def test_lifecycle_python_phone_hears_cancel_renewal_and_removal(
    relay, tmp_path, monkeypatch
) -> None:
    """Issue 13, first list, on the Python phone: what `listen` shows as the desktop acts.

    Cancel: the card's request is reported cancelled (no second identical
    card). Renewal: the old request is reported replaced, then the new one
    shown. Revocation: the open request closes and the desktop is marked
    removed, with how to forget it; pairing it again leaves one entry.
    """
    from unlatch.phone.client import DesktopRemoved, RequestEnded

    desktop = Desktop(relay.url, "Work laptop")
    client = await _api_phone(relay, tmp_path, monkeypatch, desktop)
    heard: asyncio.Queue[object] = asyncio.Queue()

    async def pump() -> None:
        async for item in client.listen():
            await heard.put(item)

    async def next_item(kind: type) -> object:
        while True:
            item = await asyncio.wait_for(heard.get(), 10)
            if isinstance(item, kind):
                return item

    task = asyncio.create_task(pump())
    try:
        await asyncio.sleep(0.5)
        first = await desktop.request()
        assert (await next_item(RequestView)).request_id == _b64(first.request_id)  # type: ignore[attr-defined]
        await desktop.relay.close_unlock(first.request_id)  # cancelled on the desktop
        ended = await next_item(RequestEnded)
        assert isinstance(ended, RequestEnded) and ended.state == "cancelled"
        assert ended.message.startswith("Cancelled on the desktop: “Work laptop” cancelled")
        assert "start a new request on the desktop" in ended.message

        old = await desktop.request()
        await next_item(RequestView)
        new = await desktop.request()  # the desktop renewed its QR
        ended = await next_item(RequestEnded)
        assert isinstance(ended, RequestEnded) and ended.request_id == _b64(old.request_id)
        assert ended.state == "renewed" and "Scan the code the desktop shows now" in ended.message
        assert (await next_item(RequestView)).request_id == _b64(new.request_id)  # type: ignore[attr-defined]

        # the desktop removes (revokes) this phone
        await desktop.relay.delete_pairing(desktop.record.keys.routing_id)  # type: ignore[union-attr]
        ended = await next_item(RequestEnded)
        assert isinstance(ended, RequestEnded) and ended.state == "closed"
        removed = await next_item(DesktopRemoved)
        assert isinstance(removed, DesktopRemoved)
        assert "“Work laptop” removed this phone" in removed.message
        assert "unlatch phone unpair" in removed.message
        [row] = client.list_pairings()
        assert row["removed"] is True and row["name"] == "Work laptop"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # approving a QR of the removed desktop says so, and sends nothing
    with pytest.raises(RequestClosed, match="Desktop removed: “Work laptop” removed this phone"):
        await client.approve(bare_link(new.qr_bytes))
    # pairing the same desktop again replaces the entry: one "Work laptop", not two
    dp = await desktop.offer()
    again = asyncio.create_task(client.pair(bare_link(dp.offer_bytes), phone_name="Phone"))
    await desktop.complete(dp)
    await again
    [row] = client.list_pairings()
    assert row["name"] == "Work laptop" and row["removed"] is False
    await desktop.relay.aclose()


async def test_lifecycle_python_phone_never_says_approved_to_a_desktop_gone(
    relay, tmp_path, monkeypatch
) -> None:
    """Nobody waits on an open request (the desktop crashed, or is reconnecting): the
    phone says the answer is sent but not picked up yet, never "Approved"; once the
    desktop has closed the request (a restart does), the phone says it was not delivered.

    With a desktop waiting, the same approval is delivered and reported approved.
    """
    desktop = Desktop(relay.url, "Work laptop")
    client = await _api_phone(relay, tmp_path, monkeypatch, desktop)
    du = await desktop.request()  # then nobody waits on the channel, which stays open
    answer = await client.approve(bare_link(du.qr_bytes))
    assert answer.delivery == "queued"  # the relay holds it for a desktop coming back

    du = await desktop.request()
    await desktop.relay.close_unlock(du.request_id)  # what a restarting desktop does
    with pytest.raises(RequestClosed) as closed:
        await client.approve(bare_link(du.qr_bytes))
    assert "Approved" not in str(closed.value)

    du = await desktop.request()
    waiter = asyncio.create_task(desktop.outcome(du))
    await asyncio.sleep(0.5)
    answer = await client.approve(bare_link(du.qr_bytes))
    assert answer.approved
    assert (await waiter)[0] == Approved(desktop.share)

    # a cancelled request scanned afterwards: what happened and what to do
    du = await desktop.request()
    await desktop.relay.close_unlock(du.request_id)
    with pytest.raises(RequestClosed, match=r"Cancelled on the desktop: .*start a new request"):
        await client.approve(bare_link(du.qr_bytes))
    await desktop.relay.aclose()
