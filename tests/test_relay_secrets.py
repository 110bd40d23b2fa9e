"""The relay never stores or logs secrets or payloads.

A full pairing and unlock runs through a real relay with random, secret-looking
payloads, the phone woken by Web Push; then its SQLite files and its log are
searched for every secret byte string of the exchange (raw, base64url and hex):
session tokens, device private keys, the opaque payloads (which the relay may
hold only while a channel is open, and never log), and the push subscription's
capability and secrets: the endpoint path, the ``auth`` secret and what RFC 8291
derives from ``p256dh`` (ECDH secret, IKM, PRK, content key, nonce), which the
relay may hold only while the subscription is registered, and never log.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fixtures.push_endpoint import Delivery, LocalPushService, Subscription
from fixtures.relay import RelayProcess, make_pair

from unlatch.relay.codec import b64e


def _forms(secret: bytes) -> list[bytes]:
    return [secret, b64e(secret).encode(), secret.hex().encode()]


def _files(relay: RelayProcess) -> dict[str, bytes]:
    out = {}
    for path in relay.db_path.parent.glob(relay.db_path.name + "*"):
        out[path.name] = path.read_bytes()
    return out


def _private_scalar(client: object) -> bytes:
    key = client.key._key  # type: ignore[attr-defined]
    return key.private_numbers().private_value.to_bytes(32, "big")


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    h = hmac.HMAC(salt, hashes.SHA256())
    h.update(ikm)
    return h.finalize()


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    h = hmac.HMAC(prk, hashes.SHA256())
    h.update(info + b"\x01")  # one block is enough for <= 32 bytes
    return h.finalize()[:length]


def _push_secrets(sub: Subscription, delivery: Delivery) -> dict[str, bytes]:
    """Every secret of one RFC 8291 push, recomputed from the subscription's side."""
    assert sub.private_key is not None and sub.auth is not None and sub.p256dh is not None
    body = delivery.body
    salt, id_len = body[:16], body[20]
    sender_public = body[21 : 21 + id_len]
    ecdh = sub.private_key.exchange(
        ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
    )
    key_info = b"WebPush: info\x00" + sub.p256dh + sender_public
    ikm = _hkdf_expand(_hkdf_extract(sub.auth, ecdh), key_info, 32)
    prk = _hkdf_extract(salt, ikm)
    cek = _hkdf_expand(prk, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf_expand(prk, b"Content-Encoding: nonce\x00", 12)
    # the derivation is right (so searching for its values means something)
    assert AESGCM(cek).decrypt(nonce, body[21 + id_len :], None) == delivery.plaintext + b"\x02"
    private = sub.private_key.private_numbers().private_value.to_bytes(32, "big")
    return {
        "push auth secret": sub.auth,
        "push subscription private key": private,
        "push ECDH secret": ecdh,
        "push IKM": ikm,
        "push PRK": prk,
        "push content key": cek,
        "push nonce": nonce,
    }


async def test_no_secret_in_store_or_logs(
    relay: RelayProcess, tmp_path: Path, push_service: LocalPushService
) -> None:
    pair = await make_pair(relay.url)
    desktop, phone = pair.desktop, pair.phone
    vapid = httpx.get(relay.url + "/v1/push/vapid-public-key").json()["public_key"]
    sub = push_service.subscribe("webpush", application_server_key=vapid)
    await phone.set_push_target(sub.to_json())
    payloads = {
        name: os.urandom(n)
        for name, n in (
            ("push", 900),
            ("seen", 200),
            ("reply", 1000),
            ("hello2", 4000),
            ("accept2", 3000),
        )
    }
    rid = os.urandom(16)
    created = await desktop.create_unlock(rid, pair.routing_id, payloads["push"])
    assert created["notified"]["push"] == "queued"
    deadline = time.monotonic() + 20
    while not sub.delivered:
        assert time.monotonic() < deadline, [(a.status, a.reason) for a in sub.attempts]
        await asyncio.sleep(0.05)
    push_secrets = _push_secrets(sub, sub.delivered[0])
    # the endpoint path is a capability: whoever has it can push to the phone
    capability = {"push endpoint path": sub.endpoint.split("://", 1)[1].split("/", 1)[1].encode()}
    waiter = asyncio.create_task(desktop.wait_reply(rid, timeout=10))
    await phone.post_seen(rid, payloads["seen"])
    await phone.post_reply(rid, payloads["reply"])
    assert await waiter == payloads["reply"]
    # a second pairing channel with large messages, closed after use
    cid = os.urandom(16)
    await desktop.create_pairing_channel(cid)
    await phone.post_hello(cid, payloads["hello2"])
    assert (await desktop.wait_pairing_message(cid, timeout=5)).data == payloads["hello2"]
    await desktop.post_accept(cid, payloads["accept2"])
    assert (await phone.wait_pairing_message(cid, timeout=5)).data == payloads["accept2"]
    await phone.close_pairing_channel(cid)

    secrets = {
        "desktop token": desktop._token.encode(),
        "phone token": phone._token.encode(),
        "desktop private key": _private_scalar(desktop),
        "phone private key": _private_scalar(phone),
    }
    for name, client in (("desktop", desktop), ("phone", phone)):
        pem = client.key._key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        secrets[f"{name} key DER"] = pem
    # while the subscription is registered the store must hold its endpoint and auth secret
    # (to push); nothing derived from them, ever
    files = _files(relay)
    assert files, "the relay's database files were not found"
    assert any(desktop.key.public_key_raw in blob for blob in files.values()), "search sanity check"
    assert any(capability["push endpoint path"] in blob for blob in files.values()), "sanity"
    derived = {k: v for k, v in push_secrets.items() if k != "push auth secret"}
    for fname, blob in files.items():
        for name, secret in {**secrets, **derived}.items():
            for form in _forms(secret):
                assert form not in blob, f"{name} found in {fname}"
    # the phone stops push: the relay forgets the subscription
    await phone.set_push_target(None)
    assert (await phone.me())["push"] is None
    secrets.update(push_secrets)
    secrets.update(capability)
    await pair.aclose()

    relay.stop()
    files = _files(relay)
    logs = relay.logs().encode()
    assert b"session opened" in logs and b"message posted" in logs  # the log is not empty
    assert b"push sent" in logs and b"push target removed" in logs
    for name, secret in {**secrets, **payloads}.items():
        for form in _forms(secret):
            assert form not in logs, f"{name} found in the relay's log"
            for fname, blob in files.items():
                assert form not in blob, f"{name} still in {fname} after it was closed/removed"
    # nothing of the request id beyond the short correlation prefix is logged
    assert b64e(rid).encode() not in logs


async def test_real_protocol_exchange_leaves_no_secret(relay: RelayProcess) -> None:
    """A real pairing and phone unlock (unlatch.protocol) carried by the relay:
    no key, share, QR secret or pairing secret appears in its files or log."""
    import dataclasses
    import time

    from unlatch.protocol import DesktopPairing, DesktopUnlock, KeyPair, PhonePairing, PhoneUnlock
    from unlatch.protocol.unlock import Approved
    from unlatch.relay.client import RelayClient
    from unlatch.relay.device_key import DeviceKey

    now = int(time.time())
    desktop_id, phone_id = KeyPair.generate(os.urandom), KeyPair.generate(os.urandom)
    desktop = RelayClient(relay.url, DeviceKey.generate(), "desktop")
    phone = RelayClient(relay.url, DeviceKey.generate(), "phone")
    try:
        # pairing: the offer travels by QR (never to the relay), hello/accept through it
        dp = DesktopPairing(desktop_id, relay.url, now=now)
        pairing_secret = dp.offer.pairing_secret  # the desktop forgets it once paired
        await desktop.create_pairing_channel(dp.channel_id)
        pp = PhonePairing(dp.offer_bytes, phone_id, "Phone", "phone-1", now=now)
        await phone.post_hello(dp.channel_id, pp.hello_bytes)
        hello = await desktop.wait_pairing_message(dp.channel_id, timeout=10)
        dp.receive_hello(hello.data, now=now)
        accept, drec, share = dp.confirm("Desktop", "desk-1", now=now)
        await desktop.post_accept(dp.channel_id, accept)
        got = await phone.wait_pairing_message(dp.channel_id, timeout=10)
        prec = pp.receive_accept(got.data, now=now)
        await phone.close_pairing_channel(dp.channel_id)
        routing = drec.keys.routing_id
        await desktop.register_pairing(routing, hello.sender)
        assert await phone.register_pairing(routing, got.sender) == "linked"

        # unlock: the QR goes screen -> camera; push, seen and reply through the relay
        du = DesktopUnlock(drec, now=int(time.time()))
        assert du.qr is not None
        qr_secret = du.qr.qr_secret  # the desktop forgets it once the request ends
        await desktop.create_unlock(du.request_id, routing, du.push_bytes)
        note = (await phone.pending_unlocks())[0]
        assert note.push == du.push_bytes
        pu = PhoneUnlock.from_qr(du.qr_bytes, [prec], phone_id, now=int(time.time()))
        await phone.post_seen(du.request_id, pu.seen())
        await phone.post_reply(du.request_id, pu.approve(now=int(time.time())))
        reply = await desktop.wait_reply(du.request_id, timeout=10)
        outcome = du.receive_reply(reply, now=int(time.time()))
        assert isinstance(outcome, Approved) and outcome.phone_share == share
    finally:
        await desktop.aclose()
        await phone.aclose()

    secrets = {
        "phone share K_P": share,
        "desktop identity private key": desktop_id.private_bytes(),
        "phone identity private key": phone_id.private_bytes(),
        "pairing secret (QR)": pairing_secret,
        "unlock QR secret": qr_secret,
    }
    for f in dataclasses.fields(drec.keys):
        if f.name != "routing_id":  # the one id the relay is meant to know
            secrets[f"pairing key {f.name}"] = getattr(drec.keys, f.name)
    relay.stop()
    files = _files(relay)
    logs = relay.logs().encode()
    assert files and b"message posted" in logs
    for name, secret in secrets.items():
        for form in _forms(secret):
            assert form not in logs, f"{name} found in the relay's log"
            for fname, blob in files.items():
                assert form not in blob, f"{name} found in {fname}"
