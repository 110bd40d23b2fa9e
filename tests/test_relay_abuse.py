"""Abuse of a real relay process: malformed and oversized input, forged auth,
rate-limit bursts, pending caps, many idle WebSockets and slow clients.

Every refusal must be a 4xx with a JSON error, and the relay must stay up and
responsive; its log must hold no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time

import httpx
import pytest
from fixtures.relay import RelayProcess, make_pair, read_http_response
from websockets.asyncio.client import connect

from unlatch.relay.auth import auth_message
from unlatch.relay.codec import b64e
from unlatch.relay.device_key import DeviceKey
from unlatch.relay.errors import RateLimited, TooManyPending

BIG = "A" * 20000


def _cases(
    pair_routing: str, pairing_id: str, unlock_id: str
) -> list[tuple[str, str, str, object]]:
    """(device, method, path, body) for every write path, each with bad bodies."""
    rid = b64e(os.urandom(16))
    good16 = b64e(os.urandom(16))
    writes: list[tuple[str, str, str, dict[str, object]]] = [
        ("none", "POST", "/v1/auth/challenge", {}),
        (
            "none",
            "POST",
            "/v1/auth/session",
            {
                "public_key": b64e(b"\x04" + os.urandom(64)),
                "kind": "phone",
                "challenge": b64e(os.urandom(32)),
                "signature": b64e(os.urandom(64)),
            },
        ),
        (
            "phone",
            "PUT",
            "/v1/devices/me/push",
            {"type": "webpush", "endpoint": "https://x.invalid/"},
        ),
        ("desktop", "POST", "/v1/pairing", {"channel_id": good16}),
        ("phone", "POST", f"/v1/pairing/{pairing_id}/hello", {"data": "aGVsbG8"}),
        ("desktop", "POST", f"/v1/pairing/{pairing_id}/accept", {"data": "aGVsbG8"}),
        ("desktop", "POST", "/v1/pairings", {"routing_id": good16, "peer_device_id": "x"}),
        ("phone", "POST", f"/v1/pairings/{pair_routing}/block", {}),
        ("phone", "POST", f"/v1/pairings/{pair_routing}/unblock", {}),
        (
            "desktop",
            "POST",
            "/v1/unlock",
            {"request_id": rid, "routing_id": pair_routing, "push": "eA"},
        ),
        ("phone", "POST", f"/v1/unlock/{unlock_id}/seen", {"data": "eA"}),
        ("phone", "POST", f"/v1/unlock/{unlock_id}/reply", {"data": "eA"}),
    ]
    out: list[tuple[str, str, str, object]] = []
    for who, method, path, good in writes:
        out.append((who, method, path, b"{not json"))
        out.append((who, method, path, b"[1, 2, 3]"))
        out.append((who, method, path, b'"just a string"'))
        out.append((who, method, path, b"\xff\xfe\x00garbage"))
        out.append((who, method, path, json.dumps({**good, "extra": 1}).encode()))
        out.append((who, method, path, json.dumps({"x": BIG}).encode()))  # > 16 KiB body
        # nesting deeper than the JSON parser's recursion limit (10 KB, under the body cap)
        out.append((who, method, path, b"[" * 5000 + b"]" * 5000))
        out.append((who, method, path, b'{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}"))
        out.append((who, method, path, b"{" * 5000))
        for key, value in good.items():
            if isinstance(value, str):
                for bad in ("not base64!", "", BIG[:6000], 12345, None, ["a"], "YQ=="):
                    out.append((who, method, path, json.dumps({**good, key: bad}).encode()))
    # path ids that are not 16 bytes of base64url
    for path in (
        "/v1/unlock/short/reply",
        "/v1/unlock/%00%ff/reply",
        f"/v1/unlock/{'A' * 300}/seen",
        "/v1/pairing/!!!!/hello",
        "/v1/pairings/zz/block",
    ):
        out.append(("phone", "POST", path, json.dumps({"data": "eA"}).encode()))
    return out


async def test_every_write_path_answers_bad_input_with_4xx_json(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    try:
        pairing_id = os.urandom(16)
        await pair.desktop.create_pairing_channel(pairing_id)
        unlock_id = os.urandom(16)
        await pair.desktop.create_unlock(unlock_id, pair.routing_id, b"p")
        tokens = {"desktop": await pair.desktop.login(), "phone": await pair.phone.login()}
        cases = _cases(b64e(pair.routing_id), b64e(pairing_id), b64e(unlock_id))
        assert len(cases) > 150
        async with httpx.AsyncClient(base_url=relay.url) as http:
            for who, method, path, body in cases:
                headers = {"content-type": "application/json"}
                if who in tokens:
                    headers["authorization"] = f"Bearer {tokens[who]}"
                r = await http.request(method, path, content=body, headers=headers)
                assert 400 <= r.status_code < 500, (method, path, body[:80], r.status_code, r.text)
                assert r.headers["content-type"].startswith("application/json"), (path, r.text)
                err = r.json()
                assert isinstance(err.get("error"), str) and isinstance(err.get("message"), str)
            # wrong content type and unauthenticated writes
            r = await http.post(
                "/v1/unlock",
                content=b"data=1",
                headers={
                    "content-type": "application/x-www-form-urlencoded",
                    "authorization": f"Bearer {tokens['desktop']}",
                },
            )
            assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
            r = await http.post("/v1/unlock", json={}, headers={"authorization": "Bearer nope"})
            assert r.status_code == 401 and r.json()["error"] == "unauthorized"
            r = await http.post("/v1/nothing-here", json={})
            assert r.status_code == 404 and r.json()["error"] == "not_found"
            r = await http.patch("/v1/unlock")
            assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
            for q in (
                "after=-1",
                "after=x",
                "timeout=999",
                "timeout=1e3",
                "timeout=%C2%B2",  # superscript two: str.isdigit() says yes, int() says no
                "after=%D9%A3",  # Arabic-Indic three
                "timeout=%EF%BC%91",  # fullwidth one
            ):
                r = await http.get(
                    f"/v1/unlock/{b64e(unlock_id)}/wait?{q}",
                    headers={"authorization": f"Bearer {tokens['desktop']}"},
                )
                assert r.status_code == 400 and r.json()["error"] == "bad_request", q
            # the real exchange still works after all that
            assert (await http.get("/healthz")).status_code == 200
        await pair.phone.post_reply(unlock_id, b"still fine")
        assert await pair.desktop.wait_reply(unlock_id, timeout=5) == b"still fine"
    finally:
        await pair.aclose()
    logs = relay.logs()
    assert "Traceback" not in logs
    assert '"level":"error"' not in logs, [ln for ln in logs.splitlines() if '"error"' in ln][:3]


async def test_forged_and_replayed_authentication(relay: RelayProcess) -> None:
    key = DeviceKey.generate()
    async with httpx.AsyncClient(base_url=relay.url) as http:

        async def challenge() -> bytes:
            from unlatch.relay.codec import b64d

            return b64d((await http.post("/v1/auth/challenge")).json()["challenge"])

        async def session(ch: bytes, sig: bytes, pub: bytes | None = None) -> httpx.Response:
            return await http.post(
                "/v1/auth/session",
                json={
                    "public_key": b64e(pub or key.public_key_raw),
                    "kind": "desktop",
                    "challenge": b64e(ch),
                    "signature": b64e(sig),
                },
            )

        ch = await challenge()
        # a signature for another relay's origin is useless here
        r = await session(
            ch, key.sign(auth_message("https://evil.example", ch, key.public_key_raw))
        )
        assert r.status_code == 401 and r.json()["error"] == "bad_signature"
        # the challenge was consumed by that attempt
        good = key.sign(auth_message(relay.url, ch, key.public_key_raw))
        r = await session(ch, good)
        assert r.status_code == 401 and r.json()["error"] == "bad_challenge"
        # another device's key cannot sign for this public key
        ch = await challenge()
        other = DeviceKey.generate()
        r = await session(ch, other.sign(auth_message(relay.url, ch, key.public_key_raw)))
        assert r.status_code == 401
        # a made-up challenge is refused; a real one works once
        r = await session(
            os.urandom(32), key.sign(auth_message(relay.url, os.urandom(32), key.public_key_raw))
        )
        assert r.status_code == 401 and r.json()["error"] == "bad_challenge"
        ch = await challenge()
        sig = key.sign(auth_message(relay.url, ch, key.public_key_raw))
        r = await session(ch, sig)
        assert r.status_code == 200 and r.json()["device_id"] == key.device_id
        r = await session(ch, sig)  # replay
        assert r.status_code == 401 and r.json()["error"] == "bad_challenge"
        # not a point on the curve
        ch = await challenge()
        r = await session(ch, os.urandom(64), pub=b"\x04" + b"\x01" * 64)
        assert r.status_code == 400
        # same key, other kind: refused
        ch = await challenge()
        r = await http.post(
            "/v1/auth/session",
            json={
                "public_key": b64e(key.public_key_raw),
                "kind": "phone",
                "challenge": b64e(ch),
                "signature": b64e(key.sign(auth_message(relay.url, ch, key.public_key_raw))),
            },
        )
        assert r.status_code == 403 and r.json()["error"] == "forbidden"


async def test_unlock_rate_limits_per_pairing_with_retry_after(relay_factory) -> None:
    relay = relay_factory(
        liberal=False,
        env={"UNLATCH_RELAY_RATE_UNLOCK_PAIRING": "3/60", "UNLATCH_RELAY_RATE_AUTH_IP": "1000/1"},
    )
    pair = await make_pair(relay.url)
    try:
        for _ in range(3):
            await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        token = await pair.desktop.login()
        r = httpx.post(
            f"{relay.url}/v1/unlock",
            headers={"authorization": f"Bearer {token}"},
            json={
                "request_id": b64e(os.urandom(16)),
                "routing_id": b64e(pair.routing_id),
                "push": "eA",
            },
        )
        assert r.status_code == 429
        body = r.json()
        assert body["error"] == "rate_limited" and body["scope"] == "pairing"
        assert 1 <= int(r.headers["retry-after"]) <= 20 and body["retry_after"] == int(
            r.headers["retry-after"]
        )
        with pytest.raises(RateLimited) as err:
            await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        assert err.value.retry_after >= 1
        assert relay.metric("unlatch_relay_rate_limited_total", scope="pairing") == 2
    finally:
        await pair.aclose()


async def test_rate_limits_per_ip_device_and_push(relay_factory) -> None:
    relay = relay_factory(
        liberal=False,
        env={
            "UNLATCH_RELAY_RATE_AUTH_IP": "8/60",
            "UNLATCH_RELAY_RATE_UNLOCK_DEVICE": "2/60",
            "UNLATCH_RELAY_RATE_UNLOCK_PAIRING": "50/60",
        },
    )
    pair = await make_pair(relay.url)  # uses 2 of the 8 auth tokens
    try:
        await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        with pytest.raises(RateLimited) as err:
            await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        assert err.value.code == "rate_limited" and "device" in str(err.value)
        codes = [httpx.post(f"{relay.url}/v1/auth/challenge").status_code for _ in range(8)]
        assert codes.count(429) >= 1 and codes[0] == 200
        r = httpx.post(f"{relay.url}/v1/auth/challenge")
        assert r.status_code == 429 and r.json()["scope"] == "ip" and "retry-after" in r.headers
    finally:
        await pair.aclose()
    push_relay = relay_factory(
        liberal=False,
        env={"UNLATCH_RELAY_RATE_PUSH": "1/60", "UNLATCH_RELAY_RATE_UNLOCK_PAIRING": "50/60"},
    )
    pair = await make_pair(push_relay.url)
    try:
        await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        with pytest.raises(RateLimited) as err:
            await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        assert "push" in str(err.value)
    finally:
        await pair.aclose()


async def test_pending_channel_cap(relay_factory) -> None:
    relay = relay_factory(env={"UNLATCH_RELAY_MAX_PENDING_UNLOCK": "2"})
    pair = await make_pair(relay.url)
    try:
        first = os.urandom(16)
        await pair.desktop.create_unlock(first, pair.routing_id, b"p")
        await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        with pytest.raises(TooManyPending) as err:
            await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
        assert err.value.status == 429
        await pair.desktop.close_unlock(first)  # closing one frees a slot
        await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p")
    finally:
        await pair.aclose()


async def test_many_idle_websockets_and_slow_clients(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    sockets = []
    stalled: list[socket.socket] = []
    try:
        token = await pair.phone.login()
        ws_url = relay.url.replace("http", "ws") + "/v1/listen"

        async def open_listener() -> object:
            ws = await connect(ws_url, open_timeout=20)
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv())["type"] == "ready"
            return ws

        for start in range(0, 300, 50):
            sockets += await asyncio.gather(*(open_listener() for _ in range(50)))
        assert relay.metric("unlatch_relay_websockets_open", endpoint="listen") == 300
        # slow clients: half-sent requests and never-read sockets
        for _ in range(30):
            s = socket.create_connection(("127.0.0.1", relay.port))
            s.sendall(b'POST /v1/unlock HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n{"a')
            stalled.append(s)
        # the relay stays responsive: health and a full exchange
        t0 = time.monotonic()
        async with httpx.AsyncClient() as http:
            for _ in range(20):
                assert (await http.get(relay.url + "/healthz")).status_code == 200
        assert time.monotonic() - t0 < 30  # responsive, not stuck behind the slow clients
        rid, reply = os.urandom(16), os.urandom(200)
        created = await pair.desktop.create_unlock(rid, pair.routing_id, b"p")
        assert created["notified"]["listeners"] == 300
        await pair.phone.post_reply(rid, reply)
        assert await pair.desktop.wait_reply(rid, timeout=10) == reply
        # every idle listener received the notification (none of them reads fast)
        got = await asyncio.gather(*(asyncio.wait_for(ws.recv(), 10) for ws in sockets[:50]))
        assert all(json.loads(g)["request_id"] == b64e(rid) for g in got)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        for s in stalled:
            s.close()
        await pair.aclose()
    deadline = time.monotonic() + 10
    while relay.metric("unlatch_relay_websockets_open") > 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert relay.metric("unlatch_relay_websockets_open") == 0


async def test_websocket_protocol_errors_close_cleanly(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    try:
        rid = os.urandom(16)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"p")
        base = relay.url.replace("http", "ws")
        cases = [
            (f"/v1/unlock/{b64e(rid)}/ws", "not json", 4400),
            (f"/v1/unlock/{b64e(rid)}/ws", json.dumps({"type": "auth", "token": "bogus"}), 4401),
            (
                f"/v1/unlock/{b64e(os.urandom(16))}/ws",
                json.dumps({"type": "auth", "token": await pair.desktop.login()}),
                4404,
            ),
            (
                f"/v1/unlock/{b64e(rid)}/ws",  # the phone may not wait on the desktop's channel
                json.dumps({"type": "auth", "token": await pair.phone.login()}),
                4403,
            ),
            ("/v1/unlock/xyz/ws", json.dumps({"type": "auth", "token": "t"}), 4400),
            ("/v1/listen", json.dumps({"type": "auth", "token": await pair.desktop.login()}), 4403),
            (f"/v1/unlock/{b64e(rid)}/ws", "x" * 5000, 4400),
            # nested deeper than the parser's recursion limit, within the 2 KiB frame cap
            (f"/v1/unlock/{b64e(rid)}/ws", "[" * 2000, 4400),
            ("/v1/listen", '{"type": "auth", "token": ' + "[" * 1000 + "]" * 1000 + "}", 4400),
        ]
        for path, first, code in cases:
            ws = await connect(base + path)
            with contextlib.suppress(Exception):  # the relay may refuse before reading it
                await ws.send(first)
            frames = []
            with pytest.raises(Exception):
                while True:
                    frames.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
            assert ws.close_code == code, (path, first[:40], ws.close_code)
            assert frames and frames[0]["type"] == "error"
        # after a good auth, frames that are not the expected objects are ignored, and the
        # socket keeps answering pings
        ws = await connect(base + f"/v1/unlock/{b64e(rid)}/ws")
        await ws.send(json.dumps({"type": "auth", "token": await pair.desktop.login()}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "ready"
        for junk in ('["ping"]', '"ping"', '{"type": "ping", "x": ' + "[" * 1500 + "}"):
            await ws.send(junk)
        await ws.send('{"type": "ping"}')
        assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "pong"}
        await ws.close()
        assert (await asyncio.to_thread(httpx.get, relay.url + "/healthz")).status_code == 200
    finally:
        await pair.aclose()
    logs = relay.logs()
    assert "Traceback" not in logs
    assert '"level":"error"' not in logs, [ln for ln in logs.splitlines() if '"error"' in ln][:3]


async def test_slow_bodies_get_408_and_the_connection_cap_answers_503(relay_factory) -> None:
    """Headers then a trickle of body: answered 408 at the deadline, and while such clients
    hold every allowed connection, new requests get a quick 503 instead of piling up."""
    relay = relay_factory(
        env={"UNLATCH_RELAY_BODY_TIMEOUT": "2", "UNLATCH_RELAY_MAX_CONNECTIONS": "16"}
    )
    stalled: list[socket.socket] = []
    try:
        started = time.monotonic()
        for _ in range(16):
            s = socket.create_connection(("127.0.0.1", relay.port))
            s.settimeout(30)
            s.sendall(
                b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            stalled.append(s)
        # every allowed connection is held: a new request is refused at once, not queued
        r = await asyncio.to_thread(httpx.get, relay.url + "/healthz", timeout=10)
        assert r.status_code == 503
        answers = await asyncio.gather(*(asyncio.to_thread(read_http_response, s) for s in stalled))
        statuses = [status for status, _, _ in answers]
        assert set(statuses) <= {408, 503}, statuses
        assert statuses.count(408) >= 12, statuses  # the cap refuses the last one or two
        assert time.monotonic() - started >= 1.5  # the deadline, not an instant refusal
        for status, headers, body in answers:
            if status == 408:
                assert headers["content-type"].startswith("application/json")
                assert json.loads(body)["error"] == "request_timeout"
                assert headers.get("connection") == "close"
        # the relay closes them (the rest of the body would be garbage) ...
        for s in stalled:
            with contextlib.suppress(OSError):
                assert s.recv(100) == b""
    finally:
        for s in stalled:
            s.close()
    # ... and serves again once they are gone
    deadline = time.monotonic() + 20
    while True:
        r = await asyncio.to_thread(httpx.get, relay.url + "/healthz", timeout=10)
        if r.status_code == 200:
            break
        assert time.monotonic() < deadline, r.status_code
        await asyncio.sleep(0.1)
    assert "Traceback" not in relay.logs()


def _established(local_port: int, remote_port: int) -> bool:
    """Whether the kernel holds an open TCP connection local_port <-> remote_port (Linux)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                local, remote, state = fields[1], fields[2], fields[3]
                if (
                    int(local.rsplit(":", 1)[1], 16) == local_port
                    and int(remote.rsplit(":", 1)[1], 16) == remote_port
                    and state == "01"
                ):
                    return True
    return False


async def test_a_websocket_client_that_stops_reading_is_cut_off(relay_factory) -> None:
    """A listener that never reads: once the buffers are full and a send has waited
    ws_send_timeout, the relay drops the socket *and* the TCP connection (a plain close
    would wait for ever for the buffers to drain), and stays healthy."""
    relay = relay_factory(env={"UNLATCH_RELAY_WS_SEND_TIMEOUT": "2"})
    pair = await make_pair(relay.url)
    sock = socket.socket()
    try:
        token = await pair.phone.login()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", relay.port))
        client_port = sock.getsockname()[1]
        # max_queue=1: the client library stops reading the socket after one unread frame
        ws = await connect(
            relay.url.replace("http", "ws") + "/v1/listen",
            sock=sock,
            max_queue=1,
            ping_interval=None,
        )
        await ws.send(json.dumps({"type": "auth", "token": token}))
        assert json.loads(await ws.recv())["type"] == "ready"
        assert _established(relay.port, client_port)
        # each notification is ~1.8 KB; the kernel buffers on loopback take a few MB
        desktop_token = await pair.desktop.login()
        payload = {"routing_id": b64e(pair.routing_id), "push": b64e(os.urandom(1024))}
        headers = {"authorization": f"Bearer {desktop_token}", "user-agent": "u" * 200}
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(base_url=relay.url, headers=headers, timeout=30) as http:
            while relay.metric("unlatch_relay_websockets_open", endpoint="listen") > 0:
                assert time.monotonic() < deadline, "the stalled listener was never dropped"
                codes = await asyncio.gather(
                    *(
                        http.post(
                            "/v1/unlock", json={**payload, "request_id": b64e(os.urandom(16))}
                        )
                        for _ in range(50)
                    )
                )
                assert all(r.status_code == 201 for r in codes)
        # the TCP connection is gone too, not just the relay's task
        deadline = time.monotonic() + 30
        while _established(relay.port, client_port):
            assert time.monotonic() < deadline, "the stalled connection is still open"
            await asyncio.sleep(0.1)
        assert "the client stopped reading" in relay.logs()
        # everyone else is served as before
        rid, reply = os.urandom(16), os.urandom(200)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"p")
        await pair.phone.post_reply(rid, reply)
        assert await pair.desktop.wait_reply(rid, timeout=10) == reply
    finally:
        sock.close()
        await pair.aclose()
    assert "Traceback" not in relay.logs()


async def test_attack_websocket_framing_edge_cases(relay: RelayProcess) -> None:
    """The relay's own WebSocket driver (unlatch/relay/socket_driver.py) against odd clients:
    an upgrade to a path with no socket, a fragmented auth frame, a binary first frame, a
    message over the 16 KiB cap, invalid UTF-8: each a clear answer, none an error line."""
    pair = await make_pair(relay.url)
    try:
        rid = os.urandom(16)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"p")
        base = relay.url.replace("http", "ws")
        token = await pair.desktop.login()
        # no WebSocket at this path: a JSON 404 before any upgrade
        with pytest.raises(Exception) as refused:
            await connect(base + "/v1/nowhere")
        assert "404" in str(refused.value)
        # an auth frame in three fragments is one message
        ws = await connect(base + f"/v1/unlock/{b64e(rid)}/ws")
        text = json.dumps({"type": "auth", "token": token})
        await ws.send(iter([text[:5], text[5:20], text[20:]]))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "ready"
        await ws.close()
        # a binary first frame is not an auth message
        ws = await connect(base + f"/v1/unlock/{b64e(rid)}/ws")
        await ws.send(b'{"type": "auth"}')
        with pytest.raises(Exception):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 4400
        # over the message cap: 1009 (message too big)
        ws = await connect(base + f"/v1/unlock/{b64e(rid)}/ws", max_size=None)
        with contextlib.suppress(Exception):
            await ws.send("x" * (17 * 1024))
        with pytest.raises(Exception):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009
        # invalid UTF-8 in a text frame: 1007, logged at debug only
        raw = socket.create_connection(("127.0.0.1", relay.port))
        raw.sendall(
            b"GET /v1/unlock/" + b64e(rid).encode() + b"/ws HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        assert b"101" in await asyncio.to_thread(raw.recv, 4096)
        payload = b"\xff\xfe"
        mask = b"\x01\x02\x03\x04"
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        raw.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
        frame = await asyncio.to_thread(raw.recv, 4096)
        assert frame[0] == 0x88 and int.from_bytes(frame[2:4], "big") == 1007
        raw.close()
    finally:
        await pair.aclose()
    logs = relay.logs()
    assert "Traceback" not in logs
    assert '"level":"error"' not in logs
