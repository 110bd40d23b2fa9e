"""An unlock socket that creates its channel: ``{"type": "auth", ..., "create": {...}}``.

One round trip fewer per unlock (issue 15): the desktop's WebSocket auth frame
carries what ``POST /v1/unlock`` would, the relay makes the channel with the
same checks, wakes the phone and answers ``ready`` with ``created``. Against a
real relay process, with the real client and raw sockets for what the client
never sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any

import pytest
from fixtures.relay import RelayProcess, make_pair
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from unlatch.relay.client import RelayClient, _Create
from unlatch.relay.codec import b64e
from unlatch.relay.config import MAX_PUSH_PAYLOAD
from unlatch.relay.device_key import DeviceKey
from unlatch.relay.errors import (
    Blocked,
    ChannelExists,
    ChannelGone,
    Forbidden,
    LifetimeTooLong,
    NotPaired,
    RateLimited,
)


def http_routes(relay: RelayProcess, method: str, route: str) -> list[dict[str, Any]]:
    lines = [json.loads(ln) for ln in relay.logs().splitlines() if '"event":"http"' in ln]
    return [r for r in lines if r.get("method") == method and r.get("route") == route]


async def follow_new(
    desktop: RelayClient, rid: bytes, routing_id: bytes, push: bytes, **kw: Any
) -> tuple[list[dict[str, Any]], asyncio.Queue[bytes], asyncio.Task[str]]:
    """Start following a new request; (answers given to on_created, messages, the task)."""
    answers: list[dict[str, Any]] = []
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def run() -> str:
        try:
            async for msg in desktop.follow_new_unlock(
                rid, routing_id, push, timeout=10, on_created=answers.append, **kw
            ):
                await got.put(msg.data)
        except ChannelGone as exc:
            return exc.code
        return "deadline"

    return answers, got, asyncio.create_task(run())


async def raw_auth(relay: RelayProcess, path: str, hello: dict[str, Any]) -> list[Any]:
    """Frames a raw socket gets after its auth frame, and its close code, until it closes."""
    ws_url = relay.url.replace("http://", "ws://") + path
    async with connect(ws_url, ping_interval=None, compression=None) as ws:
        await ws.send(json.dumps({"type": "auth", **hello}))
        frames: list[Any] = []
        with contextlib.suppress(ConnectionClosed):
            while True:
                frames.append(json.loads(await ws.recv()))
                if frames[-1].get("type") == "ready":
                    break
    frames.append(ws.close_code)
    return frames


async def test_unlock_socket_creates_its_channel_in_one_round_trip(relay: RelayProcess) -> None:
    """Created on the socket: the phone is woken with the same notification (requester
    address and user agent from the upgrade), the reply arrives on that socket, the
    acknowledgement goes back on it: not one HTTP request from the desktop."""
    pair = await make_pair(relay.url)
    desktop, phone = pair.desktop, pair.phone
    try:
        rid, push, reply = os.urandom(16), os.urandom(300), os.urandom(200)
        answers, got, task = await follow_new(desktop, rid, pair.routing_id, push, ttl=60)
        while not answers:
            await asyncio.sleep(0.01)
        [answer] = answers
        assert answer["request_id"] == b64e(rid)
        assert set(answer["notified"]) == {"listeners", "push"}
        [note] = await phone.pending_unlocks()
        assert note.request_id == rid and note.push == push
        assert note.routing_id == pair.routing_id
        assert note.requester_address == "127.0.0.1"
        assert note.requester_user_agent.startswith("unlatch-desktop/")
        assert 55 <= note.expires_at - note.created_at <= 60  # the ttl asked for
        assert note.expires_at == pytest.approx(answer["expires_at"])
        await phone.post_reply(rid, reply)
        assert await asyncio.wait_for(got.get(), 5) == reply
        await desktop.close_unlock(rid)
        assert await asyncio.wait_for(task, 5) == "closed"
        state = await phone.unlock_state(rid)
        assert (state.state, state.acknowledged) == ("answered", True)
    finally:
        await pair.aclose()
    assert http_routes(relay, "POST", "/v1/unlock") == []
    assert http_routes(relay, "DELETE", "/v1/unlock/{channel_id}") == []
    assert relay.metric("unlatch_relay_channels_created_total", kind="unlock") == 1


async def test_create_refusals_on_the_socket_are_the_routes_typed_errors(
    relay: RelayProcess,
) -> None:
    """not paired, blocked, a reused id, a phone creating: the same errors as the POST,
    raised before on_created, and nothing is created."""
    pair = await make_pair(relay.url)
    desktop, phone = pair.desktop, pair.phone
    try:
        cases: list[tuple[RelayClient, bytes, bytes, type[Exception]]] = []
        cases.append((desktop, os.urandom(16), os.urandom(16), NotPaired))
        taken = os.urandom(16)
        await desktop.create_unlock(taken, pair.routing_id, b"x")
        cases.append((desktop, taken, pair.routing_id, ChannelExists))
        cases.append((phone, os.urandom(16), pair.routing_id, Forbidden))
        for client, rid, routing_id, error in cases:
            answers, _, task = await follow_new(client, rid, routing_id, b"push")
            with pytest.raises(error):
                await asyncio.wait_for(task, 5)
            assert answers == []
        await phone.block(pair.routing_id)
        answers, _, task = await follow_new(desktop, os.urandom(16), pair.routing_id, b"p")
        with pytest.raises(Blocked):
            await asyncio.wait_for(task, 5)
        await phone.unblock(pair.routing_id)
        # the client refuses a ttl over the relay's before anything is sent
        answers, _, task = await follow_new(
            desktop, os.urandom(16), pair.routing_id, b"p", ttl=10**5
        )
        with pytest.raises(LifetimeTooLong):
            await asyncio.wait_for(task, 5)
        assert [n.request_id for n in await phone.pending_unlocks()] == [taken]
    finally:
        await pair.aclose()


async def test_rate_limited_create_on_the_socket_says_when_to_retry(relay_factory) -> None:
    """A refusal's error frame is the HTTP answer's body: retry_after and scope included."""
    relay = relay_factory(env={"UNLATCH_RELAY_RATE_UNLOCK_PAIRING": "1/60"})
    pair = await make_pair(relay.url)
    try:
        rid = os.urandom(16)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"x")
        token = await pair.desktop._token_now()
        hello = {"token": token, "create": {"routing_id": b64e(pair.routing_id), "push": "eA"}}
        frames = await raw_auth(relay, f"/v1/unlock/{b64e(os.urandom(16))}/ws", hello)
        error, code = frames
        assert error["type"] == "error" and error["error"] == "rate_limited"
        assert error["scope"] == "pairing" and error["retry_after"] >= 1
        assert code == 4429
        answers, _, task = await follow_new(pair.desktop, os.urandom(16), pair.routing_id, b"p")
        with pytest.raises(RateLimited) as caught:
            await asyncio.wait_for(task, 5)
        assert caught.value.retry_after >= 1 and answers == []
    finally:
        await pair.aclose()


@pytest.mark.parametrize(
    ("kind", "create", "after", "error", "says"),
    [
        ("pairing", {"routing_id": "AA", "push": "AA"}, 0, "bad_request", "only an unlock"),
        ("unlock", "not an object", 0, "bad_request", "'create' must be an object"),
        ("unlock", {"routing_id": "R", "push": "AA"}, 2, "bad_request", "no 'after'"),
        (
            "unlock",
            {"request_id": "AA", "routing_id": "R", "push": "AA"},
            0,
            "bad_request",
            "unknown",
        ),
        ("unlock", {"routing_id": "R"}, 0, "bad_request", "missing field 'push'"),
        ("unlock", {"routing_id": "R", "push": "AA", "ttl": 100000}, 0, "bad_request", "'ttl'"),
        ("unlock", {"routing_id": "R", "push": "A" * 1370}, 0, "too_large", "over 1024"),
    ],
)
async def test_malformed_creates_are_refused_with_a_reason(
    relay: RelayProcess, kind: str, create: Any, after: int, error: str, says: str
) -> None:
    pair = await make_pair(relay.url)
    try:
        routing = b64e(pair.routing_id)
        if isinstance(create, dict) and create.get("routing_id") == "R":
            create = {**create, "routing_id": routing}
        hello = {"token": await pair.desktop._token_now(), "after": after, "create": create}
        frames = await raw_auth(relay, f"/v1/{kind}/{b64e(os.urandom(16))}/ws", hello)
        first, code = frames
        assert first["type"] == "error" and first["error"] == error, first
        assert says in first["message"]
        assert code == 4400  # too_large has no close code of its own: bad_request's
        assert await pair.phone.pending_unlocks() == []
    finally:
        await pair.aclose()
    assert relay.metric("unlatch_relay_channels_created_total", kind="unlock") == 0
    assert "ERROR" not in relay.logs()


async def test_a_create_with_the_largest_push_fits_the_auth_frame(relay: RelayProcess) -> None:
    """The auth frame limit (MAX_CLIENT_FRAME) holds the largest push the route takes."""
    pair = await make_pair(relay.url)
    try:
        push = os.urandom(MAX_PUSH_PAYLOAD)
        answers, _, task = await follow_new(pair.desktop, os.urandom(16), pair.routing_id, push)
        while not answers and not task.done():
            await asyncio.sleep(0.01)
        assert answers, task
        [note] = await pair.phone.pending_unlocks()
        assert note.push == push
        task.cancel()
    finally:
        await pair.aclose()


async def test_attack_create_on_socket_spoofed_forwarded_for_is_not_the_requester(
    relay: RelayProcess,
) -> None:
    """A desktop (or anyone in its path) that sends X-Forwarded-For from an untrusted peer
    does not choose the address the phone is shown, nor the rate-limit key: the socket's
    peer is the requester, as for the POST route."""
    pair = await make_pair(relay.url)
    try:
        rid = os.urandom(16)
        ws_url = relay.url.replace("http://", "ws://") + f"/v1/unlock/{b64e(rid)}/ws"
        headers = {"X-Forwarded-For": "198.51.100.66", "Forwarded": "for=198.51.100.67"}
        async with connect(
            ws_url, additional_headers=headers, user_agent_header="evil-agent/1", compression=None
        ) as ws:
            create = {"routing_id": b64e(pair.routing_id), "push": "eA"}
            token = await pair.desktop._token_now()
            await ws.send(json.dumps({"type": "auth", "token": token, "create": create}))
            ready = json.loads(await ws.recv())
            assert ready["type"] == "ready" and ready["state"] == "open"
            assert ready["created"]["request_id"] == b64e(rid)
        [note] = await pair.phone.pending_unlocks()
        assert note.requester_address == "127.0.0.1"
        assert note.requester_user_agent == "evil-agent/1"  # shown as sent, and bounded
    finally:
        await pair.aclose()


async def test_without_websockets_the_create_is_a_post_and_following_long_polls(
    relay: RelayProcess,
) -> None:
    pair = await make_pair(relay.url, prefer_websocket=False)
    try:
        rid, reply = os.urandom(16), os.urandom(64)
        answers, got, task = await follow_new(pair.desktop, rid, pair.routing_id, b"push")
        while not answers:
            await asyncio.sleep(0.01)
        assert answers[0]["request_id"] == b64e(rid)
        await pair.phone.post_reply(rid, reply)
        assert await asyncio.wait_for(got.get(), 5) == reply
        await pair.desktop.close_unlock(rid)
        assert await asyncio.wait_for(task, 10) == "closed"
    finally:
        await pair.aclose()
    assert len(http_routes(relay, "POST", "/v1/unlock")) == 1


async def test_a_retried_create_told_channel_exists_follows_the_channel_it_made(
    relay: RelayProcess,
) -> None:
    """A socket dropped before ``ready`` leaves the create's fate unknown: the next attempt
    told ``channel_exists`` (of this request's fresh random id) follows it; a first
    attempt told so raises (test above)."""
    pair = await make_pair(relay.url)
    try:
        rid, reply = os.urandom(16), os.urandom(64)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"x")  # "the dropped attempt"
        answers: list[dict[str, Any]] = []
        create = _Create({"routing_id": b64e(pair.routing_id), "push": "eA"}, answers.append)
        create.attempts = 1
        got: asyncio.Queue[bytes] = asyncio.Queue()

        async def run() -> None:
            async for msg in pair.desktop.channel_messages(
                "unlock", rid, timeout=10, create=create
            ):
                await got.put(msg.data)

        task = asyncio.create_task(run())
        await pair.phone.post_reply(rid, reply)
        assert await asyncio.wait_for(got.get(), 5) == reply
        assert answers == [{}] and create.attempts == 2
        task.cancel()
    finally:
        await pair.aclose()


async def test_a_device_without_a_session_cannot_create(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    stranger = RelayClient(relay.url, DeviceKey.generate(), "desktop")
    try:
        hello = {"token": "x" * 43, "create": {"routing_id": b64e(pair.routing_id), "push": "eA"}}
        first, code = await raw_auth(relay, f"/v1/unlock/{b64e(os.urandom(16))}/ws", hello)
        assert (first["error"], code) == ("unauthorized", 4401)
        # signed in, but not this pairing's desktop
        _, _, task = await follow_new(stranger, os.urandom(16), pair.routing_id, b"p")
        with pytest.raises(NotPaired):
            await asyncio.wait_for(task, 5)
        assert await pair.phone.pending_unlocks() == []
    finally:
        await stranger.aclose()
        await pair.aclose()
