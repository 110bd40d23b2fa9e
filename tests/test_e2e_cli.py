"""End to end through the CLI alone: ``unlatch pair`` / ``unlatch unlock --phone``
on the desktop, ``unlatch phone pair`` / ``approve`` as the phone, a real relay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from fixtures.desktop import clean_env, wait_for


def desktop_popen(desktop: Any, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "unlatch", *args],
        env=clean_env(desktop.home, UNLATCH_DESKTOP_RELAY_URL=desktop.relay_url),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_e2e_cli_pair_and_unlock_with_phone(
    relay: Any, desktop_env: Any, phone_factory: Any, tmp_path: Path
) -> None:
    desktop = desktop_env(relay.url)
    phone = phone_factory("phone")
    pair_png = tmp_path / "pair.png"
    pairing = desktop_popen(desktop, "pair", "--qr-image", str(pair_png), "--name", "Test phone")
    wait_for(pair_png.exists, what="pairing QR")
    answer = phone.popen("pair", "--qr-image", str(pair_png), "--yes", "--json")
    code = json.loads(answer.stdout.readline())["code"]
    out, err = pairing.communicate("y\n", timeout=30)
    assert pairing.returncode == 0, err
    assert f"{code[:3]} {code[3:]}" in err  # the desktop showed the same code
    assert answer.wait(30) == 0
    devices = json.loads(desktop.run("devices", "--json").stdout)
    assert [d["label"] for d in devices] == ["Test phone"]

    assert desktop.run("lock").returncode == 0
    unlock_png = tmp_path / "unlock.png"
    unlocking = desktop_popen(desktop, "unlock", "--phone", "--qr-image", str(unlock_png))
    wait_for(unlock_png.exists, what="unlock QR")
    approved = phone.run("approve", "--qr-image", str(unlock_png), "--yes", "--json")
    assert approved.returncode == 0, approved.stderr
    out, err = unlocking.communicate(timeout=30)
    assert unlocking.returncode == 0, err
    assert "vault unlocked" in out
    assert desktop.status()["unlocked"] is True


def test_e2e_cli_pair_rejected_keeps_nothing(
    relay: Any, desktop_env: Any, phone_factory: Any, tmp_path: Path
) -> None:
    desktop = desktop_env(relay.url)
    phone = phone_factory("phone")
    pair_png = tmp_path / "pair.png"
    pairing = desktop_popen(desktop, "pair", "--qr-image", str(pair_png))
    wait_for(pair_png.exists, what="pairing QR")
    answer = phone.popen("pair", "--qr-image", str(pair_png), "--yes", "--json", "--timeout", "20")
    answer.stdout.readline()
    _out, err = pairing.communicate("n\n", timeout=30)
    assert pairing.returncode != 0 and "rejected" in err
    assert json.loads(desktop.run("devices", "--json").stdout) == []
    assert not [s for s in desktop.status()["slots"] if s["kind"] == "phone"]
    answer.kill()
    answer.wait()
