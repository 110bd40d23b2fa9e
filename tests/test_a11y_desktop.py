"""Accessibility of the desktop web UI: axe-core (WCAG 2.1 A/AA) on every screen, in real Chromium.

Each screen is brought up the way a user gets there (a real agent, relay and
phone client behind it); axe-core, injected as an init script (which the
page's CSP does not apply to), checks the whole document, and a violation
fails with the rule, the elements and axe's explanation. The keyboard-only
test unlocks and requests a phone unlock with the keyboard alone and checks
that focus never falls to ``<body>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fixtures.a11y import AXE_RUN, assert_accessible, axe_source
from fixtures.desktop import Phone, wait_for
from fixtures.relay import start_relay
from fixtures.vault import PASSWORD

CHROME_CSV = b"name,url,username,password,note\r\nForum,https://forum.example,ada,pw,\r\n"


@pytest.fixture(scope="module")
def a11y_relay(tmp_path_factory: pytest.TempPathFactory) -> Any:
    relay = start_relay(tmp_path_factory.mktemp("a11y-relay"))
    yield relay
    relay.stop()


@pytest.fixture
def desktop_page(a11y_relay: Any, desktop_env: Any, browser: Any) -> Any:
    desktop = desktop_env(a11y_relay.url)
    context = browser.new_context(viewport={"width": 1200, "height": 760})
    context.add_init_script(axe_source())
    page = context.new_page()
    page.goto(desktop.start_ui())
    page.wait_for_selector("#vault:visible, #locked:visible")
    yield page
    context.close()


def pair_phone(page: Any, phone: Phone, tmp: Path, check: Any) -> None:
    page.click("#settings-btn")
    page.wait_for_selector("#settings:visible")
    check("settings")
    page.fill("#clip-clear-s", "1")
    page.click("#timers-save")
    page.wait_for_selector("#timers-error:visible")
    check("settings: a clipboard time refused")
    page.set_input_files(
        "#import-file", files=[{"name": "x.csv", "mimeType": "text/csv", "buffer": CHROME_CSV}]
    )
    page.select_option("#import-format", "chrome")
    page.click("#import-check")
    page.wait_for_selector("#import-report:visible")
    check("settings: import report (dry run)")
    page.select_option("#export-format", "csv")
    page.click("#export-btn")
    page.wait_for_selector("#export-error:visible")
    check("settings: export, unencrypted needs a confirmation")
    page.click("#pair-btn")
    page.wait_for_function("() => document.getElementById('pair-qr').naturalWidth > 0")
    check("settings: pairing QR")
    png = tmp / "pair.png"
    page.locator("#pair-qr").screenshot(path=str(png))
    proc = phone.popen("pair", "--qr-image", str(png), "--yes", "--json")
    page.wait_for_selector("#pair-confirm:visible", timeout=20000)
    check("settings: compare the codes")
    page.click("#pair-confirm")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    page.wait_for_selector("#phones li")
    check("settings: paired phones")
    page.click("#pair-close")
    page.click("#settings-close")


def test_a11y_desktop_screens(desktop_page: Any, phone_factory: Any, tmp_path: Path) -> None:
    page = desktop_page
    seen: list[str] = []

    def check(screen: str) -> None:
        assert_accessible(page.evaluate(AXE_RUN), f"desktop {screen}", seen)

    check("vault, no items")
    page.click("#new-item")
    page.wait_for_selector("#item-form:visible")
    check("new item form")
    page.fill("#item-form [name=title]", "GitHub")
    page.fill("#item-form [name=username]", "ada@example.org")
    page.click("#gen-btn")
    page.wait_for_function("() => document.getElementById('form-password').value.length >= 20")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-view:visible")
    check("item view")
    page.click("#new-item")
    page.fill("#item-form [name=title]", "Bank")
    page.fill("#item-form [name=totp_secret]", "JBSWY3DPEHPK3PXP")
    page.fill("#item-form [name=urls]", "https://bank.example\njavascript:void(0)")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#totp-row:visible")
    page.wait_for_function("() => /\\d/.test(document.getElementById('view-totp').textContent)")
    check("item view: one-time code, websites, empty fields")
    page.click("#new-item")
    page.select_option("#form-type", "card")
    page.fill("#item-form [name=title]", "Visa")
    page.fill("#item-form [name='data.number']", "4111111111111111")
    page.click("#add-field")
    page.locator("#form-custom-rows .cf-name").fill("Bank PIN")
    page.locator("#form-custom-rows .cf-kind").select_option("hidden")
    page.locator("#form-custom-rows .cf-value").fill("9876")
    check("new item form: a card, a custom field")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#view-type-fields .field")
    page.click("#fav-btn")
    page.wait_for_selector("#items li .star")
    check("item view: a card, favourite, hidden custom field")
    page.click("#view-type-fields button[aria-label='Show Card number']")
    page.wait_for_selector("#view-type-fields button[aria-label='Hide Card number']")
    check("item view: a secret shown")
    page.select_option("#filter", "favorite")
    page.wait_for_function("() => document.querySelectorAll('#items li').length === 1")
    check("vault list: favourites filter")
    page.select_option("#filter", "")
    page.click("#new-item")
    page.click("#item-form button[type=button]:has-text('Cancel')")
    check("vault list, nothing selected")

    phone = phone_factory("phone")
    pair_phone(page, phone, tmp_path, check)

    page.click("#lock-btn")
    page.wait_for_selector("#locked:visible")
    check("locked")
    page.fill("#password", "not the password")
    page.press("#password", "Enter")
    page.wait_for_selector("#password-error:visible")
    check("locked, wrong password")

    page.click("#unlock-phone-btn")
    page.wait_for_selector("#request:visible")
    page.wait_for_function("() => document.getElementById('unlock-qr').naturalWidth > 0")
    check("unlock request, QR")
    png = tmp_path / "unlock.png"
    page.locator("#unlock-qr").screenshot(path=str(png))
    out = phone.run("deny", "--qr-image", str(png), "--json")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: page.get_attribute("#unlock-status", "data-state") == "denied")
    check("unlock request, denied")
    assert len(seen) == 20


def test_a11y_qr_codes_have_a_usable_text_alternative(
    desktop_page: Any, phone_factory: Any, tmp_path: Path
) -> None:
    """ "Copy the link" beside each QR gives the link a phone can open instead of scanning."""
    page = desktop_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    phone = phone_factory("phone")
    pair_phone(page, phone, tmp_path, lambda screen: None)
    page.click("#lock-btn")
    page.click("#unlock-phone-btn")
    page.wait_for_selector("#request:visible")
    page.click("#unlock-copy-link")
    link = wait_for(lambda: page.evaluate("navigator.clipboard.readText()"), what="copied link")
    assert "#" in link
    out = phone.run("approve", link, "--yes", "--json")
    assert out.returncode == 0, out.stderr
    page.wait_for_selector("#vault:visible", timeout=20000)


def test_a11y_keyboard_only_unlock(desktop_page: Any, phone_factory: Any, tmp_path: Path) -> None:
    page = desktop_page
    phone = phone_factory("phone")
    pair_phone(page, phone, tmp_path, lambda screen: None)
    page.click("#lock-btn")
    page.wait_for_selector("#locked:visible")

    def focused() -> str:
        return str(page.evaluate("document.activeElement && document.activeElement.id || 'body'"))

    page.evaluate("document.activeElement && document.activeElement.blur()")
    for _ in range(30):  # Tab to the password field, as a keyboard user does
        page.keyboard.press("Tab")
        if focused() == "password":
            break
    assert focused() == "password"
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_selector("#vault:visible", timeout=20000)
    assert focused() != "body"

    page.click("#lock-btn")
    page.wait_for_selector("#locked:visible")
    for _ in range(30):
        page.keyboard.press("Tab")
        if focused() == "unlock-phone-btn":
            break
    assert focused() == "unlock-phone-btn"
    page.keyboard.press("Enter")
    page.wait_for_selector("#request:visible")
    wait_for(lambda: focused() == "request-title", what="focus on the request")
    page.keyboard.press("Tab")
    assert focused() not in ("body", ""), "focus fell out of the page"
