"""The relay wakes phones through a real local Web Push service (tests/fixtures/push_endpoint.py).

The service checks the relay's VAPID JWT (signature, aud, exp, sub) against the
subscription's applicationServerKey and decrypts the RFC 8291 body with the
subscription's private key, so these tests exercise the real push path.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import httpx
from fixtures.relay import RelayProcess, make_pair

from unlatch.relay.codec import b64d, b64e


async def _until(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _as_relay_target(sub_json: dict) -> dict:
    """The API's spelling: ``type`` instead of the push layer's ``kind``."""
    out = {k: v for k, v in sub_json.items() if k != "kind"}
    out["type"] = sub_json["kind"]
    return out


async def test_webpush_carries_opaque_bytes_and_metadata(relay: RelayProcess, push_service) -> None:
    vapid = httpx.get(relay.url + "/v1/push/vapid-public-key").json()["public_key"]
    assert len(b64d(vapid)) == 65
    sub = push_service.subscribe("webpush", application_server_key=vapid)
    pair = await make_pair(relay.url)
    try:
        await pair.phone.set_push_target(_as_relay_target(sub.to_json()))
        me = await pair.phone.me()
        assert me["push"] == {"type": "webpush", "endpoint": sub.endpoint}
        rid, opaque = os.urandom(16), os.urandom(1024)
        created = await pair.desktop.create_unlock(rid, pair.routing_id, opaque)
        assert created["notified"]["push"] == "queued"
        await _until(lambda: len(sub.delivered) == 1)
        delivery = sub.delivered[0]
        assert delivery.claims and delivery.claims["sub"].startswith("mailto:")
        assert int(delivery.headers["ttl"]) <= 120 and delivery.headers["urgency"] == "high"
        assert len(delivery.plaintext) < 3 * 1024
        note = json.loads(delivery.plaintext)
        assert note["type"] == "unlock" and note["request_id"] == b64e(rid)
        assert b64d(note["push"]) == opaque
        assert note["routing_id"] == b64e(pair.routing_id)
        assert note["requester"]["address"] == "127.0.0.1"
        assert note["expires_at"] - note["created_at"] <= 120
        await _until(lambda: relay.metric("unlatch_relay_pushes_total", outcome="delivered") == 1)
    finally:
        await pair.aclose()


async def test_gone_subscription_is_removed(relay: RelayProcess, push_service) -> None:
    vapid = httpx.get(relay.url + "/v1/push/vapid-public-key").json()["public_key"]
    sub = push_service.subscribe("webpush", application_server_key=vapid)
    sub.answer(410)
    pair = await make_pair(relay.url)
    try:
        await pair.phone.set_push_target(
            sub.to_json()
        )  # the push layer's "kind" spelling works too
        await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"x")
        await _until(lambda: relay.metric("unlatch_relay_pushes_total", outcome="gone") == 1)
        deadline = time.monotonic() + 10
        while (await pair.phone.me())["push"] is not None:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        # the next request finds no push target (listeners only)
        created = await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"x")
        assert created["notified"]["push"] == "none"
    finally:
        await pair.aclose()


async def test_unifiedpush_and_failures_are_counted(relay: RelayProcess, push_service) -> None:
    up = push_service.subscribe("unifiedpush", encrypted=False)
    pair = await make_pair(relay.url)
    try:
        await pair.phone.set_push_target({"type": "unifiedpush", "endpoint": up.endpoint})
        rid = os.urandom(16)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"opaque-bytes")
        await _until(lambda: len(up.delivered) == 1)
        body = up.delivered[0].plaintext
        note = json.loads(body)
        # a plain distributor reads the body: it gets only the random request id and the
        # desktop's sealed bytes; no routing id (which links a pairing's requests), no
        # requester address or user agent, no timestamps
        assert note == {
            "v": 1,
            "type": "unlock",
            "request_id": b64e(rid),
            "push": b64e(b"opaque-bytes"),
        }
        assert b64e(pair.routing_id).encode() not in body and b"127.0.0.1" not in body
        # the phone fetches the rest over its own authenticated connection
        full = await pair.phone.get_unlock(rid)
        assert full.routing_id == pair.routing_id and full.requester_address == "127.0.0.1"
        # a push service that keeps failing: retried, then counted as failed; the target stays
        up.answer(500, times=10)
        await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"x")
        await _until(lambda: relay.metric("unlatch_relay_pushes_total", outcome="failed") == 1, 30)
        assert len(up.attempts) >= 3
        assert (await pair.phone.me())["push"]["endpoint"] == up.endpoint
    finally:
        await pair.aclose()


async def test_bad_push_targets_are_refused(relay: RelayProcess) -> None:
    pair = await make_pair(relay.url)
    try:
        token = await pair.phone.login()
        bad = [
            {
                "type": "webpush",
                "endpoint": "http://push.example.org/x",
                "keys": {"p256dh": "x", "auth": "y"},
            },
            {"type": "webpush", "endpoint": "https://push.example.org/x"},  # keys missing
            {"type": "carrier-pigeon", "endpoint": "https://push.example.org/x"},
            {"type": "unifiedpush", "endpoint": "https://user:pw@push.example.org/x"},
            {"type": "unifiedpush", "endpoint": "https://push.example.org/" + "a" * 3000},
            {"type": "unifiedpush", "endpoint": "https://push.example.org/x", "kind": "webpush"},
        ]
        for target in bad:
            r = httpx.put(
                relay.url + "/v1/devices/me/push",
                json=target,
                headers={"authorization": f"Bearer {token}"},
            )
            assert r.status_code == 400 and r.json()["error"] == "bad_request", target
        # a desktop cannot register a push target
        r = httpx.put(
            relay.url + "/v1/devices/me/push",
            json={"type": "unifiedpush", "endpoint": "https://push.example.org/x"},
            headers={"authorization": f"Bearer {await pair.desktop.login()}"},
        )
        assert r.status_code == 403
    finally:
        await pair.aclose()


async def test_private_push_endpoints_are_refused_unless_the_operator_allows_them(
    relay_factory, push_service
) -> None:
    """SSRF: by default a phone cannot make the relay POST to loopback or private hosts."""
    strict = relay_factory(env={"UNLATCH_RELAY_PUSH_ALLOW_PRIVATE": "0"})
    sub = push_service.subscribe("webpush")
    pair = await make_pair(strict.url)
    try:
        token = await pair.phone.login()
        keys = sub.to_json()["keys"]
        refused = [
            {"type": "webpush", "endpoint": sub.endpoint, "keys": keys},  # http://127.0.0.1
            {"type": "unifiedpush", "endpoint": sub.endpoint.replace("/push/", "/up/")},
            {"type": "unifiedpush", "endpoint": "https://169.254.169.254/latest/meta-data"},
            {"type": "unifiedpush", "endpoint": "https://10.0.0.1/up"},
            {"type": "unifiedpush", "endpoint": "https://[::ffff:127.0.0.1]:6379/"},
            {"type": "unifiedpush", "endpoint": "https://2130706433:5432/"},
            {"type": "unifiedpush", "endpoint": "https://relay.localhost/"},
        ]
        for target in refused:
            r = httpx.put(
                strict.url + "/v1/devices/me/push",
                json=target,
                headers={"authorization": f"Bearer {token}"},
            )
            assert r.status_code == 400, target
            assert "private" in r.json()["message"], r.json()
        assert (await pair.phone.me())["push"] is None
        await pair.phone.set_push_target(
            {"type": "unifiedpush", "endpoint": "https://push.example.org/up/abc"}
        )  # a public push service is fine
    finally:
        await pair.aclose()
    # the operator's switch: --push-allow-private (tests and the demo turn it on)
    allowing = relay_factory(
        env={"UNLATCH_RELAY_PUSH_ALLOW_PRIVATE": "0"}, args=["--push-allow-private"]
    )
    pair = await make_pair(allowing.url)
    try:
        await pair.phone.set_push_target(
            {"type": "webpush", "endpoint": sub.endpoint, "keys": keys}
        )
        assert (await pair.phone.me())["push"]["endpoint"] == sub.endpoint
    finally:
        await pair.aclose()


def test_a_relay_whose_vapid_key_changed_refuses_to_start(tmp_path) -> None:
    """Phones subscribed with the key recorded in the store: another key would lose every
    push, so the relay stops with the fix instead (and --vapid-key-replace overrides)."""
    import pytest
    from fixtures.relay import start_relay

    db = tmp_path / "relay.db"
    started: list[RelayProcess] = []

    def start(home: str, *args: str) -> RelayProcess:
        vapid_key = str(tmp_path / home / "vapid.pem")  # one key file per "home"
        relay = start_relay(
            tmp_path / home,
            db_path=db,
            args=list(args),
            env={"UNLATCH_RELAY_VAPID_KEY": vapid_key},
        )
        started.append(relay)
        return relay

    def key_of(relay: RelayProcess) -> str:
        return httpx.get(relay.url + "/v1/push/vapid-public-key").json()["public_key"]

    try:
        first = start("a")
        key = key_of(first)
        first.stop()
        # same store, another key file (freshly generated)
        with pytest.raises(RuntimeError) as err:
            start("b")
        assert "relay exited with 2" in str(err.value)
        assert "VAPID key" in str(err.value) and "--vapid-key-replace" in str(err.value)
        assert "Traceback" not in str(err.value).split("unlatch: ")[-1]
        # the original key file still agrees with the store; --no-push skips the check
        again = start("a")
        assert key_of(again) == key
        again.stop()
        start("b", "--no-push").stop()
        # a deliberate change
        replaced = start("b", "--vapid-key-replace")
        assert key_of(replaced) != key
        replaced.stop()
        with pytest.raises(RuntimeError, match="VAPID key"):
            start("a")  # now the old key is the wrong one
    finally:
        for relay in started:
            relay.stop()
