"""Reopening the desktop UI: one agent per vault, a fixed port, saying which vault,
a tab whose agent restarted, and the UI's own error pages.

Names match ``-k reopen``. Real agents (spawned by the CLI), real Chromium.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from fixtures.desktop import Desktop, cli, wait_for

from unlatch.desktop.settings import DEFAULT_UI_PORT
from unlatch.desktop.web.pages import STYLE_HASH


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def held(port: int) -> Iterator[None]:
    """127.0.0.1:``port`` held by someone else for the duration (already held is fine too)."""
    sock = socket.socket()
    try:
        with contextlib.suppress(OSError):  # taken already: it is held, which is the point
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        yield
    finally:
        sock.close()


def test_reopen_desktop_again_opens_the_running_ui_and_names_the_vault(desktop_env: Any) -> None:
    desktop = desktop_env("http://127.0.0.1:9")
    first = desktop.run("desktop", "--no-browser")
    assert first.returncode == 0, first.stderr
    vault = desktop.home / "desktop" / "vault.db"
    assert f"vault: {vault} (unlocked)" in first.stdout
    pid = desktop.agent_pid()
    again = json.loads(desktop.run("desktop", "--no-browser", "--json").stdout)
    assert again["already_running"] is True and again["agent_pid"] == pid
    assert again["vault_path"] == str(vault) and again["reopen"].endswith(" unlatch desktop")
    text = desktop.run("desktop", "--no-browser").stdout
    assert f"http://localhost:{again['port']}/?k=" in text and f"vault: {vault}" in text
    assert desktop.agent_pid() == pid  # never a second agent


def test_reopen_a_home_without_a_vault_says_where_it_looked(tmp_path: Path) -> None:
    home = tmp_path / "other"
    home.mkdir()
    desktop = Desktop(home, "http://127.0.0.1:9")
    try:
        out = desktop.run("desktop", "--no-browser")
        assert out.returncode == 0, out.stderr
        vault = home / "desktop" / "vault.db"
        assert f"no vault at {vault}: run `UNLATCH_HOME={home} unlatch init`" in out.stderr
        link = out.stdout.split("unlatch desktop UI: ")[1].split()[0]
        with httpx.Client(follow_redirects=True, timeout=10) as client:
            page = client.get(link)
            state = client.get(str(page.url) + "api/state").json()
        assert state["vault"]["exists"] is False and state["vault"]["path"] == str(vault)
        assert state["vault"]["reopen"] == f"UNLATCH_HOME={home} unlatch desktop"
    finally:
        desktop.stop()


def test_reopen_default_port_gives_way_when_taken_a_configured_one_does_not(
    desktop_env: Any,
) -> None:
    desktop = desktop_env("http://127.0.0.1:9")
    with held(DEFAULT_UI_PORT):
        out = desktop.run("desktop", "--no-browser", "--json", UNLATCH_DESKTOP_UI_PORT="")
        assert out.returncode == 0, out.stderr
        info = json.loads(out.stdout)
        assert info["port"] != DEFAULT_UI_PORT
        assert f"usual port {DEFAULT_UI_PORT} is taken" in info["note"]
    desktop.stop()
    port = free_port()
    with held(port):
        out = desktop.run("desktop", "--no-browser", UNLATCH_DESKTOP_UI_PORT=str(port))
        assert out.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in out.stderr
    desktop.stop()
    port = free_port()
    out = desktop.run("desktop", "--no-browser", "--json", UNLATCH_DESKTOP_UI_PORT=str(port))
    assert json.loads(out.stdout)["port"] == port  # the same address every time


def test_reopen_tab_of_a_restarted_agent_says_what_to_run(desktop_env: Any, browser: Any) -> None:
    desktop = desktop_env("http://127.0.0.1:9")
    port = str(free_port())  # the same port across the restart, as with the default
    page = browser.new_page()
    page.goto(desktop.start_ui("--port", port))
    page.wait_for_selector("#vault:visible")
    old_url = page.url
    desktop.stop()
    want = f"Run `UNLATCH_HOME={desktop.home} unlatch desktop` in a terminal"
    wait_for(lambda: want in page.inner_text("#banner"), what="agent down banner")
    assert "not answering" in page.inner_text("#banner")
    desktop.start_ui("--port", port)  # a new agent run: new prefix, new sessions
    wait_for(lambda: "This window is closed" in page.inner_text("#banner"), timeout=40,
             what="the closed-window banner")  # fmt: skip
    assert want in page.inner_text("#banner")
    # Reloading it: the app's 401 page, styled (its inline style allowed by hash only).
    resp = page.goto(old_url)
    assert resp is not None and resp.status == 401
    assert f"'sha256-{STYLE_HASH}'" in resp.headers["content-security-policy"]
    assert "script-src" not in resp.headers["content-security-policy"]
    assert page.inner_text("h1") == "This window is closed"
    assert f"UNLATCH_HOME={desktop.home} unlatch desktop" in page.inner_text("code")
    bg = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert bg in ("rgb(244, 245, 248)", "rgb(17, 19, 24)")  # the app's background: styled
    page.close()


def test_reopen_not_found_page_is_styled_and_leads_back(desktop_env: Any, browser: Any) -> None:
    desktop = desktop_env("http://127.0.0.1:9")
    page = browser.new_page()
    page.goto(desktop.start_ui())
    page.wait_for_selector("#vault:visible")
    base = page.url
    resp = page.goto(base + "no/such/page")
    assert resp is not None and resp.status == 404
    assert page.inner_text("h1") == "No such page"
    assert page.evaluate("getComputedStyle(document.querySelector('main')).borderRadius") == "12px"
    page.click("text=Back to the vault")
    page.wait_for_selector("#vault:visible")
    # The API keeps answering JSON.
    api = page.request.get(base + "api/nothing")
    assert api.status == 404 and api.json()["error"] == "not_found"
    page.close()
    out = cli(desktop.home, "status", "--json")
    assert out.returncode == 0
