"""End to end through the CLI alone: ``unlatch pair`` / ``unlatch unlock --phone``
on the desktop, ``unlatch phone pair`` / ``approve`` as the phone, a real relay."""

from __future__ import annotations

import json
import subprocess
import sys
import time
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


def cli_pair(
    desktop: Any, phone: Any, tmp_path: Path, name: str = "Test phone", *phone_args: str
) -> str:
    """Pair through `unlatch pair` + `unlatch phone pair`; returns the phone's id."""
    pair_png = tmp_path / f"pair-{name.replace(' ', '-')}.png"
    pairing = desktop_popen(desktop, "pair", "--qr-image", str(pair_png), "--name", name)
    wait_for(pair_png.exists, what="pairing QR")
    answer = phone.popen("pair", "--qr-image", str(pair_png), "--yes", "--json", *phone_args)
    answer.stdout.readline()
    _out, err = pairing.communicate("y\n", timeout=60)
    assert pairing.returncode == 0, err
    assert answer.wait(30) == 0
    (device,) = [
        d for d in json.loads(desktop.run("devices", "--json").stdout) if d["label"] == name
    ]
    return str(device["id"])


def test_e2e_cli_unlock_with_number_matching_chosen_on_the_command_line(
    relay: Any, desktop_env: Any, phone_factory: Any, tmp_path: Path
) -> None:
    """`unlatch unlock --phone --number-matching`: with a phone whose pairing allows it (and
    once the desktop has learnt that from a reply), the request is approved from the
    notification by picking the number the desktop shows; `--scan` asks for a QR."""
    desktop = desktop_env(relay.url)
    phone = phone_factory("phone")
    cli_pair(desktop, phone, tmp_path, "Test phone", "--allow-number-matching")
    unlocking, png = start_unlock(desktop, tmp_path)  # the first answer carries the policy
    assert phone.run("approve", "--qr-image", str(png), "--yes").returncode == 0
    assert unlocking.wait(30) == 0
    (device,) = json.loads(desktop.run("devices", "--json").stdout)
    assert device["allows_number_matching"] is True

    assert desktop.run("lock").returncode == 0
    listener = phone.popen("listen", "--once", "--json", "--timeout", "40")
    time.sleep(1.0)
    unlocking = desktop_popen(desktop, "unlock", "--phone", "--number-matching")
    assert unlocking.stderr is not None
    shown = None
    while shown is None:
        line = unlocking.stderr.readline()
        assert line, "the desktop ended before showing a number"
        if line.startswith("Pick "):
            shown = int(line.split()[1])
    out, err = listener.communicate(timeout=60)
    note = json.loads(out.strip().splitlines()[0])
    assert note["mode"] == "number_match" and shown in note["choices"]
    picked = phone.run("approve", "--request", note["request_id"], "--number", str(shown), "--yes")
    assert picked.returncode == 0, picked.stderr
    _out, err = unlocking.communicate(timeout=30)
    assert unlocking.returncode == 0, err
    assert desktop.status()["unlocked"] is True

    # --scan overrides it back: a QR to scan.
    assert desktop.run("lock").returncode == 0
    png.unlink(missing_ok=True)
    scanning = desktop_popen(desktop, "unlock", "--phone", "--scan", "--qr-image", str(png))
    wait_for(png.exists, timeout=30, what="unlock QR")
    assert phone.run("approve", "--qr-image", str(png), "--yes").returncode == 0
    assert scanning.wait(30) == 0


def start_unlock(desktop: Any, tmp_path: Path, **env: str) -> tuple[subprocess.Popen[str], Path]:
    """`unlatch unlock --phone` on a locked vault, once its QR image is written."""
    assert desktop.run("lock").returncode == 0
    png = tmp_path / "unlock.png"
    png.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "unlatch", "unlock", "--phone", "--qr-image", str(png)],
        env=clean_env(desktop.home, UNLATCH_DESKTOP_RELAY_URL=desktop.relay_url, **env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(png.exists, timeout=30, what="unlock QR")
    return proc, png


def test_e2e_cli_unlock_denied_by_the_phone(
    relay: Any, desktop_env: Any, phone_factory: Any, tmp_path: Path
) -> None:
    desktop = desktop_env(relay.url)
    phone = phone_factory("phone")
    cli_pair(desktop, phone, tmp_path)
    unlocking, png = start_unlock(desktop, tmp_path)
    denied = phone.run("deny", "--qr-image", str(png), "--json")
    assert denied.returncode == 0, denied.stderr
    assert json.loads(denied.stdout)["verdict"] == "denied"
    out, err = unlocking.communicate(timeout=30)
    assert unlocking.returncode == 1
    assert "unlatch: The phone denied the request" in err
    assert "vault unlocked" not in out
    assert desktop.status()["unlocked"] is False


def test_e2e_cli_unlock_request_expires(
    relay: Any, desktop_env: Any, phone_factory: Any, tmp_path: Path
) -> None:
    desktop = desktop_env(relay.url)
    phone = phone_factory("phone")
    cli_pair(desktop, phone, tmp_path)
    started = time.monotonic()
    unlocking, png = start_unlock(desktop, tmp_path, UNLATCH_DESKTOP_UNLOCK_TTL="10")
    _out, err = unlocking.communicate(timeout=60)  # nobody answers
    assert unlocking.returncode == 1
    assert "unlatch: The request expired" in err
    assert time.monotonic() - started >= 9
    late = phone.run("approve", "--qr-image", str(png), "--yes")
    assert late.returncode != 0 and "expired" in late.stderr.lower()  # the phone refuses it too
    assert "Start a new unlock on the desktop" in late.stderr  # and says what to do
    assert desktop.status()["unlocked"] is False


def test_e2e_cli_unlock_with_a_revoked_phone(
    relay: Any, desktop_env: Any, phone_factory: Any, tmp_path: Path
) -> None:
    desktop = desktop_env(relay.url)
    phone = phone_factory("phone")
    phone_id = cli_pair(desktop, phone, tmp_path)
    # Revoked while a request waits: the phone's approval no longer opens anything.
    unlocking, png = start_unlock(desktop, tmp_path)
    revoked = desktop.run("devices", "revoke", phone_id, "--yes")
    assert revoked.returncode == 0, revoked.stderr
    assert "slot removed at the next unlock" in revoked.stdout  # the vault is locked
    approved = phone.run("approve", "--qr-image", str(png), "--yes", "--json")
    out, err = unlocking.communicate(timeout=30)
    assert unlocking.returncode == 1
    assert "this phone was revoked on this desktop" in err, err
    assert "vault unlocked" not in out
    assert desktop.status()["unlocked"] is False
    # Unlinking the pairing on the relay closed the request: the relay tells the phone the
    # desktop removed it, and it sends nothing (exit 6, RequestClosed).
    assert approved.returncode == 6, (approved.stdout, approved.stderr)
    assert "removed this phone" in approved.stderr and "pair again" in approved.stderr
    # Asking again: there is no phone left to ask.
    again = desktop.run("unlock", "--phone")
    assert again.returncode == 1
    assert "no phone is paired yet" in again.stderr
    assert desktop.status()["unlocked"] is False


def test_e2e_cli_phishing_qr_from_another_desktop(
    relay: Any, desktop_env: Any, phone_factory: Any, tmp_path: Path
) -> None:
    """Another desktop (its own keys and pairing, a real `unlatch unlock --phone`)
    shows its QR to our phone: refused; our own pending unlock is undisturbed."""
    desktop = desktop_env(relay.url, "desk")
    rogue = desktop_env(relay.url, "rogue")
    phone = phone_factory("phone")
    accomplice = phone_factory("accomplice")
    cli_pair(desktop, phone, tmp_path)
    cli_pair(rogue, accomplice, tmp_path, name="Rogue phone")
    ours, ours_png = start_unlock(desktop, tmp_path)
    (tmp_path / "rogue-qr").mkdir()
    theirs, their_png = start_unlock(rogue, tmp_path / "rogue-qr")
    try:
        phished = phone.run("approve", "--qr-image", str(their_png), "--yes", "--json")
        assert phished.returncode == 1
        assert "not made by a desktop paired with this phone" in phished.stderr
        assert phished.stdout == ""  # nothing was answered
        assert desktop.status()["unlocked"] is False
        assert rogue.status()["unlocked"] is False
        assert theirs.poll() is None  # the rogue got no reply at all
        approved = phone.run("approve", "--qr-image", str(ours_png), "--yes")
        assert approved.returncode == 0, approved.stderr
        out, err = ours.communicate(timeout=30)
        assert ours.returncode == 0, err
        assert "vault unlocked" in out
        assert desktop.status()["unlocked"] is True
    finally:
        theirs.kill()
        theirs.communicate()


def test_e2e_cli_devices_rename(
    relay: Any, desktop_env: Any, phone_factory: Any, tmp_path: Path
) -> None:
    desktop = desktop_env(relay.url)
    phone = phone_factory("phone")
    phone_id = cli_pair(desktop, phone, tmp_path, name="Pixel")
    renamed = desktop.run("devices", "rename", phone_id, "Work phone")
    assert renamed.returncode == 0, renamed.stderr
    assert "renamed to “Work phone”" in renamed.stdout
    (device,) = json.loads(desktop.run("devices", "--json").stdout)
    assert device["label"] == "Work phone" and device["id"] == phone_id
    (slot,) = [s for s in desktop.status()["slots"] if s["kind"] == "phone"]
    assert slot["label"] == "Work phone"  # the vault slot follows (the vault is unlocked)
    # By its current name, too; an unknown phone is a clear error.
    assert desktop.run("devices", "rename", "work PHONE", "Old phone").returncode == 0
    assert json.loads(desktop.run("devices", "--json").stdout)[0]["label"] == "Old phone"
    missing = desktop.run("devices", "rename", "Work phone", "x")
    assert missing.returncode == 1
    assert "no paired phone 'Work phone'" in missing.stderr
    listed = desktop.run("devices")
    assert f"{phone_id}  Old phone" in listed.stdout


def test_attack_edited_desktop_settings_enable_number_matching(
    relay: Any, desktop_env: Any, phone_factory: Any, tmp_path: Path
) -> None:
    """A thief with the desktop's state directory turns number matching on by editing its
    files: settings.json, and what pairings.json says the phone allows. The desktop then
    sends a number-matching request, but the phone's pairing allows scanning only (the
    default): even the right number is refused before anything is sent, and the vault
    stays locked. The user's denial tells the desktop the phone's policy, so its next
    request is a QR again (docs/protocol.md 6.8)."""
    desktop = desktop_env(relay.url)
    phone = phone_factory("phone")
    cli_pair(desktop, phone, tmp_path)
    state = desktop.home / "desktop"
    (state / "settings.json").write_text(json.dumps({"version": 1, "number_matching": True}))
    pairings = json.loads((state / "pairings.json").read_text())
    for entry in pairings["phones"]:
        entry["allows_number_matching"] = True
    (state / "pairings.json").write_text(json.dumps(pairings))

    assert desktop.run("lock").returncode == 0
    listener = phone.popen("listen", "--once", "--json", "--timeout", "40")
    time.sleep(1.0)
    unlocking = desktop_popen(desktop, "unlock", "--phone")
    assert unlocking.stderr is not None
    shown = None
    while shown is None:
        line = unlocking.stderr.readline()
        assert line, "the desktop ended before showing a number"
        if line.startswith("Pick "):
            shown = int(line.split()[1])  # the edited desktop asks for number matching
    out, err = listener.communicate(timeout=60)
    assert listener.returncode == 0, err
    note = json.loads(out.strip().splitlines()[0])
    assert note["mode"] == "number_match"

    # The user taps (the thief even knows the right number): nothing is released.
    tapped = phone.run("approve", "--request", note["request_id"], "--number", str(shown), "--yes")
    assert tapped.returncode != 0
    assert "which you did not allow for it" in tapped.stderr
    assert "someone may have copied the desktop's files" in tapped.stderr
    assert desktop.status()["unlocked"] is False
    assert note.get("refused") and note["choices"] == []  # no numbers to tap blindly

    # No reply was sent: the relay still takes the user's denial, which carries the policy.
    denied = phone.run("deny", "--request", note["request_id"], "--json")
    assert denied.returncode == 0, denied.stderr
    _out, err = unlocking.communicate(timeout=30)
    assert unlocking.returncode == 1 and "scanning only" in err
    assert desktop.status()["unlocked"] is False
    (device,) = json.loads(desktop.run("devices", "--json").stdout)
    assert device["allows_number_matching"] is False  # learnt from the phone's answer

    # settings.json still says number matching: the desktop now shows a QR to scan.
    unlocking, png = start_unlock(desktop, tmp_path)
    approved = phone.run("approve", "--qr-image", str(png), "--yes")
    assert approved.returncode == 0, approved.stderr
    _out, err = unlocking.communicate(timeout=30)
    assert unlocking.returncode == 0, err
    assert desktop.status()["unlocked"] is True
