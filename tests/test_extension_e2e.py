"""The browser extension end to end: real Chromium with the unpacked extension, the
real native host (installed by ``unlatch browser install``), the agent, a relay and
the Python phone client.

A toolbar click is what grants the extension ``activeTab`` on a page; the test
makes it with the DevTools protocol's ``Extensions.triggerAction`` (which needs
``--enable-unsafe-extension-debugging`` and the pipe Playwright already uses),
then drives the popup in its "pop out" form (``popup.html?tab=ID``), the same
code bound to that tab. Pages are served on 127.0.0.1 (and on ``localhost``, a
different origin, for the cross-origin frame).
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.a11y import AXE_RUN, assert_accessible, axe_source
from fixtures.desktop import CHROMIUM, CHROMIUM_ARGS, clean_env, wait_for
from fixtures.relay import start_relay
from fixtures.vault import PASSWORD
from test_e2e_cli import cli_pair

from unlatch.browser.host import extension_ids

EXTENSION = Path(__file__).resolve().parent.parent / "web" / "extension"
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
SHOTS = os.environ.get("UNLATCH_WRITE_SCREENSHOTS") == "1"  # refresh docs/img/extension-*.png
POPUP_SIZE = {"width": 360, "height": 560}
EXT_ID = extension_ids()["chromium"]

LOGIN = """<!doctype html><title>Login</title>
<form id="f" action="#" onsubmit="return false">
<label>Email <input id="user" name="email" type="email" autocomplete="username"></label>
<label>Password <input id="pass" name="pw" type="password" autocomplete="current-password"></label>
<button>Sign in</button></form>"""

# A form made by script that keeps its own state from input events, as frameworks do.
SCRIPTED = """<!doctype html><title>App</title><div id="root"></div>
<script>
window.seen = {user: "", pass: ""};
const form = document.createElement("form");
for (const [key, type] of [["user", "text"], ["pass", "password"]]) {
  const input = document.createElement("input");
  input.type = type; input.id = key;
  input.addEventListener("input", (e) => { window.seen[key] = e.target.value; });
  form.append(input);
}
document.getElementById("root").append(form);
</script>"""


def frame_page(src: str) -> str:
    return f'<!doctype html><title>Framed</title><p>Sign in below</p><iframe src="{src}"></iframe>'


def extension_chromium_args() -> list[str]:
    """The project's Chromium flags, with the new headless mode (extensions need it), the
    DevTools' Extensions domain (a toolbar click) and the unpacked extension."""
    return [
        "--headless=new",
        *(a for a in CHROMIUM_ARGS if a != "--headless"),
        "--enable-unsafe-extension-debugging",
        f"--disable-extensions-except={EXTENSION}",
        f"--load-extension={EXTENSION}",
    ]


class Pages:
    """A static site on 127.0.0.1:PORT (also reachable as localhost:PORT: another origin)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        (root / "login.html").write_text(LOGIN)
        (root / "scripted.html").write_text(SCRIPTED)
        (root / "same-frame.html").write_text(frame_page("login.html"))
        (root / "cross-frame.html").write_text(
            frame_page(f"http://localhost:{self.port}/login.html")
        )
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Browser:
    """Chromium with the extension, and the helpers a test needs to act as a user."""

    def __init__(self, context: Any) -> None:
        self.context = context
        self.cdp = context.browser.new_browser_cdp_session() if context.browser else None
        self.page = context.new_page()
        self.popup: Any = None

    def click_toolbar_button(self, page_url: str) -> None:
        """The user clicks the extension's button while on ``page_url`` (grants activeTab)."""
        self.page.bring_to_front()  # the toolbar acts on the window's active tab
        cdp = self.page.context.new_cdp_session(self.page) if self.cdp is None else self.cdp
        tabs = cdp.send("Target.getTargets", {"filter": [{"type": "tab"}]})["targetInfos"]
        (tab,) = [t for t in tabs if t["url"] == page_url]
        cdp.send("Extensions.triggerAction", {"id": EXT_ID, "targetId": tab["targetId"]})

    def open_popup_for(self, page_url: str) -> Any:
        self.click_toolbar_button(page_url)
        if self.popup is None:
            self.popup = self.context.new_page()
            self.popup.set_viewport_size(POPUP_SIZE)  # as the toolbar popup shows it
            self.popup.goto(f"chrome-extension://{EXT_ID}/popup.html")
        tab_id = self.popup.evaluate(
            "u => chrome.tabs.query({}).then(ts => ts.find(t => t.url === u).id)", page_url
        )
        self.popup.goto(f"chrome-extension://{EXT_ID}/popup.html?tab={tab_id}")
        self.popup.wait_for_selector("body[data-screen]")
        return self.popup

    def visit(self, url: str) -> Any:
        self.page.goto(url)
        return self.open_popup_for(url)


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[Pages]:
    site = Pages(tmp_path / "site")
    yield site
    site.close()


@pytest.fixture
def world(
    tmp_path: Path, desktop_env: Any, phone_factory: Any, pages: Pages
) -> Iterator[tuple[Any, Any, Browser]]:
    from playwright.sync_api import sync_playwright

    relay = start_relay(tmp_path / "relay")
    desktop = desktop_env(relay.url)
    phone = phone_factory("phone")
    cli_pair(desktop, phone, tmp_path)
    for title, url, user, password in [
        ("Local site", f"{pages.url}/", "ada@example.org", "local-Secret-1"),
        ("Secure only", f"https://127.0.0.1:{pages.port}/", "sec", "never-on-http"),
        ("Elsewhere", "https://elsewhere.example/", "el", "el-pw"),
    ]:
        out = desktop.run("add", title, "--username", user, "--url", url, input=f"{password}\n")
        assert out.returncode == 0, out.stderr
    assert desktop.run("lock").returncode == 0
    profile = tmp_path / "chromium-profile"
    out = desktop.run("browser", "install", "--user-data-dir", str(profile))
    assert out.returncode == 0, out.stderr
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=False,
            env=clean_env(desktop.home),
            args=extension_chromium_args(),
        )
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        context.add_init_script(axe_source())  # the popup's screens are checked as the UI's are
        try:
            yield desktop, phone, Browser(context)
        finally:
            context.close()
            relay.stop()


def field(page: Any, selector: str, frame_url: str | None = None) -> str:
    target = page.frame(url=frame_url) if frame_url else page
    return str(target.eval_on_selector(selector, "e => e.value"))


def test_extension_unlock_from_phone_then_fill(
    world: tuple[Any, Any, Browser], pages: Pages, tmp_path: Path
) -> None:
    desktop, phone, browser = world
    seen: list[str] = []
    popup = browser.visit(f"{pages.url}/login.html")
    assert popup.get_attribute("body", "data-screen") == "locked"
    assert popup.is_visible("#phone-btn") and popup.is_visible("#passkey-btn")
    assert_accessible(popup.evaluate(AXE_RUN), "extension popup, locked", seen)

    popup.click("#phone-btn")
    popup.wait_for_function("() => document.getElementById('request-qr').naturalWidth > 0")
    assert popup.get_attribute("#request-status", "data-state") == "waiting"
    assert_accessible(popup.evaluate(AXE_RUN), "extension popup, request", seen)
    if SHOTS:
        popup.screenshot(path=str(DOCS_IMG / "extension-locked-qr.png"))
    png = tmp_path / "popup-qr.png"
    popup.locator("#request-qr").screenshot(path=str(png))
    out = phone.run("approve", "--qr-image", str(png), "--yes", "--json")
    assert out.returncode == 0, out.stderr
    popup.wait_for_selector("body[data-screen=unlocked]", timeout=20000)
    assert desktop.status()["unlocked"] is True

    popup.wait_for_selector("#logins li")
    rows = popup.locator("#logins li")
    assert rows.count() == 1  # only the login for this site (not the https-only one)
    assert_accessible(popup.evaluate(AXE_RUN), "extension popup, unlocked", seen)
    if SHOTS:
        popup.screenshot(path=str(DOCS_IMG / "extension-unlocked.png"))
    assert "Local site" in rows.first.inner_text()
    rows.first.get_by_role("button", name="Fill Local site").click()
    popup.wait_for_selector("#notice:has-text('Filled')")
    assert field(browser.page, "#user") == "ada@example.org"
    assert field(browser.page, "#pass") == "local-Secret-1"

    # A form built by script sees the values through its input listeners.
    popup = browser.visit(f"{pages.url}/scripted.html")
    popup.get_by_role("button", name="Fill Local site").click()
    popup.wait_for_selector("#notice:has-text('Filled')")
    assert browser.page.evaluate("window.seen") == {
        "user": "ada@example.org",
        "pass": "local-Secret-1",
    }

    # A same-origin frame is filled.
    popup = browser.visit(f"{pages.url}/same-frame.html")
    popup.get_by_role("button", name="Fill Local site").click()
    popup.wait_for_selector("#notice:has-text('Filled')")
    assert field(browser.page, "#pass", f"{pages.url}/login.html") == "local-Secret-1"


def test_attack_extension_does_not_fill_a_cross_origin_frame_or_a_downgraded_page(
    world: tuple[Any, Any, Browser], pages: Pages
) -> None:
    _desktop, _phone, browser = world
    popup = browser.visit(f"{pages.url}/cross-frame.html")
    popup.fill("#password", "wrong")
    popup.click("#password-btn")
    popup.wait_for_selector("#password-error:visible")
    assert "Wrong master password" in popup.inner_text("#password-error")
    popup.fill("#password", PASSWORD)
    popup.click("#password-btn")
    popup.wait_for_selector("#logins li")
    popup.get_by_role("button", name="Fill Local site").click()
    framed = f"http://localhost:{pages.port}"
    popup.wait_for_selector("#frame-confirm:visible")
    assert framed in popup.inner_text("#frame-confirm-text")  # the frame's origin is named
    popup.click("#frame-confirm-no")
    popup.wait_for_selector("#notice:has-text('Nothing was filled')")
    assert field(browser.page, "#pass", f"{framed}/login.html") == ""

    # Searching shows the https-only login on this http page, but never offers to fill it.
    popup.fill("#search", "Secure")
    popup.wait_for_selector("#logins li:has-text('Secure only')")
    row = popup.locator("#logins li", has_text="Secure only")
    assert row.get_by_role("button", name="Fill Secure only").count() == 0


def test_extension_popup_follows_locks_and_unlocks_made_elsewhere(
    world: tuple[Any, Any, Browser], pages: Pages
) -> None:
    desktop, _phone, browser = world
    popup = browser.visit(f"{pages.url}/login.html")
    assert popup.get_attribute("body", "data-screen") == "locked"
    assert desktop.run("unlock", "--password-stdin", input=f"{PASSWORD}\n").returncode == 0
    popup.wait_for_selector("body[data-screen=unlocked]", timeout=5000)

    assert desktop.run("lock").returncode == 0
    locked_at = time.monotonic()
    wait_for(lambda: popup.get_attribute("body", "data-screen") == "locked", timeout=5)
    assert time.monotonic() - locked_at < 1.0  # within a second, as the popup watches

    # Lock from the popup: the CLI sees it.
    assert desktop.run("unlock", "--password-stdin", input=f"{PASSWORD}\n").returncode == 0
    popup.wait_for_selector("body[data-screen=unlocked]", timeout=5000)
    popup.click("#lock-btn")
    wait_for(lambda: desktop.status()["unlocked"] is False, what="locked by the popup")


def test_extension_unlock_approved_by_the_phone_app(
    world: tuple[Any, Any, Browser], pages: Pages, tmp_path: Path
) -> None:
    """The same popup request, approved by the phone PWA (served by the relay) in another tab."""
    import re
    import subprocess
    import sys

    from unlatch.phone.qrimage import decode_qr_image

    desktop, _phone, browser = world
    assert desktop.run("unlock", "--password-stdin", input=f"{PASSWORD}\n").returncode == 0
    pairing = subprocess.Popen(
        [sys.executable, "-m", "unlatch", "pair", "--show-link", "--name", "PWA phone"],
        env=clean_env(desktop.home, UNLATCH_DESKTOP_RELAY_URL=desktop.relay_url),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert pairing.stdout is not None and pairing.stderr is not None
        link = pairing.stdout.readline().strip()
        phone_page = browser.context.new_page()
        phone_page.goto(link)
        phone_page.click("#pair-start")
        phone_page.wait_for_selector("#verification-code")
        code = phone_page.get_attribute("#verification-code", "data-code")
        shown = ""
        while not re.search(r"\d{3} \d{3}", shown):
            shown += pairing.stderr.readline()
        assert code == re.search(r"(\d{3} \d{3})", shown).group(1).replace(" ", "")
        _out, err = pairing.communicate("y\n", timeout=60)
        assert pairing.returncode == 0, err
    finally:
        if pairing.poll() is None:
            pairing.kill()
    phone_page.wait_for_selector("#pair-save")
    phone_page.click("#pair-save")
    phone_page.wait_for_selector("#pair-finish", timeout=60000)
    phone_page.click("#pair-finish")
    assert desktop.run("lock").returncode == 0

    popup = browser.visit(f"{pages.url}/login.html")
    popup.select_option("#phone-select", label="PWA phone")
    popup.click("#phone-btn")
    popup.wait_for_function("() => document.getElementById('request-qr').naturalWidth > 0")
    png = tmp_path / "popup-qr.png"
    popup.locator("#request-qr").screenshot(path=str(png))
    phone_page.goto(decode_qr_image(png))  # the phone's camera app opens the QR's link
    phone_page.wait_for_selector("#approve")
    phone_page.click("#approve")
    popup.wait_for_selector("body[data-screen=unlocked]", timeout=20000)
    assert desktop.status()["unlocked"] is True


def test_extension_passkey_opens_the_desktop_ui_and_the_popup_follows(
    world: tuple[Any, Any, Browser], pages: Pages
) -> None:
    _desktop, _phone, browser = world
    popup = browser.visit(f"{pages.url}/login.html")
    with browser.context.expect_page() as opened:
        popup.click("#passkey-btn")
    ui = opened.value
    ui.wait_for_selector("#locked:visible")  # the desktop UI, signed in by its launch link
    assert ui.locator("#unlock-passkey-btn").count() == 1  # shown once a passkey is registered
    popup.wait_for_selector("#passkey-note:visible")
    # However the UI unlocks (here: its password form), the popup follows.
    ui.fill("#password", PASSWORD)
    ui.press("#password", "Enter")
    popup.wait_for_selector("body[data-screen=unlocked]", timeout=10000)
