"""Regenerate the protocol test vectors: ``python tests/vectors/generate.py``.

Every vector is produced by the Python implementation from fixed seeds. A
deterministic random stream (SHA-256 in counter mode over a named seed) stands
in for ``os.urandom``; each step records its random draws in order, so another
implementation (the phone app's JavaScript) can replay exactly the same
draws, and every intermediate value, so a mismatch points at the step that
differs. That includes the plaintext inside every encrypted message and the
RFC 9180 context of every HPKE use (shared secret, key schedule context,
secret, key, base nonce, exporter secret: ``rfc9180.py``), each checked here
against the real message before it is written. ``tests/test_vector_protocol.py``
checks that the files on disk equal a fresh generation, and replays them
through the public API.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rfc9180  # tests/vectors/: on the path when run as a script or from the tests
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from unlatch.protocol import (
    DesktopPairing,
    DesktopUnlock,
    KeyPair,
    ModeNotAllowed,
    PhonePairing,
    PhoneUnlock,
    UnlockMode,
    app_link,
    bare_link,
    phone_slot_kek,
)
from unlatch.protocol import keyschedule as ks
from unlatch.protocol.constants import NONCE_LEN, Label, MessageType
from unlatch.protocol.encoding import header, transcript
from unlatch.protocol.messages import PairingAccept, PairingHello, UnlockPush, UnlockReply
from unlatch.protocol.primitives import SUITE, aead_open, hpke_open

HERE = Path(__file__).parent
APP_URL = "https://relay.example/app/"
RELAY_URL = "https://relay.example"


class Draws:
    """A seeded stream of random bytes that records each draw."""

    def __init__(self, seed: str) -> None:
        self._seed = hashlib.sha256(seed.encode()).digest()
        self._counter = 0
        self.log: list[str] = []

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.sha256(self._seed + self._counter.to_bytes(8, "big")).digest()
            self._counter += 1
        value = out[:n]
        self.log.append(value.hex())
        return value

    def take_log(self) -> list[str]:
        log, self.log = self.log, []
        return log


def h(b: bytes) -> str:
    return b.hex()


def keys_dict(keys: ks.PairingKeys) -> dict[str, str]:
    return {name: h(getattr(keys, name)) for name in keys.__dataclass_fields__}


def hpke_context(
    *,
    ephemeral_seed: str,
    recipient: KeyPair,
    info: bytes,
    psk: bytes,
    psk_id: bytes,
    aad: bytes,
    enc: bytes,
    ciphertext: bytes,
    plaintext: bytes,
    sender: KeyPair | None = None,
) -> tuple[dict[str, Any], rfc9180.Context]:
    """The RFC 9180 context values of one recorded seal, checked against that seal.

    The values come from ``rfc9180.py``; they are recorded only if they
    reproduce the message: the ephemeral key gives ``enc``, pyhpke's Decap
    gives the same shared secret, and AES-256-GCM under ``key`` and
    ``base_nonce`` (sequence number 0) gives the exact ciphertext.
    """
    sk_e = KeyPair.derive(bytes.fromhex(ephemeral_seed)).private_bytes()
    sk_s = sender.private_bytes() if sender is not None else None
    ctx = rfc9180.sender_context(sk_e, recipient.public, info, psk, psk_id, sk_s)
    assert KeyPair.from_private_bytes(sk_e).public == enc, "ephemeral seed does not give enc"
    pks = SUITE.kem.deserialize_public_key(sender.public) if sender is not None else None
    decapped = SUITE.kem.decap(enc, recipient._pair.private_key, pks)
    assert decapped == ctx.shared_secret, "shared secret differs from pyhpke's Decap"
    sealed = AESGCM(ctx.key).encrypt(ctx.base_nonce, plaintext, aad)
    assert sealed == ciphertext, "key/base_nonce do not reproduce the ciphertext"
    return {"skEm": h(sk_e), **ctx.to_dict()}, ctx


def pairing_vector(rng: Draws) -> tuple[dict[str, Any], Any, Any, KeyPair, bytes]:
    desktop_seed = rng(32)
    phone_seed = rng(32)
    desktop = KeyPair.derive(desktop_seed)
    phone = KeyPair.derive(phone_seed)
    identities = rng.take_log()

    now = 1_764_000_000
    dp = DesktopPairing(desktop, RELAY_URL, now=now, ttl=600, rng=rng)
    offer_draws = rng.take_log()
    o, offer_bytes = dp.offer, dp.offer_bytes  # the desktop forgets S once the pairing ends
    pp = PhonePairing(
        app_link(APP_URL, dp.offer_bytes), phone, "Ada's phone", "phone-dev-1", now=now + 5, rng=rng
    )
    hello_draws = rng.take_log()
    pending = dp.receive_hello(pp.hello_bytes, now=now + 6)
    accept, drec, share = dp.confirm("Ada's laptop", "desktop-dev-1", now=now + 20, rng=rng)
    accept_draws = rng.take_log()
    prec = pp.receive_accept(accept, now=now + 21)

    th = ks.pairing_transcript_hash(
        o.channel_id, o.desktop_pk, o.relay_url, o.expires_at, pp.hello_bytes
    )
    hello = PairingHello.decode(pp.hello_bytes)
    hello_plaintext, root = hpke_open(
        recipient=desktop,
        enc=hello.enc,
        info=ks.hello_info(o.channel_id, o.desktop_pk, o.relay_url, o.expires_at),
        aad=header(MessageType.PAIRING_HELLO),
        ciphertext=hello.ciphertext,
        psk=ks.pairing_psk(o.pairing_secret, o.channel_id),
        psk_id=Label.PAIR_PSK_ID,
        export_context=ks.root_export_context(th),
        what="vector hello",
    )
    hello_hpke, hello_ctx = hpke_context(
        ephemeral_seed=hello_draws[0],
        recipient=desktop,
        info=ks.hello_info(o.channel_id, o.desktop_pk, o.relay_url, o.expires_at),
        psk=ks.pairing_psk(o.pairing_secret, o.channel_id),
        psk_id=Label.PAIR_PSK_ID,
        aad=header(MessageType.PAIRING_HELLO),
        enc=hello.enc,
        ciphertext=hello.ciphertext,
        plaintext=hello_plaintext,
    )
    assert hello_ctx.export(ks.root_export_context(th), 32) == root, "exporter differs"
    accept_plaintext = aead_open(
        ks.accept_key(root),
        bytes(NONCE_LEN),
        PairingAccept.decode(accept).ciphertext,
        ks.accept_aad(th),
        "vector accept",
    )
    vector = {
        "description": "Pairing: offer QR, hello (HPKE mode_psk), verification code, accept",
        "inputs": {
            "desktop_identity_seed": h(desktop_seed),
            "phone_identity_seed": h(phone_seed),
            "relay_url": RELAY_URL,
            "app_url": APP_URL,
            "now_offer": now,
            "pairing_ttl": 600,
            "now_hello": now + 5,
            "now_confirm": now + 20,
            "now_accept": now + 21,
            "phone_name": "Ada's phone",
            "phone_device_id": "phone-dev-1",
            "desktop_name": "Ada's laptop",
            "desktop_device_id": "desktop-dev-1",
        },
        "draws": {
            "identities": identities,
            "offer": offer_draws,
            "hello": hello_draws,
            "accept": accept_draws,
        },
        "intermediate": {
            "desktop_pk": h(desktop.public),
            "desktop_sk": h(desktop.private_bytes()),
            "phone_pk": h(phone.public),
            "phone_sk": h(phone.private_bytes()),
            "pairing_psk": h(ks.pairing_psk(o.pairing_secret, o.channel_id)),
            "pairing_psk_id": h(Label.PAIR_PSK_ID),
            "hello_info": h(ks.hello_info(o.channel_id, o.desktop_pk, o.relay_url, o.expires_at)),
            "hello_aad": h(header(MessageType.PAIRING_HELLO)),
            "hello_plaintext": h(hello_plaintext),
            "hello_hpke": hello_hpke,
            "transcript_hash": h(th),
            "root_export_context": h(ks.root_export_context(th)),
            "verification_code": pending.verification_code,
            "pairing_keys": keys_dict(drec.keys),
            "pairing_root": h(root),
            "accept_key": h(ks.accept_key(root)),
            "accept_aad": h(ks.accept_aad(th)),
            "accept_plaintext": h(accept_plaintext),
            "phone_share": h(share),
        },
        "messages": {
            "offer": h(offer_bytes),
            "offer_link": app_link(APP_URL, offer_bytes),
            "offer_bare": bare_link(offer_bytes),
            "hello": h(pp.hello_bytes),
            "accept": h(accept),
        },
        "records": {"desktop": drec.to_dict(), "phone": prec.to_dict()},
    }
    assert prec.keys == drec.keys and pp.verification_code == pending.verification_code
    return vector, drec, prec, phone, share


def unlock_vector(
    name: str,
    description: str,
    rng: Draws,
    drec: Any,
    prec: Any,
    phone: KeyPair,
    mode: UnlockMode,
    answer: Callable[[PhoneUnlock, DesktopUnlock, Draws], bytes],
    now: int,
) -> dict[str, Any]:
    du = DesktopUnlock(drec, now=now, ttl=120, mode=mode, rng=rng)
    request_draws = rng.take_log()
    # dropped by the desktop once the reply is in
    ephemeral, qr_secret, qr_bytes = du._ephemeral, du._qr_secret, du.qr_bytes
    assert ephemeral is not None and qr_secret is not None
    pushed = PhoneUnlock.open_push(du.push_bytes, [prec], now=now + 1)
    assert pushed.pairing is prec
    if mode is UnlockMode.SCAN:
        pu = PhoneUnlock.from_qr(app_link(APP_URL, qr_bytes), [prec], phone, now=now + 3)
    else:
        pu = PhoneUnlock.from_push(pushed, phone)
    seen = pu.seen()
    du.receive_seen(seen, now=now + 4)
    reply = answer(pu, du, rng)
    reply_draws = rng.take_log()
    outcome = du.receive_reply(reply, now=now + 6)
    keys = drec.keys
    p = du.params
    push = UnlockPush.decode(du.push_bytes)
    push_plaintext = aead_open(
        keys.push_key,
        push.nonce,
        push.ciphertext,
        ks.push_aad(header(MessageType.UNLOCK_PUSH), keys.routing_id),
        "vector push",
    )
    sealed_reply = UnlockReply.decode(reply)
    reply_aad = header(MessageType.UNLOCK_REPLY) + p.request_id
    reply_args = {
        "info": ks.reply_info(keys.pairing_id, p),
        "psk": ks.unlock_psk(keys, p.request_id, qr_secret),
        "psk_id": Label.UNLOCK_PSK_ID,
        "aad": reply_aad,
    }
    reply_plaintext, _ = hpke_open(
        recipient=ephemeral,
        enc=sealed_reply.enc,
        ciphertext=sealed_reply.ciphertext,
        sender_pk=phone.public,
        what="vector reply",
        **reply_args,
    )
    reply_hpke, _ = hpke_context(
        ephemeral_seed=reply_draws[0],
        recipient=ephemeral,
        sender=phone,
        enc=sealed_reply.enc,
        ciphertext=sealed_reply.ciphertext,
        plaintext=reply_plaintext,
        **reply_args,
    )
    return {
        "name": name,
        "description": description,
        "inputs": {
            "now_request": now,
            "ttl": 120,
            "mode": int(mode),
            "phone_allows_number_matching": prec.allow_number_matching,
            "now_push": now + 1,
            "now_scan": now + 3,
            "now_reply": now + 5,
            "now_receive": now + 6,
        },
        "draws": {"request": request_draws, "reply": reply_draws},
        "intermediate": {
            "request_id": h(p.request_id),
            "ephemeral_pk": h(p.ephemeral_pk),
            "ephemeral_sk": h(ephemeral.private_bytes()),
            "qr_secret": h(qr_secret),
            "number": du.number,
            "choices": list(pushed.choices),
            # Number matching makes no QR (protocol.md 6.2): no QR MAC input, no QR message.
            "qr_mac_input": (
                h(ks.qr_mac_input(keys.pairing_id, qr_secret, p)) if qr_bytes else None
            ),
            "push_aad": h(ks.push_aad(b"UL\x01\x11", keys.routing_id)),
            "push_plaintext_len": 128,
            "push_plaintext": h(push_plaintext),
            "seen_mac_input": h(ks.seen_mac_input(keys.pairing_id, p.request_id, qr_secret)),
            "unlock_psk": h(ks.unlock_psk(keys, p.request_id, qr_secret)),
            "unlock_psk_id": h(Label.UNLOCK_PSK_ID),
            "reply_info": h(ks.reply_info(keys.pairing_id, p)),
            "reply_aad": h(b"UL\x01\x13" + p.request_id),
            "reply_plaintext": h(reply_plaintext),
            "reply_hpke": reply_hpke,
        },
        "messages": {
            "qr": h(qr_bytes) if qr_bytes else None,
            "qr_link": app_link(APP_URL, qr_bytes) if qr_bytes else None,
            "qr_bare": bare_link(qr_bytes) if qr_bytes else None,
            "push": h(du.push_bytes),
            "seen": h(seen),
            "reply": h(reply),
        },
        "outcome": {
            "state": du.state.value,
            "verdict": outcome.verdict.name.lower() if hasattr(outcome, "verdict") else "approve",
            "phone_share": h(outcome.phone_share) if hasattr(outcome, "phone_share") else None,
            "policy": int(outcome.policy),
        },
    }


def refuse_then_deny(pu: PhoneUnlock, du: DesktopUnlock, rng: Draws) -> bytes:
    """Even the right number is refused before any draw; the request stays open for a denial."""
    try:
        pu.approve(now=du.params.created_at + 5, choice=du.number, rng=rng)
    except ModeNotAllowed:
        pass
    else:
        raise AssertionError("a scan-only pairing approved a number-matching request")
    assert not rng.log and not pu.answered
    return pu.deny(now=du.params.created_at + 5, rng=rng)


def refusal_vector(
    name: str,
    description: str,
    rng: Draws,
    drec: Any,
    prec: Any,
    phone: KeyPair,
    mode: UnlockMode,
    now: int,
) -> dict[str, Any]:
    """ "I did not ask for this" from the notification, before any scan (protocol.md 6.9)."""
    du = DesktopUnlock(drec, now=now, ttl=120, mode=mode, rng=rng)
    request_draws = rng.take_log()
    pushed = PhoneUnlock.open_push(du.push_bytes, [prec], now=now + 1)
    pu = PhoneUnlock.for_refusal(pushed, phone)
    refusal = pu.refuse(now=now + 2)
    outcome = du.receive_reply(refusal, now=now + 3)
    keys = drec.keys
    return {
        "name": name,
        "description": description,
        "inputs": {
            "now_request": now,
            "ttl": 120,
            "mode": int(mode),
            "now_push": now + 1,
            "now_refuse": now + 2,
            "now_receive": now + 3,
        },
        "draws": {"request": request_draws},
        "intermediate": {
            "request_id": h(du.params.request_id),
            "ephemeral_pk": h(du.params.ephemeral_pk),
            "refusal_mac_input": h(ks.refusal_mac_input(keys.pairing_id, du.params)),
            "seen_mac_key": h(keys.seen_mac_key),
        },
        "messages": {"push": h(du.push_bytes), "refusal": h(refusal)},
        "outcome": {"state": du.state.value, "verdict": outcome.verdict.name.lower()},
    }


def build() -> dict[str, Any]:
    rng = Draws("unlatch test vectors v1")
    pairing, drec, prec, phone, share = pairing_vector(rng)
    # The phone's user allowed approving this desktop from the notification (6.8).
    prec_nm = dataclasses.replace(prec, allow_number_matching=True)
    unlocks = [
        unlock_vector(
            "scan_approve",
            "Scan the QR, approve: K_P reaches the desktop",
            rng,
            drec,
            prec,
            phone,
            UnlockMode.SCAN,
            lambda pu, du, r: pu.approve(now=du.params.created_at + 5, rng=r),
            1_764_000_100,
        ),
        unlock_vector(
            "scan_deny",
            "Scan the QR, deny: same size as an approval, no share",
            rng,
            drec,
            prec,
            phone,
            UnlockMode.SCAN,
            lambda pu, du, r: pu.deny(now=du.params.created_at + 5, rng=r),
            1_764_000_300,
        ),
        unlock_vector(
            "scan_not_me",
            "Scan, 'I did not ask for this'",
            rng,
            drec,
            prec,
            phone,
            UnlockMode.SCAN,
            lambda pu, du, r: pu.deny(now=du.params.created_at + 5, not_me=True, rng=r),
            1_764_000_500,
        ),
        unlock_vector(
            "number_match_approve",
            "Approve from the notification, right number",
            rng,
            drec,
            prec_nm,
            phone,
            UnlockMode.NUMBER_MATCH,
            lambda pu, du, r: pu.approve(now=du.params.created_at + 5, choice=du.number, rng=r),
            1_764_000_700,
        ),
        unlock_vector(
            "number_match_wrong",
            "Approve from the notification, wrong number",
            rng,
            drec,
            prec_nm,
            phone,
            UnlockMode.NUMBER_MATCH,
            lambda pu, du, r: pu.approve(
                now=du.params.created_at + 5,
                choice=next(c for c in pu.choices if c != du.number),
                rng=r,
            ),
            1_764_000_900,
        ),
        unlock_vector(
            "number_match_not_allowed",
            "A number-matching request to a phone that allows scanning only: approving it "
            "is refused (mode_not_allowed, nothing made); the user denies, and the reply "
            "tells the desktop the policy",
            rng,
            drec,
            prec,
            phone,
            UnlockMode.NUMBER_MATCH,
            refuse_then_deny,
            1_764_001_100,
        ),
    ]
    refusals = [
        refusal_vector(
            "scan_refused_from_push",
            "'I did not ask for this' from a scan-mode notification, before any scan",
            rng,
            drec,
            prec,
            phone,
            UnlockMode.SCAN,
            1_764_001_100,
        ),
        refusal_vector(
            "number_match_refused_from_push",
            "The same for a number-matching notification",
            rng,
            drec,
            prec,
            phone,
            UnlockMode.NUMBER_MATCH,
            1_764_001_300,
        ),
    ]
    local_secret = hashlib.sha256(b"vector local secret").digest()
    slot = {
        "description": "Phone slot KEK: HKDF(K_P, salt=K_L, info=transcript(label, pairing_id))",
        "phone_share": h(share),
        "local_secret": h(local_secret),
        "pairing_id": h(drec.keys.pairing_id),
        "info": h(transcript(Label.SLOT_PHONE, drec.keys.pairing_id)),
        "kek": h(phone_slot_kek(share, local_secret, drec.keys.pairing_id)),
    }
    return {
        "pairing.json": {"version": 1, "suite": {"kem": 32, "kdf": 1, "aead": 2}, **pairing},
        "unlock.json": {
            "version": 1,
            "pairing_records": pairing["records"],
            "vectors": unlocks,
            "refusals": refusals,
        },
        "slots.json": {"version": 1, "phone_slot": slot},
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    for name, doc in build().items():
        (HERE / name).write_text(render(doc), encoding="utf-8")
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
