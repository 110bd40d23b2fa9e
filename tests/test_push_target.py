"""Push subscriptions arrive from phones: strict, bounded parsing with clear errors."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from unlatch.push import InvalidPushTarget, PushTarget


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


KEY = ec.generate_private_key(ec.SECP256R1())
P256DH = b64u(
    KEY.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
)
COMPRESSED = b64u(
    KEY.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
)
AUTH = b64u(b"0123456789abcdef")
ENDPOINT = "https://push.example.net/wpush/v2/gAAAAABsecretcapability"


def browser_json(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "endpoint": ENDPOINT,
        "expirationTime": None,
        "keys": {"p256dh": P256DH, "auth": AUTH},
    }
    data.update(overrides)
    return data


def test_browser_subscription_json_is_accepted_as_webpush() -> None:
    target = PushTarget.from_json(browser_json())
    assert target == PushTarget("webpush", ENDPOINT, P256DH, AUTH)
    assert target.encrypted
    assert target.origin == "https://push.example.net"
    assert PushTarget.from_json(target.to_json()) == target


def test_unifiedpush_without_keys_round_trips() -> None:
    data = {"kind": "unifiedpush", "endpoint": "https://ntfy.example.org/upAbC123?up=1"}
    target = PushTarget.from_json(data)
    assert not target.encrypted
    assert target.to_json() == data


def test_relay_api_spelling_type_is_an_alias_of_kind() -> None:
    data = {"type": "unifiedpush", "endpoint": "https://ntfy.example.org/upX"}
    assert PushTarget.from_json(data).kind == "unifiedpush"
    with pytest.raises(InvalidPushTarget, match="different 'kind' and 'type'"):
        PushTarget.from_json({**data, "kind": "webpush"})


def test_loopback_http_is_allowed_only_when_private_endpoints_are() -> None:
    for host in ("127.0.0.1:8080", "localhost", "[::1]:9000"):
        endpoint = f"http://{host}/push/x"
        target = PushTarget.from_json(browser_json(endpoint=endpoint), allow_private=True)
        assert target.origin.startswith("http://")
        with pytest.raises(InvalidPushTarget, match="loopback, private or link-local"):
            PushTarget.from_json(browser_json(endpoint=endpoint))
    target = PushTarget.from_json(browser_json(endpoint="http://[::1]:9000/p"), allow_private=True)
    assert target.origin == "http://[::1]:9000"
    # plain http to anything but loopback stays refused, even when private endpoints are allowed
    for host in ("10.0.0.7", "192.168.1.2", "push.example.net"):
        with pytest.raises(InvalidPushTarget, match="must use https://"):
            PushTarget.from_json(browser_json(endpoint=f"http://{host}/p"), allow_private=True)


PRIVATE_HOSTS = [
    "127.0.0.1",
    "127.0.0.1:8080",
    "127.1",  # legacy IPv4 spellings that inet_aton / getaddrinfo accept
    "2130706433",
    "0x7f000001",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "0",
    "0.0.0.0",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.0.10",
    "100.64.0.1",  # shared address space (carrier-grade NAT)
    "169.254.169.254",  # cloud metadata
    "[::1]",
    "[::]",
    "[fe80::1]",
    "[fd00::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:a9fe:a9fe]",
    "localhost",
    "LOCALHOST.",
    "metadata.localhost",
]


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_https_endpoints_on_private_addresses_are_refused_by_default(host: str) -> None:
    """SSRF: a phone must not make the relay POST into its own network."""
    endpoint = f"https://{host}/push/x"
    with pytest.raises(InvalidPushTarget, match="loopback, private or link-local"):
        PushTarget.from_json(browser_json(endpoint=endpoint))
    with pytest.raises(InvalidPushTarget, match="loopback, private or link-local"):
        PushTarget("webpush", endpoint, P256DH, AUTH)
    assert PushTarget.from_json(browser_json(endpoint=endpoint), allow_private=True).endpoint == (
        endpoint
    )


@pytest.mark.parametrize(
    "host",
    ["push.example.net", "8.8.8.8", "[2001:4860:4860::8888]", "updates.push.services.mozilla.com"],
)
def test_public_endpoints_are_accepted(host: str) -> None:
    assert PushTarget.from_json(browser_json(endpoint=f"https://{host}/p")).origin.endswith(
        host.lower()
    )


def test_origin_drops_default_port_and_lowercases_host() -> None:
    target = PushTarget.from_json(browser_json(endpoint="https://Push.Example.NET:443/a"))
    assert target.origin == "https://push.example.net"


NOT_ON_CURVE = b64u(b"\x04" + b"\x01" * 64)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([ENDPOINT], "must be a JSON object"),
        ({"keys": {"p256dh": P256DH, "auth": AUTH}}, "needs an 'endpoint'"),
        (browser_json(endpoint=""), "needs an 'endpoint'"),
        (browser_json(endpoint=42), "needs an 'endpoint'"),
        (browser_json(endpoint="http://push.example.net/x"), "must use https://"),
        (browser_json(endpoint="ftp://push.example.net/x"), "must be an https:// URL"),
        (browser_json(endpoint="/relative/path"), "push endpoint has no host name"),
        (browser_json(endpoint="https://user:pw@push.example.net/x"), "user name or password"),
        (browser_json(endpoint="https://push.example.net/x#frag"), "#fragment"),
        (browser_json(endpoint="https://push.example.net:99999/x"), "not a valid URL"),
        (browser_json(endpoint="https://push.example.net/" + "a" * 2100), "too long"),
        (browser_json(endpoint="https://push.example.net/a b"), "without spaces"),
        (browser_json(endpoint="https://pushé.example.net/"), "plain ASCII"),
        (browser_json(keys={"p256dh": "not base64!", "auth": AUTH}), "'p256dh' is invalid"),
        (browser_json(keys={"p256dh": b64u(b"\x04" * 10), "auth": AUTH}), "must be 65 bytes"),
        (browser_json(keys={"p256dh": NOT_ON_CURVE, "auth": AUTH}), "not a point on the P-256"),
        (browser_json(keys={"p256dh": COMPRESSED, "auth": AUTH}), "must be 65 bytes"),
        (browser_json(keys={"p256dh": P256DH, "auth": b64u(b"short")}), "must be 16 bytes"),
        (browser_json(keys={"p256dh": P256DH, "auth": 7}), "'auth' must be a base64url string"),
        (browser_json(keys={"p256dh": P256DH}), "needs both"),
        (browser_json(keys={"p256dh": P256DH, "auth": AUTH, "x": 1}), "unknown field"),
        (browser_json(keys="p256dh"), "'keys' must be an object"),
        (browser_json(options={}), "unknown field(s): options"),
        (browser_json(kind="fcm"), "kind must be one of webpush, unifiedpush"),
        (browser_json(expirationTime="tomorrow"), "'expirationTime' must be a number"),
        ({"kind": "webpush", "endpoint": ENDPOINT}, "needs 'keys'"),
    ],
)
def test_invalid_targets_are_rejected_with_a_clear_message(data: object, message: str) -> None:
    with pytest.raises(InvalidPushTarget) as info:
        PushTarget.from_json(data)
    assert message in str(info.value)


def test_errors_and_repr_never_show_secrets_or_the_endpoint_path() -> None:
    bad_auth = b64u(b"secret-auth-value-that-is-too-long")
    with pytest.raises(InvalidPushTarget) as info:
        PushTarget.from_json(browser_json(keys={"p256dh": P256DH, "auth": bad_auth}))
    assert bad_auth not in str(info.value)
    target = PushTarget.from_json(browser_json())
    text = repr(target) + str(target)
    assert "secretcapability" not in text and AUTH not in text
    assert "push.example.net" in text


def test_constructor_applies_the_same_rules() -> None:
    with pytest.raises(InvalidPushTarget, match="given together"):
        PushTarget("unifiedpush", ENDPOINT, P256DH, None)
    with pytest.raises(InvalidPushTarget, match="must use https"):
        PushTarget("unifiedpush", "http://example.org/x")
    with pytest.raises(InvalidPushTarget, match="private"):
        PushTarget("unifiedpush", "http://127.0.0.1/x")
    assert PushTarget("unifiedpush", "http://127.0.0.1/x", allow_private=True).origin == (
        "http://127.0.0.1"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["kind", "endpoint", "keys", "expirationTime", "x"]),
        json_values,
        max_size=5,
    )
    | json_values
)
def test_garbage_only_ever_raises_invalid_push_target(data: object) -> None:
    try:
        PushTarget.from_json(data)
    except InvalidPushTarget:
        pass
