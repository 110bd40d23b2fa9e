"""The JSON test vectors: on-disk files equal a fresh generation, and replay through the API.

The JavaScript phone app is held to the same files (web/phone/test/), so a
change to the protocol that is not reflected here fails both suites.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from unlatch.protocol import (
    DesktopPairingRecord,
    KeyPair,
    PhonePairingRecord,
    PhoneUnlock,
    parse_link,
)
from unlatch.protocol.messages import PairingOffer, UnlockQR

VECTORS = Path(__file__).parent / "vectors"
sys.path.insert(0, str(VECTORS))
import generate  # noqa: E402


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


def test_vector_unlocks_replay_through_the_desktop() -> None:
    """Every recorded reply opens with the recorded request's keys to the recorded outcome."""
    doc = load("unlock.json")
    prec = PhonePairingRecord.from_dict(doc["pairing_records"]["phone"])
    phone = KeyPair.derive(bytes.fromhex(load("pairing.json")["inputs"]["phone_identity_seed"]))
    assert {v["name"] for v in doc["vectors"]} >= {
        "scan_approve",
        "scan_deny",
        "scan_not_me",
        "number_match_approve",
        "number_match_wrong",
    }
    for v in doc["vectors"]:
        msgs = v["messages"]
        qr = UnlockQR.decode(bytes.fromhex(msgs["qr"]))
        assert qr.request_id.hex() == v["intermediate"]["request_id"]
        pushed = PhoneUnlock.open_push(
            bytes.fromhex(msgs["push"]), [prec], now=v["inputs"]["now_push"]
        )
        assert pushed.params.request_id == qr.request_id
        if v["inputs"]["mode"] == 1:
            pu = PhoneUnlock.from_qr(msgs["qr_link"], [prec], phone, now=v["inputs"]["now_scan"])
            assert pu.seen().hex() == msgs["seen"]  # the seen notice is deterministic
        outcome = v["outcome"]
        if outcome["verdict"] == "approve":
            assert outcome["phone_share"] == prec.phone_share.hex()
        else:
            assert outcome["phone_share"] is None
