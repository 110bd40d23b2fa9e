"""The phone's sealed state, PIN, QR image decoding and CLI errors (no relay needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import segno
from click.testing import CliRunner
from PIL import Image

from unlatch.cli import main
from unlatch.phone import sealed
from unlatch.phone.errors import (
    NotInitialized,
    PhoneError,
    PinRequired,
    QRImageError,
    StorageError,
    UnknownDesktop,
    WrongPin,
)
from unlatch.phone.qrimage import decode_qr_image
from unlatch.phone.state import Pairing, printable
from unlatch.phone.store import PhoneStore
from unlatch.protocol import bare_link
from unlatch.protocol.encoding import b64e


def _pairing(paired, label: str) -> Pairing:
    return Pairing(record=paired.phone, label=label, paired_at=1)


def test_init_creates_private_files_and_round_trips(tmp_path: Path, paired) -> None:
    store = PhoneStore(tmp_path / "p")
    state, created = store.init("My phone")
    assert created
    assert store.init("Other")[1] is False  # never overwrites an existing phone
    for name in ("device.pem", "storage.key", "state.sealed"):
        assert (tmp_path / "p" / name).stat().st_mode & 0o777 == 0o600
    with store.transaction() as s:
        s.add(_pairing(paired, "Desk"))
    again = PhoneStore(tmp_path / "p").load()
    assert again.name == "My phone"
    assert again.identity.public == state.identity.public
    assert again.pairings[0].record == paired.phone
    raw = (tmp_path / "p" / "state.sealed").read_bytes()
    assert paired.share not in raw and b"Desk" not in raw


def test_tampering_is_detected(tmp_path: Path) -> None:
    home = tmp_path / "p"
    store = PhoneStore(home)
    store.init("x")
    envelope = json.loads((home / "state.sealed").read_text())

    altered = dict(envelope, ciphertext="A" + envelope["ciphertext"][1:])
    (home / "state.sealed").write_text(json.dumps(altered))
    with pytest.raises(StorageError, match=r"failed authentication|damaged"):
        PhoneStore(home).load()

    (home / "state.sealed").write_text(json.dumps(envelope))
    (home / "storage.key").write_bytes(os.urandom(32))
    with pytest.raises(StorageError, match="failed authentication"):
        PhoneStore(home).load()

    (home / "state.sealed").write_bytes(b"\x00garbage")
    with pytest.raises(StorageError, match="not a sealed"):
        PhoneStore(home).load()

    with pytest.raises(NotInitialized):
        PhoneStore(tmp_path / "none").load()


def test_pin_seals_the_state_and_its_parameters_are_authenticated(tmp_path: Path) -> None:
    home = tmp_path / "p"
    PhoneStore(home).init("x")
    PhoneStore(home).set_pin("246813")
    assert PhoneStore(home).pin_protected()
    with pytest.raises(PinRequired):
        PhoneStore(home).load()
    with pytest.raises(WrongPin):
        PhoneStore(home, pin=lambda: "135791").load()
    assert PhoneStore(home, pin=lambda: "246813").load().name == "x"

    # An attacker lowering the Argon2id cost in the file breaks the seal.
    envelope = json.loads((home / "state.sealed").read_text())
    envelope["kdf"]["time_cost"] = 1
    (home / "state.sealed").write_text(json.dumps(envelope))
    with pytest.raises(WrongPin):
        PhoneStore(home, pin=lambda: "246813").load()
    envelope["kdf"]["memory_kib"] = 1 << 30  # absurd cost: refused before any work
    (home / "state.sealed").write_text(json.dumps(envelope))
    with pytest.raises(StorageError, match="out of bounds"):
        PhoneStore(home, pin=lambda: "246813").load()


def test_pin_shape_and_removal(tmp_path: Path) -> None:
    home = tmp_path / "p"
    PhoneStore(home).init("x")
    with pytest.raises(PhoneError, match="6 to 128"):
        PhoneStore(home).set_pin("12")
    PhoneStore(home).set_pin("246810")
    with pytest.raises(WrongPin):
        PhoneStore(home, pin=lambda: "000000").set_pin(None)
    PhoneStore(home, pin=lambda: "246810").set_pin(None)
    assert not PhoneStore(home).pin_protected()
    assert PhoneStore(home).load().name == "x"


def test_attack_offline_pin_guess_cost(tmp_path: Path) -> None:
    """Someone copies both files of a PIN-protected phone and guesses the PIN offline.

    Each guess must cost one Argon2id derivation with the documented
    parameters (256 MiB, 3 passes, one lane): the cost in the file is bound
    into the seal, so a cheaper derivation opens nothing even with the right
    PIN; and the shortest PIN allowed leaves at least 10^6 guesses. Before,
    a guess cost 64 MiB (about 0.27 s on this kind of core) and a 4-digit PIN
    (10^4 guesses) was accepted: about 45 minutes on one core.
    """
    home = tmp_path / "p"
    PhoneStore(home).init("x")
    with pytest.raises(PhoneError, match="6 to 128"):
        PhoneStore(home).set_pin("2468")
    PhoneStore(home).set_pin("246813")
    kdf = json.loads((home / "state.sealed").read_text())["kdf"]
    assert kdf["name"] == "argon2id" and kdf["parallelism"] == 1
    assert kdf["memory_kib"] >= 256 * 1024 and kdf["time_cost"] >= 3
    mib_passes_per_guess = kdf["memory_kib"] // 1024 * kdf["time_cost"]
    assert mib_passes_per_guess >= 768
    # The smallest key space an attacker can meet: 6 characters, digits only.
    assert 10**sealed.MIN_PIN_LEN * mib_passes_per_guess >= 10**6 * 768
    # The documented table is for these parameters (one source: sealed.py).
    doc = (Path(__file__).parents[1] / "docs" / "phone-client.md").read_text()
    assert f'"memory_kib": {kdf["memory_kib"]}' in doc and f'"time_cost": {kdf["time_cost"]}' in doc
    assert f"{sealed.MEASURED_SECONDS_PER_GUESS} s per guess" in doc

    # The attacker's loop, with the copied files: a guess is the derivation with
    # the file's parameters; a cheaper one (the old 64 MiB) with the RIGHT PIN opens nothing.
    params, nonce, ct = sealed.read_params((home / "state.sealed").read_bytes())
    storage_key = (home / "storage.key").read_bytes()
    cheap = sealed.KdfParams("argon2id", params.salt, 3, 64 * 1024, 1)
    with pytest.raises(WrongPin):
        sealed.open_sealed(sealed.derive_key(storage_key, cheap, "246813"), params, nonce, ct)
    for guess in ("000000", "246813"):
        key = sealed.derive_key(storage_key, params, guess)
        if guess != "246813":
            with pytest.raises(WrongPin):
                sealed.open_sealed(key, params, nonce, ct)
        else:
            assert json.loads(sealed.open_sealed(key, params, nonce, ct))["name"] == "x"


def test_pin_envelope_of_an_earlier_version_is_resealed_at_next_unlock(
    tmp_path: Path, monkeypatch
) -> None:
    """A state sealed with the old 64 MiB cost (and a 4-digit PIN) still opens, once, then
    carries today's parameters; the CLI warns what that PIN costs to guess."""
    home = tmp_path / "p"
    store = PhoneStore(home)
    state, _ = store.init("x")
    old = sealed.KdfParams.argon2id(time_cost=3, memory_kib=64 * 1024)
    with store._locked():
        store._save(state, old, "2468")  # what an earlier version wrote
    assert json.loads((home / "state.sealed").read_text())["kdf"]["memory_kib"] == 64 * 1024
    asked: list[int] = []

    def pin() -> str:
        asked.append(1)
        return "2468"

    assert PhoneStore(home, pin=pin).load().name == "x"
    assert asked == [1]  # asked once: the re-seal uses the same PIN
    kdf = json.loads((home / "state.sealed").read_text())["kdf"]
    assert (kdf["memory_kib"], kdf["time_cost"]) == (
        sealed.DEFAULT_MEMORY_KIB,
        sealed.DEFAULT_TIME_COST,
    )
    assert kdf["salt"] != b64e(old.salt)
    assert PhoneStore(home, pin=lambda: "2468").load().name == "x"
    with pytest.raises(WrongPin):
        PhoneStore(home, pin=lambda: "1357").load()

    monkeypatch.setenv("UNLATCH_PHONE_PIN", "2468")
    result = CliRunner().invoke(main, ["phone", "--home", str(home), "list"])
    assert result.exit_code == 0
    assert "this PIN has 4 characters" in result.output
    assert f"offline guess in about {sealed.offline_guess_time('2468')}" in result.output


def test_find_by_name_id_and_ambiguity(tmp_path: Path, paired) -> None:
    from fixtures.protocol import make_pairing

    store = PhoneStore(tmp_path / "p")
    store.init("x")
    other = make_pairing(desktop_device_id="desk-2")  # another desktop, with the same name
    with store.transaction() as s:
        s.add(_pairing(paired, "Desk"))
        s.add(_pairing(other, "Desk"))  # renamed to stay unique
    state = store.load()
    assert [p.label for p in state.pairings] == ["Desk", "Desk (2)"]
    assert state.find("desk").record == paired.phone
    assert state.find(state.pairings[1].short_id).record == other.phone
    with pytest.raises(UnknownDesktop):
        state.find("Laptop")


def test_qr_image_decoding_and_its_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    link = bare_link(b"\x01" * 40)
    segno.make(link, error="m").save(str(good), scale=4)
    assert decode_qr_image(good) == link

    # a QR inside a larger "screenshot", beside another (non-unlatch) code
    page = Image.new("RGB", (1280, 800), (240, 244, 248))
    qr = tmp_path / "qr.png"
    segno.make("https://example.org/help", error="m").save(str(qr), scale=4)
    page.paste(Image.open(qr).convert("RGB"), (60, 80))
    app = "http://127.0.0.1:8470/app/#m=" + link.removeprefix("unlatch:")
    segno.make(app, error="m").save(str(qr), scale=6, dark="#1b2430")
    page.paste(Image.open(qr).convert("RGB"), (700, 260))
    page.save(tmp_path / "page.png")
    assert decode_qr_image(tmp_path / "page.png") == app

    other = tmp_path / "other.png"
    segno.make("https://example.org/", error="m").save(str(other), scale=4)
    with pytest.raises(QRImageError, match="not an unlatch code"):
        decode_qr_image(other)

    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    with pytest.raises(QRImageError, match="no QR code"):
        decode_qr_image(blank)

    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(QRImageError, match="not an image"):
        decode_qr_image(text)

    with pytest.raises(QRImageError, match="cannot read"):
        decode_qr_image(tmp_path / "missing.png")


def test_cli_errors_are_one_line_with_non_zero_exit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("UNLATCH_HOME", str(tmp_path / "u"))
    monkeypatch.delenv("UNLATCH_PHONE_HOME", raising=False)
    monkeypatch.delenv("UNLATCH_PHONE_PIN", raising=False)
    runner = CliRunner()
    home = str(tmp_path / "phone")
    result = runner.invoke(main, ["phone", "--home", home, "list"])
    assert result.exit_code == 1 and "run `unlatch phone init`" in result.output

    assert runner.invoke(main, ["phone", "--home", home, "init", "--name", "T"]).exit_code == 0
    result = runner.invoke(main, ["phone", "--home", home, "approve", "unlatch:%%%", "--yes"])
    assert result.exit_code == 1 and result.output.startswith("unlatch: ")
    assert result.exception is None or isinstance(result.exception, SystemExit)

    result = runner.invoke(main, ["phone", "--home", home, "approve"])
    assert result.exit_code == 2 and "exactly one" in result.output

    blank = tmp_path / "blank.png"
    Image.new("L", (100, 100), 255).save(blank)
    result = runner.invoke(main, ["phone", "--home", home, "pair", "--qr-image", str(blank)])
    assert result.exit_code == 1 and "no QR code" in result.output

    result = runner.invoke(main, ["phone", "--home", home, "rename", "Nope", "New"])
    assert result.exit_code == 1 and "no paired desktop" in result.output

    # env UNLATCH_PHONE_HOME selects the phone too
    monkeypatch.setenv("UNLATCH_PHONE_HOME", home)
    result = runner.invoke(main, ["phone", "init", "--json"])
    assert json.loads(result.output)["created"] is False


def test_peer_text_is_made_safe_for_a_terminal() -> None:
    shown = printable("Mozilla\x1b]0;pwned\x07\x1b[2J  agent\n" + "x" * 500)
    assert "\x1b" not in shown and "\x07" not in shown and "\n" not in shown
    assert shown.startswith("Mozilla") and len(shown) == 200
