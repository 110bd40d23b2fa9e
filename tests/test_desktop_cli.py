"""``unlatch desktop`` against an agent whose UI already runs: options that cannot
apply any more are reported, never silently dropped."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit


def test_desktop_options_a_running_ui_cannot_take_are_reported(desktop_env: Any) -> None:
    desktop = desktop_env("http://127.0.0.1:9")  # no relay is contacted here
    desktop.start_ui("--unlock-ttl", "60", "--qr-renewals", "2")
    other_port = "1" if desktop.port != 1 else "2"
    out = desktop.run(
        "desktop", "--no-browser",
        "--relay", "http://127.0.0.1:8",
        "--unlock-ttl", "30",
        "--qr-renewals", "1",
        "--port", other_port,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"unlatch desktop UI: http://localhost:{desktop.port}/?k=" in out.stdout
    note = out.stderr
    assert "the desktop UI is already running" in note
    assert f"it is on port {desktop.port} (--port ignored)" in note
    assert "it uses the relay http://127.0.0.1:9 (--relay ignored)" in note
    assert "its unlock requests live 60 s (--unlock-ttl ignored)" in note
    assert "it renews the QR 2 times (--qr-renewals ignored)" in note
    assert "unlatch agent stop" in note

    # The same values as the running UI's: nothing to say.
    same = desktop.run(
        "desktop", "--no-browser", "--relay", "http://127.0.0.1:9/",
        "--unlock-ttl", "60", "--qr-renewals", "2", "--port", str(desktop.port),
    )  # fmt: skip
    assert same.returncode == 0 and same.stderr == ""

    # --json carries the note too.
    info = json.loads(desktop.run("desktop", "--no-browser", "--json", "--unlock-ttl", "9").stdout)
    assert "--unlock-ttl ignored" in info["note"]


def test_desktop_opens_the_browser_with_a_launch_file_only(desktop_env: Any) -> None:
    """Without --no-browser nothing printed or passed on holds the secret: the browser gets
    a private file's path; when no browser starts, that path is what the user is told."""
    desktop = desktop_env("http://127.0.0.1:9")
    out = desktop.run("desktop", BROWSER="/bin/false")  # a "browser" that fails at once
    assert out.returncode == 0, out.stderr
    assert "k=" not in out.stdout + out.stderr
    match = re.search(r"unlatch desktop UI: http://localhost:(\d+)/ \(opening it", out.stdout)
    assert match is not None, out.stdout
    uri = re.search(r"no browser could be started: open (file://\S+) in yours", out.stderr)
    assert uri is not None, out.stderr
    launch = Path(unquote(urlsplit(uri.group(1)).path))
    assert stat.S_IMODE(launch.stat().st_mode) == 0o600
    assert f"http://localhost:{match.group(1)}/" in launch.read_text()
    info = json.loads(desktop.run("desktop", "--json", BROWSER="/bin/true").stdout)
    assert "url" not in info and Path(info["launch_file"]).is_file()
    assert info["address"] == f"http://localhost:{info['port']}/"
