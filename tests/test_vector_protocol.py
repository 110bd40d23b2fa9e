"""The JSON test vectors: on-disk files equal a fresh generation, and replay through the API.

The JavaScript phone app is held to the same files (web/phone/test/), so a
change to the protocol that is not reflected here fails both suites. The
intermediates an implementer debugs with (the plaintext inside each encrypted
message, the RFC 9180 context of each HPKE use) are checked here against the
messages themselves with pyhpke and ``cryptography``, not only against the
generator that wrote them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from unlatch.protocol import (
    Approved,
    Denied,
    DesktopPairingRecord,
    DesktopUnlock,
    KeyPair,
    PhonePairingRecord,
    PhoneUnlock,
    PhoneUnlockState,
    UnlockState,
    parse_link,
)
from unlatch.protocol.constants import REPLY_PLAINTEXT_LEN, UnlockMode, Verdict
from unlatch.protocol.errors import AlreadyAnswered, ModeNotAllowed
from unlatch.protocol.keyschedule import refusal_mac_input
from unlatch.protocol.messages import (
    AcceptPlaintext,
    HelloPlaintext,
    PairingAccept,
    PairingHello,
    PairingOffer,
    PushPlaintext,
    UnlockPush,
    UnlockRefusal,
    UnlockReply,
)
from unlatch.protocol.primitives import SUITE, mac

VECTORS = Path(__file__).parent / "vectors"
sys.path.insert(0, str(VECTORS))
import generate  # noqa: E402
import rfc9180  # noqa: E402


def load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", ["pairing.json", "unlock.json", "slots.json"])
def test_vector_files_match_a_fresh_generation(name: str) -> None:
    fresh = generate.render(generate.build()[name])
    assert (VECTORS / name).read_text(encoding="utf-8") == fresh, (
        f"{name} is stale: run python tests/vectors/generate.py"
    )


def test_vector_pairing_values_are_consistent() -> None:
    v = load("pairing.json")
    assert v["suite"] == {"kem": 0x20, "kdf": 1, "aead": 2}
    inter = v["intermediate"]
    desktop = KeyPair.derive(bytes.fromhex(v["inputs"]["desktop_identity_seed"]))
    assert desktop.public.hex() == inter["desktop_pk"]
    offer = PairingOffer.decode(bytes.fromhex(v["messages"]["offer"]))
    assert offer.desktop_pk.hex() == inter["desktop_pk"]
    assert parse_link(v["messages"]["offer_link"]) == bytes.fromhex(v["messages"]["offer"])
    assert parse_link(v["messages"]["offer_bare"]) == bytes.fromhex(v["messages"]["offer"])
    assert len(inter["verification_code"]) == 6
    drec = DesktopPairingRecord.from_dict(v["records"]["desktop"])
    prec = PhonePairingRecord.from_dict(v["records"]["phone"])
    assert drec.keys == prec.keys and prec.phone_share.hex() == inter["phone_share"]
    assert drec.keys.routing_id.hex() == inter["pairing_keys"]["routing_id"]


class Replay:
    """A random source that hands out a step's recorded draws in order, checking each size."""

    def __init__(self, draws: list[str]) -> None:
        self._draws = [bytes.fromhex(d) for d in draws]

    def __call__(self, n: int) -> bytes:
        assert self._draws, f"asked for {n} bytes after the recorded draws ran out"
        draw = self._draws.pop(0)
        assert len(draw) == n, f"asked for {n} bytes, the recorded draw has {len(draw)}"
        return draw

    def done(self) -> None:
        assert not self._draws, f"{len(self._draws)} recorded draws were not used"


def answer(name: str, pu: PhoneUnlock, number: int | None, now: int, rng: Replay) -> bytes:
    """What the user did in each vector (generate.py's ``answer`` functions)."""
    if name == "scan_approve":
        return pu.approve(now=now, rng=rng)
    if name == "scan_deny":
        return pu.deny(now=now, rng=rng)
    if name == "scan_not_me":
        return pu.deny(now=now, not_me=True, rng=rng)
    if name == "number_match_approve":
        return pu.approve(now=now, choice=number, rng=rng)
    if name == "number_match_wrong":
        return pu.approve(now=now, choice=next(c for c in pu.choices if c != number), rng=rng)
    if name == "number_match_not_allowed":
        # Even the right number is refused, before any draw; the user then denies.
        with pytest.raises(ModeNotAllowed):
            pu.approve(now=now, choice=number, rng=rng)
        assert pu.state is PhoneUnlockState.VERIFIED
        return pu.deny(now=now, rng=rng)
    raise AssertionError(f"unknown vector {name}")


UNLOCK_NAMES = [v["name"] for v in load("unlock.json")["vectors"]]


def unlock_vector(
    kind: str, name: str
) -> tuple[dict, DesktopPairingRecord, PhonePairingRecord, KeyPair]:
    """One vector of unlock.json (``vectors`` or ``refusals``), with both records and the phone."""
    doc = load("unlock.json")
    v = next(v for v in doc[kind] if v["name"] == name)
    drec = DesktopPairingRecord.from_dict(doc["pairing_records"]["desktop"])
    allows = v.get("inputs", {}).get("phone_allows_number_matching", False)
    prec = PhonePairingRecord.from_dict(
        {**doc["pairing_records"]["phone"], "allow_number_matching": allows}
    )
    phone = KeyPair.derive(bytes.fromhex(load("pairing.json")["inputs"]["phone_identity_seed"]))
    return v, drec, prec, phone


def test_vector_unlock_names() -> None:
    assert set(UNLOCK_NAMES) == {
        "scan_approve",
        "scan_deny",
        "scan_not_me",
        "number_match_approve",
        "number_match_wrong",
        "number_match_not_allowed",
    }


@pytest.mark.parametrize("name", UNLOCK_NAMES)
def test_vector_unlocks_replay_through_the_desktop(name: str) -> None:
    """Replay the recorded draws through both roles: same bytes, and the desktop's outcome.

    The desktop, fed the request's draws, must make the recorded QR and push
    byte for byte; the phone, fed the reply's draws, the recorded reply; and
    that recorded reply, opened by this desktop, must end in the recorded
    state and release K_P exactly when the verdict is an approval.
    """
    v, drec, prec, phone = unlock_vector("vectors", name)
    inp, inter, msgs = v["inputs"], v["intermediate"], v["messages"]

    request_rng = Replay(v["draws"]["request"])
    du = DesktopUnlock(
        drec,
        now=inp["now_request"],
        ttl=inp["ttl"],
        mode=UnlockMode(inp["mode"]),
        rng=request_rng,
    )
    request_rng.done()
    assert du.request_id.hex() == inter["request_id"]
    assert du.number == inter["number"]
    assert (du.qr_bytes.hex() if du.qr_bytes else None) == msgs["qr"]  # no QR in number mode
    assert du.push_bytes.hex() == msgs["push"]

    pushed = PhoneUnlock.open_push(bytes.fromhex(msgs["push"]), [prec], now=inp["now_push"])
    assert pushed.params == du.params and list(pushed.choices) == inter["choices"]
    if du.params.mode is UnlockMode.SCAN:
        pu = PhoneUnlock.from_qr(msgs["qr_link"], [prec], phone, now=inp["now_scan"])
    else:
        pu = PhoneUnlock.from_push(pushed, phone)
    assert pu.seen().hex() == msgs["seen"]  # the seen notice is deterministic
    du.receive_seen(bytes.fromhex(msgs["seen"]), now=inp["now_scan"] + 1)
    assert du.state is UnlockState.SEEN
    reply_rng = Replay(v["draws"]["reply"])
    assert answer(name, pu, du.number, inp["now_reply"], reply_rng).hex() == msgs["reply"]
    reply_rng.done()

    reply = bytes.fromhex(msgs["reply"])
    outcome = du.receive_reply(reply, now=inp["now_receive"])
    expected = v["outcome"]
    assert du.state.value == expected["state"]
    assert outcome.policy == expected["policy"] == prec.policy  # the desktop learns the policy
    if expected["verdict"] == "approve":
        assert isinstance(outcome, Approved) and du.state is UnlockState.APPROVED
        assert outcome.phone_share.hex() == expected["phone_share"] == prec.phone_share.hex()
    else:
        assert isinstance(outcome, Denied) and du.state is UnlockState.DENIED
        assert outcome.verdict.name.lower() == expected["verdict"]
        assert expected["phone_share"] is None
    with pytest.raises(AlreadyAnswered):  # single use: the same reply again is refused
        du.receive_reply(reply, now=inp["now_receive"])


REFUSAL_NAMES = [v["name"] for v in load("unlock.json")["refusals"]]


@pytest.mark.parametrize("name", REFUSAL_NAMES)
def test_vector_refusals_replay_through_the_desktop(name: str) -> None:
    """ "I did not ask for this" from the push alone: the recorded refusal, byte for byte.

    The phone has only the push (no QR secret); its refusal is a MAC under the
    seen-MAC key over the recorded input, and the desktop, fed the request's
    draws, ends the request as "not me" and accepts it once.
    """
    v, drec, prec, phone = unlock_vector("refusals", name)
    inp, inter, msgs = v["inputs"], v["intermediate"], v["messages"]
    request_rng = Replay(v["draws"]["request"])
    du = DesktopUnlock(
        drec, now=inp["now_request"], ttl=inp["ttl"], mode=UnlockMode(inp["mode"]), rng=request_rng
    )
    request_rng.done()
    assert du.push_bytes.hex() == msgs["push"]
    assert refusal_mac_input(drec.keys.pairing_id, du.params).hex() == inter["refusal_mac_input"]
    pushed = PhoneUnlock.open_push(bytes.fromhex(msgs["push"]), [prec], now=inp["now_push"])
    pu = PhoneUnlock.for_refusal(pushed, phone)
    refusal = pu.refuse(now=inp["now_refuse"])
    assert refusal.hex() == msgs["refusal"]
    tag = UnlockRefusal.decode(refusal).mac
    assert tag == mac(
        bytes.fromhex(inter["seen_mac_key"]), bytes.fromhex(inter["refusal_mac_input"])
    )
    outcome = du.receive_reply(refusal, now=inp["now_receive"])
    assert isinstance(outcome, Denied) and outcome.verdict is Verdict.DENY_NOT_ME
    assert du.state.value == v["outcome"]["state"] == "denied"
    assert outcome.verdict.name.lower() == v["outcome"]["verdict"]
    with pytest.raises(AlreadyAnswered):
        du.receive_reply(refusal, now=inp["now_receive"])


def check_hpke_context(
    ctx: dict,
    *,
    recipient_sk: str,
    enc: bytes,
    info: str,
    psk: str,
    psk_id: str,
    aad: str,
    ciphertext: bytes,
    plaintext: str,
    sender_pk: str | None = None,
) -> None:
    """One recorded HPKE context against its message.

    pyhpke's Decap must give the recorded shared secret, the RFC 9180 key
    schedule (``rfc9180.py``, itself held to the RFC's vectors) must give the
    recorded values from it, and AES-256-GCM under the recorded key and base
    nonce must open the message's ciphertext to the recorded plaintext.
    """
    x = bytes.fromhex
    assert KeyPair.from_private_bytes(x(ctx["skEm"])).public == enc
    skr = SUITE.kem.deserialize_private_key(x(recipient_sk))
    pks = SUITE.kem.deserialize_public_key(x(sender_pk)) if sender_pk else None
    assert SUITE.kem.decap(enc, skr, pks).hex() == ctx["shared_secret"]
    schedule = rfc9180.key_schedule(
        ctx["mode"], x(ctx["shared_secret"]), x(info), x(psk), x(psk_id)
    )
    assert schedule.to_dict() == {k: v for k, v in ctx.items() if k != "skEm"}
    opened = AESGCM(x(ctx["key"])).decrypt(x(ctx["base_nonce"]), ciphertext, x(aad))
    assert opened.hex() == plaintext


def test_vector_pairing_plaintexts_and_hpke_context() -> None:
    v = load("pairing.json")
    inp, inter = v["inputs"], v["intermediate"]
    hello_pt = HelloPlaintext.decode(bytes.fromhex(inter["hello_plaintext"]))
    assert hello_pt == HelloPlaintext(
        bytes.fromhex(inter["phone_pk"]), inp["phone_name"], inp["phone_device_id"]
    )
    assert hello_pt.encode().hex() == inter["hello_plaintext"]
    accept_pt = AcceptPlaintext.decode(bytes.fromhex(inter["accept_plaintext"]))
    assert accept_pt == AcceptPlaintext(
        bytes.fromhex(inter["phone_share"]), inp["desktop_name"], inp["desktop_device_id"]
    )
    assert accept_pt.encode().hex() == inter["accept_plaintext"]

    hello = PairingHello.decode(bytes.fromhex(v["messages"]["hello"]))
    ctx = inter["hello_hpke"]
    assert ctx["mode"] == rfc9180.MODE_PSK
    check_hpke_context(
        ctx,
        recipient_sk=inter["desktop_sk"],
        enc=hello.enc,
        info=inter["hello_info"],
        psk=inter["pairing_psk"],
        psk_id=inter["pairing_psk_id"],
        aad=inter["hello_aad"],
        ciphertext=hello.ciphertext,
        plaintext=inter["hello_plaintext"],
    )
    # The exporter secret gives the pairing root, as pyhpke's own exporter does.
    exporter_context = bytes.fromhex(inter["root_export_context"])
    schedule = rfc9180.key_schedule(
        ctx["mode"],
        bytes.fromhex(ctx["shared_secret"]),
        bytes.fromhex(inter["hello_info"]),
        bytes.fromhex(inter["pairing_psk"]),
        bytes.fromhex(inter["pairing_psk_id"]),
    )
    assert schedule.export(exporter_context, 32).hex() == inter["pairing_root"]
    recipient = SUITE.create_recipient_context(
        hello.enc,
        SUITE.kem.deserialize_private_key(bytes.fromhex(inter["desktop_sk"])),
        info=bytes.fromhex(inter["hello_info"]),
        psk=bytes.fromhex(inter["pairing_psk"]),
        psk_id=bytes.fromhex(inter["pairing_psk_id"]),
    )
    assert recipient.export(exporter_context, 32).hex() == inter["pairing_root"]

    accept = PairingAccept.decode(bytes.fromhex(v["messages"]["accept"]))
    opened = AESGCM(bytes.fromhex(inter["accept_key"])).decrypt(
        bytes(12), accept.ciphertext, bytes.fromhex(inter["accept_aad"])
    )
    assert opened.hex() == inter["accept_plaintext"]


@pytest.mark.parametrize("index", range(5))
def test_vector_unlock_plaintexts_and_hpke_context(index: int) -> None:
    doc = load("unlock.json")
    v = doc["vectors"][index]
    inter, msgs = v["intermediate"], v["messages"]
    drec = DesktopPairingRecord.from_dict(doc["pairing_records"]["desktop"])
    keys = drec.keys

    push = UnlockPush.decode(bytes.fromhex(msgs["push"]))
    opened = AESGCM(keys.push_key).decrypt(
        push.nonce, push.ciphertext, bytes.fromhex(inter["push_aad"])
    )
    assert opened.hex() == inter["push_plaintext"]
    assert len(opened) == inter["push_plaintext_len"]
    contents = PushPlaintext.decode(opened)
    assert contents.params.request_id.hex() == inter["request_id"]
    assert contents.params.ephemeral_pk.hex() == inter["ephemeral_pk"]
    assert int(contents.params.mode) == v["inputs"]["mode"]
    assert contents.number == inter["number"] and list(contents.choices) == inter["choices"]
    number_match = contents.params.mode is UnlockMode.NUMBER_MATCH
    assert contents.qr_secret.hex() == (inter["qr_secret"] if number_match else "")

    assert (
        KeyPair.from_private_bytes(bytes.fromhex(inter["ephemeral_sk"])).public.hex()
        == (inter["ephemeral_pk"])
    )
    reply = UnlockReply.decode(bytes.fromhex(msgs["reply"]))
    assert inter["reply_hpke"]["mode"] == rfc9180.MODE_AUTH_PSK
    check_hpke_context(
        inter["reply_hpke"],
        recipient_sk=inter["ephemeral_sk"],
        sender_pk=drec.phone_pk.hex(),
        enc=reply.enc,
        info=inter["reply_info"],
        psk=inter["unlock_psk"],
        psk_id=inter["unlock_psk_id"],
        aad=inter["reply_aad"],
        ciphertext=reply.ciphertext,
        plaintext=inter["reply_plaintext"],
    )
    plaintext = bytes.fromhex(inter["reply_plaintext"])
    assert len(plaintext) == REPLY_PLAINTEXT_LEN and not any(plaintext[34:])
    assert (
        plaintext[33] == v["outcome"]["policy"] == int(v["inputs"]["phone_allows_number_matching"])
    )
    assert Verdict(plaintext[0]).name.lower() == v["outcome"]["verdict"]
    share = v["outcome"]["phone_share"]
    assert plaintext[1:33].hex() == (share if share is not None else "00" * 32)
