"""Passkey unlock end to end: the real agent serving the UI, real headless Chromium,
and a DevTools-protocol virtual authenticator (CTAP 2.1, user verification, PRF).

Every test runs ``unlatch desktop`` (the agent is a separate process with its
own UNLATCH_HOME) and drives the page the way a person would: Settings ->
"Add a passkey", "Lock now", "Unlock with passkey". No relay is needed: the
desktop is pointed at a closed port it never contacts in these flows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fixtures.desktop import Desktop
from fixtures.relay import free_port

UNUSED_RELAY = "http://127.0.0.1:9"
AUTHENTICATOR = {
    "protocol": "ctap2",
    "ctap2Version": "ctap2_1",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
    "hasPrf": True,
}


def localhost(url: str) -> str:
    """The launch link on the canonical host (what `unlatch desktop` prints)."""
    return url.replace("http://127.0.0.1:", "http://localhost:", 1)


def loopback_ip(url: str) -> str:
    """The same launch link on 127.0.0.1 (a user who typed the address by hand)."""
    return url.replace("http://localhost:", "http://127.0.0.1:", 1)


# In the page: fetch unlock options, run navigator.credentials.get with the PRF
# salts, and return the token and the credential JSON without posting them, so a
# test can replay or tamper with what the browser made.
STAGE_ASSERTION_JS = """async () => {
    const opts = await (await fetch('api/passkeys/unlock/options', {method: 'POST',
        headers: {'Content-Type': 'application/json', 'X-CSRF-Token':
        document.querySelector('meta[name="csrf-token"]').content}, body: '{}'})).json();
    const pk = opts.publicKey;
    const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')
        + '==='.slice((s.length + 3) % 4)), c => c.charCodeAt(0));
    const byCred = {};
    for (const [id, v] of Object.entries(pk.extensions.prf.evalByCredential))
        byCred[id] = {first: dec(v.first)};
    const a = await navigator.credentials.get({publicKey: {...pk,
        challenge: dec(pk.challenge),
        allowCredentials: pk.allowCredentials.map(c => ({...c, id: dec(c.id)})),
        extensions: {prf: {evalByCredential: byCred}}}});
    return {token: opts.token, credential: window.unlatchPasskey.credentialJSON(a)};
}"""


class PasskeyPage:
    """A page of the desktop UI with a virtual authenticator attached."""

    def __init__(self, browser: Any, desktop: Desktop, *, prf: bool = True) -> None:
        self.desktop = desktop
        self.context = browser.new_context(viewport={"width": 1200, "height": 800})
        self.page = self.context.new_page()
        self.dialog_answer: str | None = None
        self.page.on("dialog", self._on_dialog)
        self.cdp = self.context.new_cdp_session(self.page)
        self.cdp.send("WebAuthn.enable")
        self.authenticator = self.add_authenticator(prf=prf)

    def _on_dialog(self, dialog: Any) -> None:
        if self.dialog_answer is None:
            dialog.accept()
        else:
            dialog.accept(self.dialog_answer)

    def add_authenticator(self, *, prf: bool = True) -> str:
        options = {**AUTHENTICATOR, "hasPrf": prf}
        answer = self.cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})
        return str(answer["authenticatorId"])

    def replace_authenticator(self) -> None:
        """A different authenticator: the first one (and its credential) is gone."""
        self.cdp.send(
            "WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.authenticator}
        )
        self.authenticator = self.add_authenticator()

    def credentials(self) -> list[dict[str, Any]]:
        answer = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator})
        return list(answer["credentials"])

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector("#vault:visible, #locked:visible")
        assert "k=" not in self.page.url

    def passkey_count(self) -> int:
        return int(self.page.get_attribute("html", "data-passkeys") or "0")

    def add_passkey(self, label: str) -> None:
        self.page.click("#settings-btn")
        self.page.fill("#passkey-label", label)
        before = self.passkey_count()
        self.page.click("#add-passkey-btn")
        self.page.wait_for_function(
            "n => Number(document.documentElement.dataset.passkeys) > n", arg=before
        )
        assert label in self.page.inner_text("#passkeys")
        self.page.click("#settings-close")

    def lock(self) -> None:
        self.page.click("#lock-btn")
        self.page.wait_for_selector("#locked:visible")

    def unlock_with_passkey(self) -> None:
        self.page.click("#unlock-passkey-btn")

    def api(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """A same-origin fetch with the page's CSRF token: ``{status, body}``."""
        result: dict[str, Any] = self.page.evaluate(
            """async ([method, path, body]) => {
                const csrf = document.querySelector('meta[name="csrf-token"]').content;
                const opts = {method, headers: {"Accept": "application/json"}};
                if (method !== "GET") {
                    opts.headers["X-CSRF-Token"] = csrf;
                    opts.headers["Content-Type"] = "application/json";
                    opts.body = JSON.stringify(body || {});
                }
                const r = await fetch(path, opts);
                return {status: r.status, body: await r.json().catch(() => null)};
            }""",
            [method, path, body],
        )
        return result

    def unlocked(self) -> bool:
        """The agent's lock state, as the page's API reports it."""
        return bool(self.api("GET", "api/state")["body"]["vault"]["unlocked"])

    def passkey_labels(self) -> list[str]:
        return [p["label"] for p in self.api("GET", "api/passkeys")["body"]["passkeys"]]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def desktop(desktop_env: Any) -> Desktop:
    d: Desktop = desktop_env(UNUSED_RELAY)
    d.start_ui()
    return d


@pytest.fixture
def ui(browser: Any, desktop: Desktop) -> Iterator[PasskeyPage]:
    page = PasskeyPage(browser, desktop)
    page.open(localhost(desktop.url))
    yield page
    page.close()


def passkey_slots(desktop: Desktop) -> list[dict[str, Any]]:
    return [s for s in desktop.status()["slots"] if s["kind"] == "passkey"]


# --------------------------------------------------------------------- tests


def test_passkey_register_lock_and_unlock(ui: PasskeyPage, desktop: Desktop) -> None:
    page = ui.page
    page.click("#new-item")
    page.fill("#item-form [name=title]", "Bank")
    page.fill("#item-form [name=password]", "hunter2-but-longer")
    page.click("#item-form button[type=submit]")
    page.wait_for_selector("#item-view:visible")

    ui.add_passkey("Laptop passkey")
    (slot,) = passkey_slots(desktop)
    assert slot["label"] == "Laptop passkey"
    meta = slot["meta"]
    assert meta["rp_id"] == "localhost" and len(meta["salt"]) == 43  # 32 bytes, base64url
    (cred,) = ui.credentials()
    assert cred["rpId"] == "localhost" and cred["isResidentCredential"] is True
    assert meta["credential_id"] == cred["credentialId"].replace("+", "-").replace("/", "_").rstrip(
        "="
    )
    # Only the wrapped key and public data are stored: no PRF output anywhere in meta.
    assert set(meta) == {
        "v", "credential_id", "salt", "public_key", "sign_count", "rp_id", "aaguid", "backed_up"
    }  # fmt: skip

    ui.lock()
    assert desktop.status()["unlocked"] is False
    page.wait_for_selector("#unlock-passkey-btn:visible")
    ui.unlock_with_passkey()
    page.wait_for_selector("#vault:visible", timeout=20000)
    assert desktop.status()["unlocked"] is True
    page.wait_for_selector("#items li")
    assert "Bank" in page.inner_text("#items")

    # The verified signature counter was recorded (clone detection).
    counters = json.loads((desktop.home / "desktop" / "passkey-counters.json").read_text())
    assert counters[meta["credential_id"]] >= 1

    # A second unlock works too (fresh challenge, counter moves on).
    ui.lock()
    ui.unlock_with_passkey()
    page.wait_for_selector("#vault:visible", timeout=20000)
    counters2 = json.loads((desktop.home / "desktop" / "passkey-counters.json").read_text())
    assert counters2[meta["credential_id"]] > counters[meta["credential_id"]]


def test_passkey_rename_and_remove_then_unlock_fails(ui: PasskeyPage, desktop: Desktop) -> None:
    page = ui.page
    ui.add_passkey("Old name")
    page.click("#settings-btn")
    ui.dialog_answer = "Security key"
    page.click("#passkeys li .passkey-rename")
    page.wait_for_function(
        "() => document.getElementById('passkeys').innerText.includes('Security key')"
    )
    assert ui.passkey_labels() == ["Security key"]

    # Prepare an unlock while the slot still exists: a fresh, valid assertion with PRF.
    staged = page.evaluate(STAGE_ASSERTION_JS)
    assert staged["credential"]["clientExtensionResults"]["prf"]["results"]["first"]

    ui.dialog_answer = None
    page.click("#passkeys li .passkey-remove")
    page.wait_for_function("() => document.documentElement.dataset.passkeys === '0'")
    assert ui.passkey_labels() == []
    page.click("#settings-close")
    ui.lock()

    # The locked screen no longer offers the passkey...
    assert page.is_hidden("#unlock-passkey-btn")
    # ...the removed passkey's (otherwise valid) answer is refused, the vault stays locked...
    answer = ui.api("POST", "api/passkeys/unlock", staged)
    assert answer["status"] == 401 and answer["body"]["error"] == "passkey_unknown"
    assert "not registered with this vault" in answer["body"]["message"]
    # ...and asking for an unlock says clearly that there is no passkey.
    err = page.evaluate(
        "window.unlatchPasskey.unlockWithPasskey().then(() => 'unlocked', e => e.message)"
    )
    assert "No passkey is registered" in err
    assert desktop.status()["unlocked"] is False


def test_passkey_second_authenticator_cannot_unlock(ui: PasskeyPage, desktop: Desktop) -> None:
    page = ui.page
    ui.add_passkey("First key")
    ui.lock()
    ui.replace_authenticator()
    assert ui.credentials() == []

    ui.unlock_with_passkey()
    page.wait_for_selector("#passkey-unlock-error:visible", timeout=20000)
    assert "No passkey of this vault was used" in page.inner_text("#passkey-unlock-error")
    assert ui.unlocked() is False
    assert page.is_visible("#locked")

    # The second authenticator makes its own credential for this RP (outside the vault)
    # and answers the agent's real challenge with it: the agent refuses it.
    forged = page.evaluate(
        """async () => {
            const h = {'Content-Type': 'application/json', 'X-CSRF-Token':
                document.querySelector('meta[name="csrf-token"]').content};
            const c = await navigator.credentials.create({publicKey: {rp: {id: 'localhost',
                name: 'x'}, user: {id: new Uint8Array(16), name: 'u', displayName: 'u'},
                challenge: new Uint8Array(32), pubKeyCredParams: [{type: 'public-key', alg: -7}],
                authenticatorSelection: {userVerification: 'required'}}});
            const opts = await (await fetch('api/passkeys/unlock/options',
                {method: 'POST', headers: h, body: '{}'})).json();
            const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')
                + '==='.slice((s.length + 3) % 4)), ch => ch.charCodeAt(0));
            const a = await navigator.credentials.get({publicKey: {rpId: 'localhost',
                challenge: dec(opts.publicKey.challenge), userVerification: 'required',
                allowCredentials: [{type: 'public-key', id: c.rawId}],
                extensions: {prf: {eval: {first: new Uint8Array(32)}}}}});
            const r = await fetch('api/passkeys/unlock', {method: 'POST', headers: h,
                body: JSON.stringify({token: opts.token,
                                      credential: window.unlatchPasskey.credentialJSON(a)})});
            return {status: r.status, body: await r.json()};
        }"""
    )
    assert forged["status"] == 401 and forged["body"]["error"] == "passkey_unknown"
    assert ui.unlocked() is False


def test_passkey_without_prf_is_refused_at_registration(browser: Any, desktop: Desktop) -> None:
    ui = PasskeyPage(browser, desktop, prf=False)
    try:
        ui.open(localhost(desktop.url))
        ui.page.click("#settings-btn")
        ui.page.fill("#passkey-label", "Old key")
        ui.page.click("#add-passkey-btn")
        ui.page.wait_for_selector("#passkeys-error:visible", timeout=20000)
        message = ui.page.inner_text("#passkeys-error")
        assert "does not support the WebAuthn PRF extension" in message
        assert "Nothing was added" in message
        assert ui.passkey_labels() == []
        assert ui.page.get_attribute("html", "data-passkeys") == "0"
    finally:
        ui.close()


def test_passkey_ceremonies_verify_challenge_signature_and_prf(
    ui: PasskeyPage, desktop: Desktop
) -> None:
    """Replay, tampered signed data and a tampered PRF output all leave the vault locked."""
    ui.add_passkey("Key")
    ui.lock()

    def flip(b64: str) -> str:
        return ("B" if b64[0] != "B" else "C") + b64[1:]

    # A tampered PRF output passes the signature check (PRF is not signed) but opens nothing.
    staged = ui.page.evaluate(STAGE_ASSERTION_JS)
    prf = staged["credential"]["clientExtensionResults"]["prf"]["results"]
    prf["first"] = flip(prf["first"])
    answer = ui.api("POST", "api/passkeys/unlock", staged)
    assert answer["status"] == 401 and "did not open the vault" in answer["body"]["message"]

    # Tampered signed data (authenticator data) fails the signature check.
    staged = ui.page.evaluate(STAGE_ASSERTION_JS)
    response = staged["credential"]["response"]
    response["signature"] = flip(response["signature"])
    answer = ui.api("POST", "api/passkeys/unlock", staged)
    assert answer["status"] == 401 and answer["body"]["error"] == "passkey_rejected"

    # A good answer works once; replaying it (same challenge) is refused.
    staged = ui.page.evaluate(STAGE_ASSERTION_JS)
    assert ui.api("POST", "api/passkeys/unlock", staged)["status"] == 200
    assert ui.unlocked() is True
    ui.lock()
    replay = ui.api("POST", "api/passkeys/unlock", staged)
    assert replay["status"] == 400 and replay["body"]["error"] == "challenge_expired"

    # Garbage is a clear 400, never a crash.
    garbage = ({}, {"token": "x"}, {"token": 5, "credential": []}, {"credential": {"rawId": "!"}})
    for body in garbage:
        bad = ui.api("POST", "api/passkeys/unlock", body)
        assert bad["status"] == 400 and bad["body"]["message"]
    assert ui.unlocked() is False


def test_passkey_needs_localhost_and_switches_host(browser: Any, desktop: Desktop) -> None:
    ui = PasskeyPage(browser, desktop)
    try:
        ui.open(loopback_ip(desktop.url))  # the launch link on 127.0.0.1
        answer = ui.api("POST", "api/passkeys/register/options", {"label": "x"})
        assert answer["status"] == 400 and answer["body"]["error"] == "use_localhost"
        ui.page.click("#settings-btn")
        ui.page.click("#add-passkey-btn")
        assert "work only on http://localhost:" in ui.page.inner_text("#passkeys-error")
        ui.page.click("#passkeys-card .passkey-switch-host")
        # back in the UI, under the agent's secret path prefix, now on localhost
        ui.page.wait_for_url(re.compile(rf"^http://localhost:{desktop.port}/[A-Za-z0-9_-]{{24}}/$"))
        ui.page.wait_for_selector("#vault:visible")
        ui.add_passkey("After switch")
        assert len(ui.passkey_labels()) == 1
    finally:
        ui.close()


def test_passkey_slot_survives_a_port_change(ui: PasskeyPage, desktop: Desktop) -> None:
    ui.add_passkey("Portable")
    first_port = desktop.port
    desktop.stop()
    # A free port now may be taken before the agent binds it: then try another one.
    for _ in range(10):
        new_port = free_port()
        if new_port == first_port:
            continue
        out = desktop.run("desktop", "--no-browser", "--json", "--port", str(new_port))
        if out.returncode == 0:
            break
        assert "cannot listen on 127.0.0.1" in out.stderr, out.stderr
    else:
        pytest.fail("no free port for the agent's UI")
    info = json.loads(out.stdout)
    desktop.url, desktop.port = info["url"], info["port"]
    assert desktop.port == new_port != first_port
    ui.open(localhost(desktop.url))  # same browser tab, same authenticator
    assert ui.unlocked() is False
    ui.page.wait_for_selector("#unlock-passkey-btn:visible")
    ui.unlock_with_passkey()
    ui.page.wait_for_selector("#vault:visible", timeout=20000)
    assert ui.unlocked() is True


def test_passkey_prf_evaluated_by_a_follow_up_assertion(browser: Any, desktop: Desktop) -> None:
    """An authenticator that reports ``prf.enabled`` at creation but no PRF result:
    the page runs one more ``credentials.get`` and the agent verifies it first."""
    ui = PasskeyPage(browser, desktop)
    # Make creation ask only "is PRF supported?" (as a browser that cannot evaluate
    # PRF during create would): the browser then reports enabled, without results.
    ui.context.add_init_script(
        """(() => {
            const create = navigator.credentials.create.bind(navigator.credentials);
            navigator.credentials.create = (options) => {
                if (options && options.publicKey && options.publicKey.extensions) {
                    options.publicKey.extensions = {prf: {}};
                }
                window.__createdWithoutEval = true;
                return create(options);
            };
        })()"""
    )
    try:
        ui.open(localhost(desktop.url))
        ui.add_passkey("Late PRF")
        assert ui.page.evaluate("() => window.__createdWithoutEval === true")
        assert ui.passkey_labels() == ["Late PRF"]
        ui.lock()
        ui.unlock_with_passkey()
        ui.page.wait_for_selector("#vault:visible", timeout=20000)
        assert ui.unlocked() is True
    finally:
        ui.close()


def test_passkey_routes_sit_behind_the_ui_guard(ui: PasskeyPage, desktop: Desktop) -> None:
    """Cookie, path prefix, CSRF token, Origin and Host are all required, as for the
    built-in routes."""

    (cookie,) = [c for c in ui.context.cookies() if c["name"] == f"unlatch_ui_{desktop.port}"]
    prefix = urlsplit(ui.page.url).path
    assert cookie["path"] == prefix and len(prefix) == 26  # the cookie is scoped to it
    csrf = ui.page.get_attribute('meta[name="csrf-token"]', "content")
    origin = f"http://localhost:{desktop.port}"
    good = {
        "Host": f"localhost:{desktop.port}",
        "Origin": origin,
        "X-CSRF-Token": str(csrf),
        "Cookie": f"{cookie['name']}={cookie['value']}",
        "Content-Type": "application/json",
    }
    url = f"http://127.0.0.1:{desktop.port}{prefix}api/passkeys/register/options"
    cases = [
        ({**good, "Cookie": ""}, 401, "no_session"),
        ({**good, "Origin": "http://localhost:1"}, 403, "bad_origin"),
        ({k: v for k, v in good.items() if k != "X-CSRF-Token"}, 403, "bad_csrf"),
        ({**good, "Origin": "http://evil.example"}, 403, "bad_origin"),
        ({**good, "Host": "evil.example"}, 421, "wrong_host"),
    ]
    with httpx.Client() as client:
        for headers, status, code in cases:
            answer = client.post(url, headers=headers, content=b'{"label": "x"}')
            assert (answer.status_code, answer.json()["error"]) == (status, code)
        # Everything right but the path prefix (a cookie that leaked to another port).
        root = url.replace(prefix, "/")
        answer = client.post(root, headers=good, content=b'{"label": "x"}')
        assert (answer.status_code, answer.json()["error"]) == (401, "no_session")
        ok = client.post(url, headers=good, content=b'{"label": "x"}')
        assert ok.status_code == 200 and ok.json()["publicKey"]["rp"]["id"] == "localhost"
        # GET needs the session cookie too (the list is not public).
        listed = client.get(
            f"http://127.0.0.1:{desktop.port}{prefix}api/passkeys",
            headers={"Host": f"localhost:{desktop.port}"},
        )
        assert listed.status_code == 401
