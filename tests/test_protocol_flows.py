"""The protocol's happy paths and state machines, role by role."""

from __future__ import annotations

import os

import pytest
from fixtures.protocol import NOW, RELAY, Paired, make_pairing

from unlatch.protocol import (
    AlreadyAnswered,
    Approved,
    AuthenticationFailed,
    Denied,
    DesktopPairing,
    DesktopUnlock,
    InvalidState,
    KeyPair,
    ModeNotAllowed,
    PairingState,
    PhonePairing,
    PhoneUnlock,
    PhoneUnlockState,
    ReplayGuard,
    RequestExpired,
    UnexpectedMessage,
    UnlockMode,
    UnlockPolicy,
    UnlockState,
    UnsupportedVersion,
    app_link,
    bare_link,
    parse_link,
    phone_slot_kek,
)
from unlatch.protocol.constants import REPLY_PLAINTEXT_LEN, TAG_LEN, Verdict
from unlatch.protocol.errors import MalformedMessage
from unlatch.protocol.keyschedule import qr_mac_input
from unlatch.protocol.messages import UnlockQR
from unlatch.protocol.primitives import mac

T = NOW + 100


def test_pairing_gives_both_sides_the_same_keys(paired: Paired) -> None:
    assert paired.desktop.keys == paired.phone.keys
    assert paired.phone.phone_share == paired.share
    assert paired.desktop.phone_pk == paired.phone_identity.public
    assert paired.phone.desktop_pk == paired.desktop_identity.public
    assert paired.phone.desktop_name == "Desktop"
    assert paired.desktop.phone_name == "Phone"


def test_pairing_records_round_trip(paired: Paired) -> None:
    from unlatch.protocol import DesktopPairingRecord, PhonePairingRecord

    assert DesktopPairingRecord.from_dict(paired.desktop.to_dict()) == paired.desktop
    assert PhonePairingRecord.from_dict(paired.phone.to_dict()) == paired.phone
    allowing = paired.allowing_number_matching().phone
    assert PhonePairingRecord.from_dict(allowing.to_dict()) == allowing


def test_a_phone_record_without_a_policy_allows_scanning_only(paired: Paired) -> None:
    """Records stored before the policy existed lack the field: they read as scan only."""
    from unlatch.protocol import PhonePairingRecord

    old = paired.allowing_number_matching().phone.to_dict()
    del old["allow_number_matching"]
    assert PhonePairingRecord.from_dict(old).allow_number_matching is False
    with pytest.raises(MalformedMessage, match="true or false"):
        PhonePairingRecord.from_dict({**old, "allow_number_matching": 1})


def test_desktop_pairing_states() -> None:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    assert dp.state is PairingState.WAITING_HELLO
    with pytest.raises(InvalidState):
        dp.confirm("d", "d", now=NOW)
    pp = PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "p", "p", now=NOW)
    dp.receive_hello(pp.hello_bytes, now=NOW)
    assert dp.state is PairingState.AWAITING_CONFIRM
    with pytest.raises(InvalidState):
        dp.receive_hello(pp.hello_bytes, now=NOW)  # a second phone cannot take over
    dp.reject()
    assert dp.state is PairingState.FAILED
    with pytest.raises(InvalidState):
        dp.confirm("d", "d", now=NOW)


def _phone_waiting_for_accept() -> tuple[PhonePairing, bytes]:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    pp = PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "p", "p", now=NOW)
    dp.receive_hello(pp.hello_bytes, now=NOW)
    accept, _, _ = dp.confirm("Desktop", "desk-1", now=NOW)
    return pp, accept


def test_phone_pairing_survives_garbage_but_not_a_forged_accept() -> None:
    """Bytes that are not an accept change nothing (the real one can still finish the
    pairing); an accept that fails authentication ends the attempt (protocol.md 5.5)."""
    pp, accept = _phone_waiting_for_accept()
    garbage = [
        accept[:-1],  # truncated
        accept + b"\x00",  # trailing byte
        accept[:2] + b"\x02" + accept[3:],  # another version
        pp.hello_bytes,  # another message type
        b"",
    ]
    for data in garbage:
        with pytest.raises((MalformedMessage, UnexpectedMessage, UnsupportedVersion)):
            pp.receive_accept(data, now=NOW)
        assert pp.state is PairingState.WAITING_ACCEPT
    record = pp.receive_accept(accept, now=NOW)
    assert pp.state is PairingState.DONE and record.desktop_name == "Desktop"

    pp, accept = _phone_waiting_for_accept()
    forged = accept[:-1] + bytes([accept[-1] ^ 1])
    with pytest.raises(AuthenticationFailed):
        pp.receive_accept(forged, now=NOW)
    assert pp.state is PairingState.FAILED and pp._root is None
    with pytest.raises(InvalidState):
        pp.receive_accept(accept, now=NOW)  # the attempt is over: pair again


def test_desktop_pairing_survives_a_hello_that_does_not_open() -> None:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    pp = PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "p", "p", now=NOW)
    for data in (pp.hello_bytes[:-1], pp.hello_bytes[:-1] + bytes([pp.hello_bytes[-1] ^ 1])):
        with pytest.raises((MalformedMessage, AuthenticationFailed)):
            dp.receive_hello(data, now=NOW)
        assert dp.state is PairingState.WAITING_HELLO
    assert dp.receive_hello(pp.hello_bytes, now=NOW).verification_code == pp.verification_code


def test_pairing_offer_expires() -> None:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW, ttl=60)
    with pytest.raises(RequestExpired):
        PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "p", "p", now=NOW + 61)
    pp = PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "p", "p", now=NOW + 59)
    with pytest.raises(RequestExpired):
        dp.receive_hello(pp.hello_bytes, now=NOW + 61)


def test_scan_unlock_approve(paired: Paired) -> None:
    du = DesktopUnlock(paired.desktop, now=T)
    pushed = PhoneUnlock.open_push(du.push_bytes, [paired.phone], now=T + 1)
    assert pushed.pairing.desktop_name == "Desktop"
    assert pushed.params.request_id == du.request_id
    assert pushed.qr_secret == b"" and pushed.choices == ()
    pu = PhoneUnlock.from_qr(
        app_link(RELAY + "/app/", du.qr_bytes), [paired.phone], paired.phone_identity, now=T + 2
    )
    assert pu.remaining(now=T + 2) == 118
    du.receive_seen(pu.seen(), now=T + 3)
    assert du.state is UnlockState.SEEN
    outcome = du.receive_reply(pu.approve(now=T + 4), now=T + 5)
    assert outcome == Approved(paired.share)
    assert du.state is UnlockState.APPROVED


@pytest.mark.parametrize("not_me", [False, True])
def test_scan_unlock_deny(paired: Paired, not_me: bool) -> None:
    du = DesktopUnlock(paired.desktop, now=T)
    pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
    outcome = du.receive_reply(pu.deny(now=T, not_me=not_me), now=T)
    assert isinstance(outcome, Denied) and outcome.not_me is not_me
    assert du.state is UnlockState.DENIED


def test_approve_and_deny_have_the_same_size(paired: Paired) -> None:
    sizes = set()
    for answer in ("approve", "deny", "not_me"):
        du = DesktopUnlock(paired.desktop, now=T)
        pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
        reply = (
            pu.approve(now=T) if answer == "approve" else pu.deny(now=T, not_me=answer == "not_me")
        )
        sizes.add(len(reply))
    assert sizes == {4 + 3 * 2 + 16 + 32 + REPLY_PLAINTEXT_LEN + TAG_LEN}


def test_number_matching_right_and_wrong(paired: Paired) -> None:
    paired = paired.allowing_number_matching()
    du = DesktopUnlock(paired.desktop, now=T, mode=UnlockMode.NUMBER_MATCH)
    assert du.number is not None
    pushed = PhoneUnlock.open_push(du.push_bytes, [paired.phone], now=T)
    pu = PhoneUnlock.from_push(pushed, paired.phone_identity)
    assert du.number in pu.choices and len(set(pu.choices)) == 3
    with pytest.raises(InvalidState):
        pu.approve(now=T)  # must pick a number
    assert du.receive_reply(pu.approve(now=T, choice=du.number), now=T) == Approved(
        paired.share, UnlockPolicy.NUMBER_MATCHING
    )

    du2 = DesktopUnlock(paired.desktop, now=T, mode=UnlockMode.NUMBER_MATCH)
    pu2 = PhoneUnlock.from_push(
        PhoneUnlock.open_push(du2.push_bytes, [paired.phone], now=T), paired.phone_identity
    )
    wrong = next(c for c in pu2.choices if c != du2.number)
    reply = pu2.approve(now=T, choice=wrong)
    assert pu2.approved_share_sent is False
    outcome = du2.receive_reply(reply, now=T)
    assert isinstance(outcome, Denied) and outcome.wrong_number


def test_number_matching_request_has_no_qr(paired: Paired) -> None:
    """Mode 2 shows the number only: DesktopUnlock makes no QR (protocol.md 6.2)."""
    du = DesktopUnlock(paired.desktop, now=T, mode=UnlockMode.NUMBER_MATCH)
    assert du.qr is None and du.qr_bytes is None and du.number is not None
    scan = DesktopUnlock(paired.desktop, now=T)
    assert scan.qr is not None and scan.qr_bytes == scan.qr.encode() and scan.number is None


def test_a_qr_for_a_number_matching_request_could_only_fail(paired: Paired) -> None:
    """Why no QR is made in mode 2: its MAC does not cover the mode, so a phone that
    scans one answers in scan mode, and the request (whose reply info binds mode 2)
    refuses that answer and is burnt. This builds the QR an older desktop showed."""
    du = DesktopUnlock(paired.desktop, now=T, mode=UnlockMode.NUMBER_MATCH)
    keys = paired.desktop.keys
    q = du._qr_secret
    assert q is not None
    tag = mac(keys.request_mac_key, qr_mac_input(keys.pairing_id, q, du.params))
    p = du.params
    qr = UnlockQR(keys.pairing_id, p.request_id, q, p.ephemeral_pk, T, p.ttl, tag).encode()
    pu = PhoneUnlock.from_qr(qr, [paired.phone], paired.phone_identity, now=T)  # it verifies...
    assert pu.params.mode is UnlockMode.SCAN
    with pytest.raises(AuthenticationFailed):  # ...but its answer cannot
        du.receive_reply(pu.approve(now=T), now=T)
    assert du.state is UnlockState.FAILED


def test_phone_refuses_a_mode_its_pairing_did_not_allow(paired: Paired) -> None:
    """A number-matching request to a scan-only pairing (the default): approving is refused,
    even with the right number, nothing is made or dropped, and the user may still deny;
    the denial tells the desktop the policy (protocol.md 6.8)."""
    assert paired.phone.allow_number_matching is False
    du = DesktopUnlock(paired.desktop, now=T, mode=UnlockMode.NUMBER_MATCH)
    pushed = PhoneUnlock.open_push(du.push_bytes, [paired.phone], now=T)
    pu = PhoneUnlock.from_push(pushed, paired.phone_identity)
    assert not pu.mode_allowed
    with pytest.raises(ModeNotAllowed, match="you did not allow") as refused:
        pu.approve(now=T, choice=du.number)
    assert refused.value.code == "mode_not_allowed"
    with pytest.raises(ModeNotAllowed):
        pu.check_mode()
    assert pu.state is PhoneUnlockState.VERIFIED and not pu.approved_share_sent
    outcome = du.receive_reply(pu.deny(now=T), now=T)
    assert outcome == Denied(Verdict.DENY, UnlockPolicy.SCAN_ONLY)
    # Scanning stays allowed under every policy.
    scan = DesktopUnlock(paired.desktop, now=T)
    pu_scan = PhoneUnlock.from_qr(scan.qr_bytes, [paired.phone], paired.phone_identity, now=T)
    assert pu_scan.mode_allowed
    assert scan.receive_reply(pu_scan.approve(now=T), now=T) == Approved(paired.share)


@pytest.mark.parametrize("allowed", [False, True])
def test_every_reply_tells_the_desktop_the_phones_policy(paired: Paired, allowed: bool) -> None:
    """The desktop learns the policy from any authenticated reply, a scan's included."""
    if allowed:
        paired = paired.allowing_number_matching()
    policy = UnlockPolicy.NUMBER_MATCHING if allowed else UnlockPolicy.SCAN_ONLY
    for answer in ("approve", "deny", "not_me"):
        du = DesktopUnlock(paired.desktop, now=T)
        pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
        reply = (
            pu.approve(now=T) if answer == "approve" else pu.deny(now=T, not_me=answer == "not_me")
        )
        assert du.receive_reply(reply, now=T).policy is policy


def test_a_reply_with_an_unknown_policy_is_refused(
    paired: Paired, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Byte 33 of the reply's plaintext is 0 or 1; anything else burns the request."""
    import unlatch.protocol.unlock as unlock

    du = DesktopUnlock(paired.desktop, now=T)
    pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
    monkeypatch.setattr(
        unlock,
        "_reply_plaintext",
        lambda verdict, share, policy: (
            b"\x02" + bytes(32) + b"\x02" + bytes(REPLY_PLAINTEXT_LEN - 34)
        ),
    )
    with pytest.raises(MalformedMessage, match="policy"):
        du.receive_reply(pu.deny(now=T), now=T)
    assert du.state is UnlockState.FAILED


def test_scan_mode_push_cannot_be_answered_without_the_qr(paired: Paired) -> None:
    du = DesktopUnlock(paired.desktop, now=T)
    pushed = PhoneUnlock.open_push(du.push_bytes, [paired.phone], now=T)
    with pytest.raises(InvalidState):
        PhoneUnlock.from_push(pushed, paired.phone_identity)


def test_push_payloads_have_one_size_whatever_the_mode(paired: Paired) -> None:
    scan = DesktopUnlock(paired.desktop, now=T).push_bytes
    number = DesktopUnlock(paired.desktop, now=T, mode=UnlockMode.NUMBER_MATCH).push_bytes
    assert len(scan) == len(number)


def test_desktop_request_expires_and_drops_its_key(paired: Paired) -> None:
    du = DesktopUnlock(paired.desktop, now=T, ttl=30)
    pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
    reply = pu.approve(now=T + 10)
    assert du.check_expiry(now=T + 31)
    assert du.state is UnlockState.EXPIRED and du._ephemeral is None
    with pytest.raises(AlreadyAnswered):
        du.receive_reply(reply, now=T + 31)


def test_cancel_drops_the_ephemeral_key(paired: Paired) -> None:
    du = DesktopUnlock(paired.desktop, now=T)
    du.cancel()
    assert du.state is UnlockState.CANCELLED and du._ephemeral is None


def test_phone_answers_once(paired: Paired) -> None:
    du = DesktopUnlock(paired.desktop, now=T)
    pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
    pu.approve(now=T)
    with pytest.raises(AlreadyAnswered):
        pu.deny(now=T)


def test_phone_unlock_states_and_single_answer(paired: Paired) -> None:
    """verified -> answered; every later step is refused by the object itself."""
    du = DesktopUnlock(paired.desktop, now=T)
    pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
    assert pu.state is PhoneUnlockState.VERIFIED and not pu.answered
    pu.seen()  # a status notice is not an answer
    reply = pu.approve(now=T)
    assert pu.state is PhoneUnlockState.ANSWERED and pu.answered and pu.approved_share_sent
    assert pu._qr_secret is None  # the request's secret is dropped with the answer
    for again in (
        lambda: pu.approve(now=T),
        lambda: pu.deny(now=T),
        lambda: pu.deny(now=T, not_me=True),
        pu.seen,
    ):
        with pytest.raises(AlreadyAnswered):
            again()
    assert du.receive_reply(reply, now=T) == Approved(paired.share)


def test_phone_unlock_expires_and_fails_without_sending(paired: Paired) -> None:
    du = DesktopUnlock(paired.desktop, now=T, ttl=30)
    pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
    with pytest.raises(RequestExpired):
        pu.approve(now=T + 100)  # the user decided too late
    assert pu.state is PhoneUnlockState.EXPIRED and pu._qr_secret is None
    assert not pu.approved_share_sent
    with pytest.raises(InvalidState):
        pu.deny(now=T)  # a final state: even with an earlier clock nothing is sent
    with pytest.raises(InvalidState):
        pu.seen()


def test_a_wrong_pick_is_an_answer_but_no_pick_is_not(paired: Paired) -> None:
    paired = paired.allowing_number_matching()
    du = DesktopUnlock(paired.desktop, now=T, mode=UnlockMode.NUMBER_MATCH)
    pushed = PhoneUnlock.open_push(du.push_bytes, [paired.phone], now=T)
    pu = PhoneUnlock.from_push(pushed, paired.phone_identity)
    with pytest.raises(InvalidState):
        pu.approve(now=T, choice=None)
    with pytest.raises(InvalidState):
        pu.approve(now=T, choice=100)  # not among the choices: the user may pick again
    assert pu.state is PhoneUnlockState.VERIFIED
    wrong = next(c for c in pu.choices if c != du.number)
    pu.approve(now=T, choice=wrong)
    assert pu.state is PhoneUnlockState.ANSWERED and not pu.approved_share_sent
    with pytest.raises(AlreadyAnswered):
        pu.approve(now=T, choice=du.number)  # no second try after a wrong pick


@pytest.mark.parametrize("end", ["approved", "denied", "failed", "expired", "cancelled"])
def test_desktop_request_drops_its_secrets_in_every_final_state(paired: Paired, end: str) -> None:
    du = DesktopUnlock(paired.desktop, now=T)
    assert du.qr is not None and du._qr_secret is not None and du._ephemeral is not None
    pu = PhoneUnlock.from_qr(du.qr_bytes, [paired.phone], paired.phone_identity, now=T)
    seen = pu.seen()
    if end == "approved":
        du.receive_reply(pu.approve(now=T), now=T)
    elif end == "denied":
        du.receive_reply(pu.deny(now=T), now=T)
    elif end == "failed":
        reply = pu.approve(now=T)
        with pytest.raises(AuthenticationFailed):
            du.receive_reply(reply[:-1] + bytes([reply[-1] ^ 1]), now=T)
    elif end == "expired":
        assert du.check_expiry(now=T + 1000)
    else:
        du.cancel()
    assert du.state.value == end
    assert du._ephemeral is None and du._qr_secret is None
    assert du.qr is None and du.qr_bytes is None
    with pytest.raises(AlreadyAnswered):
        du.receive_seen(seen, now=T)


def _assert_desktop_pairing_forgot(dp: DesktopPairing) -> None:
    assert dp.offer.pairing_secret == b""
    assert dp._root is None and dp._th is None and dp._hello is None
    with pytest.raises(InvalidState):
        _ = dp.offer_bytes  # the property refuses once the secret is gone
    assert dp.channel_id and dp.expires_at  # public fields stay for the caller


@pytest.mark.parametrize("end", ["confirmed", "rejected", "expired_hello", "expired_confirm"])
def test_desktop_pairing_drops_its_secrets_when_it_ends(end: str) -> None:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW, ttl=60)
    pp = PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "p", "p", now=NOW)
    if end == "expired_hello":
        with pytest.raises(RequestExpired):
            dp.receive_hello(pp.hello_bytes, now=NOW + 61)
    else:
        dp.receive_hello(pp.hello_bytes, now=NOW)
        assert dp._th is not None and dp._hello is not None
        if end == "confirmed":
            dp.confirm("Desktop", "desk-1", now=NOW)
        elif end == "rejected":
            dp.reject()
        else:
            with pytest.raises(RequestExpired):
                dp.confirm("Desktop", "desk-1", now=NOW + 61)
    assert dp.state is (PairingState.DONE if end == "confirmed" else PairingState.FAILED)
    _assert_desktop_pairing_forgot(dp)


def test_phone_pairing_drops_the_pairing_secret_once_the_hello_is_made() -> None:
    dp = DesktopPairing(KeyPair.generate(os.urandom), RELAY, now=NOW)
    pp = PhonePairing(dp.offer_bytes, KeyPair.generate(os.urandom), "p", "p", now=NOW)
    assert pp.offer.pairing_secret == b"" and pp.channel_id == dp.channel_id
    dp.receive_hello(pp.hello_bytes, now=NOW)
    accept, _, _ = dp.confirm("Desktop", "desk-1", now=NOW)
    pp.receive_accept(accept, now=NOW)
    assert pp.state is PairingState.DONE and pp._root is None and pp._th is None


def test_replay_guard_persists_and_prunes() -> None:
    guard = ReplayGuard()
    rid = os.urandom(16)
    guard.check(rid)
    guard.remember(rid, T + 120, now=T)
    with pytest.raises(AlreadyAnswered):
        guard.check(rid)
    restored = ReplayGuard.from_dict(guard.to_dict())
    with pytest.raises(AlreadyAnswered):
        restored.check(rid)
    restored.prune(now=T + 1000)
    restored.check(rid)
    assert len(restored) == 0
    with pytest.raises(MalformedMessage):
        ReplayGuard.from_dict({"not base64!": 1})


def test_links_round_trip_and_reject_garbage(paired: Paired) -> None:
    msg = DesktopUnlock(paired.desktop, now=T).qr_bytes
    assert parse_link(app_link("https://r.example/app/", msg)) == msg
    assert parse_link(bare_link(msg)) == msg
    assert parse_link("  " + bare_link(msg).upper()[:8].lower() + bare_link(msg)[8:]) == msg
    for bad in (
        "",
        "https://r.example/app/",
        "https://r.example/app/#x=abc",
        "unlatch:",
        "unlatch:***",
        "a" * 5000,
    ):
        with pytest.raises(MalformedMessage):
            parse_link(bad)


def test_phone_slot_kek_needs_both_secrets(paired: Paired) -> None:
    local = os.urandom(32)
    kek = phone_slot_kek(paired.share, local, paired.desktop.pairing_id)
    assert kek != phone_slot_kek(paired.share, os.urandom(32), paired.desktop.pairing_id)
    assert kek != phone_slot_kek(os.urandom(32), local, paired.desktop.pairing_id)
    assert kek != phone_slot_kek(paired.share, local, os.urandom(16))


def test_two_pairings_of_one_phone_are_independent() -> None:
    phone = KeyPair.generate(os.urandom)
    a, b = make_pairing(phone_identity=phone), make_pairing(phone_identity=phone)
    assert a.phone.keys != b.phone.keys and a.share != b.share
    du = DesktopUnlock(b.desktop, now=T)
    pu = PhoneUnlock.from_qr(du.qr_bytes, [a.phone, b.phone], phone, now=T)
    assert pu.pairing == b.phone
    assert du.receive_reply(pu.approve(now=T), now=T) == Approved(b.share)
