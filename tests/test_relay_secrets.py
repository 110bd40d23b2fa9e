"""The relay never stores or logs secrets or payloads.

A full pairing and unlock runs through a real relay with random, secret-looking
payloads; then its SQLite files and its log are searched for every secret byte
string of the exchange (raw, base64url and hex): session tokens, device private
keys, and the opaque payloads (which the relay may hold only while a channel is
open, and never log).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
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


async def test_no_secret_in_store_or_logs(relay: RelayProcess, tmp_path: Path) -> None:
    pair = await make_pair(relay.url)
    desktop, phone = pair.desktop, pair.phone
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
    await desktop.create_unlock(rid, pair.routing_id, payloads["push"])
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
    await pair.aclose()

    # while running: tokens and keys never reach the store (only hashes / public keys)
    files = _files(relay)
    assert files, "the relay's database files were not found"
    assert any(desktop.key.public_key_raw in blob for blob in files.values()), "search sanity check"
    for fname, blob in files.items():
        for name, secret in secrets.items():
            for form in _forms(secret):
                assert form not in blob, f"{name} found in {fname}"

    relay.stop()
    files = _files(relay)
    logs = relay.logs().encode()
    assert b"session opened" in logs and b"message posted" in logs  # the log is not empty
    for name, secret in {**secrets, **payloads}.items():
        for form in _forms(secret):
            assert form not in logs, f"{name} found in the relay's log"
            for fname, blob in files.items():
                assert form not in blob, f"{name} still in {fname} after the channel was closed"
    # nothing of the request id beyond the short correlation prefix is logged
    assert b64e(rid).encode() not in logs
