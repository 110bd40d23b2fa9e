"""A malicious relay (and other attackers) against the protocol.

The relay sits between the roles and can read, drop, replay, reorder, alter
and inject every message. Each test below plays one of those moves and checks
that it is refused with the right error and that the desktop never obtains
the phone's share K_P (design brief, section 3, properties 1-5).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import replace

import pytest
from fixtures.protocol import NOW, RELAY, Paired, make_pairing

from unlatch.protocol import (
    AlreadyAnswered,
    Approved,
    AuthenticationFailed,
    DesktopPairing,
    DesktopUnlock,
    KeyPair,
    MalformedMessage,
    PairingState,
    PhonePairing,
    PhoneUnlock,
    PhoneUnlockState,
    ProtocolError,
    RequestExpired,
    UnexpectedMessage,
    UnknownPairing,
    UnlockMode,
    UnlockPolicy,
    UnlockState,
    UnsupportedVersion,
    WrongRequest,
    bare_link,
)
from unlatch.protocol.constants import ID_LEN, MAX_MESSAGE_BYTES, Label, MessageType
from unlatch.protocol.encoding import b64e, header
from unlatch.protocol.keyschedule import push_aad, qr_mac_input, reply_info, unlock_psk
from unlatch.protocol.messages import (
    PairingOffer,
    PushPlaintext,
    RequestParams,
    UnlockPush,
    UnlockQR,
    UnlockReply,
)
from unlatch.protocol.primitives import aead_seal, hpke_seal, mac

T = NOW + 500


def flips(data: bytes) -> list[bytes]:
    """Every single-bit variant of ``data``."""
    out = []
    for i in range(len(data)):
        for bit in range(8):
            changed = bytearray(data)
            changed[i] ^= 1 << bit
            out.append(bytes(changed))
    return out


def fresh_request(paired: Paired, **kw: object) -> tuple[DesktopUnlock, PhoneUnlock]:
    du = DesktopUnlock(paired.desktop, now=T, **kw)  # type: ignore[arg-type]
    pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
    return du, pu


# ------------------------------------------------------------------ bit flips


Expected = type[ProtocolError] | Callable[[bytes], type[ProtocolError]]


def expected_error(bad: bytes, byte: int, fields: dict[range, Expected]) -> type[ProtocolError]:
    """The error a flip at ``byte`` must give: decided by the field the byte lies in.

    The 4-byte header: magic (malformed), version (unsupported version), type
    (unexpected when the flipped byte names another message type, malformed
    when it names none). ``fields`` maps each value's byte range to its error
    (or to a function of the flipped message, where the value decides); every
    other byte is a u16 length prefix, whose flip breaks the framing (malformed).
    """
    if byte < 2:
        return MalformedMessage
    if byte == 2:
        return UnsupportedVersion
    if byte == 3:
        known = bad[3] in {int(t) for t in MessageType}
        return UnexpectedMessage if known else MalformedMessage
    for span, expected in fields.items():
        if byte in span:
            return expected if isinstance(expected, type) else expected(bad)
    return MalformedMessage


def check_flips(
    data: bytes, fields: dict[range, Expected], step: Callable[[bytes], object]
) -> dict[type[ProtocolError], int]:
    """Feed every single-bit flip of ``data`` to ``step``; each must raise its field's error."""
    counts: dict[type[ProtocolError], int] = {}
    for index, bad in enumerate(flips(data)):
        expected = expected_error(bad, index // 8, fields)
        with pytest.raises(ProtocolError) as info:
            step(bad)
        assert type(info.value) is expected, f"byte {index // 8} bit {index % 8}: {info.value!r}"
        counts[expected] = counts.get(expected, 0) + 1
    return counts


def test_every_bit_flip_of_the_hello_is_refused() -> None:
    """Layout: header 0..4, len 4..6, enc 6..38, len 38..40, ciphertext 40..

    A flip in enc or the ciphertext fails to open; the desktop keeps waiting
    (only the QR's holder can make a hello that opens), and the genuine hello
    still pairs afterwards.
    """
    desktop = KeyPair.generate(os.urandom)
    phone = KeyPair.generate(os.urandom)
    dp = DesktopPairing(desktop, RELAY, now=NOW)
    pp = PhonePairing(dp.offer_bytes, phone, "Phone", "phone-1", now=NOW)
    hello = pp.hello_bytes
    fields: dict[range, Expected] = {
        range(6, 38): AuthenticationFailed,
        range(40, len(hello)): AuthenticationFailed,
    }

    def step(bad: bytes) -> None:
        try:
            dp.receive_hello(bad, now=NOW)
        finally:
            assert dp.state is PairingState.WAITING_HELLO

    counts = check_flips(hello, fields, step)
    assert counts[AuthenticationFailed] == 8 * (len(hello) - 8)
    assert dp.receive_hello(hello, now=NOW).verification_code == pp.verification_code


def test_every_bit_flip_of_the_accept_is_refused() -> None:
    """Layout: header 0..4, len 4..6, ciphertext 6..

    A flip in the framing is refused and the phone keeps waiting; a flip in
    the ciphertext fails authentication and ends the attempt (protocol.md 5.5).
    """
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    pp = PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "P", "p", now=NOW)
    dp.receive_hello(pp.hello_bytes, now=NOW)
    accept, _, _ = dp.confirm("D", "d", now=NOW)
    armed = dict(pp.__dict__)

    def step(bad: bytes) -> None:
        pp.__dict__.update(armed)  # re-arm the same attempt each time
        try:
            pp.receive_accept(bad, now=NOW)
        except AuthenticationFailed:
            assert pp.state is PairingState.FAILED and pp._root is None
            raise
        except ProtocolError:
            assert pp.state is PairingState.WAITING_ACCEPT
            raise

    counts = check_flips(accept, {range(6, len(accept)): AuthenticationFailed}, step)
    assert counts[AuthenticationFailed] == 8 * (len(accept) - 6)
    pp.__dict__.update(armed)
    assert pp.receive_accept(accept, now=NOW).phone_share


def test_every_bit_flip_of_the_push_is_refused(paired: Paired) -> None:
    """Layout: header 0..4, len 4..6, routing id 6..22, len 22..24, nonce 24..36,
    len 36..38, ciphertext 38..182. Another routing id names no pairing of this phone."""
    du = DesktopUnlock(paired.desktop, now=T)
    push = du.push_bytes
    fields: dict[range, Expected] = {
        range(6, 22): UnknownPairing,
        range(24, 36): AuthenticationFailed,
        range(38, len(push)): AuthenticationFailed,
    }
    counts = check_flips(push, fields, lambda b: PhoneUnlock.open_push(b, [paired.phone], now=T))
    assert counts[UnknownPairing] == 8 * 16


def _qr_ttl_flip(bad: bytes) -> type[ProtocolError]:
    # An out-of-range lifetime is refused by the decoder; an in-range one fails the MAC.
    ttl = int.from_bytes(bad[104:106], "big")
    return AuthenticationFailed if 1 <= ttl <= 600 else MalformedMessage


def test_every_bit_flip_of_the_qr_is_refused(paired: Paired) -> None:
    """Layout: header 0..4, then (u16 length, value) for pairing id 6..22, request id
    24..40, QR secret 42..58, ephemeral key 60..92, created_at 94..102, ttl 104..106,
    mac 108..124. Another pairing id is the phishing answer; every other value is
    covered by the MAC."""
    du = DesktopUnlock(paired.desktop, now=T)
    qr = du.qr_bytes
    assert qr is not None and len(qr) == 124
    fields: dict[range, Expected] = {
        range(6, 22): UnknownPairing,
        range(24, 40): AuthenticationFailed,
        range(42, 58): AuthenticationFailed,
        range(60, 92): AuthenticationFailed,
        range(94, 102): AuthenticationFailed,
        range(104, 106): _qr_ttl_flip,
        range(108, 124): AuthenticationFailed,
    }
    counts = check_flips(
        qr, fields, lambda b: PhoneUnlock.from_qr(b, [paired.phone], paired.phone_identity, now=T)
    )
    assert counts[UnknownPairing] == 8 * 16


def test_every_bit_flip_of_the_seen_notice_is_refused(paired: Paired) -> None:
    """Layout: header 0..4, len 4..6, request id 6..22, len 22..24, mac 24..40.
    Nothing a flip makes changes the request's state."""
    du, pu = fresh_request(paired)
    fields: dict[range, Expected] = {
        range(6, 22): WrongRequest,
        range(24, 40): AuthenticationFailed,
    }
    check_flips(pu.seen(), fields, lambda b: du.receive_seen(b, now=T))
    assert du.state is UnlockState.WAITING


def test_every_bit_flip_of_the_reply_is_refused_and_releases_nothing(paired: Paired) -> None:
    """Each flipped reply goes to the request it was made for; none yields K_P.

    Layout: header 0..4, len 4..6, request id 6..22, len 22..24, enc 24..56,
    len 56..58, ciphertext 58.. A flip in the framing or the id is refused
    without touching the request; a flip in enc or ciphertext fails
    authentication and burns the request.
    """
    du, pu = fresh_request(paired)
    reply = pu.approve(now=T)
    rid_field = range(6, 6 + ID_LEN)
    crypto_fields = [*range(24, 56), *range(58, len(reply))]
    for index, bad in enumerate(flips(reply)):
        byte = index // 8
        du2 = DesktopUnlock.__new__(DesktopUnlock)  # re-arm the same request each time
        du2.__dict__.update(du.__dict__)
        with pytest.raises(ProtocolError) as info:
            du2.receive_reply(bad, now=T)
        if byte in crypto_fields:
            assert isinstance(info.value, AuthenticationFailed)
            assert du2.state is UnlockState.FAILED and du2._ephemeral is None
        elif byte in rid_field:
            assert isinstance(info.value, WrongRequest)
            assert du2.state is UnlockState.WAITING
        else:
            assert isinstance(info.value, MalformedMessage | UnsupportedVersion | UnexpectedMessage)
            assert du2.state is UnlockState.WAITING
    assert du.receive_reply(reply, now=T) == Approved(paired.share)


# ------------------------------------------------------------------ replays, swaps, reflection


def test_replayed_old_reply_is_refused(paired: Paired) -> None:
    old_du, old_pu = fresh_request(paired)
    old_reply = old_pu.approve(now=T)
    assert old_du.receive_reply(old_reply, now=T) == Approved(paired.share)
    with pytest.raises(AlreadyAnswered):
        old_du.receive_reply(old_reply, now=T)  # same request: single use
    new_du = DesktopUnlock(paired.desktop, now=T + 10)
    with pytest.raises(WrongRequest):
        new_du.receive_reply(old_reply, now=T + 10)  # new request: different id
    assert new_du.state is UnlockState.WAITING


def test_second_answer_is_refused(paired: Paired) -> None:
    du, pu = fresh_request(paired)
    qr = du.qr_bytes  # a photo of the screen: the desktop forgets the QR once answered
    assert qr is not None
    deny = pu.deny(now=T)
    # The phone's own state machine refuses a second answer (not only its ReplayGuard).
    with pytest.raises(AlreadyAnswered):
        pu.approve(now=T)
    du.receive_reply(deny, now=T)
    assert du.qr_bytes is None and du._qr_secret is None
    # Even a genuine second reply (from a second scan of the same QR) is refused.
    pu2 = PhoneUnlock.from_qr(qr, [paired.phone], paired.phone_identity, now=T)
    with pytest.raises(AlreadyAnswered):
        du.receive_reply(pu2.approve(now=T), now=T)
    assert du.state is UnlockState.DENIED


def test_swapped_request_ids_are_refused(paired: Paired) -> None:
    _, a_pu = fresh_request(paired)
    b_du, _ = fresh_request(paired)
    reply_a = UnlockReply.decode(a_pu.approve(now=T))
    relabelled = UnlockReply(b_du.request_id, reply_a.enc, reply_a.ciphertext).encode()
    with pytest.raises(AuthenticationFailed):
        b_du.receive_reply(relabelled, now=T)
    assert b_du.state is UnlockState.FAILED and b_du._ephemeral is None


@pytest.mark.parametrize("which", ["push", "qr", "seen"])
def test_reflected_messages_are_refused(paired: Paired, which: str) -> None:
    du, pu = fresh_request(paired)
    data = {"push": du.push_bytes, "qr": du.qr_bytes, "seen": pu.seen()}[which]
    with pytest.raises(UnexpectedMessage):
        du.receive_reply(data, now=T)
    assert du.state is UnlockState.WAITING


def test_reflected_hello_is_not_an_accept() -> None:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    pp = PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "P", "p", now=NOW)
    with pytest.raises(UnexpectedMessage):
        pp.receive_accept(pp.hello_bytes, now=NOW)


# ------------------------------------------------------------------ other phones, revocation


def test_reply_from_another_phone_that_saw_the_qr_is_refused(paired: Paired) -> None:
    """The strongest outsider: knows the QR and every symmetric pairing key, not the phone's key."""
    du = DesktopUnlock(paired.desktop, now=T)
    intruder = KeyPair.generate(os.urandom)
    forged = PhoneUnlock(paired.phone, intruder, du.params, du.qr.qr_secret).approve(now=T)
    with pytest.raises(AuthenticationFailed):
        du.receive_reply(forged, now=T)
    assert du.state is UnlockState.FAILED


def test_relay_cannot_forge_a_reply_without_the_qr_secret(paired: Paired) -> None:
    """Even holding the phone's static key, a reply needs the fresh QR secret."""
    du = DesktopUnlock(paired.desktop, now=T)
    guessed = PhoneUnlock(paired.phone, paired.phone_identity, du.params, os.urandom(16))
    with pytest.raises(AuthenticationFailed):
        du.receive_reply(guessed.approve(now=T), now=T)


def test_revoked_phone_cannot_answer_a_new_pairing() -> None:
    desktop = KeyPair.generate(os.urandom)
    old = make_pairing(desktop_identity=desktop)
    new = make_pairing(desktop_identity=desktop)  # the desktop re-paired; old record deleted
    du = DesktopUnlock(new.desktop, now=T)
    with pytest.raises(UnknownPairing):
        PhoneUnlock.from_qr(du.qr_bytes, [old.phone], old.phone_identity, now=T)
    # Forcing the old phone's answer onto the new request fails authentication.
    forced = PhoneUnlock(old.phone, old.phone_identity, du.params, du.qr.qr_secret)
    with pytest.raises(AuthenticationFailed):
        du.receive_reply(forced.approve(now=T), now=T)


# ------------------------------------------------------------------ phishing QR


def test_qr_from_an_unpaired_desktop_is_refused(paired: Paired) -> None:
    other = make_pairing()  # another desktop, paired with some other phone
    du = DesktopUnlock(other.desktop, now=T)
    with pytest.raises(UnknownPairing) as info:
        PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
    assert "not made by a desktop paired with this phone" in str(info.value)


def test_forged_qr_naming_a_real_pairing_is_refused(paired: Paired) -> None:
    """An attacker who knows the pairing id (e.g. saw an old QR) but not its MAC key."""
    params = RequestParams(
        os.urandom(16), KeyPair.generate(os.urandom).public, T, 120, UnlockMode.SCAN
    )
    q = os.urandom(16)
    tag = mac(os.urandom(32), qr_mac_input(paired.phone.pairing_id, q, params))
    forged = UnlockQR(
        paired.phone.pairing_id, params.request_id, q, params.ephemeral_pk, T, 120, tag
    ).encode()
    with pytest.raises(AuthenticationFailed):
        PhoneUnlock.from_qr(forged, [paired.phone], paired.phone_identity, now=T)


def test_relay_cannot_forge_a_push(paired: Paired) -> None:
    du = DesktopUnlock(paired.desktop, now=T)
    genuine = du.push_bytes
    forged = genuine[:-60] + os.urandom(60)
    with pytest.raises(AuthenticationFailed):
        PhoneUnlock.open_push(forged, [paired.phone], now=T)


# ------------------------------------------------------------------ expiry


def test_expired_request_is_refused_by_both_sides(paired: Paired) -> None:
    du = DesktopUnlock(paired.desktop, now=T, ttl=120)
    with pytest.raises(RequestExpired):
        PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T + 200)
    pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T + 100)
    with pytest.raises(RequestExpired):
        pu.approve(now=T + 200)  # the user waited too long on the approve screen
    reply = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T).approve(
        now=T
    )
    with pytest.raises(RequestExpired):
        du.receive_reply(reply, now=T + 121)  # held back by the relay until too late
    assert du.state is UnlockState.EXPIRED


def test_request_from_the_future_is_refused(paired: Paired) -> None:
    du = DesktopUnlock(paired.desktop, now=T + 3600)
    with pytest.raises(RequestExpired):
        PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)


# ------------------------------------------------------------------ sizes


@pytest.mark.parametrize("which", ["push", "qr", "seen", "reply"])
def test_truncated_and_oversized_messages_are_refused(paired: Paired, which: str) -> None:
    du, pu = fresh_request(paired)
    data = {
        "push": du.push_bytes,
        "qr": du.qr_bytes,
        "seen": pu.seen(),
        "reply": pu.approve(now=T),
    }[which]
    parse: Callable[[bytes], object] = {
        "push": lambda b: PhoneUnlock.open_push(b, [paired.phone], now=T),
        "qr": lambda b: PhoneUnlock.from_qr(b, [paired.phone], paired.phone_identity, now=T),
        "seen": lambda b: du.receive_seen(b, now=T),
        "reply": lambda b: du.receive_reply(b, now=T),
    }[which]
    for cut in range(len(data)):
        with pytest.raises(MalformedMessage):
            parse(data[:cut])
    for extra in (b"\x00", os.urandom(MAX_MESSAGE_BYTES)):
        with pytest.raises(MalformedMessage):
            parse(data + extra)
    assert du.state is UnlockState.WAITING


@pytest.mark.parametrize("which", ["hello", "accept"])
def test_truncated_and_oversized_pairing_messages_are_refused(which: str) -> None:
    """Every truncation, a trailing byte and an oversize: malformed, and the attempt goes on."""
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    pp = PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "P", "p", now=NOW)
    machine: DesktopPairing | PhonePairing
    if which == "hello":
        data, machine, state = pp.hello_bytes, dp, PairingState.WAITING_HELLO
    else:
        dp.receive_hello(pp.hello_bytes, now=NOW)
        data, _, _ = dp.confirm("D", "d", now=NOW)
        machine, state = pp, PairingState.WAITING_ACCEPT

    def parse(b: bytes) -> object:
        return dp.receive_hello(b, now=NOW) if which == "hello" else pp.receive_accept(b, now=NOW)

    for cut in range(len(data)):
        with pytest.raises(MalformedMessage):
            parse(data[:cut])
    for extra in (b"\x00", os.urandom(MAX_MESSAGE_BYTES)):
        with pytest.raises(MalformedMessage):
            parse(data + extra)
    with pytest.raises(MalformedMessage, match="2048-byte limit"):
        parse(data + os.urandom(MAX_MESSAGE_BYTES))
    assert machine.state is state
    parse(data)  # the genuine message still completes the step
    assert machine.state is not state


def test_other_protocol_versions_are_refused(paired: Paired) -> None:
    du, pu = fresh_request(paired)
    reply = pu.approve(now=T)
    with pytest.raises(UnsupportedVersion):
        du.receive_reply(reply[:2] + b"\x02" + reply[3:], now=T)


# ------------------------------------------------------------------ what the relay sees


def test_relay_visible_bytes_contain_no_secret(paired: Paired) -> None:
    """Property 1: nothing the relay carries contains a key, a share or a QR secret."""
    desktop = KeyPair.generate(os.urandom)
    phone = KeyPair.generate(os.urandom)
    dp = DesktopPairing(desktop, RELAY, now=NOW)
    pairing_secret = dp.offer.pairing_secret  # forgotten by the desktop once paired
    pp = PhonePairing(dp.offer_bytes, phone, "P", "p", now=NOW)
    dp.receive_hello(pp.hello_bytes, now=NOW)
    accept, drec, share = dp.confirm("D", "d", now=NOW)
    # The phone allowed number matching, so both modes' messages are carried.
    prec = replace(pp.receive_accept(accept, now=NOW), allow_number_matching=True)
    carried = [pp.hello_bytes, accept]
    secrets = [share, pairing_secret, desktop.private_bytes(), phone.private_bytes()]
    secrets += [
        getattr(drec.keys, k)
        for k in ("request_mac_key", "push_key", "seen_mac_key", "unlock_psk_key", "pairing_id")
    ]
    for mode in UnlockMode:
        du = DesktopUnlock(drec, now=T, mode=mode)
        pushed = PhoneUnlock.open_push(du.push_bytes, [prec], now=T)
        pu = (
            PhoneUnlock.from_qr(du.qr_bytes, [prec], phone, now=T)
            if mode is UnlockMode.SCAN
            else PhoneUnlock.from_push(pushed, phone)
        )
        q = du.qr.qr_secret if du.qr is not None else pushed.qr_secret  # no QR in number mode
        seen = pu.seen()
        reply = pu.approve(now=T, choice=du.number)
        carried += [du.push_bytes, seen, reply]
        secrets += [q, unlock_psk(drec.keys, du.request_id, q)]
        assert du.receive_reply(reply, now=T) == Approved(share, UnlockPolicy.NUMBER_MATCHING)
    blob = b"".join(carried)
    text = "".join(b64e(c) for c in carried)
    for secret in secrets:
        for window in (secret, secret[:8], secret[-8:]):
            assert window not in blob
        assert b64e(secret) not in text


def seeded(label: str) -> Callable[[int], bytes]:
    """A deterministic random source, so a test's keys and codes are the same on every run."""
    counter = 0

    def draw(n: int) -> bytes:
        nonlocal counter
        out = b""
        while len(out) < n:
            out += hashlib.sha256(f"{label}/{counter}".encode()).digest()
            counter += 1
        return out[:n]

    return draw


def test_leaked_pairing_qr_plus_relay_mitm_shows_different_codes() -> None:
    """If an attacker photographed the pairing QR and controls the relay, the codes differ.

    Two random 6-digit codes agree once in a million runs, so the keys and HPKE
    ephemerals come from fixed seeds: the test gives the same answer every run.
    """
    dp = DesktopPairing(KeyPair.derive(bytes(32)), RELAY, now=NOW, rng=seeded("desktop"))
    victim = PhonePairing(
        dp.offer_bytes, KeyPair.derive(b"\x01" * 32), "V", "v", now=NOW, rng=seeded("victim")
    )
    attacker = PhonePairing(
        dp.offer_bytes, KeyPair.derive(b"\x02" * 32), "V", "v", now=NOW, rng=seeded("attacker")
    )
    shown_on_desktop = dp.receive_hello(attacker.hello_bytes, now=NOW).verification_code
    assert shown_on_desktop == attacker.verification_code
    assert shown_on_desktop != victim.verification_code  # the user refuses to confirm


def test_reply_bound_to_mode_and_times(paired: Paired) -> None:
    """A reply made for other request parameters (e.g. a longer ttl) does not open."""
    du = DesktopUnlock(paired.desktop, now=T, ttl=60)
    altered = RequestParams(du.params.request_id, du.params.ephemeral_pk, T, 600, UnlockMode.SCAN)
    keys = paired.phone.keys
    enc, ct, _ = hpke_seal(
        recipient_pk=du.params.ephemeral_pk,
        info=reply_info(keys.pairing_id, altered),
        aad=header(UnlockReply.TYPE) + du.request_id,
        plaintext=b"\x01" + paired.share + bytes(31),
        psk=unlock_psk(keys, du.request_id, du.qr.qr_secret),
        psk_id=Label.UNLOCK_PSK_ID,
        ephemeral_seed=os.urandom(32),
        sender=paired.phone_identity,
    )
    with pytest.raises(AuthenticationFailed):
        du.receive_reply(UnlockReply(du.request_id, enc, ct).encode(), now=T)


# ------------------------------------------------------------------ unusable (small-order) keys

# RFC 7748 section 6.1's small-order X25519 points (and the non-canonical p, p+1),
# each also with the top bit set, which X25519 ignores.
_SMALL_ORDER = [
    bytes(32),
    b"\x01" + bytes(31),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    bytes.fromhex("ec" + "ff" * 30 + "7f"),
    bytes.fromhex("ed" + "ff" * 30 + "7f"),
    bytes.fromhex("ee" + "ff" * 30 + "7f"),
]
SMALL_ORDER = _SMALL_ORDER + [k[:31] + bytes([k[31] | 0x80]) for k in _SMALL_ORDER]


@pytest.mark.parametrize("pk", SMALL_ORDER, ids=lambda k: k.hex()[:8] + k.hex()[-2:])
def test_pairing_offer_with_a_small_order_desktop_key_is_malformed(pk: bytes) -> None:
    """A QR naming an unusable desktop key is refused as malformed, not with a library error."""
    offer = PairingOffer(os.urandom(16), os.urandom(32), pk, RELAY, NOW + 600).encode()
    with pytest.raises(MalformedMessage, match="the desktop's key is not usable"):
        PhonePairing(offer, KeyPair.generate(os.urandom), "P", "p", now=NOW)
    with pytest.raises(MalformedMessage, match="the desktop's key is not usable"):
        PhonePairing(bare_link(offer), KeyPair.generate(os.urandom), "P", "p", now=NOW)


@pytest.mark.parametrize("pk", SMALL_ORDER[:3])
def test_hello_with_a_small_order_phone_key_is_malformed(pk: bytes) -> None:
    """A hello (made with the QR's secret) carrying an unusable phone key: refused, no pairing."""
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    real = KeyPair.generate(os.urandom)
    fake = KeyPair(public=pk, _pair=real._pair)
    pp = PhonePairing(dp.offer_bytes, fake, "P", "p", now=NOW)
    with pytest.raises(MalformedMessage, match="the phone's key is not usable"):
        dp.receive_hello(pp.hello_bytes, now=NOW)
    assert dp.state is PairingState.WAITING_HELLO  # nothing taken from that hello


def _authentic_requests(paired: Paired, epk: bytes, mode: UnlockMode) -> tuple[bytes, bytes]:
    """A QR and a push for ``epk``, made with the pairing's real keys (as a buggy desktop would)."""
    keys = paired.desktop.keys
    params = RequestParams(os.urandom(16), epk, T, 120, mode)
    q = os.urandom(16)
    tag = mac(keys.request_mac_key, qr_mac_input(keys.pairing_id, q, params))
    qr = UnlockQR(keys.pairing_id, params.request_id, q, epk, T, 120, tag).encode()
    numbers = (11, (11, 22, 33)) if mode is UnlockMode.NUMBER_MATCH else (None, ())
    plaintext = PushPlaintext(
        params, q if mode is UnlockMode.NUMBER_MATCH else b"", *numbers
    ).encode()
    nonce = os.urandom(12)
    aad = push_aad(header(UnlockPush.TYPE), keys.routing_id)
    push = UnlockPush(
        keys.routing_id, nonce, aead_seal(keys.push_key, nonce, plaintext, aad)
    ).encode()
    return qr, push


@pytest.mark.parametrize("pk", SMALL_ORDER, ids=lambda k: k.hex()[:8] + k.hex()[-2:])
def test_request_with_a_small_order_ephemeral_key_is_malformed(paired: Paired, pk: bytes) -> None:
    """The phone refuses the request when it opens it, and a reply to it cannot be made."""
    for mode in UnlockMode:
        qr, push = _authentic_requests(paired, pk, mode)
        with pytest.raises(MalformedMessage, match="ephemeral key is not usable"):
            PhoneUnlock.from_qr(qr, [paired.phone], paired.phone_identity, now=T)
        with pytest.raises(MalformedMessage, match="ephemeral key is not usable"):
            PhoneUnlock.open_push(push, [paired.phone], now=T)
    params = RequestParams(os.urandom(16), pk, T, 120, UnlockMode.SCAN)
    for answer in ("approve", "deny"):
        pu = PhoneUnlock(paired.phone, paired.phone_identity, params, os.urandom(16))
        with pytest.raises(MalformedMessage, match="ephemeral key is not usable"):
            pu.approve(now=T) if answer == "approve" else pu.deny(now=T)
        assert pu.state is PhoneUnlockState.FAILED and not pu.approved_share_sent
