"""Pairing and unlock flows through a real relay process, with the real client.

Payloads are random opaque bytes (the relay must carry them byte for byte).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import httpx
import pytest
from fixtures.relay import RelayProcess, make_pair, start_relay
from websockets.asyncio.client import connect

from unlatch.relay.client import RelayClient
from unlatch.relay.codec import b64e
from unlatch.relay.device_key import DeviceKey
from unlatch.relay.errors import (
    AlreadyAnswered,
    AlreadyPosted,
    Blocked,
    ChannelExpired,
    ChannelGone,
    ChannelTaken,
    Forbidden,
    NotPaired,
    UnknownChannel,
)


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "longpoll"])
async def test_pairing_then_unlock_roundtrip(relay: RelayProcess, websocket: bool) -> None:
    pair = await make_pair(relay.url, prefer_websocket=websocket)
    desktop, phone = pair.desktop, pair.phone
    try:
        pairings = await desktop.list_pairings()
        assert [(p.routing_id, p.peer_device_id, p.linked) for p in pairings] == [
            (pair.routing_id, phone.device_id, True)
        ]
        request_id, push, seen, reply = (
            os.urandom(16),
            os.urandom(700),
            os.urandom(200),
            os.urandom(1000),
        )
        created = await desktop.create_unlock(request_id, pair.routing_id, push)
        assert created["request_id"] == b64e(request_id)
        seen_log: list[bytes] = []

        async def on_seen(data: bytes) -> None:
            seen_log.append(data)

        waiter = asyncio.create_task(desktop.wait_reply(request_id, timeout=15, on_seen=on_seen))
        pending = await phone.pending_unlocks()
        assert [n.request_id for n in pending] == [request_id]
        note = await phone.get_unlock(request_id)
        assert note.push == push and note.routing_id == pair.routing_id
        assert note.requester_address == "127.0.0.1"
        assert note.requester_user_agent.startswith("unlatch-desktop/")
        assert 115 <= note.expires_at - note.created_at <= 120
        await phone.post_seen(request_id, seen)
        await asyncio.sleep(0.2)
        await phone.post_reply(request_id, reply)
        assert await asyncio.wait_for(waiter, 15) == reply
        assert seen_log == [seen]
        # acknowledged: the channel is closed, nothing pending, late posts refused
        assert await phone.pending_unlocks() == []
        with pytest.raises(ChannelGone):
            await phone.post_reply(request_id, reply)
    finally:
        await pair.aclose()


async def test_reply_posted_while_desktop_disconnected_is_delivered(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    desktop, phone = pair.desktop, pair.phone
    try:
        request_id, reply = os.urandom(16), os.urandom(200)
        await desktop.create_unlock(request_id, pair.routing_id, os.urandom(64))
        await phone.post_seen(request_id, b"s")
        # the desktop sees "seen" then drops its socket (timeout) before the reply
        got = [m async for m in desktop.channel_messages("unlock", request_id, timeout=1.0)]
        assert [(m.type, m.seq) for m in got] == [("seen", 1)]
        await phone.post_reply(request_id, reply)  # nobody is connected now
        resumed = [
            m async for m in desktop.channel_messages("unlock", request_id, timeout=1.0, after=1)
        ]
        assert [(m.type, m.data) for m in resumed] == [("reply", reply)]
        # and a fresh reconnect from scratch gets both, in order
        again = [m async for m in desktop.channel_messages("unlock", request_id, timeout=1.0)]
        assert [m.type for m in again] == ["seen", "reply"]
    finally:
        await pair.aclose()


async def test_desktop_wait_survives_relay_restart(tmp_path) -> None:
    """Graceful restart: sockets get the 1012 notice; the client resumes on the new process."""
    first = start_relay(tmp_path / "a")
    try:
        pair = await make_pair(first.url)
        request_id, reply = os.urandom(16), os.urandom(200)
        await pair.desktop.create_unlock(request_id, pair.routing_id, os.urandom(32))

        # a raw socket to watch the shutdown notice itself
        raw = await connect(first.url.replace("http", "ws") + f"/v1/unlock/{b64e(request_id)}/ws")
        await raw.send(json.dumps({"type": "auth", "token": pair.desktop._token, "after": 0}))
        assert json.loads(await raw.recv())["type"] == "ready"

        waiter = asyncio.create_task(pair.desktop.wait_reply(request_id, timeout=30))
        await asyncio.sleep(0.5)
        first.proc.send_signal(signal.SIGTERM)
        notice = json.loads(await asyncio.wait_for(raw.recv(), 10))
        assert notice["type"] == "shutdown" and notice["reconnect"] is True
        with pytest.raises(Exception):
            await asyncio.wait_for(raw.recv(), 10)
        assert raw.close_code == 1012
        # uvicorn re-raises SIGTERM after a clean shutdown (systemd counts that as success)
        assert first.proc.wait(15) in (0, -signal.SIGTERM)
        assert not waiter.done()

        second = start_relay(tmp_path / "a", port=first.port, db_path=first.db_path)
        try:
            await pair.phone.post_reply(request_id, reply)
            assert await asyncio.wait_for(waiter, 20) == reply
        finally:
            second.stop()
        await pair.aclose()
    finally:
        first.stop()


async def test_expiry_refuses_late_reply_and_ends_waits(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    try:
        request_id = os.urandom(16)
        await pair.desktop.create_unlock(request_id, pair.routing_id, b"p", ttl=1)
        with pytest.raises(ChannelExpired):
            await pair.desktop.wait_reply(request_id, timeout=10)
        with pytest.raises(ChannelExpired) as err:
            await pair.phone.post_reply(request_id, b"late")
        assert err.value.status == 410
        with pytest.raises(ChannelExpired):
            await pair.phone.get_unlock(request_id)
        assert await pair.phone.pending_unlocks() == []
    finally:
        await pair.aclose()


async def test_single_use_and_unknown_channels(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    try:
        request_id = os.urandom(16)
        await pair.desktop.create_unlock(request_id, pair.routing_id, b"p")
        await pair.phone.post_reply(request_id, b"one")
        with pytest.raises(AlreadyAnswered) as err:
            await pair.phone.post_reply(request_id, b"two")
        assert err.value.status == 409
        await pair.phone.post_seen(request_id, b"s")
        with pytest.raises(AlreadyPosted):
            await pair.phone.post_seen(request_id, b"s")
        with pytest.raises(UnknownChannel):
            await pair.phone.post_reply(os.urandom(16), b"x")
        # the same request id cannot be reused (replay of a request)
        with pytest.raises(Exception) as reuse:
            await pair.desktop.create_unlock(request_id, pair.routing_id, b"p")
        assert getattr(reuse.value, "code", "") == "channel_exists"
        # the desktop still receives the first reply only
        msgs = [m async for m in pair.desktop.channel_messages("unlock", request_id, timeout=1)]
        assert [(m.type, m.data) for m in msgs if m.type == "reply"] == [("reply", b"one")]
    finally:
        await pair.aclose()


async def test_pairing_channel_first_phone_owns_it(relay: RelayProcess) -> None:
    desktop = RelayClient(relay.url, DeviceKey.generate(), "desktop")
    phone1 = RelayClient(relay.url, DeviceKey.generate(), "phone")
    phone2 = RelayClient(relay.url, DeviceKey.generate(), "phone")
    try:
        channel_id = os.urandom(16)
        await desktop.create_pairing_channel(channel_id, ttl=60)
        await phone1.post_hello(channel_id, b"h1")
        with pytest.raises(ChannelTaken):
            await phone2.post_hello(channel_id, b"h2")
        with pytest.raises(AlreadyPosted):
            await phone1.post_hello(channel_id, b"h1 again")
        with pytest.raises(Forbidden):
            await phone2.wait_pairing_message(channel_id, timeout=1)
        with pytest.raises(Forbidden):  # a phone cannot accept
            await phone1.post_accept(channel_id, b"a")
        msg = await desktop.wait_pairing_message(channel_id, timeout=5)
        assert msg.data == b"h1" and msg.sender == phone1.device_id
    finally:
        for c in (desktop, phone1, phone2):
            await c.aclose()


async def test_pairing_links_only_when_both_sides_match(relay: RelayProcess) -> None:
    desktop = RelayClient(relay.url, DeviceKey.generate(), "desktop")
    phone = RelayClient(relay.url, DeviceKey.generate(), "phone")
    other = RelayClient(relay.url, DeviceKey.generate(), "phone")
    try:
        await phone.me()
        await other.me()
        routing_id = os.urandom(16)
        assert await desktop.register_pairing(routing_id, phone.device_id) == "pending"
        with pytest.raises(NotPaired):
            await desktop.create_unlock(os.urandom(16), routing_id, b"p")
        # another phone cannot hijack the routing id
        with pytest.raises(Exception) as err:
            await other.register_pairing(routing_id, desktop.device_id)
        assert getattr(err.value, "code", "") == "pairing_conflict"
        assert await phone.register_pairing(routing_id, desktop.device_id) == "linked"
        pending = os.urandom(16)
        await desktop.create_unlock(pending, routing_id, b"p")
        # unpair from the phone: the desktop can no longer wake it, and the
        # request made before is closed, not left to its expiry
        await phone.delete_pairing(routing_id)
        with pytest.raises(NotPaired):
            await desktop.create_unlock(os.urandom(16), routing_id, b"p")
        assert await desktop.list_pairings() == []
        with pytest.raises(ChannelGone):
            await desktop.wait_reply(pending, timeout=5)
        with pytest.raises(ChannelGone):
            await phone.post_reply(pending, b"late")
    finally:
        for c in (desktop, phone, other):
            await c.aclose()


async def test_unpairing_closes_the_pairings_open_requests(relay: RelayProcess) -> None:
    """A desktop that revokes a phone: the phone's late answer carries nothing.

    The waiting desktop wakes at once with 'closed'; the phone gets 410
    closed for its reply and no longer lists the request. Requests of other
    pairings are untouched.
    """
    pair = await make_pair(relay.url)
    other = await make_pair(relay.url)
    try:
        doomed, kept = os.urandom(16), os.urandom(16)
        await pair.desktop.create_unlock(doomed, pair.routing_id, b"p")
        await other.desktop.create_unlock(kept, other.routing_id, b"p")
        waiting = asyncio.create_task(pair.desktop.wait_reply(doomed, timeout=60))
        await asyncio.sleep(0)  # let the wait start; closing must wake it either way
        started = time.monotonic()
        await pair.desktop.delete_pairing(pair.routing_id)
        with pytest.raises(ChannelGone):
            await asyncio.wait_for(waiting, 30)
        assert time.monotonic() - started < 30  # woken by the close, not the 120 s expiry
        with pytest.raises(ChannelGone):
            await pair.phone.post_reply(doomed, b"late")
        assert await pair.phone.pending_unlocks() == []
        assert [n.request_id for n in await other.phone.pending_unlocks()] == [kept]
    finally:
        for p in (pair, other):
            await p.desktop.aclose()
            await p.phone.aclose()


async def test_block_and_unblock(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    try:
        await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        await pair.phone.block(pair.routing_id)
        with pytest.raises(Blocked) as err:
            await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        assert err.value.status == 403 and "did not ask" in str(err.value)
        with pytest.raises(Forbidden):  # only the phone may unblock
            await pair.desktop.unblock(pair.routing_id)
        assert [p.blocked for p in await pair.desktop.list_pairings()] == [True]
        await pair.phone.unblock(pair.routing_id)
        await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
    finally:
        await pair.aclose()


async def test_phone_listener_gets_pending_and_new_requests(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    try:
        early = os.urandom(16)
        await pair.desktop.create_unlock(early, pair.routing_id, b"early")
        got = []

        async def listen() -> None:
            async for note in pair.phone.listen():
                got.append(note)
                if len(got) == 2:
                    return

        task = asyncio.create_task(listen())
        # the early request arrives once the listener is subscribed (it subscribes first,
        # then sends what is pending): from then on a new request reaches it live
        deadline = time.monotonic() + 20
        while not got:
            assert time.monotonic() < deadline and not task.done(), "the listener never got ready"
            await asyncio.sleep(0.02)
        late = os.urandom(16)
        created = await pair.desktop.create_unlock(late, pair.routing_id, b"late")
        assert created["notified"]["listeners"] == 1
        await asyncio.wait_for(task, 10)
        assert [(n.request_id, n.push) for n in got] == [(early, b"early"), (late, b"late")]
    finally:
        await pair.aclose()


async def test_listener_falls_back_to_polling(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url, prefer_websocket=False)
    try:
        rid = os.urandom(16)

        async def first() -> bytes:
            async for note in pair.phone.listen(poll_interval=0.2):
                return note.request_id
            return b""

        task = asyncio.create_task(first())
        await asyncio.sleep(0.3)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"x")
        assert await asyncio.wait_for(task, 10) == rid
    finally:
        await pair.aclose()


async def test_only_the_parties_can_touch_a_channel(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    stranger = RelayClient(relay.url, DeviceKey.generate(), "phone")
    try:
        rid = os.urandom(16)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"p")
        with pytest.raises(Forbidden):
            await stranger.post_reply(rid, b"forged")
        with pytest.raises(Forbidden):
            await stranger.get_unlock(rid)
        with pytest.raises(Forbidden):  # the desktop does not post replies
            await pair.desktop.post_reply(rid, b"self")
        r = httpx.delete(
            f"{relay.url}/v1/unlock/{b64e(rid)}",
            headers={"authorization": f"Bearer {await stranger.login()}"},
        )
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    finally:
        await pair.aclose()
        await stranger.aclose()


async def test_long_poll_is_answered_at_shutdown(relay_factory) -> None:
    relay = relay_factory(env={"UNLATCH_RELAY_SHUTDOWN_GRACE": "2"})
    pair = await make_pair(relay.url, prefer_websocket=False)
    try:
        rid = os.urandom(16)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"p")
        token = await pair.desktop.login()
        async with httpx.AsyncClient(timeout=40) as http:
            poll = asyncio.create_task(
                http.get(
                    f"{relay.url}/v1/unlock/{b64e(rid)}/wait?after=0&timeout=30",
                    headers={"authorization": f"Bearer {token}"},
                )
            )
            # nothing observable says the poll reached the relay: give it a moment
            await asyncio.sleep(1.0)
            t0 = asyncio.get_running_loop().time()
            relay.proc.send_signal(signal.SIGTERM)
            r = await poll
            # Answered because of the shutdown, not by the 5 s re-check: uvicorn gives
            # requests only shutdown_grace (2 s) before cancelling them, so a poll left
            # to its re-check would get no answer at all.
            assert (
                r.status_code == 200 and r.json()["messages"] == [] and r.json()["state"] == "open"
            )
            assert asyncio.get_running_loop().time() - t0 < 30
    finally:
        await pair.aclose()


async def test_the_desktop_acknowledges_on_the_socket_the_reply_came_on(
    relay: RelayProcess,
) -> None:
    """close_unlock while following the request: {"type": "close"} on that WebSocket, the
    relay's "closed" frame confirms it, the phone hears "answered, acknowledged", and no
    DELETE request is made; without a follower it is DELETE as before."""
    pair = await make_pair(relay.url)
    desktop, phone = pair.desktop, pair.phone
    try:
        rid, reply = os.urandom(16), os.urandom(200)
        await desktop.create_unlock(rid, pair.routing_id, os.urandom(64))
        got: asyncio.Queue[bytes] = asyncio.Queue()
        ended: list[str] = []

        async def follow() -> None:
            try:
                async for msg in desktop.channel_messages("unlock", rid, timeout=10):
                    await got.put(msg.data)
            except ChannelGone as exc:
                ended.append(exc.code)

        follower = asyncio.create_task(follow())
        await phone.post_reply(rid, reply)
        assert await asyncio.wait_for(got.get(), 5) == reply
        t0 = time.monotonic()
        await desktop.close_unlock(rid)
        assert time.monotonic() - t0 < 1.5  # confirmed on the socket, not after a timeout
        await asyncio.wait_for(follower, 5)
        assert ended  # the follower heard the close
        state = await phone.unlock_state(rid)
        assert (state.state, state.acknowledged) == ("answered", True)
        # without a follower: DELETE
        other = os.urandom(16)
        await desktop.create_unlock(other, pair.routing_id, os.urandom(64))
        await desktop.close_unlock(other)
        assert (await phone.unlock_state(other)).state == "cancelled"
    finally:
        await pair.aclose()
    routes = [json.loads(ln) for ln in relay.logs().splitlines() if '"event":"http"' in ln]
    deletes = [
        r
        for r in routes
        if r.get("method") == "DELETE" and r.get("route") == "/v1/unlock/{channel_id}"
    ]
    assert len(deletes) == 1, deletes  # only the one without a follower
