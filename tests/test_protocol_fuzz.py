"""Property-based tests: encodings round-trip, and no input makes a parser raise anything
but ProtocolError."""

from __future__ import annotations

from typing import Any

from fixtures.protocol import make_pairing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unlatch.protocol import (
    DesktopPairing,
    DesktopPairingRecord,
    DesktopUnlock,
    PhonePairing,
    PhonePairingRecord,
    PhoneUnlock,
    ProtocolError,
    ReplayGuard,
    UnlockMode,
    parse_link,
)
from unlatch.protocol.constants import MessageType
from unlatch.protocol.encoding import b64d, b64e, header
from unlatch.protocol.messages import (
    ALL_MESSAGES,
    PairingAccept,
    PairingHello,
    PairingOffer,
    PushPlaintext,
    RequestParams,
    UnlockPush,
    UnlockQR,
    UnlockRefusal,
    UnlockReply,
    UnlockSeen,
)

PAIRED = make_pairing()
T = 1_800_000_500
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def b(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


ids = b(16)
keys = b(32)
times = st.integers(min_value=0, max_value=2**63)
ttls = st.integers(min_value=1, max_value=600)

messages: dict[type, st.SearchStrategy[Any]] = {
    PairingOffer: st.builds(
        PairingOffer,
        ids,
        keys,
        keys,
        st.from_regex(r"https://[a-z]{1,20}\.example(:[0-9]{2,5})?(/[a-z]{1,10})?", fullmatch=True),
        times,
    ),
    PairingHello: st.builds(PairingHello, keys, st.binary(min_size=17, max_size=512)),
    PairingAccept: st.builds(PairingAccept, st.binary(min_size=17, max_size=512)),
    UnlockQR: st.builds(UnlockQR, ids, ids, ids, keys, times, ttls, ids),
    UnlockPush: st.builds(UnlockPush, ids, b(12), b(144)),
    UnlockSeen: st.builds(UnlockSeen, ids, ids),
    UnlockReply: st.builds(UnlockReply, ids, keys, b(80)),
    UnlockRefusal: st.builds(UnlockRefusal, ids, ids),
}


@SETTINGS
@given(st.data())
def test_protocol_messages_round_trip(data: st.DataObject) -> None:
    for cls in ALL_MESSAGES:
        msg = data.draw(messages[cls])
        assert cls.decode(msg.encode()) == msg


@SETTINGS
@given(
    st.builds(RequestParams, ids, keys, times, ttls, st.just(UnlockMode.NUMBER_MATCH)),
    ids,
    st.lists(st.integers(10, 99), min_size=3, max_size=3, unique=True),
)
def test_protocol_push_plaintext_round_trip(
    params: RequestParams, q: bytes, choices: list[int]
) -> None:
    p = PushPlaintext(params, q, choices[1], tuple(choices))
    assert PushPlaintext.decode(p.encode()) == p
    scan = PushPlaintext(
        RequestParams(
            params.request_id, params.ephemeral_pk, params.created_at, params.ttl, UnlockMode.SCAN
        ),
        b"",
        None,
        (),
    )
    assert PushPlaintext.decode(scan.encode()) == scan


def _garbage() -> st.SearchStrategy[bytes]:
    # Arbitrary bytes, and arbitrary bytes behind a valid header (to reach field parsing).
    headed = st.tuples(st.sampled_from(list(MessageType)), st.binary(max_size=400)).map(
        lambda t: header(t[0]) + t[1]
    )
    return st.one_of(st.binary(max_size=600), headed)


@SETTINGS
@given(_garbage())
def test_protocol_parsers_raise_only_protocol_errors(data: bytes) -> None:
    parsers = [cls.decode for cls in ALL_MESSAGES] + [
        PushPlaintext.decode,
        lambda d: PhoneUnlock.open_push(d, [PAIRED.phone], now=T),
        lambda d: PhoneUnlock.from_qr(d, [PAIRED.phone], PAIRED.phone_identity, now=T),
    ]
    for parse in parsers:
        try:
            parse(data)
        except ProtocolError:
            pass
    du = DesktopUnlock(PAIRED.desktop, now=T)
    for step in (du.receive_reply, du.receive_seen):
        try:
            step(data, now=T)
        except ProtocolError:
            pass


SMALL_ORDER_KEYS = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ec" + "ff" * 30 + "7f"),
    bytes.fromhex("ed" + "ff" * 30 + "7f"),
    bytes.fromhex("ee" + "ff" * 30 + "7f"),
]
peer_keys = st.one_of(st.sampled_from(SMALL_ORDER_KEYS), keys)
offers = st.builds(
    lambda cid, secret, pk, url, exp: PairingOffer(cid, secret, pk, url, exp).encode(),
    ids,
    keys,
    peer_keys,
    st.sampled_from(["https://r.example", "http://127.0.0.1:8000/relay"]),
    st.integers(min_value=T, max_value=T + 10_000),
)


@SETTINGS
@given(st.one_of(_garbage(), offers))
def test_protocol_pairing_steps_raise_only_protocol_errors(data: bytes) -> None:
    """Every pairing entry point: the phone's offer, the desktop's hello, the phone's accept."""
    identity = PAIRED.phone_identity
    try:
        PhonePairing(data, identity, "Phone", "phone-1", now=T)
    except ProtocolError:
        pass
    try:
        PhonePairing(b64e(data), identity, "Phone", "phone-1", now=T)
    except ProtocolError:
        pass
    dp = DesktopPairing(PAIRED.desktop_identity, "https://r.example", now=T)
    try:
        dp.receive_hello(data, now=T)
    except ProtocolError:
        pass
    pp = PhonePairing(dp.offer_bytes, identity, "Phone", "phone-1", now=T)
    try:
        pp.receive_accept(data, now=T)
    except ProtocolError:
        pass


@SETTINGS
@given(st.text(max_size=300))
def test_protocol_link_parser_raises_only_protocol_errors(text: str) -> None:
    for candidate in (text, "unlatch:" + text, "https://r.example/app/#m=" + text):
        try:
            parse_link(candidate)
        except ProtocolError:
            pass


@SETTINGS
@given(st.binary(max_size=200))
def test_protocol_base64url_round_trip(data: bytes) -> None:
    assert b64d(b64e(data)) == data


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)


@SETTINGS
@given(
    st.one_of(
        st.dictionaries(st.sampled_from(list(PAIRED.phone.to_dict())), json_values), json_values
    )
)
def test_protocol_records_from_bad_dicts_raise_only_protocol_errors(data: dict) -> None:
    for loader in (
        PhonePairingRecord.from_dict,
        DesktopPairingRecord.from_dict,
        ReplayGuard.from_dict,
    ):
        try:
            loader(data)
        except ProtocolError:
            pass
