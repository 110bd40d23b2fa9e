"""``unlatch demo``: relay + agent + UI on loopback, a demo vault, clean exit on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from fixtures.desktop import clean_env


def test_e2e_demo_starts_everything_and_stops_on_sigterm(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    env = clean_env(tmp_path / "unused")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unlatch",
            "demo",
            "--dir",
            str(demo_dir),
            "--relay-port",
            "0",
            "--no-browser",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        assert "new demo vault created" in text
        ui = re.search(r"desktop UI:\s+(\S+)", text).group(1)
        relay = re.search(r"relay:\s+(\S+)", text).group(1)
        assert httpx.get(relay + "/healthz", timeout=5).status_code == 200
        with httpx.Client(follow_redirects=True, timeout=10) as client:
            page = client.get(ui)
            assert page.status_code == 200 and "Request unlock from phone" in page.text
            # the launch link redirected to the UI's secret prefix: the API lives there
            state = client.get(str(page.url) + "api/state").json()
        assert state["vault"]["unlocked"] is True and state["vault"]["items"] == 4
        assert state["settings"]["relay_url"] == relay
        assert (demo_dir / "desktop" / "vault.db").exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not (demo_dir / "desktop" / "agent.sock").exists()  # the agent stopped too
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
