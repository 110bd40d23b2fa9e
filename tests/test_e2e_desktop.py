"""End to end: relay + desktop agent (web UI) + real Chromium + the Python phone client.

Every part is a real process: the relay (``unlatch relay``), the agent started
by the CLI and serving the UI, headless Debian Chromium driving the page, and
``unlatch phone ...`` as the phone (its own home). The QR is taken from the
page (a screenshot of the QR image element) and decoded by the phone client.
Set ``UNLATCH_WRITE_SCREENSHOTS=1`` to refresh docs/img/desktop-*.png.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import segno
from fixtures.desktop import Desktop, Phone, clean_env, wait_for
from fixtures.relay import start_relay

from unlatch.protocol import DesktopUnlock, KeyPair, PairingKeys, app_link
from unlatch.protocol.records import DesktopPairingRecord

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
SHOTS = os.environ.get("UNLATCH_WRITE_SCREENSHOTS") == "1"


def shot(page: Any, name: str) -> None:
    if SHOTS:
        page.evaluate("document.getElementById('toast').hidden = true")  # no stray "Saved"
        page.screenshot(path=str(DOCS_IMG / name))


def open_ui(browser: Any, desktop: Desktop) -> Any:
    page = browser.new_page(viewport={"width": 1200, "height": 760})
    page.goto(desktop.start_ui())
    page.wait_for_selector("#vault:visible, #locked:visible")
    assert "k=" not in page.url  # the launch secret left the address bar
    return page


def qr_png(page: Any, selector: str, path: Path) -> Path:
    page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && i.complete && i.naturalWidth }",
        arg=selector,
    )
    page.locator(selector).screenshot(path=str(path))
    return path


def pair_through_ui(page: Any, phone: Phone, tmp: Path) -> None:
    page.click("#settings-btn")
    page.click("#pair-btn")
    png = qr_png(page, "#pair-qr", tmp / "pair.png")
    proc = phone.popen("pair", "--qr-image", str(png), "--yes", "--json")
    page.wait_for_selector("#pair-confirm:visible", timeout=20000)
    shot(page, "desktop-pairing.png")
    first = json.loads(proc.stdout.readline())
    shown = page.inner_text("#pair-code").replace(" ", "")
    assert first["type"] == "code" and first["code"] == shown  # both screens agree
    page.click("#pair-confirm")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["type"] == "paired"
    page.wait_for_selector("#phones li")
    page.click("#pair-close")
    page.click("#settings-close")


def lock(page: Any) -> None:
    page.click("#lock-btn")
    page.wait_for_selector("#locked:visible")


def request_qr(page: Any, tmp: Path, name: str = "unlock.png") -> Path:
    page.click("#unlock-phone-btn")
    page.wait_for_selector("#request:visible")
    return qr_png(page, "#unlock-qr", tmp / name)


def state_of(page: Any) -> str:
    return str(page.get_attribute("#unlock-status", "data-state"))


@pytest.fixture(scope="module")
def shared_relay(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One relay for the module (pairings are independent; restarts use their own)."""
    relay = start_relay(tmp_path_factory.mktemp("relay"))
    yield relay
    relay.stop()


@pytest.fixture
def setup(
    shared_relay: Any, desktop_env: Any, phone_factory: Any, browser: Any, tmp_path: Path
) -> Any:
    desktop = desktop_env(shared_relay.url)
    phone = phone_factory("phone")
    page = open_ui(browser, desktop)
    pair_through_ui(page, phone, tmp_path)
    yield desktop, phone, page
    page.close()


def test_e2e_pair_then_unlock_with_phone(setup: Any, tmp_path: Path) -> None:
    desktop, phone, page = setup
    page.click("#new-item")
    page.fill("#item-form [name=title]", "GitHub")
    page.fill("#item-form [name=username]", "ada@example.org")
    page.click("#gen-btn")
    page.wait_for_function("() => document.getElementById('form-password').value.length >= 20")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-view:visible")
    lock(page)
    png = request_qr(page, tmp_path)
    shot(page, "desktop-locked-qr.png")
    assert state_of(page) == "waiting"
    out = phone.run("approve", "--qr-image", str(png), "--yes", "--json")
    assert out.returncode == 0, out.stderr
    page.wait_for_selector("#vault:visible", timeout=20000)
    page.wait_for_selector("#items li")
    assert "GitHub" in page.inner_text("#items")
    page.click("#items li")
    page.wait_for_selector("#item-view:visible")
    shot(page, "desktop-unlocked.png")
    assert desktop.status()["unlocked"] is True


def test_e2e_deny_keeps_vault_locked(setup: Any, tmp_path: Path) -> None:
    desktop, phone, page = setup
    lock(page)
    png = request_qr(page, tmp_path)
    out = phone.run("deny", "--qr-image", str(png), "--json")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: state_of(page) == "denied", what="denied status")
    assert page.is_visible("#request-again")
    assert desktop.status()["unlocked"] is False


def test_e2e_not_me_blocks_and_page_says_so(setup: Any, tmp_path: Path) -> None:
    desktop, phone, page = setup
    lock(page)
    png = request_qr(page, tmp_path)
    assert phone.run("deny", "--qr-image", str(png), "--not-me", "--json").returncode == 0
    wait_for(lambda: state_of(page) == "not_me", what="not-me status")
    assert "did not ask" in page.inner_text("#unlock-status")
    page.click("#request-again")  # the relay now refuses: the page explains
    page.wait_for_selector("#unlock-error:visible")
    assert "blocked" in page.inner_text("#unlock-error").lower()
    assert desktop.status()["unlocked"] is False


def test_e2e_expired_request_offers_new_one(
    shared_relay: Any, desktop_env: Any, phone_factory: Any, browser: Any, tmp_path: Path
) -> None:
    desktop = desktop_env(shared_relay.url)
    phone = phone_factory("phone")
    page = browser.new_page()
    # A short real life: the timing itself is tested on a fake clock in test_desktop_services.
    page.goto(desktop.start_ui("--unlock-ttl", "10", "--qr-renewals", "0"))
    pair_through_ui(page, phone, tmp_path)
    lock(page)
    old = request_qr(page, tmp_path, "old.png")
    wait_for(lambda: state_of(page) == "expired", timeout=45, what="expiry")
    out = phone.run("approve", "--qr-image", str(old), "--yes", "--json")
    assert out.returncode != 0  # the phone refuses an expired code
    old_src = page.get_attribute("#unlock-qr", "src")
    page.click("#request-again")
    wait_for(lambda: page.get_attribute("#unlock-qr", "src") != old_src, what="new QR")
    wait_for(lambda: state_of(page) == "waiting", what="new request")
    fresh = qr_png(page, "#unlock-qr", tmp_path / "fresh.png")
    assert phone.run("approve", "--qr-image", str(fresh), "--yes").returncode == 0
    page.wait_for_selector("#vault:visible", timeout=20000)
    page.close()


def test_e2e_scanned_but_unanswered_request_ends_expired(
    shared_relay: Any, desktop_env: Any, phone_factory: Any, browser: Any, tmp_path: Path
) -> None:
    """The phone scans (the page says so) but never answers: with QR renewals on (the
    UI's default) the request must still end as expired, with *New request* offered."""
    desktop = desktop_env(shared_relay.url)
    phone = phone_factory("phone")
    page = browser.new_page()
    # Renewals at 10 s lives come 2 s before expiry; the phone may scan the first QR or
    # its renewal (a predecessor stays answerable). The default 120 s life: on a fake
    # clock in test_desktop_services.
    page.goto(desktop.start_ui("--unlock-ttl", "10", "--qr-renewals", "4"))
    pair_through_ui(page, phone, tmp_path)
    lock(page)
    png = request_qr(page, tmp_path)
    # `approve` without --yes: the phone posts "seen", then waits at its prompt.
    answering = subprocess.Popen(
        [sys.executable, "-m", "unlatch", "phone", "approve", "--qr-image", str(png)],
        env=clean_env(phone.home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: state_of(page) == "seen", timeout=30, what="scanned status")
        expires_at = page_state(page)["unlock"]["expires_at"]
        wait_for(lambda: state_of(page) == "expired", timeout=45, what="expiry after a scan")
        assert time.time() >= expires_at
        assert page_state(page)["unlock"]["state"] == "expired"  # the agent's own state
        assert page.is_visible("#request-again")
        assert page.inner_text("#request-expiry") == ""  # no "expires in 0:00" left behind
        assert desktop.status()["unlocked"] is False
    finally:
        answering.kill()
        answering.communicate()
    page.close()


def page_state(page: Any) -> dict[str, Any]:
    """The agent's state as the page's own API reports it."""
    result: dict[str, Any] = page.evaluate(
        "async () => (await fetch('api/state', {headers: {Accept: 'application/json'}})).json()"
    )
    return result


def test_e2e_revoked_phone_cannot_unlock(setup: Any, tmp_path: Path) -> None:
    desktop, phone, page = setup
    lock(page)
    png = request_qr(page, tmp_path)  # a request made while still paired
    phone_id = json.loads(desktop.run("devices", "--json").stdout)[0]["id"]
    out = desktop.run("devices", "revoke", phone_id, "--yes")
    assert out.returncode == 0, out.stderr
    # The agent is told: the page's request for that phone ends now, and says why.
    wait_for(lambda: state_of(page) == "failed", what="the request withdrawn")
    assert "was revoked on this desktop" in page.inner_text("#unlock-status")
    assert page.is_visible("#request-again") and page.is_hidden("#unlock-phone-btn")
    # The phone (it still has its record) answers anyway: the relay tells it the desktop
    # removed it, so it sends nothing and says what to do (issue 13: revocation reaches it).
    out = phone.run("approve", "--qr-image", str(png), "--yes", "--json")
    assert out.returncode == 6, out.stderr
    assert "removed this phone" in out.stderr and "pair again" in out.stderr
    assert out.stdout == ""
    assert desktop.status()["unlocked"] is False
    assert state_of(page) == "failed"
    # the slot is gone once the vault is unlocked again (master password)
    page.fill("#password", "correct horse battery staple")
    page.click("#password-btn")
    page.wait_for_selector("#vault:visible")
    wait_for(
        lambda: not [s for s in desktop.status()["slots"] if s["kind"] == "phone"],
        what="phone slot removal",
    )


def test_e2e_phishing_qr_from_another_desktop_is_refused(setup: Any, tmp_path: Path) -> None:
    desktop, phone, page = setup
    lock(page)
    # An attacker's desktop: its own keys, never paired with this phone.
    rogue = DesktopPairingRecord(
        keys=PairingKeys.from_root(os.urandom(32)),
        phone_pk=KeyPair.generate(os.urandom).public,
        phone_name="victim",
        phone_device_id="x" * 22,
        created_at=int(time.time()),
    )
    request = DesktopUnlock(rogue, now=int(time.time()))
    link = app_link(desktop.relay_url + "/app/", request.qr_bytes)
    png = tmp_path / "phish.png"
    segno.make(link, error="m").save(str(png), kind="png", scale=8, border=4)
    out = phone.run("approve", "--qr-image", str(png), "--yes", "--json")
    assert out.returncode != 0
    assert "not made by a desktop paired" in (out.stderr + out.stdout)
    assert desktop.status()["unlocked"] is False


def test_e2e_reply_posted_while_desktop_reconnects_is_delivered(
    relay_factory: Any, desktop_env: Any, phone_factory: Any, browser: Any, tmp_path: Path
) -> None:
    relay = relay_factory()
    desktop = desktop_env(relay.url)
    phone = phone_factory("phone")
    page = open_ui(browser, desktop)
    pair_through_ui(page, phone, tmp_path)
    lock(page)
    png = request_qr(page, tmp_path)
    pid = desktop.agent_pid()
    restarted = None
    os.kill(pid, signal.SIGSTOP)  # the desktop cannot react while we cut its relay link
    try:
        relay.stop()  # every socket dropped (shutdown frame + close 1012)
        # same address, same store: the desktop's reconnection will find it
        restarted = start_relay(relay.db_path.parent, port=relay.port, db_path=relay.db_path)
        out = phone.run("approve", "--qr-image", str(png), "--yes", "--json")
        assert out.returncode == 0, out.stderr  # the reply reached the relay ...
    finally:
        os.kill(pid, signal.SIGCONT)  # ... while the desktop was away
    try:
        page.wait_for_selector("#vault:visible", timeout=30000)
        assert desktop.status()["unlocked"] is True
    finally:
        if restarted is not None:
            restarted.stop()
    page.close()


def test_e2e_phone_unlock_survives_agent_restart(setup: Any, tmp_path: Path) -> None:
    desktop, phone, page = setup
    desktop.stop()  # the vault locks; the slot is in the vault, the pairing on disk
    page2 = page.context.browser.new_page()
    page2.goto(desktop.start_ui())
    page2.wait_for_selector("#locked:visible")
    png = request_qr(page2, tmp_path)
    assert phone.run("approve", "--qr-image", str(png), "--yes").returncode == 0
    page2.wait_for_selector("#vault:visible", timeout=20000)
    page2.close()


def test_e2e_qr_is_renewed_before_it_expires(
    shared_relay: Any, desktop_env: Any, phone_factory: Any, browser: Any, tmp_path: Path
) -> None:
    desktop = desktop_env(shared_relay.url)
    phone = phone_factory("phone")
    page = browser.new_page()
    # renews at ~9 s (12 // 4 s before expiry); the default 120 s: fake clock, test_desktop_services
    page.goto(desktop.start_ui("--unlock-ttl", "12", "--qr-renewals", "1"))
    pair_through_ui(page, phone, tmp_path)
    lock(page)
    request_qr(page, tmp_path, "first.png")
    first_src = page.get_attribute("#unlock-qr", "src")
    wait_for(
        lambda: page.get_attribute("#unlock-qr", "src") != first_src, timeout=40, what="renewal"
    )
    assert state_of(page) == "waiting"  # renewed, not expired
    renewed = qr_png(page, "#unlock-qr", tmp_path / "renewed.png")
    assert phone.run("approve", "--qr-image", str(renewed), "--yes").returncode == 0
    page.wait_for_selector("#vault:visible", timeout=20000)
    page.close()


def test_e2e_number_matching_from_the_notification(setup: Any, tmp_path: Path) -> None:
    desktop, phone, page = setup
    page.click("#settings-btn")
    page.check("#number-matching")
    wait_for(lambda: "Number matching on" in page.inner_text("#toast"), what="setting saved")
    page.click("#settings-close")
    # The switch only asks: the phone allows scanning only, so the desktop shows a QR,
    # says why, and learns the phone's new policy from its next answer.
    (row,) = json.loads(phone.run("list", "--json").stdout)
    assert phone.run("number-matching", row["id"], "on", "--yes").returncode == 0
    lock(page)
    png = request_qr(page, tmp_path)
    assert "scanning only" in page.inner_text("#request")
    assert phone.run("approve", "--qr-image", str(png), "--yes").returncode == 0
    page.wait_for_selector("#vault:visible", timeout=20000)
    lock(page)

    def ask() -> tuple[dict[str, Any], int]:
        listener = phone.popen("listen", "--once", "--json", "--timeout", "30")
        time.sleep(1.0)
        page.click("#request-again" if page.is_visible("#request-again") else "#unlock-phone-btn")
        page.wait_for_selector("#number-box:visible")
        assert page.is_hidden(".request-qr")  # number matching makes no QR to scan
        assert "pick this number" in page.inner_text("#request-detail")
        out, err = listener.communicate(timeout=40)
        assert listener.returncode == 0, err
        note = json.loads(out.strip().splitlines()[0])
        assert note["mode"] == "number_match"
        return note, int(page.inner_text("#number"))

    note, shown = ask()
    wrong = next(c for c in note["choices"] if c != shown)
    out = phone.run("approve", "--request", note["request_id"], "--number", str(wrong), "--yes")
    assert out.returncode != 0
    wait_for(lambda: state_of(page) == "wrong_number", what="wrong number status")
    assert desktop.status()["unlocked"] is False

    note, shown = ask()
    out = phone.run("approve", "--request", note["request_id"], "--number", str(shown), "--yes")
    assert out.returncode == 0, out.stderr
    page.wait_for_selector("#vault:visible", timeout=20000)


def test_e2e_page_falls_back_to_polling_without_its_event_stream(
    setup: Any, tmp_path: Path
) -> None:
    desktop, phone, first_page = setup
    first_page.close()
    page = first_page.context.browser.new_page()
    page.route("**/api/events", lambda route: route.abort())  # a proxy that kills the stream
    page.goto(desktop.start_ui())
    page.wait_for_selector("#vault:visible")
    lock(page)
    png = request_qr(page, tmp_path)
    assert phone.run("approve", "--qr-image", str(png), "--yes").returncode == 0
    page.wait_for_selector("#vault:visible", timeout=30000)  # learnt by polling /api/state
    page.close()


def test_e2e_page_polls_at_once_when_its_event_stream_gets_an_http_error(
    setup: Any, tmp_path: Path
) -> None:
    """An HTTP error (a 5xx here; a 401 after an agent restart) closes an EventSource for
    good, with one error event: the page must poll at once, not count to three."""
    desktop, phone, first_page = setup
    first_page.close()
    page = first_page.context.browser.new_page()
    hits: list[str] = []

    def broken_stream(route: Any) -> None:
        hits.append(route.request.url)
        route.fulfill(status=500, content_type="application/json", body='{"error": "internal"}')

    page.route("**/api/events", broken_stream)
    page.goto(desktop.start_ui())
    page.wait_for_selector("#vault:visible")
    lock(page)
    png = request_qr(page, tmp_path)
    assert phone.run("approve", "--qr-image", str(png), "--yes").returncode == 0
    # Learnt by polling /api/state (every 2 s); the stream is retried only after 30 s.
    page.wait_for_selector("#vault:visible", timeout=15000)
    assert len(hits) == 1
    page.close()


def test_e2e_unlocked_screen_items_clipboard_autolock_and_phones(
    setup: Any, tmp_path: Path
) -> None:
    """The unlocked screen as a user drives it: add, search, view, reveal, copy (the
    clipboard is cleared after 30 s, but only when it still holds the copied value, and
    not before the window has focus), edit, delete, the auto-lock countdown, and
    renaming and revoking the phone in Settings."""
    desktop, _phone, first_page = setup
    first_page.close()
    context = first_page.context.browser.new_context(viewport={"width": 1200, "height": 760})
    page = context.new_page()
    page.clock.install()  # the page's timers (the 30 s clear) follow page.clock
    page.goto(desktop.start_ui())
    origin = page.url.split("/", 3)[:3]
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin="/".join(origin))
    answers: list[str | None] = []
    page.on("dialog", lambda d: d.accept(*([a] if (a := answers.pop(0)) else [])))
    page.wait_for_selector("#vault:visible")

    def add(title: str, username: str, password: str) -> None:
        page.click("#new-item")
        page.fill("#item-form [name=title]", title)
        page.fill("#item-form [name=username]", username)
        page.fill("#item-form [name=password]", password)
        page.click("#item-form button[type=submit]")
        page.wait_for_function(
            "t => document.getElementById('view-title').textContent === t", arg=title
        )

    def titles() -> list[str]:
        return [t.strip() for t in page.locator("#items li .t").all_inner_texts()]

    def clipboard() -> str:
        return str(page.evaluate("navigator.clipboard.readText()"))

    add("GitHub", "ada@example.org", "gh-secret-1")
    add("Bank", "ada.l", "bank-secret-2")
    wait_for(lambda: sorted(titles()) == ["Bank", "GitHub"], what="both items listed")

    # Auto-lock countdown: the agent's idle timer, counted down by the page (checked
    # before any fast_forward below moves the page's clock away from the agent's)
    def locks_in() -> int:
        text = wait_for(
            lambda: (t := page.inner_text("#autolock")).startswith("Locks in ") and t,
            what="the auto-lock countdown",
        )
        minutes, seconds = text.removeprefix("Locks in ").split(":")
        return int(minutes) * 60 + int(seconds)

    before = locks_in()
    assert 60 < before <= desktop.status()["idle_lock_seconds"]
    wait_for(lambda: locks_in() <= before - 2, timeout=15, what="countdown moving")

    # Search
    page.fill("#search", "bank")
    wait_for(lambda: titles() == ["Bank"], what="search result")
    page.fill("#search", "")
    wait_for(lambda: len(titles()) == 2, what="full list again")

    # View and reveal
    page.click("#items li:has-text('Bank')")
    page.wait_for_function("() => document.getElementById('view-title').textContent === 'Bank'")
    assert page.inner_text("#view-username") == "ada.l"
    assert "bank-secret-2" not in page.inner_text("#item-view")
    page.click("#reveal")  # the password is fetched now, on demand
    wait_for(lambda: page.inner_text("#view-password") == "bank-secret-2", what="revealed")
    page.click("#reveal")
    assert "bank-secret-2" not in page.inner_text("#item-view")

    # Copy: cleared after 30 s
    page.click("button.copy[data-copy=password]")
    wait_for(lambda: clipboard() == "bank-secret-2", what="password copied")
    wait_for(lambda: "Clipboard clears in 0:" in page.inner_text("#clip-status"), what="status")
    page.clock.fast_forward(31_000)
    wait_for(lambda: clipboard() == "", what="clipboard cleared")
    assert "Clipboard cleared" in page.inner_text("#clip-status")

    # Copy, then the user copies something else: that is left alone
    page.click("button.copy[data-copy=username]")
    wait_for(lambda: clipboard() == "ada.l", what="username copied")
    page.evaluate("navigator.clipboard.writeText('my own note')")
    page.clock.fast_forward(31_000)
    wait_for(lambda: "left as it is" in page.inner_text("#clip-status"), what="left alone")
    assert clipboard() == "my own note"

    # Copy while the window has no focus at the time to clear: it waits for focus
    page.click("button.copy[data-copy=password]")
    wait_for(lambda: clipboard() == "bank-secret-2", what="password copied again")
    page.evaluate("window.__realHasFocus = document.hasFocus; document.hasFocus = () => false")
    page.clock.fast_forward(31_000)
    wait_for(lambda: "has focus again" in page.inner_text("#clip-status"), what="waiting")
    assert clipboard() == "bank-secret-2"
    page.evaluate(
        "document.hasFocus = window.__realHasFocus; window.dispatchEvent(new Event('focus'))"
    )
    wait_for(lambda: clipboard() == "", what="cleared on focus")
    assert "Clipboard cleared" in page.inner_text("#clip-status")

    # Edit
    page.click("#edit-item")
    page.fill("#item-form [name=username]", "ada.lovelace")
    page.click("#item-form button[type=submit]")
    page.wait_for_function(
        "() => document.getElementById('view-username').textContent === 'ada.lovelace'"
    )
    assert page.locator("#item-form").is_hidden()

    # Delete (confirmed)
    answers.append(None)
    page.click("#delete-item")
    wait_for(lambda: titles() == ["GitHub"], what="item deleted")
    page.wait_for_selector("#detail-empty:visible")
    assert "Bank" not in desktop.run("list").stdout

    # Settings: rename, then revoke the phone
    page.click("#settings-btn")
    answers.append("Work phone")
    page.click("#phones li button:has-text('Rename')")
    page.wait_for_function("() => document.getElementById('phones').innerText.includes('Work')")
    (device,) = json.loads(desktop.run("devices", "--json").stdout)
    assert device["label"] == "Work phone"
    answers.append(None)
    page.click("#phones li button:has-text('Revoke')")
    page.wait_for_selector("#phones-empty:visible")
    assert json.loads(desktop.run("devices", "--json").stdout) == []
    assert not [s for s in desktop.status()["slots"] if s["kind"] == "phone"]
    assert page.is_hidden("#phones-error")
    context.close()


def test_lifecycle_both_screens_agree_on_cancel_and_on_a_late_answer(
    setup: Any, tmp_path: Path
) -> None:
    """Issue 13, with the real desktop UI and the Python phone: what both screens say.

    Cancelled on the desktop: the page shows it, and the phone that scans the old QR
    afterwards says "Cancelled on the desktop … start a new request", never "Approved".
    Approved in time: the phone says "Approved" only because the waiting desktop took
    the answer, and the page shows the vault unlocked.
    """
    desktop, phone, page = setup
    lock(page)
    png = request_qr(page, tmp_path, "cancelled.png")
    page.click("#request-cancel")
    wait_for(lambda: page.is_hidden("#request"), what="the request card gone")
    out = phone.run("approve", "--qr-image", str(png), "--yes")
    assert out.returncode == 6, out.stderr
    assert "Cancelled on the desktop" in out.stderr and "start a new request" in out.stderr
    assert "Approved" not in out.stdout + out.stderr
    assert desktop.status()["unlocked"] is False

    png = request_qr(page, tmp_path, "fresh.png")
    out = phone.run("approve", "--qr-image", str(png), "--yes", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["delivery"] == "delivered"
    page.wait_for_selector("#vault:visible", timeout=20000)
    assert desktop.status()["unlocked"] is True
