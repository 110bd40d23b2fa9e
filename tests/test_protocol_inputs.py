"""Input checks of the protocol core: names, device ids, the relay URL, stored state.

Each check refuses with a :class:`ProtocolError` subclass (never ``ValueError``
or ``AttributeError``), and a side refuses before sending what the other side
would refuse after receiving.
"""

from __future__ import annotations

import os

import pytest
from fixtures.protocol import NOW, RELAY, Paired

from unlatch.protocol import (
    DesktopPairing,
    DesktopPairingRecord,
    KeyPair,
    MalformedMessage,
    PairingState,
    PhonePairing,
    PhonePairingRecord,
    ReplayGuard,
)
from unlatch.protocol.encoding import b64e, encode_fields, utf8
from unlatch.protocol.keyschedule import accept_aad, accept_key
from unlatch.protocol.messages import (
    AcceptPlaintext,
    HelloPlaintext,
    PairingAccept,
    PairingOffer,
    check_device_id,
    check_name,
)
from unlatch.protocol.primitives import aead_seal

# Names a person would be misled by, or that break the wire bounds.
BAD_NAMES = [
    "",
    "x" * 65,
    "é" * 33,  # 66 bytes of UTF-8
    "Desk\x00top",
    "Desk\ntop",
    "Desk\x1b[31mtop",
    "Desk\x85top",  # C1 next line
    "Desk\u202etop",  # right-to-left override
    "Desk\u202atop",  # left-to-right embedding
    "Desk\u2066top",  # left-to-right isolate
    "Desk\u2069top",  # pop directional isolate
    "Desk\u200btop",  # zero-width space
    "Desk\u200ftop",  # right-to-left mark
    "Desk\u2028top",  # line separator
    "Desk\ufefftop",  # byte-order mark
    "Desk\U000e0041top",  # tag character
    "Desk\ud800top",  # lone surrogate: not encodable
]
GOOD_NAMES = [
    "D",
    "Ada's laptop",
    "x" * 64,
    "é" * 32,
    "工作站",
    "👩\u200d💻 dev box",
    "کار\u200cگاه",
]
BAD_IDS = ["", "a b", "x" * 65, "dévice", "tab\there", "\x7f"]


def _awaiting_confirm() -> tuple[DesktopPairing, PhonePairing]:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    pp = PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "P", "p", now=NOW)
    dp.receive_hello(pp.hello_bytes, now=NOW)
    return dp, pp


@pytest.mark.parametrize("name", BAD_NAMES)
def test_check_name_refuses(name: str) -> None:
    with pytest.raises(MalformedMessage):
        check_name(name, "device name")


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_check_name_accepts(name: str) -> None:
    assert utf8(check_name(name, "device name"), "device name") == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_desktop_refuses_to_send_a_name_the_phone_would_refuse(name: str) -> None:
    """confirm() checks desktop_name by the phone's rule, and the attempt stays open."""
    dp, pp = _awaiting_confirm()
    with pytest.raises(MalformedMessage, match="desktop name"):
        dp.confirm(name, "desk-1", now=NOW)
    assert dp.state is PairingState.AWAITING_CONFIRM
    accept, _, _ = dp.confirm("Desktop", "desk-1", now=NOW)  # the user fixes the name
    assert pp.receive_accept(accept, now=NOW).desktop_name == "Desktop"


@pytest.mark.parametrize("device_id", BAD_IDS)
def test_desktop_refuses_a_bad_device_id(device_id: str) -> None:
    dp, _ = _awaiting_confirm()
    with pytest.raises(MalformedMessage, match="desktop device id"):
        dp.confirm("Desktop", device_id, now=NOW)
    assert dp.state is PairingState.AWAITING_CONFIRM


@pytest.mark.parametrize("name", BAD_NAMES)
def test_phone_refuses_to_send_a_name_the_desktop_would_refuse(name: str) -> None:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    with pytest.raises(MalformedMessage, match="phone name"):
        PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), name, "p", now=NOW)


@pytest.mark.parametrize("device_id", BAD_IDS)
def test_phone_refuses_a_bad_device_id(device_id: str) -> None:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    with pytest.raises(MalformedMessage, match="phone device id"):
        PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "P", device_id, now=NOW)


@pytest.mark.parametrize(
    "name", [n for n in BAD_NAMES if "\ud800" not in n and 0 < len(n.encode()) <= 64]
)
def test_received_names_with_hidden_characters_are_refused(name: str) -> None:
    """A peer that skips the sender's check: the receiver refuses the name in hello and accept."""
    raw = name.encode("utf-8")
    layout = HelloPlaintext.LAYOUT
    hello_inner = encode_fields([os.urandom(32), raw, b"p"], layout)
    with pytest.raises(MalformedMessage, match="phone name"):
        HelloPlaintext.decode(hello_inner)
    _, pp = _awaiting_confirm()
    inner = encode_fields([os.urandom(32), raw, b"d"], AcceptPlaintext.LAYOUT)
    assert pp._root is not None and pp._th is not None
    ct = aead_seal(accept_key(pp._root), bytes(12), inner, accept_aad(pp._th))
    with pytest.raises(MalformedMessage, match="desktop name"):
        pp.receive_accept(PairingAccept(ct).encode(), now=NOW)


def test_check_device_id() -> None:
    assert check_device_id("phone-1", "id") == b"phone-1"
    for bad in BAD_IDS:
        with pytest.raises(MalformedMessage):
            check_device_id(bad, "id")


# ------------------------------------------------------------------ relay URL


def _offer(url: bytes) -> bytes:
    good = PairingOffer(os.urandom(16), os.urandom(32), os.urandom(32), "https://r.test", NOW + 60)
    encoded = good.encode()
    # Swap the URL field (u16 length + bytes) for ``url``: the encoder would refuse it.
    head = encoded[: 4 + 2 + 16 + 2 + 32 + 2 + 32]
    tail = encoded[len(head) + 2 + len(b"https://r.test") :]
    return head + len(url).to_bytes(2, "big") + url + tail


def test_relay_url_with_a_trailing_slash_is_refused_not_rewritten() -> None:
    """The hello binds the URL's exact bytes, so the decoder refuses instead of stripping."""
    assert PairingOffer.decode(_offer(b"https://r.test/relay")).relay_url == "https://r.test/relay"
    for bad in (b"https://r.test/", b"https://r.test/relay/", b"https://", b"http://x//"):
        with pytest.raises(MalformedMessage, match="must not end with /"):
            PairingOffer.decode(_offer(bad))
    with pytest.raises(MalformedMessage, match="must not end with /"):
        PairingOffer(os.urandom(16), os.urandom(32), os.urandom(32), "https://r.test/", 1).encode()
    for bad in (b"https://r.test/\xe2\x80\xae", b"https://r.test/a\x00"):
        with pytest.raises(MalformedMessage, match="relay URL"):
            PairingOffer.decode(_offer(bad))


def test_desktop_pairing_normalises_its_own_url_and_the_offer_round_trips() -> None:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY + "/", now=NOW)
    assert dp.offer.relay_url == RELAY
    assert PairingOffer.decode(dp.offer_bytes) == dp.offer


# ------------------------------------------------------------------ stored state


@pytest.mark.parametrize("data", [None, [], "record", 1, True, b"{}"])
def test_records_from_something_not_a_mapping_are_malformed(data: object) -> None:
    for loader in (PhonePairingRecord.from_dict, DesktopPairingRecord.from_dict):
        with pytest.raises(MalformedMessage, match="mapping"):
            loader(data)  # type: ignore[arg-type]
    with pytest.raises(MalformedMessage):
        ReplayGuard.from_dict(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("expiry", [True, False, -1, 1.5, "1", None])
def test_replay_guard_refuses_an_expiry_that_is_not_a_time(expiry: object) -> None:
    with pytest.raises(MalformedMessage):
        ReplayGuard.from_dict({b64e(os.urandom(16)): expiry})
    assert len(ReplayGuard.from_dict({b64e(os.urandom(16)): NOW})) == 1


def test_records_still_load(paired: Paired) -> None:
    assert PhonePairingRecord.from_dict(paired.phone.to_dict()) == paired.phone
    assert DesktopPairingRecord.from_dict(paired.desktop.to_dict()) == paired.desktop
