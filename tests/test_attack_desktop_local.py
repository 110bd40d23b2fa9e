"""Another user of the desktop machine against the local web UI (issue 11, items 2 and 3).

Real processes throughout: the agent started by the real ``unlatch desktop``,
headless Debian Chromium (through Playwright, or as the ``BROWSER`` that
``unlatch desktop`` starts), and the attacker's processes running as another
user (``nobody``; see :mod:`fixtures.localuser`).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.desktop import Desktop, clean_env
from fixtures.localuser import (
    ProcWatcher,
    Squatter,
    free_loopback_port,
    other_user,
    try_listen,
)

from unlatch.agent.settings import LOG_NAME

NO_RELAY = "http://127.0.0.1:9"  # nothing here talks to a relay


def real_ui(page: Any) -> bool:
    """The agent's page (it carries the session's CSRF token), not a look-alike."""
    return bool(page.locator('meta[name="csrf-token"]').count() == 1)


def test_attack_local_user_squatting_ipv6_loopback_gets_no_launch_link(
    desktop_env: Any, browser: Any
) -> None:
    desktop: Desktop = desktop_env(NO_RELAY)
    port = free_loopback_port()
    # Another user listens on [::1]:PORT first, with a fake master-password page.
    with Squatter("::1", port) as squatter:
        out = desktop.run("desktop", "--no-browser", "--json", "--port", str(port))
        if out.returncode == 0:  # the UI started anyway: open its link as the user would
            page = browser.new_page()
            page.goto(json.loads(out.stdout)["url"])
            page.close()
        # Chromium tries ::1 first for localhost: before the fix, the squatter got
        # GET /?k=<launch secret> with Host localhost:PORT and served its fake page.
        assert squatter.requests() == []
    assert out.returncode != 0
    assert f"cannot listen on [::1]:{port}" in out.stderr, out.stderr
    assert desktop.run("desktop", "--no-browser", "--json").returncode == 0  # port 0 works

    # The UI holds both addresses at its port: nobody else can listen there any more.
    desktop.stop()
    desktop.start_ui("--port", str(port))
    for host in ("::1", "127.0.0.1", "::", "0.0.0.0"):
        assert try_listen(host, port).startswith("refused"), host
    page = browser.new_page()
    page.goto(desktop.url)  # http://localhost:PORT/?k=...
    assert real_ui(page) and "k=" not in page.url
    page.close()


def test_desktop_ui_refuses_a_port_taken_on_127_0_0_1(desktop_env: Any) -> None:
    desktop: Desktop = desktop_env(NO_RELAY)
    port = free_loopback_port()
    with Squatter("127.0.0.1", port) as squatter:
        out = desktop.run("desktop", "--no-browser", "--json", "--port", str(port))
        assert squatter.requests() == []
    assert out.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in out.stderr
    # And with a free port chosen by the agent, both addresses are its own.
    desktop.start_ui()
    assert try_listen("::1", desktop.port).startswith("refused")
    assert try_listen("127.0.0.1", desktop.port).startswith("refused")


@pytest.fixture
def netns_without_ipv6() -> Iterator[int]:
    """A network namespace whose loopback has 127.0.0.1 and no ::1 (needs root)."""
    holder = subprocess.Popen(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            "ip link set lo up && sysctl -qw net.ipv6.conf.lo.disable_ipv6=1 "
            "&& echo ready && exec sleep 600",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "ready":
        holder.kill()
        pytest.skip(f"cannot make a network namespace here: {holder.communicate()[1].strip()}")
    yield holder.pid
    holder.kill()
    holder.wait()


def test_desktop_ui_without_ipv6_loopback_serves_on_127_0_0_1(
    desktop_env: Any, netns_without_ipv6: int, tmp_path: Path
) -> None:
    desktop: Desktop = desktop_env(NO_RELAY)
    desktop.stop()  # `unlatch init` started an agent here: the next one starts in the namespace
    inside = ["nsenter", f"--net=/proc/{netns_without_ipv6}/ns/net"]
    env = clean_env(desktop.home, UNLATCH_DESKTOP_RELAY_URL=NO_RELAY)
    out = subprocess.run(
        [*inside, sys.executable, "-m", "unlatch", "desktop", "--no-browser", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    url = json.loads(out.stdout)["url"]
    # A real browser in that namespace: localhost's ::1 fails, 127.0.0.1 is the UI.
    browser, dump = browser_command(tmp_path)
    run = subprocess.run([*inside, str(browser), url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert 'name="csrf-token"' in dump.read_text(), dump.read_text()[:2000]
    log = (desktop.home / "desktop" / LOG_NAME).read_text()
    port = json.loads(out.stdout)["port"]
    assert "no IPv6 loopback here" in log and f"desktop UI on http://127.0.0.1:{port}/\n" in log


def browser_command(tmp_path: Path) -> tuple[Path, Path]:
    """An executable for ``BROWSER``: real headless Chromium given the link as its argument.

    ``webbrowser`` runs it with the URL (or file) as its one argument and
    waits for it; :mod:`fixtures.argv_browser` saves the page it ends on.
    """
    dump = tmp_path / "browser-dump.html"
    script = tmp_path / "browser"
    tests = Path(__file__).resolve().parent
    script.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={tests} exec {sys.executable} {tests / 'fixtures' / 'argv_browser.py'} "
        f'"$1" {dump} {tmp_path / "profile"}\n'
    )
    script.chmod(0o755)
    return script, dump


def test_attack_local_user_reads_launch_secret_from_process_list(
    desktop_env: Any, tmp_path: Path
) -> None:
    desktop: Desktop = desktop_env(NO_RELAY)
    port = free_loopback_port()
    browser, dump = browser_command(tmp_path)
    # Two watchers poll every /proc/*/cmdline from before `unlatch desktop` starts
    # until the browser has finished: one as this user (it also reads every
    # /proc/*/environ: the secret must not be in any environment either), one as
    # another user (it also tries to read any HTML file named in an argv). Each
    # tries every secret-like string it sees against the UI at once.
    same = ProcWatcher(port, same_user=True)
    other = ProcWatcher(port, same_user=False)
    try:
        out = desktop.run("desktop", "--json", "--port", str(port), BROWSER=str(browser))
    finally:
        found_same, found_other = same.stop(), other.stop()
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)

    # Before the fix, the browser's argv held http://localhost:PORT/?k=<secret>:
    # the watchers redeemed it (303 + session cookie) before Chromium did.
    for found in (found_same, found_other):
        assert found.sweeps > 1 and found.sources > 0
        assert found.sessions() == [], found.tokens
        # (a string seen before the UI listened got "error ...": nothing answered yet)
        answers = {str(v["status"]) for v in found.tokens.values()}
        assert answers <= {"401"} | {a for a in answers if a.startswith("error")}, found.tokens
    # The browser got only the launch file's path, which another user cannot open.
    launch = info["launch_file"]
    assert "url" not in info
    if other_user():
        assert found_other.files.get(launch, "").startswith("refused"), found_other.files
    assert "read" not in found_other.files.values()
    mode = os.stat(Path(launch).parent).st_mode
    assert stat.S_IMODE(mode) == 0o700 and os.stat(Path(launch).parent).st_uid == os.geteuid()
    # ... and the user's real browser opened the UI through it, then the file was deleted.
    assert 'name="csrf-token"' in dump.read_text(), dump.read_text()[:2000]
    assert not Path(launch).exists()
