"""The desktop UI's vault screens: the one-time code row, websites, copy buttons, settings.

A real agent serves the UI; the page runs in real Chromium (Playwright) or is
spoken to with httpx the way the page does (``ui`` fixture). One-time codes
are checked against :func:`unlatch.vault.totp.current_code` over the time the
request took, never against a hard-coded value.
"""

from __future__ import annotations

import time
from typing import Any

from fixtures.desktop import good_headers, ui_session, wait_for

from unlatch.vault import totp

SECRET = "JBSWY3DPEHPK3PXP"
# A 3-second period, so a test sees the code change without waiting 30 s.
FAST = f"otpauth://totp/unlatch:test?secret={SECRET}&period=3"


def codes_between(secret: str, before: float, after: float) -> set[str]:
    """Every code valid at some moment of [before, after] (the request's duration)."""
    step = 0.5
    moments = [before + i * step for i in range(int((after - before) / step) + 1)] + [after]
    return {totp.current_code(secret, at=t)[0] for t in moments}


def add_item(client: Any, csrf: str, origin: str, **fields: Any) -> dict[str, Any]:
    resp = client.post("/api/items", headers=good_headers(origin, csrf), json={"item": fields})
    assert resp.status_code == 201, resp.text
    item: dict[str, Any] = resp.json()
    return item


def test_attack_desktop_ui_item_never_carries_the_totp_secret(ui: Any) -> None:
    """A page (or whatever runs in it) gets the code of the moment, never the secret that
    makes every future code: the item it reads has no ``totp_secret``."""
    _desktop, client, csrf, origin = ui
    item = add_item(client, csrf, origin, title="Bank", password="pw", totp_secret=SECRET)
    shown = client.get(f"/api/items/{item['id']}")
    assert shown.status_code == 200
    assert SECRET not in shown.text and "totp_secret" not in shown.json()
    assert shown.json()["has_totp"] is True and shown.json()["has_password"] is True
    assert SECRET not in client.get("/api/items").text
    before = time.time()
    code = client.get(f"/api/items/{item['id']}/totp")
    after = time.time()
    assert code.status_code == 200 and code.headers["cache-control"] == "no-store"
    view = code.json()
    assert set(view) == {"code", "remaining", "period"} and view["period"] == 30
    assert view["code"] in codes_between(SECRET, before, after)
    assert 1 <= view["remaining"] <= 30
    # By title too (the routes name items as the CLI does), and a clear 404 without a secret.
    assert client.get("/api/items/bank/totp").json()["code"].isdigit()
    plain = add_item(client, csrf, origin, title="Forum", password="x")
    missing = client.get(f"/api/items/{plain['id']}/totp")
    assert missing.status_code == 404 and missing.json()["error"] == "no_totp"


def test_totp_ui_code_requests_are_not_activity(ui: Any) -> None:
    """The page asks for a new code every period while an item is open: that must not
    push the auto-lock back, or an open item would keep an idle vault unlocked."""
    _desktop, client, csrf, origin = ui
    item = add_item(client, csrf, origin, title="Bank", totp_secret=SECRET)

    def locks_in() -> float:
        value: float = client.get("/api/state").json()["vault"]["locks_in"]
        return value

    first = locks_in()
    assert client.get(f"/api/items/{item['id']}/totp").status_code == 200
    after_code = locks_in()
    assert after_code < first  # still counting down from the last real activity
    assert client.get(f"/api/items/{item['id']}").status_code == 200  # opening it is activity
    assert locks_in() > after_code


def new_item(page: Any, **fields: str) -> None:
    page.click("#new-item")
    for name, value in fields.items():
        page.fill(f"#item-form [name={name}]", value)
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-view:visible")
    page.wait_for_function(
        "t => document.getElementById('view-title').textContent === t", arg=fields["title"]
    )


def test_totp_ui_row_counts_down_refreshes_and_copies(vault_page: Any) -> None:
    _desktop, page = vault_page
    seen_bodies: list[str] = []
    page.on("response", lambda r: seen_bodies.append(r.text()) if "/api/" in r.url else None)
    new_item(page, title="Bank", username="ada", password="pw", totp_secret=FAST)
    page.wait_for_selector("#totp-row:visible")

    def shown() -> str:
        return str(page.inner_text("#view-totp")).replace(" ", "")

    before = time.time()
    wait_for(lambda: shown().isdigit(), what="a code")
    first = shown()
    assert first in codes_between(FAST, before - 1, time.time())
    left = page.inner_text("#totp-left")
    assert left.endswith(" s") and 0 <= int(left.split()[0]) <= 3
    assert page.get_attribute("#totp-ring-left", "stroke-dasharray").endswith(" 100")
    # It expires: the page asks the agent for the next one on its own.
    wait_for(lambda: shown().isdigit() and shown() != first, timeout=10, what="the next code")
    assert shown() in codes_between(FAST, time.time() - 1, time.time())

    page.click("#copy-totp")
    copied = wait_for(lambda: page.evaluate("navigator.clipboard.readText()"), what="copy")
    assert copied in codes_between(FAST, time.time() - 4, time.time())
    assert "clears in" in page.inner_text("#clip-status")
    # The secret never reached the page, in any answer it received.
    assert not any(SECRET in body for body in seen_bodies)

    # Editing keeps the secret unless a new one is given or it is removed.
    page.click("#edit-item")
    page.wait_for_selector("#item-form:visible")  # filled once its values arrive
    assert page.input_value("#form-totp") == ""
    assert "leave empty" in str(page.get_attribute("#form-totp", "placeholder"))
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#totp-row:visible")
    page.click("#edit-item")
    page.wait_for_selector("#form-totp-remove-row:visible")
    page.check("#form-totp-remove")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-view:visible")
    wait_for(lambda: page.is_hidden("#totp-row"), what="the row gone")


def test_totp_ui_websites_open_safely_and_empty_fields_have_no_copy(vault_page: Any) -> None:
    _desktop, page = vault_page
    page.click("#new-item")
    page.fill("#item-form [name=title]", "Sites")
    page.fill(
        "#item-form [name=urls]",
        "https://example.org/login\ngithub.com\njavascript:alert(1)\nftp://files.example",
    )
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-view:visible")
    links = page.locator("#view-urls a")
    assert links.count() == 2
    assert [links.nth(i).get_attribute("href") for i in range(2)] == [
        "https://example.org/login",
        "https://github.com/",
    ]
    for i in range(2):
        assert links.nth(i).get_attribute("rel") == "noopener noreferrer"
        assert links.nth(i).get_attribute("target") == "_blank"
    text = page.inner_text("#view-urls")
    assert "javascript:alert(1)" in text and "ftp://files.example" in text  # shown, not links
    assert page.locator("#view-urls button").count() == 4  # each one copies
    page.click("#view-urls button[aria-label='Copy website github.com']")
    wait_for(lambda: page.evaluate("navigator.clipboard.readText()") == "github.com", what="copy")
    # No username, no password, no code: no Copy (or Show) button for them.
    assert page.is_hidden("button.copy[data-copy=username]")
    assert page.is_hidden("button.copy[data-copy=password]") and page.is_hidden("#reveal")
    assert page.is_hidden("#totp-row")
    new_item(page, title="Full", username="ada", password="pw")
    assert page.is_visible("button.copy[data-copy=username]")
    assert page.is_visible("button.copy[data-copy=password]") and page.is_visible("#reveal")


# ------------------------------------------------------------------ settings


def put_settings(client: Any, csrf: str, origin: str, body: dict[str, Any]) -> Any:
    return client.put("/api/settings", headers=good_headers(origin, csrf), json=body)


def test_settings_ui_timers_are_checked_and_a_bad_one_changes_nothing(ui: Any) -> None:
    desktop, client, csrf, origin = ui
    settings = client.get("/api/state").json()["settings"]
    assert (settings["idle_lock_seconds"], settings["clipboard_clear_seconds"]) == (600, 30)
    refusals = [
        ({"idle_lock_seconds": -1}, "auto-lock time: idle lock must be 0 (off) to 604800 s"),
        ({"idle_lock_seconds": 7 * 86400 + 1}, "0 (off) to 604800 s"),
        ({"idle_lock_seconds": "60"}, "must be a number of seconds"),
        ({"idle_lock_seconds": True}, "must be a number of seconds"),
        ({"clipboard_clear_seconds": 2}, "clipboard time: the clipboard time must be 5 to 600"),
        ({"clipboard_clear_seconds": 601}, "5 to 600 seconds"),
        ({"clipboard_clear_seconds": 7.5}, "whole seconds"),
        ({"clipboard_clear_seconds": None}, "must be a number of seconds"),
        # a good value beside a bad one is not applied either
        ({"idle_lock_seconds": 60, "clipboard_clear_seconds": 1}, "5 to 600"),
        ({"clipboard_clear_seconds": 10, "relay_url": "http://127.0.0.1:8"}, "set by --relay"),
    ]
    for body, message in refusals:
        resp = put_settings(client, csrf, origin, body)
        assert resp.status_code == 400, body
        assert message in resp.json()["message"], (body, resp.json())
    after = client.get("/api/state").json()["settings"]
    assert (after["idle_lock_seconds"], after["clipboard_clear_seconds"]) == (600, 30)
    assert not (desktop.home / "desktop" / "settings.json").exists()

    ok = put_settings(
        client, csrf, origin, {"idle_lock_seconds": 90, "clipboard_clear_seconds": 12}
    )
    assert ok.status_code == 200
    assert (ok.json()["idle_lock_seconds"], ok.json()["clipboard_clear_seconds"]) == (90, 12)
    # Applied to the agent's idle timer at once, not at the old deadline.
    assert desktop.status()["locks_in_seconds"] <= 90
    # Kept for the next agent: a restarted agent (vault locked) starts with them.
    desktop.stop()
    started = desktop.run("agent", "start")
    assert "idle lock 90 s" in started.stdout, started.stdout + started.stderr
    assert desktop.status()["idle_lock_seconds"] == 90
    client2, _csrf2, _origin2 = ui_session(desktop)
    assert client2.get("/api/state").json()["settings"]["clipboard_clear_seconds"] == 12
    client2.close()


def test_settings_ui_idle_lock_set_by_an_option_is_shown_not_changed(desktop_env: Any) -> None:
    desktop = desktop_env("http://127.0.0.1:9")
    desktop.stop()
    assert desktop.run("agent", "start", "--idle-lock", "300").returncode == 0
    client, csrf, origin = ui_session(desktop)
    settings = client.get("/api/state").json()["settings"]
    assert settings["idle_lock_seconds"] == 300 and settings["idle_lock_fixed_by"] == "--idle-lock"
    resp = put_settings(client, csrf, origin, {"idle_lock_seconds": 60})
    assert resp.status_code == 400
    assert "set by --idle-lock for this agent" in resp.json()["message"]
    assert put_settings(client, csrf, origin, {"clipboard_clear_seconds": 20}).status_code == 200
    client.close()


def test_settings_ui_screen_saves_applies_and_explains(vault_page: Any) -> None:
    desktop, page = vault_page
    page.click("#settings-btn")
    page.wait_for_selector("#settings:visible")
    assert page.input_value("#idle-lock-min") == "10" and page.input_value("#clip-clear-s") == "30"

    page.fill("#idle-lock-min", "-3")
    page.click("#timers-save")
    page.wait_for_selector("#timers-error:visible")
    assert "0 (off) to 604800 s" in page.inner_text("#timers-error")
    page.fill("#idle-lock-min", "")
    page.click("#timers-save")
    wait_for(lambda: "number of seconds" in page.inner_text("#timers-error"), what="error")
    page.fill("#idle-lock-min", "1.5")
    page.fill("#clip-clear-s", "3")
    page.click("#timers-save")
    wait_for(lambda: "5 to 600" in page.inner_text("#timers-error"), what="clipboard error")
    assert desktop.status()["idle_lock_seconds"] == 600  # nothing applied

    page.fill("#clip-clear-s", "5")
    page.click("#timers-save")
    page.wait_for_selector("#timers-error", state="hidden")
    status = desktop.status()
    assert status["idle_lock_seconds"] == 90 and status["locks_in_seconds"] <= 90
    page.wait_for_function(
        "() => /Locks in 1:[0-3]\\d/.test(document.getElementById('autolock').textContent)"
    )

    # The page's clipboard timer follows at once: a copy now clears after 5 s.
    page.click("#settings-close")
    new_item(page, title="Mail", password="s3cret-pw")
    page.click("button.copy[data-copy=password]")
    wait_for(lambda: page.evaluate("navigator.clipboard.readText()") == "s3cret-pw", what="copy")
    assert "clears in 5 s" in page.inner_text("#toast")
    wait_for(lambda: page.evaluate("navigator.clipboard.readText()") == "", timeout=12,
             what="the clipboard cleared after 5 s")  # fmt: skip
