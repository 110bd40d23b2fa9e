"""The Python phone client end to end: its CLI as a subprocess, a real relay process.

The desktop is played inside the test by the real protocol state machines
(DesktopPairing / DesktopUnlock) and the real relay client, so every byte the
phone sends is checked by the code the desktop agent uses.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import segno

from unlatch.protocol import (
    Approved,
    Denied,
    DesktopPairing,
    DesktopPairingRecord,
    DesktopUnlock,
    KeyPair,
    UnlockMode,
    UnlockPolicy,
    UnlockState,
    Verdict,
    app_link,
    bare_link,
)
from unlatch.relay.client import RelayClient
from unlatch.relay.device_key import DeviceKey
from unlatch.relay.errors import Blocked

pytestmark = pytest.mark.timeout(120)


@dataclass
class Run:
    rc: int
    out: str
    err: str

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.out.splitlines() if line.startswith("{")]


class Phone:
    """The `unlatch phone` CLI in its own state directory, run as a subprocess."""

    def __init__(self, home: Path, unlatch_home: Path) -> None:
        self.home = home
        self.env = {
            **os.environ,
            "UNLATCH_HOME": str(unlatch_home),
            "UNLATCH_PHONE_HOME": str(home),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("UNLATCH_PHONE_PIN", None)
        self.env.pop("UNLATCH_CONFIG", None)

    async def start(self, *args: str, env: dict[str, str] | None = None):
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "unlatch",
            "phone",
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**self.env, **(env or {})},
        )

    async def run(self, *args: str, input: str = "", env: dict[str, str] | None = None) -> Run:
        proc = await self.start(*args, env=env)
        out, err = await asyncio.wait_for(proc.communicate(input.encode()), 60)
        return Run(proc.returncode or 0, out.decode(), err.decode())


class Desktop:
    """A desktop made of the protocol's desktop roles and the relay client."""

    def __init__(self, url: str, name: str = "Work laptop") -> None:
        self.url = url
        self.name = name
        self.identity = KeyPair.generate(os.urandom)
        self.relay = RelayClient(url, DeviceKey.generate(), "desktop")
        self.record: DesktopPairingRecord | None = None
        self.share: bytes | None = None

    async def offer(self) -> DesktopPairing:
        dp = DesktopPairing(self.identity, self.url, now=int(time.time()))
        await self.relay.create_pairing_channel(dp.channel_id)
        return dp

    async def complete(self, dp: DesktopPairing) -> str:
        """Wait for the phone's hello, confirm, post accept, register; the code shown."""
        hello = await self.relay.wait_pairing_message(dp.channel_id, timeout=30)
        pending = dp.receive_hello(hello.data, now=int(time.time()))
        accept, record, share = dp.confirm(self.name, self.relay.device_id, now=int(time.time()))
        await self.relay.post_accept(dp.channel_id, accept)
        await self.relay.register_pairing(record.keys.routing_id, hello.sender)
        self.record, self.share = record, share
        return pending.verification_code

    async def request(
        self, mode: UnlockMode = UnlockMode.SCAN, *, now: int | None = None, post: bool = True
    ) -> DesktopUnlock:
        assert self.record is not None
        du = DesktopUnlock(self.record, now=now or int(time.time()), ttl=120, mode=mode)
        if post:
            await self.relay.create_unlock(
                du.request_id, self.record.keys.routing_id, du.push_bytes, ttl=120
            )
        return du

    async def outcome(self, du: DesktopUnlock, timeout: float = 20):
        seen: list[bytes] = []
        reply = await self.relay.wait_reply(du.request_id, timeout=timeout, on_seen=seen.append)
        for data in seen:
            du.receive_seen(data, now=int(time.time()))
        return du.receive_reply(reply, now=int(time.time())), bool(seen)


async def pair(phone: Phone, desktop: Desktop, *, link: str | None = None) -> list[dict]:
    dp = await desktop.offer()
    link = link or bare_link(dp.offer_bytes)
    proc = await phone.start("pair", link, "--yes", "--json", "--timeout", "30")
    desktop_code = await desktop.complete(dp)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(x) for x in out.decode().splitlines()]
    assert lines[0]["type"] == "code" and lines[0]["code"] == desktop_code
    assert lines[-1]["type"] == "paired"
    return lines


def qr_png(path: Path, text: str) -> Path:
    segno.make(text, error="m").save(str(path), scale=5, border=4)
    return path


@pytest.fixture
def phone(tmp_path: Path) -> Phone:
    return Phone(tmp_path / "phone", tmp_path / "unlatch")


async def test_pair_listen_approve_by_link_and_image_then_replay(relay, phone, tmp_path) -> None:
    desktop = Desktop(relay.url)
    dp = await desktop.offer()
    # The pairing QR, as a picture of the app link, like a camera would see it.
    png = qr_png(tmp_path / "pair.png", app_link(relay.url + "/app/", dp.offer_bytes))
    proc = await phone.start("pair", "--qr-image", str(png), "--yes", "--json")
    code = await desktop.complete(dp)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(x) for x in out.decode().splitlines()]
    assert lines[0] == {**lines[0], "type": "code", "code": code}
    assert (
        lines[1]["name"] == "Work laptop"
        and lines[1]["desktop_device_id"] == desktop.relay.device_id
    )

    listed = (await phone.run("list", "--relay", "--json")).out
    (row,) = json.loads(listed)
    assert row["name"] == "Work laptop" and row["relay_state"] == "linked" and not row["blocked"]

    # listen shows the request with the desktop's name and the relay's requester details
    listener = await phone.start("listen", "--once", "--json", "--timeout", "30")
    await asyncio.sleep(1.5)
    du = await desktop.request()
    out, err = await asyncio.wait_for(listener.communicate(), 40)
    assert listener.returncode == 0, err.decode()
    (note,) = [json.loads(x) for x in out.decode().splitlines()]
    assert note["desktop"] == "Work laptop" and note["mode"] == "scan"
    assert note["requester"]["address"] == "127.0.0.1"
    assert note["requester"]["user_agent"].startswith("unlatch-desktop/")
    assert base64.urlsafe_b64decode(note["request_id"] + "==") == du.request_id
    assert 30 <= note["remaining"] <= 120  # 120 s life; the listener may print late on a busy box

    # approve by link: the desktop sees the scan notice, then gets K_P
    link = app_link(relay.url + "/app/", du.qr_bytes)
    waiter = asyncio.create_task(desktop.outcome(du))
    result = await phone.run("approve", link, "--yes", "--json")
    assert result.rc == 0, result.err
    assert json.loads(result.out)["verdict"] == "approved"
    outcome, saw_seen = await waiter
    assert outcome == Approved(desktop.share) and saw_seen

    # the same QR again is refused by the persisted replay guard
    again = await phone.run("approve", link, "--yes")
    assert again.rc != 0 and "already answered" in again.err
    assert "Traceback" not in again.err

    # approve from a picture of the QR (segno renders, zxing-cpp decodes)
    du2 = await desktop.request()
    png2 = qr_png(tmp_path / "unlock.png", app_link(relay.url + "/app/", du2.qr_bytes))
    waiter = asyncio.create_task(desktop.outcome(du2))
    result = await phone.run("approve", "--qr-image", str(png2), "--yes")
    assert result.rc == 0, result.err
    assert "Approved" in result.out
    outcome, _ = await waiter
    assert isinstance(outcome, Approved) and outcome.phone_share == desktop.share
    await desktop.relay.aclose()


async def test_prompt_no_sends_a_denial(relay, phone) -> None:
    desktop = Desktop(relay.url)
    await pair(phone, desktop)
    du = await desktop.request()
    waiter = asyncio.create_task(desktop.outcome(du))
    result = await phone.run("approve", bare_link(du.qr_bytes), input="n\n")
    assert result.rc == 3
    assert "Approve?" in result.err and "Work laptop" in result.err
    outcome, _ = await waiter
    assert outcome == Denied(Verdict.DENY)
    await desktop.relay.aclose()


async def test_deny_and_not_me_blocks_until_unblock(relay, phone) -> None:
    desktop = Desktop(relay.url, "Home PC")
    await pair(phone, desktop)

    du = await desktop.request()
    waiter = asyncio.create_task(desktop.outcome(du))
    result = await phone.run("deny", bare_link(du.qr_bytes), "--json")
    assert result.rc == 0, result.err
    assert json.loads(result.out)["verdict"] == "denied"
    outcome, _ = await waiter
    assert outcome == Denied(Verdict.DENY)

    du = await desktop.request()
    waiter = asyncio.create_task(desktop.outcome(du))
    result = await phone.run("deny", bare_link(du.qr_bytes), "--not-me")
    assert result.rc == 0, result.err
    assert "blocked" in result.out
    outcome, _ = await waiter
    assert isinstance(outcome, Denied) and outcome.not_me

    # the relay now refuses new requests from that desktop
    with pytest.raises(Blocked):
        await desktop.request()
    assert json.loads((await phone.run("list", "--json")).out)[0]["blocked"] is True

    result = await phone.run("unblock", "Home PC", "--yes")
    assert result.rc == 0, result.err
    du = await desktop.request()
    waiter = asyncio.create_task(desktop.outcome(du))
    assert (await phone.run("approve", bare_link(du.qr_bytes), "--yes")).rc == 0
    outcome, _ = await waiter
    assert isinstance(outcome, Approved)
    await desktop.relay.aclose()


async def test_not_me_from_listen_before_scanning_blocks(relay, phone) -> None:
    """`listen` names the request; `deny --request ID --not-me` refuses it without the QR."""
    desktop = Desktop(relay.url, "Home PC")
    await pair(phone, desktop)
    listener = await phone.start("listen", "--once", "--json", "--timeout", "30")
    await asyncio.sleep(1.5)
    du = await desktop.request()
    out, _err = await asyncio.wait_for(listener.communicate(), 40)
    (note,) = [json.loads(x) for x in out.decode().splitlines()]
    assert note["mode"] == "scan"

    declined = await phone.run("deny", "--request", note["request_id"], "--not-me", input="n\n")
    assert declined.rc == 3 and "nothing was sent" in declined.err
    waiter = asyncio.create_task(desktop.outcome(du))
    result = await phone.run("deny", "--request", note["request_id"], "--not-me", "--yes")
    assert result.rc == 0, result.err
    assert "blocked" in result.out
    outcome, saw_seen = await waiter
    assert outcome == Denied(Verdict.DENY_NOT_ME, policy=None) and not saw_seen
    assert du.state is UnlockState.DENIED
    with pytest.raises(Blocked):
        await desktop.request()
    # A plain "deny" of a scan-mode request still needs its QR.
    assert (await phone.run("unblock", "Home PC", "--yes")).rc == 0
    du = await desktop.request()
    plain = await phone.run("deny", "--request", _b64(du.request_id))
    assert plain.rc == 1 and "scanning the QR code" in plain.err
    await desktop.relay.aclose()


async def test_phishing_qr_from_another_desktop_is_refused_and_nothing_posted(
    relay, phone, tmp_path
) -> None:
    desktop = Desktop(relay.url)
    await pair(phone, desktop)
    # The attacker's desktop is paired with the attacker's own phone, on the same relay:
    # its unlock channel is real, only the QR is mailed to the victim.
    attacker = Desktop(relay.url, "Work laptop")
    attacker_phone = Phone(tmp_path / "attacker-phone", tmp_path / "unlatch")
    await pair(attacker_phone, attacker)
    du = await attacker.request()
    before = relay.metric("unlatch_relay_messages_relayed_total")
    result = await phone.run("approve", app_link(relay.url + "/app/", du.qr_bytes), "--yes")
    assert result.rc != 0
    assert "not made by a desktop paired with this phone" in result.err
    assert "Traceback" not in result.err
    assert relay.metric("unlatch_relay_messages_relayed_total") == before
    pending = await attacker.relay.request(
        "GET", f"/v1/unlock/{_b64(du.request_id)}/wait", params={"after": 0, "timeout": 0}
    )
    assert pending["messages"] == []
    # a tampered QR of the real desktop (another MAC) is refused too
    real = await desktop.request(post=False)
    forged = bytearray(real.qr_bytes)
    forged[-1] ^= 1
    result = await phone.run("approve", bare_link(bytes(forged)), "--yes")
    assert result.rc != 0 and "Traceback" not in result.err
    await desktop.relay.aclose()
    await attacker.relay.aclose()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_expired_qr_and_refused_pairing(relay, phone, tmp_path) -> None:
    desktop = Desktop(relay.url)
    await pair(phone, desktop)
    old = await desktop.request(now=int(time.time()) - 400, post=False)
    result = await phone.run("approve", bare_link(old.qr_bytes), "--yes")
    assert result.rc != 0 and "expired" in result.err
    assert "Traceback" not in result.err

    # The desktop's user says the codes differ: the phone stores nothing.
    other = Phone(tmp_path / "phone2", tmp_path / "unlatch")
    dp = await desktop.offer()
    proc = await other.start("pair", bare_link(dp.offer_bytes), "--yes", "--timeout", "30")
    hello = await desktop.relay.wait_pairing_message(dp.channel_id, timeout=30)
    dp.receive_hello(hello.data, now=int(time.time()))
    dp.reject()
    await desktop.relay.close_pairing_channel(dp.channel_id)
    _, err = await asyncio.wait_for(proc.communicate(), 40)
    # it is told the codes differed and what to do, not that the desktop "did not confirm"
    assert proc.returncode != 0 and b"Traceback" not in err
    assert b"the codes differ" in err and b"Start pairing again on the desktop" in err
    # without a terminal for its live line, pair still said what it was waiting for
    assert b"Waiting for the desktop to confirm the code (until " in err
    assert json.loads((await other.run("list", "--json")).out) == []
    await desktop.relay.aclose()


async def test_number_matching_from_the_notification(relay, phone) -> None:
    desktop = Desktop(relay.url)
    lines = await pair(phone, desktop)
    assert lines[-1]["number_matching"] is False  # scan only unless the user allows it
    # A desktop's request for number matching is refused until this phone allows it.
    du = await desktop.request(UnlockMode.NUMBER_MATCH)
    refused = await phone.run(
        "approve", "--request", _b64(du.request_id), "--number", str(du.number), "--yes"
    )
    assert refused.rc != 0 and "you did not allow for it" in refused.err
    waiter = asyncio.create_task(desktop.outcome(du))
    assert (await phone.run("deny", "--request", _b64(du.request_id))).rc == 0
    assert (await waiter)[0] == Denied(Verdict.DENY, UnlockPolicy.SCAN_ONLY)
    allowed = await phone.run("number-matching", "Work laptop", "on", "--yes")
    assert allowed.rc == 0 and "may now be approved" in allowed.out
    (row,) = json.loads((await phone.run("list", "--json")).out)
    assert row["number_matching"] is True

    listener = await phone.start("listen", "--once", "--json", "--timeout", "30")
    await asyncio.sleep(1.5)
    du = await desktop.request(UnlockMode.NUMBER_MATCH)
    out, err = await asyncio.wait_for(listener.communicate(), 40)
    assert listener.returncode == 0, err.decode()
    (note,) = [json.loads(x) for x in out.decode().splitlines()]
    assert note["mode"] == "number_match" and du.number in note["choices"]
    assert "number" not in note  # the right number is only on the desktop's screen
    wrong = next(c for c in note["choices"] if c != du.number)

    waiter = asyncio.create_task(desktop.outcome(du))
    result = await phone.run(
        "approve", "--request", note["request_id"], "--number", str(wrong), "--yes"
    )
    assert result.rc == 5 and "not the number" in result.out
    outcome, _ = await waiter
    assert isinstance(outcome, Denied) and outcome.wrong_number

    du = await desktop.request(UnlockMode.NUMBER_MATCH)
    waiter = asyncio.create_task(desktop.outcome(du))
    result = await phone.run(
        "approve", "--request", _b64(du.request_id), "--number", str(du.number), "--yes"
    )
    assert result.rc == 0, result.err
    outcome, _ = await waiter
    assert outcome == Approved(desktop.share, UnlockPolicy.NUMBER_MATCHING)
    assert du.state is UnlockState.APPROVED
    await desktop.relay.aclose()
