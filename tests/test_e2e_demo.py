"""``unlatch demo``: relay + agent + UI on loopback, a demo vault, clean exit on SIGTERM."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fixtures.desktop import clean_env


def test_e2e_demo_starts_everything_and_stops_on_sigterm(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo"
    env = clean_env(tmp_path / "unused", UNLATCH_DESKTOP_UI_PORT="0")
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
        # The default relay is loopback HTTP: the output says a phone cannot use it ...
        assert "a real phone cannot use this relay" in text and "--public-url" in text
        assert f"{relay}/app/ on a phone" not in text
        # ... and the Python phone client's commands work exactly as printed.
        # The printed way back to the UI reaches this demo's agent, not another one.
        reopen = printed(text, "reopen it:")[2:]
        assert reopen[1:] == ["unlatch", "desktop"] and reopen[0].startswith("UNLATCH_HOME=")
        again = subprocess.run(
            [sys.executable, "-m", "unlatch", "desktop", "--no-browser", "--json"],
            env=clean_env(Path(reopen[0].split("=", 1)[1])),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        info = json.loads(again.stdout)
        assert info["already_running"] is True and info["address"] in ui
        assert info["vault_path"] == str(demo_dir.resolve() / "desktop" / "vault.db")
        run_printed_pairing(text, tmp_path)
        with httpx.Client(follow_redirects=True, timeout=10) as client:
            page = client.get(start_ui_link(demo_dir, relay))
            paired = client.get(str(page.url) + "api/state").json()["phones"]
        assert [p["label"] for p in paired] == ["demo test phone"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not (demo_dir / "desktop" / "agent.sock").exists()  # the agent stopped too
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def printed(text: str, start: str) -> list[str]:
    """The command line of the demo's output that starts with ``start``, as argv."""
    (line,) = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(start)]
    return shlex.split(line)


def run_printed_pairing(text: str, tmp_path: Path) -> None:
    """Pair the Python phone client by running the demo's printed commands."""
    desk_cmd = printed(text, "UNLATCH_HOME=")
    assignment, unlatch, *desk_args = desk_cmd
    assert unlatch == "unlatch" and desk_args[0] == "pair" and "--show-link" in desk_args
    home = assignment.removeprefix("UNLATCH_HOME=")
    desk = subprocess.Popen(
        [sys.executable, "-m", "unlatch", *desk_args],
        env=clean_env(Path(home)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    phone: subprocess.Popen[str] | None = None
    try:
        link = desk.stdout.readline().strip()
        assert link.startswith("http") and "#" in link, link
        phone_cmd = printed(text, "unlatch phone ")
        assert phone_cmd[-1] == "-" and not any("#" in a for a in phone_cmd)  # link via stdin
        phone = subprocess.Popen(
            [sys.executable, "-m", "unlatch", *phone_cmd[1:], "--phone-name", "demo test phone"],
            env=clean_env(tmp_path / "unused"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The link pasted, then "contact the relay?" answered, as a person would.
        phone.stdin.write(f"{link}\ny\n")
        phone.stdin.flush()
        cmdline = Path(f"/proc/{phone.pid}/cmdline").read_bytes()
        assert link.encode() not in cmdline and b"#" not in cmdline
        shown = ""
        deadline = time.monotonic() + 30
        while not re.search(r"\d{3} \d{3}", shown) and time.monotonic() < deadline:
            shown += desk.stderr.readline()
        code = re.search(r"(\d{3} \d{3})", shown).group(1)
        desk_out, desk_err = desk.communicate("y\n", timeout=30)
        phone_out, phone_err = phone.communicate(timeout=30)
        assert desk.returncode == 0, desk_err
        assert phone.returncode == 0, phone_err
        assert code.replace(" ", "") in (phone_out + phone_err).replace(" ", "")
        assert "paired" in desk_out
    finally:
        for proc in (desk, phone):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()


def start_ui_link(demo_dir: Path, relay: str) -> str:
    """A fresh launch link of the demo's (still running) agent."""
    out = subprocess.run(
        [sys.executable, "-m", "unlatch", "desktop", "--no-browser", "--json"],
        env=clean_env(demo_dir, UNLATCH_DESKTOP_RELAY_URL=relay),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return str(json.loads(out.stdout)["url"])
