"""The phone app's JavaScript protocol against the Python reference, error for error.

``npm test`` (run here too) replays tests/vectors/*.json in Node. This module
adds a differential check: every truncation, one bit flip per byte, an extra
byte and an oversize of each of the seven vector messages is fed to the
consuming state machine in both languages, and both must answer the same
(accepted, or the same ProtocolError code).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unlatch.protocol import (
    DesktopPairing,
    DesktopPairingRecord,
    DesktopUnlock,
    KeyPair,
    PhonePairing,
    PhonePairingRecord,
    PhoneUnlock,
    ProtocolError,
    UnlockMode,
)

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
PAIRING = json.loads((VECTORS / "pairing.json").read_text())
UNLOCK = json.loads((VECTORS / "unlock.json").read_text())
INPUTS = PAIRING["inputs"]


def _replay(draws: list[str]) -> Callable[[int], bytes]:
    queue = [bytes.fromhex(d) for d in draws]

    def rng(n: int) -> bytes:
        value = queue.pop(0)
        assert len(value) == n
        return value

    return rng


def _identities() -> tuple[KeyPair, KeyPair]:
    rng = _replay(PAIRING["draws"]["identities"])
    return KeyPair.derive(rng(32)), KeyPair.derive(rng(32))


def _vector(name: str) -> dict[str, Any]:
    return next(v for v in UNLOCK["vectors"] if v["name"] == name)


def _desktop_unlock(v: dict[str, Any]) -> DesktopUnlock:
    drec = DesktopPairingRecord.from_dict(UNLOCK["pairing_records"]["desktop"])
    inputs = v["inputs"]
    return DesktopUnlock(
        drec,
        now=inputs["now_request"],
        ttl=inputs["ttl"],
        mode=UnlockMode(inputs["mode"]),
        rng=_replay(v["draws"]["request"]),
    )


def _prec() -> PhonePairingRecord:
    return PhonePairingRecord.from_dict(UNLOCK["pairing_records"]["phone"])


def _offer(data: bytes) -> None:
    PhonePairing(
        data,
        _identities()[1],
        INPUTS["phone_name"],
        INPUTS["phone_device_id"],
        now=INPUTS["now_hello"],
    )


def _hello(data: bytes) -> None:
    dp = DesktopPairing(
        _identities()[0],
        INPUTS["relay_url"],
        now=INPUTS["now_offer"],
        ttl=INPUTS["pairing_ttl"],
        rng=_replay(PAIRING["draws"]["offer"]),
    )
    dp.receive_hello(data, now=INPUTS["now_hello"] + 1)


def _accept(data: bytes) -> None:
    pp = PhonePairing(
        bytes.fromhex(PAIRING["messages"]["offer"]),
        _identities()[1],
        INPUTS["phone_name"],
        INPUTS["phone_device_id"],
        now=INPUTS["now_hello"],
        rng=_replay(PAIRING["draws"]["hello"]),
    )
    pp.receive_accept(data, now=INPUTS["now_accept"])


def _qr(data: bytes) -> None:
    now = _vector("scan_approve")["inputs"]["now_scan"]
    PhoneUnlock.from_qr(data, [_prec()], _identities()[1], now=now)


def _push(data: bytes) -> None:
    now = _vector("number_match_approve")["inputs"]["now_push"]
    PhoneUnlock.open_push(data, [_prec()], now=now)


def _seen(data: bytes) -> None:
    v = _vector("scan_approve")
    _desktop_unlock(v).receive_seen(data, now=v["inputs"]["now_scan"] + 1)


def _reply(data: bytes) -> None:
    v = _vector("scan_approve")
    _desktop_unlock(v).receive_reply(data, now=v["inputs"]["now_receive"])


CONSUMERS: dict[str, Callable[[bytes], None]] = {
    "offer": _offer,
    "hello": _hello,
    "accept": _accept,
    "qr": _qr,
    "push": _push,
    "seen": _seen,
    "reply": _reply,
}


def _python_outcome(name: str, data: bytes) -> str:
    try:
        CONSUMERS[name](data)
    except ProtocolError as exc:
        return exc.code
    return "ok"


@pytest.fixture(scope="module")
def js_outcomes(phone_app_deps: Path) -> dict[str, Any]:
    out = subprocess.run(
        ["node", "test/parity-dump.mjs"],
        cwd=phone_app_deps,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_pwa_npm_test_passes(phone_app_deps: Path) -> None:
    """The JavaScript vector replay (node --test) passes."""
    out = subprocess.run(
        ["npm", "test", "--silent"], cwd=phone_app_deps, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "# fail 0" in out.stdout


@pytest.mark.parametrize("name", list(CONSUMERS))
def test_pwa_js_errors_match_python(name: str, js_outcomes: dict[str, Any]) -> None:
    entry = js_outcomes[name]
    original = bytes.fromhex(entry["original"])
    assert entry["cases"]["original"] == "ok" == _python_outcome(name, original)
    cases = {k: v for k, v in entry["cases"].items() if k != "original"}
    # every truncation, a flip per byte, one extra byte, one oversize
    assert len(cases) == 2 * (len(entry["original"]) // 2) + 2
    mismatches = []
    for label, case in cases.items():
        py = _python_outcome(name, bytes.fromhex(case["data"]))
        if py != case["outcome"]:
            mismatches.append(f"{label}: python={py} js={case['outcome']}")
    assert not mismatches, "\n".join(mismatches[:20])
    # The offer is not authenticated (its flipped secrets only fail later, at the
    # desktop); every other message is, so almost every mutation must be refused.
    refused = sum(1 for c in cases.values() if c["outcome"] != "ok")
    assert refused >= len(cases) * (0.5 if name == "offer" else 0.97)


def test_pwa_relay_sign_in_matches_the_relay(phone_app_deps: Path) -> None:
    """The app signs exactly the bytes the relay verifies, and derives the same device id."""
    from unlatch.relay.auth import auth_message, device_id_for
    from unlatch.relay.device_key import DeviceKey

    key = DeviceKey.generate()
    origin, challenge = "https://relay.example.org", bytes(range(32))
    out = subprocess.run(
        [
            "node",
            "test/relay-auth-dump.mjs",
            origin,
            challenge.hex(),
            key.public_key_raw.hex(),
        ],
        cwd=phone_app_deps,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    js = json.loads(out.stdout)
    assert js["message"] == auth_message(origin, challenge, key.public_key_raw).hex()
    assert js["device_id"] == device_id_for(key.public_key_raw) == key.device_id
