"""The desktop UI's vault screens: the one-time code row, websites, copy buttons, settings.

A real agent serves the UI; the page runs in real Chromium (Playwright) or is
spoken to with httpx the way the page does (``ui`` fixture). One-time codes
are checked against :func:`unlatch.vault.totp.current_code` over the time the
request took, never against a hard-coded value.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from fixtures.desktop import good_headers, wait_for

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
    assert shown.json()["has_totp"] is True and shown.json()["password"] == "pw"
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


@pytest.fixture
def vault_page(desktop_env: Any, browser: Any) -> Any:
    desktop = desktop_env("http://127.0.0.1:9")  # no relay needed
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(desktop.start_ui())
    page.wait_for_selector("#vault:visible")
    yield desktop, page
    context.close()


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
    assert page.input_value("#form-totp") == ""
    assert "leave empty" in str(page.get_attribute("#form-totp", "placeholder"))
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#totp-row:visible")
    page.click("#edit-item")
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
