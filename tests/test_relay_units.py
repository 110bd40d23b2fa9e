"""Small parts of the relay on their own: encoding, identity, proxy addresses, buckets, keys."""

from __future__ import annotations

import asyncio
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unlatch.relay.auth import (
    auth_message,
    canonical_origin,
    device_id_for,
    token_hash,
    verify_signature,
)
from unlatch.relay.codec import CodecError, b64d, b64e, json_loads
from unlatch.relay.device_key import DeviceKey, DeviceKeyError
from unlatch.relay.proxy import parse_networks
from unlatch.relay.ratelimit import MemoryRateLimiter, Rule


@given(st.binary(max_size=200))
def test_b64_roundtrip(data: bytes) -> None:
    assert b64d(b64e(data)) == data


@pytest.mark.parametrize("text", ["YQ==", "a+b/", "a b", "Y", "YR", "é", "\x00"])
def test_b64_refuses_non_canonical(text: str) -> None:
    with pytest.raises(CodecError):
        b64d(text)


def test_b64_length_bound_checked_before_decoding() -> None:
    with pytest.raises(CodecError):
        b64d("A" * 10_000, max_len=16)


@pytest.mark.parametrize(
    "text", ["[" * 5000, '{"a":' * 5000, "[" * 5000 + "]" * 5000, b"\xff\xfe[", "{"]
)
def test_json_loads_turns_every_failure_into_value_error(text: str | bytes) -> None:
    """Deep nesting raises RecursionError in json.loads; callers only catch ValueError."""
    with pytest.raises(ValueError):
        json_loads(text)
    assert json_loads(b'{"a": [1]}') == {"a": [1]}


def test_signature_binds_origin_challenge_and_key() -> None:
    key = DeviceKey.generate()
    challenge = bytes(32)
    msg = auth_message("https://relay.example", challenge, key.public_key_raw)
    sig = key.sign(msg)
    assert len(sig) == 64
    assert verify_signature(key.public_key_raw, msg, sig)
    assert not verify_signature(
        key.public_key_raw,
        auth_message("https://other.example", challenge, key.public_key_raw),
        sig,
    )
    assert not verify_signature(
        key.public_key_raw,
        auth_message("https://relay.example", b"\x01" * 32, key.public_key_raw),
        sig,
    )
    assert not verify_signature(DeviceKey.generate().public_key_raw, msg, sig)
    assert not verify_signature(key.public_key_raw, msg, bytes(64))
    assert not verify_signature(b"\x04" + bytes(64), msg, sig)
    assert not verify_signature(key.public_key_raw, msg, sig[:63])
    # length prefixes: moving bytes between fields changes the message
    assert auth_message("ab", b"c", b"") != auth_message("a", b"bc", b"")


def test_ids_and_token_hashes_are_labelled() -> None:
    key = DeviceKey.generate()
    assert len(key.device_id) == 22 and key.device_id == device_id_for(key.public_key_raw)
    assert token_hash("t") != token_hash("u") and len(token_hash("t")) == 32


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Relay.Example.org/", "https://relay.example.org"),
        ("https://relay.example.org:443/x", "https://relay.example.org"),
        ("http://127.0.0.1:8470", "http://127.0.0.1:8470"),
        ("http://[::1]:80/", "http://[::1]"),
    ],
)
def test_canonical_origin(url: str, origin: str) -> None:
    assert canonical_origin(url) == origin


def test_device_key_file_is_private_and_reloads(tmp_path) -> None:
    path = tmp_path / "keys" / "relay-device.pem"
    key = DeviceKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DeviceKey.load_or_create(path).device_id == key.device_id
    path.write_text("not a key")
    with pytest.raises(DeviceKeyError):
        DeviceKey.load(path)
    with pytest.raises(DeviceKeyError):
        DeviceKey.load(tmp_path / "absent.pem")


def test_parse_networks_refuses_garbage() -> None:
    with pytest.raises(ValueError, match="not an address"):
        parse_networks(["10.0.0.0/33"])


def test_rule_parse() -> None:
    assert Rule.parse("10/60") == Rule(10, 60.0)
    for bad in ("10", "x/60", "0/60", "10/0", "10/-1"):
        with pytest.raises(ValueError):
            Rule.parse(bad)


async def test_token_bucket_all_or_nothing() -> None:
    limiter = MemoryRateLimiter()
    small, big = Rule(1, 60), Rule(100, 60)
    assert await limiter.acquire([("a", "k1", small), ("b", "k2", big)]) is None
    denied = await limiter.acquire([("b", "k2", big), ("a", "k1", small)])
    assert denied is not None and denied.scope == "a" and 0 < denied.retry_after <= 60
    # the refused request took nothing from k2: 99 tokens remain
    for _ in range(99):
        assert await limiter.acquire([("b", "k2", big)]) is None
    assert await limiter.acquire([("b", "k2", big)]) is not None
    fast = Rule(1, 0.1)
    assert await limiter.acquire([("f", "k3", fast)]) is None
    assert await limiter.acquire([("f", "k3", fast)]) is not None
    await asyncio.sleep(0.12)
    assert await limiter.acquire([("f", "k3", fast)]) is None


async def test_token_bucket_memory_is_bounded() -> None:
    limiter = MemoryRateLimiter(max_keys=100)
    for i in range(1000):
        await limiter.acquire([("ip", f"ip:{i}", Rule(1, 60))])
    assert len(limiter._buckets) == 100
