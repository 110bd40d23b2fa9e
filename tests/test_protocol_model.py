"""The Spin model of phone unlock (model/unlock.pml): it verifies, and its mutants fail.

The model checks assertions A1-A5 (no forged unlock, single use, freshness,
no phishing, answer once) against a relay that drops, delays, replays,
redirects and forges. Each mutant removes one of the desktop's or the
phone's checks; the model checker must then find a counterexample that
violates the assertion the check is there for, which shows that the model is
able to fail and what each check protects against. Every assertion has such
a mutant.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

MODEL = Path(__file__).resolve().parent.parent / "model" / "unlock.pml"


def verify(tmp_path: Path, *defines: str) -> tuple[int, str]:
    spin, cc = shutil.which("spin"), shutil.which("gcc") or shutil.which("cc")
    assert spin and cc, "spin and a C compiler are installed by scripts/dev.sh"
    shutil.copy(MODEL, tmp_path / "unlock.pml")
    subprocess.run(
        [spin, *[f"-D{d}" for d in defines], "-a", "unlock.pml"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [cc, "-w", "-O2", "-DSAFETY", "-o", "pan", "pan.c"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        ["./pan", "-m1000000"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    ).stdout
    match = re.search(r"errors: (\d+)", out)
    assert match, out
    return int(match.group(1)), out


@pytest.mark.parametrize("variant", [(), ("SHOULDER_SURFER",)], ids=["relay", "shoulder_surfer"])
def test_protocol_model_verifies(tmp_path: Path, variant: tuple[str, ...]) -> None:
    errors, out = verify(tmp_path, *variant)
    assert errors == 0, out
    assert "Search not completed" not in out
    states = int(re.search(r"(\d+) states, stored", out).group(1))  # type: ignore[union-attr]
    assert states > 100_000  # the interleavings were really explored


@pytest.mark.parametrize(
    ("mutant", "assertion"),
    [
        (("MUTANT_NO_SENDER_AUTH", "SHOULDER_SURFER"), "phone_approved[r]"),  # A1
        (("MUTANT_UNBOUND_REPLY",), "phone_approved[r]"),  # A1
        (("MUTANT_NO_EXPIRY",), "created[r]"),  # A3
        (("MUTANT_PHONE_TRUSTS_ANY_QR",), "phished_reply_sent"),  # A4
        (("MUTANT_NO_STATE_CHECK",), "decisions[r]<=1"),  # A2
        (("MUTANT_NO_REPLAY_GUARD",), "phone_answers[rid]<=1"),  # A5
    ],
    ids=[
        "no_sender_auth",
        "unbound_reply",
        "no_expiry",
        "phone_trusts_any_qr",
        "no_state_check",
        "no_replay_guard",
    ],
)
def test_protocol_model_mutants_are_caught(
    tmp_path: Path, mutant: tuple[str, ...], assertion: str
) -> None:
    errors, out = verify(tmp_path, *mutant)
    assert errors >= 1, out
    violated = re.search(r"assertion violated (.*) \(at depth", out)
    assert violated and assertion in violated.group(1), out
