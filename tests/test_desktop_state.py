"""Desktop state files: identity, pairing records, settings (precedence, bounds, damage)."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from unlatch.cli import main
from unlatch.config import ConfigError
from unlatch.desktop.errors import DesktopError, NotPairedError, StateFileError
from unlatch.desktop.identity import DesktopIdentity, check_name
from unlatch.desktop.settings import DEFAULT_RELAY_URL, DesktopSettings, check_relay_url
from unlatch.desktop.store import PairedPhone, PairingStore
from unlatch.protocol import KeyPair, PairingKeys
from unlatch.protocol.encoding import b64e
from unlatch.protocol.records import DesktopPairingRecord


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def phone(label: str = "Pixel") -> PairedPhone:
    record = DesktopPairingRecord(
        keys=PairingKeys.from_root(os.urandom(32)),
        phone_pk=KeyPair.generate(os.urandom).public,
        phone_name=label,
        phone_device_id="d" * 22,
        created_at=int(time.time()),
    )
    return PairedPhone(record, "slot-" + label, "http://127.0.0.1:8470", label, int(time.time()))


def test_desktop_identity_persists_with_owner_only_files(unlatch_home: Path) -> None:
    first = DesktopIdentity.load_or_create()
    again = DesktopIdentity.load_or_create()
    assert first.keypair.public == again.keypair.public
    assert first.device_id == again.device_id
    for name in ("identity.json", "relay-device-key.pem"):
        assert mode(unlatch_home / "desktop" / name) == 0o600
    first.rename("work laptop")
    assert DesktopIdentity.load_or_create().name == "work laptop"
    with pytest.raises(Exception, match="at most 64 bytes"):
        check_name("é" * 40)
    with pytest.raises(Exception, match="printable"):
        check_name("bad\nname")
    with pytest.raises(DesktopError):  # a right-to-left override hides what the name says
        check_name("work\u202elaptop")


def test_desktop_identity_damaged_file_is_a_clear_error(unlatch_home: Path) -> None:
    DesktopIdentity.load_or_create()
    path = unlatch_home / "desktop" / "identity.json"
    path.write_text('{"version": 1, "protocol_private_key": "!!", "name": "x"}')
    with pytest.raises(StateFileError, match="damaged"):
        DesktopIdentity.load_or_create()
    path.write_bytes(b"\xff" * 10)
    with pytest.raises(StateFileError, match="not JSON"):
        DesktopIdentity.load_or_create()
    path.write_bytes(b'{"version": ' + b"[" * 100_000)  # RecursionError before: a traceback
    with pytest.raises(StateFileError, match="not JSON"):
        DesktopIdentity.load_or_create()


def test_desktop_pairing_store_round_trip(unlatch_home: Path) -> None:
    store = PairingStore()
    assert store.all() == []
    a, b = phone("Pixel"), phone("iPhone")
    store.add(a)
    store.add(b)
    assert mode(store.path) == 0o600
    assert [p.label for p in PairingStore().all()] == ["Pixel", "iPhone"]
    assert store.get(a.id).record == a.record
    assert store.get("pixel").id == a.id  # by (unique) label, any case
    renamed = store.rename(a.id, "Old phone")
    assert renamed.label == "Old phone" and store.get(a.id).label == "Old phone"
    store.remove(a.id, orphan_slot=True)
    assert store.orphan_slots() == [a.slot_id]
    store.clear_orphans([a.slot_id])
    assert store.orphan_slots() == []
    with pytest.raises(NotPairedError):
        store.get(a.id)
    assert [p.id for p in store.all()] == [b.id]
    assert "record" not in json.dumps(b.public_view())


def test_desktop_pairing_store_learns_each_phones_policy(unlatch_home: Path) -> None:
    """What a phone's reply said of its unlock policy, per phone; older files lack it."""
    store = PairingStore()
    a, b = phone("Pixel"), phone("iPhone")
    store.add(a)
    store.add(b)
    assert store.get(a.id).allows_number_matching is False  # scan only until a phone says so
    learned = store.learn_policy(a.id, True)
    assert learned is not None and learned.allows_number_matching
    assert store.get(a.id).allows_number_matching and not store.get(b.id).allows_number_matching
    assert store.get(a.id).public_view()["allows_number_matching"] is True
    assert store.learn_policy("f" * 32, True) is None  # revoked meanwhile: nothing to learn
    data = json.loads(store.path.read_text())
    del data["phones"][0]["allows_number_matching"]  # a file written before policies
    data["phones"][1]["allows_number_matching"] = "yes"
    store.path.write_text(json.dumps(data))
    with pytest.raises(StateFileError, match="invalid"):
        store.all()
    data["phones"][1]["allows_number_matching"] = False
    store.path.write_text(json.dumps(data))
    assert [p.allows_number_matching for p in store.all()] == [False, False]


def test_desktop_pairing_store_refuses_damage(unlatch_home: Path) -> None:
    store = PairingStore()
    store.add(phone())
    data = json.loads(store.path.read_text())
    data["phones"][0]["record"]["phone_pk"] = "not base64!"
    store.path.write_text(json.dumps(data))
    with pytest.raises(StateFileError, match="invalid"):
        store.all()
    store.path.write_text("x" * (1024 * 1024 + 10))
    with pytest.raises(StateFileError, match="too large"):
        store.all()


def test_desktop_settings_precedence(unlatch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert DesktopSettings.load().relay_url == DEFAULT_RELAY_URL
    (unlatch_home / "config.toml").write_text('[desktop]\nrelay_url = "http://file:1"\n')
    assert DesktopSettings.load().relay_url == "http://file:1"
    saved = DesktopSettings.load()
    saved.relay_url, saved.number_matching = "http://saved:2", True
    saved.save()
    loaded = DesktopSettings.load()
    assert loaded.relay_url == "http://saved:2" and loaded.number_matching is True
    monkeypatch.setenv("UNLATCH_DESKTOP_RELAY_URL", "http://env:3/")
    env = DesktopSettings.load()
    assert env.relay_url == "http://env:3" and env.relay_url_locked
    assert DesktopSettings.load("https://option.example").relay_url == "https://option.example"
    monkeypatch.setenv("UNLATCH_DESKTOP_UNLOCK_TTL", "30")
    assert DesktopSettings.load().unlock_ttl == 30
    monkeypatch.setenv("UNLATCH_DESKTOP_UNLOCK_TTL", "3")
    with pytest.raises(ConfigError, match=r"5\.\.600"):
        DesktopSettings.load()


@pytest.mark.parametrize(
    "url", ["ftp://x", "http://", "http://h/path", "http://h/?q=1", "javascript:alert(1)", ""]
)
def test_desktop_settings_refuse_bad_relay_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        check_relay_url(url)


def test_desktop_phone_ids_never_read_as_options(unlatch_home: Path) -> None:
    """A phone id is hex, so the CLI never takes it for an option; old ids still work.

    CI once revoked a phone whose base64url id began with "-" and click
    answered "No such option '-0'". This finds such a pairing and checks
    that its id, its legacy base64url form and a unique prefix all resolve.
    """
    store = PairingStore()
    dash = next(
        p for p in (phone(f"P{i}") for i in range(5000)) if b64e(p.record.pairing_id)[0] == "-"
    )
    other = phone("Other")
    store.add(dash)
    store.add(other)
    assert dash.id == dash.record.pairing_id.hex() and dash.id[0] in "0123456789abcdef"
    assert store.get(b64e(dash.record.pairing_id)).id == dash.id  # the form earlier versions showed
    assert store.get(dash.id[:8].upper()).id == dash.id  # a unique prefix, any case
    with pytest.raises(NotPairedError):
        store.get(dash.id[:3])  # too short to be a prefix
    store.add(phone("Other"))
    with pytest.raises(NotPairedError, match="2 paired phones are named 'other'"):
        store.get("other")
    result = CliRunner().invoke(main, ["devices", "revoke", "--help"])
    assert result.exit_code == 0
    devices = CliRunner().invoke(main, ["devices", "--json"])
    assert devices.exit_code == 0, devices.output
    assert {p["id"] for p in json.loads(devices.output)} == {p.id for p in store.all()}


def test_desktop_qr_png_is_written_atomically(tmp_path: Path, monkeypatch: Any) -> None:
    """`--qr-image`: scripts wait for the file and decode it at once, so it appears whole
    (temp file + rename), owner-only (the link holds the request's secret), or not at all."""
    import segno

    from unlatch.desktop import terminal
    from unlatch.desktop.errors import DesktopError
    from unlatch.phone.qrimage import decode_qr_image
    from unlatch.protocol import DesktopUnlock, app_link

    rec = phone().record
    link = app_link("https://relay.example/app/", DesktopUnlock(rec, now=int(time.time())).qr_bytes)
    png = tmp_path / "qr.png"
    terminal._write_png(link, png)
    assert decode_qr_image(png) == link and mode(png) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["qr.png"]

    real_save = segno.QRCode.save

    def half_then_fail(self: Any, out: Any, **kw: Any) -> None:
        out.write(b"\x89PNG\r\n")  # a partial image ...
        raise OSError(28, "No space left on device")  # ... then the disk fills up

    monkeypatch.setattr(segno.QRCode, "save", half_then_fail)
    fresh = tmp_path / "fresh.png"
    with pytest.raises(DesktopError, match="cannot write the QR image"):
        terminal._write_png(link, fresh)
    assert not fresh.exists() and [p.name for p in tmp_path.iterdir()] == ["qr.png"]
    monkeypatch.setattr(segno.QRCode, "save", real_save)
