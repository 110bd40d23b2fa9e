"""Item types, custom fields, favourites, import and export in the desktop web UI.

A real agent serves the UI; the page runs in real Chromium (Playwright) or is
spoken to with httpx as the page does. Names match ``-k item_type`` and
``-k "import or export"``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from fixtures.desktop import good_headers, wait_for
from pykeepass import PyKeePass
from test_desktop_ui_vault import add_item
from test_e2e_desktop import shot
from test_vault_transfer import KDBX_PASSWORD, bitwarden_json, kdbx_file

from unlatch.vault.items import TYPE_FIELDS, types_schema

EXPORT_PASSWORD = "export password 456"
PRIVATE_KEY = (
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n-----END OPENSSH PRIVATE KEY-----"
)

# One item of each type, as a user fills the form: (type, title, {form field: value}).
SAMPLES: list[tuple[str, str, dict[str, str]]] = [
    ("login", "GitHub", {"username": "ada@example.org", "password": "gh-s3cret-pw"}),
    ("note", "Door codes", {"notes": "Front door: 4711\nGarage: 0815"}),
    (
        "card",
        "Visa",
        {"data.cardholder": "Ada Lovelace", "data.brand": "Visa", "data.number": "4111111111111111",
         "data.exp_month": "12", "data.exp_year": "2030", "data.code": "123"},
    ),
    (
        "identity",
        "Ada",
        {"data.first_name": "Ada", "data.last_name": "Lovelace", "data.email": "ada@example.org",
         "data.city": "London", "data.passport_number": "P1234567"},
    ),
    (
        "ssh_key",
        "Deploy key",
        {"password": "key passphrase", "data.private_key": PRIVATE_KEY,
         "data.public_key": "ssh-ed25519 AAAAC3Nza deploy@example",
         "data.fingerprint": "SHA256:abc"},
    ),
]  # fmt: skip
SECRET_KEYS = {t: {f.key for f in specs if f.secret} for t, specs in TYPE_FIELDS.items()}


def post(client: Any, csrf: str, origin: str, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, headers=good_headers(origin, csrf), json=body)


# ------------------------------------------------------------------ API


def test_attack_desktop_ui_item_carries_no_secret_until_revealed(ui: Any) -> None:
    """What the page holds of an open item (and of the list) has no secret: no password,
    card number, private key or hidden custom value. Each comes only on its own request
    (Show / Copy), and the TOTP secret never."""
    _desktop, client, csrf, origin = ui
    card = add_item(
        client, csrf, origin, title="Visa", type="card", password="card-site-pw",
        data={"cardholder": "Ada", "number": "4111111111111111", "code": "123"},
        fields=[{"name": "Bank PIN", "value": "9876", "kind": "hidden"},
                {"name": "Portal", "value": "https://bank.example", "kind": "url"}],
        totp_secret="JBSWY3DPEHPK3PXP",
    )  # fmt: skip
    secrets = ("card-site-pw", "4111111111111111", "123", "9876", "JBSWY3DPEHPK3PXP")
    shown = client.get(f"/api/items/{card['id']}")
    listed = client.get("/api/items")
    for text in (shown.text, listed.text):
        for secret in secrets:
            assert f'"{secret}"' not in text
    view = shown.json()
    assert view["has_password"] is True and view["has_totp"] is True
    assert view["secret_data"] == ["number", "code"] and view["data"] == {"cardholder": "Ada"}
    assert view["fields"][1]["value"] == "https://bank.example"
    for ref, value in (("password", "card-site-pw"), ("data.number", "4111111111111111"),
                       ("data.code", "123"), ("fields.0", "9876")):  # fmt: skip
        got = post(client, csrf, origin, f"/api/items/{card['id']}/reveal", {"field": ref})
        assert got.status_code == 200 and got.json() == {"value": value}
        assert got.headers["cache-control"] == "no-store"
    for bad in ("totp_secret", "data.pin", "fields.9", "title"):
        got = post(client, csrf, origin, f"/api/items/{card['id']}/reveal", {"field": bad})
        assert got.status_code == 400 and "JBSWY3DPEHPK3PXP" not in got.text
    # A reveal is a state change for CSRF purposes: without the token, nothing.
    assert (
        client.post(f"/api/items/{card['id']}/reveal", json={"field": "password"}).status_code
        == 403
    )
    full = post(client, csrf, origin, f"/api/items/{card['id']}/full", {})
    assert full.json()["data"]["number"] == "4111111111111111" and "totp_secret" not in full.json()
    assert full.json()["fields"][0]["value"] == "9876"


def test_item_type_schema_route_is_the_vaults_table(ui: Any) -> None:
    _desktop, client, _csrf, _origin = ui
    answer = client.get("/api/types").json()
    assert answer["types"] == types_schema() and answer["field_kinds"] == ["text", "hidden", "url"]
    labels = {t["type"]: t["label"] for t in answer["types"]}
    assert labels["ssh_key"] == "SSH key" and labels["card"] == "Payment card"


# ------------------------------------------------------------------ page


def open_new(page: Any, item_type: str) -> None:
    page.click("#new-item")
    page.wait_for_selector("#item-form:visible")
    page.select_option("#form-type", item_type)


def create(page: Any, item_type: str, title: str, values: dict[str, str]) -> None:
    open_new(page, item_type)
    page.fill("#item-form [name=title]", title)
    for name, value in values.items():
        page.fill(f"#item-form [name='{name}']", value)
    page.click("#item-form button[type=submit]")
    page.wait_for_function(
        "t => document.getElementById('view-title').textContent === t && "
        "!document.getElementById('item-view').hidden",
        arg=title,
    )


def test_item_type_each_type_is_created_viewed_and_edited_in_the_page(vault_page: Any) -> None:
    desktop, page = vault_page
    secret_bodies: list[str] = []
    page.on("response", lambda r: secret_bodies.append(r.text()) if "/api/items" in r.url else None)
    schema = {t["type"]: t for t in types_schema()}
    for item_type, title, values in SAMPLES:
        open_new(page, item_type)
        # The form has exactly the type's fields (from the schema) and its login rows.
        names = page.eval_on_selector_all("#form-type-fields [name]", "els => els.map(e => e.name)")
        assert names == [f"data.{f['key']}" for f in schema[item_type]["fields"]]
        assert page.is_visible("#form-password-row") == bool(
            [f for f in schema[item_type]["login_fields"] if f["key"] == "password"]
        )
        assert page.is_visible("#form-web") == schema[item_type]["web"]
        page.click("#form-cancel")
        create(page, item_type, title, values)
        assert page.inner_text("#view-type") == schema[item_type]["label"]
        page.mouse.move(0, 0)  # no hover highlight in the picture
        shot(page, f"desktop-item-{item_type.replace('_', '-')}.png")
        view = page.inner_text("#item-view")
        for name, value in values.items():
            key = name.removeprefix("data.")
            secret = name == "password" or key in SECRET_KEYS[item_type]
            if secret:
                assert value not in view  # masked until Show
            elif name != "notes":
                assert value in view
        # Each secret shows on "Show" (fetched then) and copies.
        for field in schema[item_type]["fields"]:
            if field["secret"] and f"data.{field['key']}" in values:
                label = field["label"]
                page.click(f"#view-type-fields button[aria-label='Show {label}']")
                shown = values[f"data.{field['key']}"]
                wait_for(lambda v=shown: v in page.inner_text("#item-view"), what=f"{label} shown")
                page.click(f"#view-type-fields button[aria-label='Copy {label}']")
                want = values[f"data.{field['key']}"]
                wait_for(lambda w=want: page.evaluate("navigator.clipboard.readText()") == w,
                         what=f"{label} copied")  # fmt: skip
    # The list: one row per item, each with its type (icon + name for screen readers).
    types_in_list = page.eval_on_selector_all("#items li", "els => els.map(e => e.dataset.type)")
    assert sorted(types_in_list) == sorted(t for t, _, _ in SAMPLES)
    assert page.locator("#items li svg.type-icon").count() == len(SAMPLES)
    # Nothing the page fetched while only *viewing* items held a secret it did not ask for.
    opened = [b for b in secret_bodies if '"secret_data"' in b]
    assert opened and not any("4111111111111111" in b or "P1234567" in b for b in opened)

    # Edit: the form comes filled in (values asked for on "Edit"); a change is saved.
    page.click("#items li[data-type=card]")
    page.wait_for_function("() => document.getElementById('view-title').textContent === 'Visa'")
    page.click("#edit-item")
    page.wait_for_selector("#item-form:visible")
    assert page.input_value("#item-form [name='data.number']") == "4111111111111111"
    assert page.is_disabled("#form-type")
    page.fill("#item-form [name='data.exp_year']", "2031")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-view:visible")
    wait_for(lambda: "2031" in page.inner_text("#view-type-fields"), what="edited year")
    out = desktop.run("get", "Visa", "--json")
    assert out.returncode == 0, out.stderr
    saved = json.loads(out.stdout)
    assert saved["type"] == "card" and saved["data"]["exp_year"] == "2031"
    assert saved["data"]["number"] == "4111111111111111"  # untouched secrets kept


def test_item_type_custom_fields_are_added_shown_hidden_and_removed(vault_page: Any) -> None:
    desktop, page = vault_page
    open_new(page, "login")
    page.fill("#item-form [name=title]", "Router")
    rows = [("Serial", "text", "SN-42"), ("Admin PIN", "hidden", "2468"),
            ("Panel", "url", "http://192.168.1.1"), ("Spare", "text", "x")]  # fmt: skip
    for name, kind, value in rows:
        page.click("#add-field")
        row = page.locator("#form-custom-rows .custom-row").last
        row.locator(".cf-name").fill(name)
        row.locator(".cf-kind").select_option(kind)
        row.locator(".cf-value").fill(value)
    assert (
        page.get_attribute("#form-custom-rows .custom-row:nth-child(2) .cf-value", "type")
        == "password"
    )
    page.click("#form-custom-rows .custom-row:nth-child(4) button")  # remove "Spare"
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-view:visible")
    custom = page.locator("#view-custom")
    wait_for(lambda: "SN-42" in custom.inner_text(), what="custom fields shown")
    assert "2468" not in custom.inner_text() and "Spare" not in custom.inner_text()
    assert custom.locator("a").get_attribute("href") == "http://192.168.1.1/"
    page.click("#view-custom button[aria-label='Show Admin PIN']")
    wait_for(lambda: "2468" in custom.inner_text(), what="hidden value shown")
    saved = json.loads(desktop.run("get", "Router", "--json").stdout)
    assert [(f["name"], f["kind"]) for f in saved["fields"]] == [
        ("Serial", "text"), ("Admin PIN", "hidden"), ("Panel", "url")]  # fmt: skip
    # Edit: remove one, keep the others (the hidden value comes back into the form).
    page.click("#edit-item")
    page.wait_for_selector("#item-form:visible")
    assert page.input_value("#form-custom-rows .custom-row:nth-child(2) .cf-value") == "2468"
    page.click("#form-custom-rows .custom-row:nth-child(1) button")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-view:visible")
    saved = json.loads(desktop.run("get", "Router", "--json").stdout)
    assert [f["name"] for f in saved["fields"]] == ["Admin PIN", "Panel"]
    assert saved["fields"][0]["value"] == "2468"


def test_item_type_favourites_star_and_filter(vault_page: Any) -> None:
    desktop, page = vault_page
    create(page, "login", "Mail", {"username": "ada"})
    create(page, "note", "Plans", {"notes": "secret plans"})
    create(page, "card", "Amex", {"data.cardholder": "Ada"})
    assert page.get_attribute("#fav-btn", "aria-pressed") == "false"
    page.click("#fav-btn")
    wait_for(lambda: page.get_attribute("#fav-btn", "aria-pressed") == "true", what="starred")
    wait_for(lambda: page.locator("#items li .star").count() == 1, what="star in the list")
    assert json.loads(desktop.run("get", "Amex", "--json").stdout)["favorite"] is True

    def listed() -> list[str]:
        return [t.split(",")[0] for t in page.eval_on_selector_all(
            "#items li .t", "els => els.map(e => e.textContent)")]  # fmt: skip

    page.select_option("#filter", "favorite")
    wait_for(lambda: listed() == ["Amex"], what="favourites only")
    page.select_option("#filter", "type:note")
    wait_for(lambda: listed() == ["Plans"], what="notes only")
    page.click("#new-item")  # a new item in a type's view is of that type
    assert page.input_value("#form-type") == "note"
    page.click("#form-cancel")
    page.select_option("#filter", "")
    wait_for(lambda: sorted(listed()) == ["Amex", "Mail", "Plans"], what="all again")
    # The form's checkbox sets it too, and un-starring works.
    create(page, "identity", "Me", {"data.first_name": "Ada"})
    page.click("#fav-btn")
    wait_for(lambda: page.locator("#items li .star").count() == 2, what="two stars")
    page.click("#fav-btn")
    wait_for(lambda: page.locator("#items li .star").count() == 1, what="one star")


# ------------------------------------------------------------ import/export


def upload(client: Any, csrf: str, origin: str, data: bytes) -> str:
    headers = {**good_headers(origin, csrf), "Content-Type": "application/octet-stream"}
    resp = client.post("/api/import/file", headers=headers, content=data)
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["token"]
    return token


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def test_attack_desktop_ui_import_parses_the_file_outside_the_agent(
    ui: Any, tmp_path: Path
) -> None:
    """A hostile import file must not be parsed next to the vault key: the agent hands
    it to a fresh process (exec'd, so none of the agent's memory), and the file's
    password reaches that process on stdin, never in its arguments or environment."""
    desktop, client, csrf, origin = ui
    agent = desktop.agent_pid()
    token = upload(client, csrf, origin, kdbx_file(tmp_path))
    seen: dict[int, tuple[bytes, bytes]] = {}
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for child in children_of(agent):
                try:
                    cmd = Path(f"/proc/{child}/cmdline").read_bytes()
                    env = Path(f"/proc/{child}/environ").read_bytes()
                except OSError:
                    continue
                seen.setdefault(child, (cmd, env))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        check = post(client, csrf, origin, "/api/import/check",
                     {"token": token, "format": "keepass", "password": KDBX_PASSWORD})  # fmt: skip
    finally:
        done.set()
        watcher.join()
    assert check.status_code == 200, check.text
    assert check.json()["found"] == 1 and check.json()["titles"] == ["Mail"]
    workers = [c for c, (cmd, _) in seen.items() if b"unlatch.vault.transfer.worker" in cmd]
    assert workers, f"no parser process seen among {[v[0] for v in seen.values()]}"
    for child in workers:
        cmd, env = seen[child]
        assert child != agent and KDBX_PASSWORD.encode() not in cmd + env
    # Nothing was written by the check; the commit adds it.
    assert client.get("/api/items").json()["items"] == []
    done_ = post(client, csrf, origin, "/api/import/commit", {"token": token})
    assert done_.status_code == 200 and done_.json()["imported"] == 1
    assert [i["title"] for i in client.get("/api/items").json()["items"]] == ["Mail"]


def test_import_ui_route_errors_are_clear_and_change_nothing(ui: Any, tmp_path: Path) -> None:
    _desktop, client, csrf, origin = ui
    token = upload(client, csrf, origin, b'{"encrypted": false, "items": [{"type": 1}]')
    bad = post(client, csrf, origin, "/api/import/check", {"token": token, "format": "bitwarden"})
    assert bad.status_code == 400 and bad.json()["error"] == "bad_file"
    assert post(client, csrf, origin, "/api/import/commit", {"token": token}).status_code == 400
    kdbx = upload(client, csrf, origin, kdbx_file(tmp_path))
    need = post(client, csrf, origin, "/api/import/check", {"token": kdbx, "format": "keepass"})
    assert need.json()["error"] == "password_needed" and "password" in need.json()["message"]
    wrong = post(client, csrf, origin, "/api/import/check",
                 {"token": kdbx, "format": "keepass", "password": "not it"})  # fmt: skip
    assert wrong.json()["error"] == "wrong_file_password"
    gone = post(client, csrf, origin, "/api/import/commit", {"token": "made-up"})
    assert gone.status_code == 404 and gone.json()["error"] == "no_upload"
    plain = {**good_headers(origin, csrf)}  # JSON content type: not a file upload
    assert client.post("/api/import/file", headers=plain, content=b"x").status_code == 400
    assert client.get("/api/items").json()["items"] == []


def test_export_ui_route_needs_a_password_or_an_unencrypted_confirmation(ui: Any) -> None:
    _desktop, client, csrf, origin = ui
    add_item(client, csrf, origin, title="GitHub", username="ada", password="gh-pw")
    csv_plain = post(client, csrf, origin, "/api/export", {"format": "csv"})
    assert csv_plain.status_code == 400 and "in the clear" in csv_plain.json()["message"]
    short = post(client, csrf, origin, "/api/export", {"format": "unlatch", "password": "short"})
    assert short.status_code == 400 and "at least 8" in short.json()["message"]
    ok = post(client, csrf, origin, "/api/export", {"format": "csv", "unencrypted": True})
    assert ok.status_code == 200 and "gh-pw" in ok.text
    assert ok.headers["cache-control"] == "no-store"
    assert ok.headers["content-disposition"].startswith('attachment; filename="unlatch-export-')


def test_import_and_export_in_the_settings_page(vault_page: Any, tmp_path: Path) -> None:
    desktop, page = vault_page
    page.click("#settings-btn")
    page.wait_for_selector("#import-format option", state="attached")
    source = tmp_path / "bitwarden_export.json"
    source.write_text(json.dumps(bitwarden_json()))
    page.select_option("#import-format", "bitwarden")
    assert page.is_hidden("#import-password-row")
    page.set_input_files("#import-file", str(source))
    page.click("#import-check")
    page.wait_for_selector("#import-report:visible")
    summary = page.inner_text("#import-summary")
    assert "to import" in summary and "Nothing is imported until you press Import" in summary
    assert "GitHub" in page.inner_text("#import-titles")
    page.locator("#transfer").scroll_into_view_if_needed()
    shot(page, "desktop-import.png")
    assert desktop.status()["items"] == 0  # the dry run wrote nothing
    page.click("#import-commit")
    page.wait_for_selector("#import-report", state="hidden")
    found = int(summary.split(": ")[1].split(" ")[0])
    wait_for(lambda: desktop.status()["items"] == found, what="imported")

    # Export to KDBX with its own password: a download that KeePass opens.
    page.select_option("#export-format", "keepass")
    page.fill("#export-password", EXPORT_PASSWORD)
    page.fill("#export-password2", EXPORT_PASSWORD + "x")
    page.click("#export-btn")
    page.wait_for_selector("#export-error:visible")
    assert "differ" in page.inner_text("#export-error")
    page.fill("#export-password2", EXPORT_PASSWORD)
    with page.expect_download() as info:
        page.click("#export-btn")
    path = tmp_path / "out.kdbx"
    info.value.save_as(str(path))
    assert info.value.suggested_filename.endswith(".kdbx")
    kp = PyKeePass(str(path), password=EXPORT_PASSWORD)
    assert "GitHub" in {e.title for e in kp.entries}

    # CSV: refused until the "unencrypted" box is ticked.
    page.select_option("#export-format", "csv")
    assert page.is_visible("#export-clear-row") and page.is_hidden("#export-password-rows")
    page.click("#export-btn")
    wait_for(lambda: "I understand" in page.inner_text("#export-error"), what="confirmation asked")
    page.check("#export-unencrypted")
    with page.expect_download() as info:
        page.click("#export-btn")
    csv_path = tmp_path / "out.csv"
    info.value.save_as(str(csv_path))
    assert "GitHub" in csv_path.read_text()
    assert os.path.getsize(csv_path) > 0
