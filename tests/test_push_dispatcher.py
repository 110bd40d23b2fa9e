"""Sending pushes through a real local push service: encryption, VAPID, outcomes, retries."""

from __future__ import annotations

import email.utils
import logging
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fixtures.push_endpoint import LocalPushService

from unlatch.push import (
    InvalidPushOptions,
    InvalidPushTarget,
    PayloadTooLarge,
    PushDispatcher,
    PushTarget,
    VapidKeys,
)
from unlatch.push.dispatcher import parse_retry_after

SUBJECT = "mailto:relay-operator@example.org"
PAYLOAD = b"\x01opaque-protocol-ciphertext\x00\xff" * 8


@pytest.fixture
def vapid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> VapidKeys:
    monkeypatch.setenv("UNLATCH_HOME", str(tmp_path / "home"))
    return VapidKeys.load_or_create(tmp_path / "home" / "relay" / "vapid.pem")


@pytest.fixture
async def dispatcher(vapid: VapidKeys) -> AsyncIterator[PushDispatcher]:
    async with PushDispatcher(vapid, SUBJECT, max_attempts=4, base_backoff=0.01) as d:
        yield d


async def test_a_host_name_resolving_to_a_private_address_is_refused_before_sending(
    push_service: LocalPushService, vapid: VapidKeys
) -> None:
    """SSRF through DNS: a name (not an IP literal) that resolves to loopback/private.

    This machine's own host name resolves to a loopback or private address on
    CI machines and containers (Debian maps it to 127.0.1.1 in /etc/hosts).
    """
    import ipaddress

    host = socket.gethostname()
    try:
        infos = socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except OSError:
        pytest.skip(f"this machine's host name {host!r} does not resolve")
    addresses = {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos}
    if any(a.is_global for a in addresses) or host.lower().rstrip(".").endswith("localhost"):
        pytest.skip(f"this machine's host name {host!r} resolves to a public address")
    sub = push_service.subscribe(application_server_key=vapid.public_key_b64url)
    port = push_service.origin.rsplit(":", 1)[1]
    endpoint = f"https://{host}:{port}/push/{sub.id}"
    target = PushTarget.from_json({**sub.to_json(), "endpoint": endpoint})  # a name parses
    async with PushDispatcher(vapid, SUBJECT, max_attempts=1) as d:
        with pytest.raises(InvalidPushTarget, match="resolves to a loopback, private"):
            await d.send(target, PAYLOAD)
    async with PushDispatcher(vapid, SUBJECT, max_attempts=1, allow_private=True) as d:
        # allowed: it is tried (and fails, the local service speaks plain http)
        assert (await d.send(target, PAYLOAD)).outcome == "failed"
    assert sub.delivered == []


async def test_web_push_round_trip_decrypts_to_the_payload(
    push_service: LocalPushService, dispatcher: PushDispatcher, vapid: VapidKeys
) -> None:
    sub = push_service.subscribe(application_server_key=vapid.public_key_b64url)
    target = PushTarget.from_json(sub.to_json(), allow_private=True)
    before = time.time()
    result = await dispatcher.send(target, PAYLOAD, ttl=90, urgency="high", topic="unlock-req")
    assert (result.outcome, result.status, result.attempts) == ("delivered", 201, 1)
    [delivery] = sub.attempts
    assert delivery.plaintext == PAYLOAD
    assert PAYLOAD not in delivery.body, "the push service saw only ciphertext"
    assert len(delivery.body) == 86 + len(PAYLOAD) + 1 + 16
    headers = delivery.headers
    assert headers["ttl"] == "90"
    assert headers["urgency"] == "high"
    assert headers["topic"] == "unlock-req"
    assert headers["content-encoding"] == "aes128gcm"
    assert delivery.claims is not None
    assert delivery.claims["aud"] == push_service.origin
    assert delivery.claims["sub"] == SUBJECT
    assert before < delivery.claims["exp"] <= time.time() + 24 * 3600


async def test_vapid_token_is_reused_per_origin_but_messages_differ(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    sub = push_service.subscribe()
    target = PushTarget.from_json(sub.to_json(), allow_private=True)
    for _ in range(2):
        assert (await dispatcher.send(target, b"same payload")).outcome == "delivered"
    first, second = sub.attempts
    assert first.headers["authorization"] == second.headers["authorization"]
    assert first.body != second.body
    assert first.plaintext == second.plaintext == b"same payload"


async def test_payloadless_push_is_a_bare_wake_up(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    sub = push_service.subscribe()
    result = await dispatcher.send(PushTarget.from_json(sub.to_json(), allow_private=True), b"")
    assert result.outcome == "delivered"
    assert sub.attempts[0].body == b"" and "content-encoding" not in sub.attempts[0].headers


async def test_push_signed_by_another_relay_key_is_refused_without_retry(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    other_relay = VapidKeys.generate()
    sub = push_service.subscribe(application_server_key=other_relay.public_key_b64url)
    result = await dispatcher.send(PushTarget.from_json(sub.to_json(), allow_private=True), PAYLOAD)
    assert (result.outcome, result.status, result.attempts) == ("failed", 403, 1)
    assert "applicationServerKey" in result.detail
    assert sub.delivered == []


async def test_bad_vapid_tokens_are_rejected_by_the_push_service(
    push_service: LocalPushService, vapid: VapidKeys
) -> None:
    """The endpoint's verifier is real: wrong audience, expiry and forgery get 401."""
    sub = push_service.subscribe()
    now = time.time()
    cases = {
        "none": None,
        "wrong aud": vapid.authorization("https://elsewhere.example", SUBJECT),
        "expired": vapid.authorization(push_service.origin, SUBJECT, lifetime=10, now=now - 60),
        "forged": vapid.authorization(push_service.origin, SUBJECT).split(", k=")[0]
        + f", k={VapidKeys.generate().public_key_b64url}",
        "exp > 24 h": vapid.authorization(
            push_service.origin, SUBJECT, lifetime=24 * 3600, now=now + 3600
        ),
    }
    async with httpx.AsyncClient() as client:
        for name, header in cases.items():
            headers = {"TTL": "60", **({"Authorization": header} if header else {})}
            response = await client.post(sub.endpoint, headers=headers, content=b"")
            assert response.status_code == 401, name
    assert sub.delivered == []


@pytest.mark.parametrize("status", [404, 410])
async def test_gone_subscription_is_reported_gone(
    push_service: LocalPushService, dispatcher: PushDispatcher, status: int
) -> None:
    sub = push_service.subscribe()
    sub.answer(status)
    result = await dispatcher.send(PushTarget.from_json(sub.to_json(), allow_private=True), PAYLOAD)
    assert (result.outcome, result.status, result.attempts) == ("gone", status, 1)


async def test_unknown_endpoint_path_is_gone(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    sub = push_service.subscribe()
    target = PushTarget.from_json(
        {**sub.to_json(), "endpoint": sub.endpoint + "x"}, allow_private=True
    )
    assert (await dispatcher.send(target, PAYLOAD)).outcome == "gone"


async def test_429_retry_after_is_honoured_then_delivered(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    sub = push_service.subscribe()
    sub.answer(429, retry_after="1")
    result = await dispatcher.send(PushTarget.from_json(sub.to_json(), allow_private=True), PAYLOAD)
    assert (result.outcome, result.status, result.attempts) == ("delivered", 201, 2)
    first, second = sub.attempts
    assert first.status == 429
    assert second.at - first.at >= 1.0, "did not retry before Retry-After"
    assert second.plaintext == PAYLOAD


async def test_5xx_is_retried_with_backoff_then_delivered(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    sub = push_service.subscribe()
    sub.answer(500)
    sub.answer(502)
    sub.answer(503)
    result = await dispatcher.send(PushTarget.from_json(sub.to_json(), allow_private=True), PAYLOAD)
    assert (result.outcome, result.status, result.attempts) == ("delivered", 201, 4)
    assert [a.status for a in sub.attempts] == [500, 502, 503, 201]


async def test_persistent_5xx_fails_after_max_attempts(
    push_service: LocalPushService, vapid: VapidKeys
) -> None:
    sub = push_service.subscribe()
    sub.answer(500, times=10)
    async with PushDispatcher(vapid, SUBJECT, max_attempts=3, base_backoff=0.01) as d:
        result = await d.send(PushTarget.from_json(sub.to_json(), allow_private=True), PAYLOAD)
    assert (result.outcome, result.status, result.attempts) == ("failed", 500, 3)
    assert "gave up after 3 attempts" in result.detail
    assert len(sub.attempts) == 3


async def test_retry_after_beyond_the_bound_fails_at_once(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    sub = push_service.subscribe()
    sub.answer(429, retry_after="3600")
    started = time.monotonic()
    result = await dispatcher.send(PushTarget.from_json(sub.to_json(), allow_private=True), PAYLOAD)
    assert (result.outcome, result.status, result.attempts) == ("failed", 429, 1)
    assert "3600 s" in result.detail
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("status", [400, 401, 413])
async def test_other_4xx_fails_without_retry(
    push_service: LocalPushService, dispatcher: PushDispatcher, status: int
) -> None:
    sub = push_service.subscribe()
    sub.answer(status)
    result = await dispatcher.send(PushTarget.from_json(sub.to_json(), allow_private=True), PAYLOAD)
    assert (result.outcome, result.status, result.attempts) == ("failed", status, 1)
    assert len(sub.attempts) == 1


async def test_hostile_answers_are_bounded_and_redirects_not_followed(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    sub = push_service.subscribe()
    target = PushTarget.from_json(sub.to_json(), allow_private=True)
    sub.answer(400, text="\x1b[31mno\n" + "A" * 1_000_000)
    result = await dispatcher.send(target, PAYLOAD)
    assert (result.outcome, result.status) == ("failed", 400)
    assert len(result.detail) < 250 and "\x1b" not in result.detail and "\n" not in result.detail
    elsewhere = push_service.subscribe()
    sub.answer(307, headers={"Location": elsewhere.endpoint})
    result = await dispatcher.send(target, PAYLOAD)
    assert (result.outcome, result.status, result.attempts) == ("failed", 307, 1)
    assert elsewhere.attempts == []


async def test_unreachable_push_service_is_retried_then_failed(vapid: VapidKeys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sub_json = LocalPushService().subscribe().to_json()  # keys only; nothing listens
    target = PushTarget.from_json(
        {**sub_json, "endpoint": f"http://127.0.0.1:{port}/push/x"}, allow_private=True
    )
    async with PushDispatcher(vapid, SUBJECT, max_attempts=3, base_backoff=0.01) as d:
        result = await d.send(target, PAYLOAD)
    assert (result.outcome, result.status, result.attempts) == ("failed", None, 3)
    assert "could not reach the push service" in result.detail


async def test_unifiedpush_plain_body_is_sent_as_is(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    sub = push_service.subscribe("unifiedpush", encrypted=False)
    target = PushTarget.from_json(sub.to_json(), allow_private=True)
    assert target.kind == "unifiedpush" and not target.encrypted
    result = await dispatcher.send(target, PAYLOAD, ttl=30, urgency="normal")
    assert (result.outcome, result.status) == ("delivered", 201)
    [delivery] = sub.attempts
    assert delivery.body == PAYLOAD
    assert "authorization" not in delivery.headers
    assert "content-encoding" not in delivery.headers
    assert delivery.headers["ttl"] == "30" and delivery.headers["urgency"] == "normal"


async def test_unifiedpush_webpush_mode_is_encrypted_and_identified(
    push_service: LocalPushService, dispatcher: PushDispatcher, vapid: VapidKeys
) -> None:
    sub = push_service.subscribe(
        "unifiedpush", encrypted=True, application_server_key=vapid.public_key_b64url
    )
    result = await dispatcher.send(PushTarget.from_json(sub.to_json(), allow_private=True), PAYLOAD)
    assert result.outcome == "delivered"
    [delivery] = sub.attempts
    assert delivery.plaintext == PAYLOAD and PAYLOAD not in delivery.body
    assert delivery.claims is not None and delivery.claims["aud"] == push_service.origin


async def test_unifiedpush_gone_and_retry_outcomes(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    sub = push_service.subscribe("unifiedpush", encrypted=False)
    target = PushTarget.from_json(sub.to_json(), allow_private=True)
    sub.answer(503, retry_after="0")
    assert (await dispatcher.send(target, b"x")).attempts == 2
    sub.answer(410)
    assert (await dispatcher.send(target, b"x")).outcome == "gone"


async def test_oversized_payloads_are_refused_before_sending(
    push_service: LocalPushService, dispatcher: PushDispatcher
) -> None:
    web = push_service.subscribe()
    with pytest.raises(PayloadTooLarge, match="at most 3993 bytes"):
        await dispatcher.send(PushTarget.from_json(web.to_json(), allow_private=True), b"x" * 3994)
    plain = push_service.subscribe("unifiedpush", encrypted=False)
    with pytest.raises(PayloadTooLarge, match="at most 4096 bytes"):
        await dispatcher.send(
            PushTarget.from_json(plain.to_json(), allow_private=True), b"x" * 4097
        )
    assert web.attempts == [] and plain.attempts == []
    assert (
        await dispatcher.send(PushTarget.from_json(web.to_json(), allow_private=True), b"x" * 3993)
    ).outcome == ("delivered")
    assert len(web.attempts[0].body) == 4096


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": -1}, "TTL"),
        ({"ttl": 10**9}, "TTL"),
        ({"urgency": "urgent"}, "urgency"),
        ({"topic": "has space"}, "topic"),
        ({"topic": "t" * 33}, "topic"),
    ],
)
async def test_invalid_options_are_refused(
    push_service: LocalPushService,
    dispatcher: PushDispatcher,
    options: dict[str, object],
    message: str,
) -> None:
    sub = push_service.subscribe()
    with pytest.raises(InvalidPushOptions, match=message):
        await dispatcher.send(
            PushTarget.from_json(sub.to_json(), allow_private=True), b"x", **options
        )  # type: ignore[arg-type]
    assert sub.attempts == []


async def test_logs_never_contain_payload_keys_or_endpoint_path(
    push_service: LocalPushService,
    dispatcher: PushDispatcher,
    vapid: VapidKeys,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sub = push_service.subscribe()
    target = PushTarget.from_json(sub.to_json(), allow_private=True)
    sub.answer(500)
    sub.answer(400)
    await dispatcher.send(target, PAYLOAD)
    sub.answer(410)
    await dispatcher.send(target, PAYLOAD)
    await dispatcher.send(target, PAYLOAD)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert push_service.origin in text, "logs do say which push service"
    for secret in (sub.id, target.auth, target.p256dh, PAYLOAD.decode("latin-1")):
        assert secret is not None and secret not in text
    assert sub.attempts[-1].headers["authorization"].split("t=")[1].split(",")[0] not in text


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = time.time()
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    date = email.utils.formatdate(now + 20, usegmt=True)
    assert 18 <= (parse_retry_after(date, now=now) or 0) <= 21
    assert parse_retry_after(email.utils.formatdate(now - 50, usegmt=True), now=now) == 0.0
