"""The native messaging host (``unlatch browser host``) as the browser runs it: a real process.

Messages are framed as Chromium frames them (4-byte little-endian length + UTF-8
JSON) on the host's stdin; the caller's origin is its first argument. The host
serves only the pinned extension, answers every bad message with an error reply
and keeps running, and releases a login only for a page the login matches.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fixtures.desktop import clean_env, cli
from fixtures.vault import KDF_ARGS, PASSWORD

from unlatch.browser import matching, messaging
from unlatch.browser.host import extension_ids
from unlatch.browser.matching import Match

ORIGIN = f"chrome-extension://{extension_ids()['chromium']}/"


class Host:
    def __init__(self, home: Path, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "unlatch", "browser", "host", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(home),
        )
        self.next_id = 0

    def send_raw(self, body: bytes, length: int | None = None) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(struct.pack("<I", len(body) if length is None else length) + body)
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        header = self.proc.stdout.read(4)
        assert len(header) == 4, self.proc.stderr.read().decode() if self.proc.stderr else ""
        (n,) = struct.unpack("<I", header)
        return json.loads(self.proc.stdout.read(n))

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        self.next_id += 1
        self.send_raw(json.dumps({"v": 1, "id": self.next_id, "op": op, "args": args}).encode())
        reply = self.read()
        assert reply["id"] == self.next_id
        return reply

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout=30)


def add(home: Path, title: str, username: str, url: str, password: str) -> None:
    out = cli(home, "add", title, "--username", username, "--url", url, input=f"{password}\n")
    assert out.returncode == 0, out.stderr


@pytest.fixture
def home(tmp_path: Path) -> Any:
    home = tmp_path / "desk"
    home.mkdir()
    out = cli(home, "init", "--password-stdin", *KDF_ARGS, input=f"{PASSWORD}\n{PASSWORD}\n")
    assert out.returncode == 0, out.stderr
    yield home
    cli(home, "agent", "stop")


def test_attack_browser_host_refuses_an_unknown_origin(home: Path) -> None:
    for caller in ("chrome-extension://abcdefghijklmnopabcdefghijklmnop/", "https://evil.example/"):
        host = Host(home, caller)
        reply = host.read()
        assert reply["ok"] is False and reply["error"]["code"] == "forbidden_origin"
        assert host.proc.wait(timeout=30) == 1
    host = Host(home)  # no origin at all
    assert host.read()["error"]["code"] == "forbidden_origin"


def test_browser_host_bad_messages_get_error_replies_and_it_keeps_running(home: Path) -> None:
    host = Host(home, ORIGIN)
    host.send_raw(b"{not json")
    assert host.read()["error"]["code"] == "bad_json"
    host.send_raw(b"\xff\xfe")
    assert host.read()["error"]["code"] == "bad_json"
    host.send_raw(b"[1, 2]")
    assert host.read()["error"]["code"] == "bad_message"
    host.send_raw(json.dumps({"v": 99, "id": 5, "op": "hello"}).encode())
    reply = host.read()
    assert reply["error"]["code"] == "unsupported_version" and reply["id"] == 5
    host.send_raw(json.dumps({"v": 1, "id": 6, "op": "format_disk"}).encode())
    assert host.read()["error"]["code"] == "unknown_op"
    host.send_raw(b"[" * 50_000 + b"]" * 50_000)
    assert host.read()["error"]["code"] == "bad_json"
    deep = {"v": 1, "id": 7, "op": "hello", "args": {}}
    node = deep["args"]
    for _ in range(20):
        node["a"] = {}
        node = node["a"]
    host.send_raw(json.dumps(deep).encode())
    assert host.read()["error"]["code"] == "bad_json"
    padding = b"a" * messaging.MAX_MESSAGE
    big = b'{"v": 1, "id": 8, "op": "hello", "args": {"x": "' + padding + b'"}}'
    host.send_raw(big)
    reply = host.read()
    assert reply["error"]["code"] == "too_large"
    assert host.call("hello")["result"]["protocol"] == messaging.PROTOCOL_VERSION  # still serving
    assert host.close() == 0


def test_browser_host_unlock_logins_fill_and_copy(home: Path) -> None:
    add(home, "Shop", "ada", "https://shop.example.co.uk/login", "s3cret-shop")
    add(home, "Other", "bob", "https://other.example", "other-pw")
    cli(home, "lock")
    host = Host(home, ORIGIN)
    state = host.call("state")["result"]
    assert state["vault"]["unlocked"] is False
    wrong = host.call("unlock_password", password="not it")
    assert wrong["ok"] is False and wrong["error"]["code"] == "wrong_password"
    assert host.call("unlock_password", password=PASSWORD)["ok"] is True

    found = host.call("logins", url="https://www.shop.example.co.uk/cart")["result"]["logins"]
    assert [(r["title"], r["match"]) for r in found] == [("Shop", "domain")]
    assert "password" not in json.dumps(found)  # summaries only
    everything = host.call("logins", url="https://www.shop.example.co.uk/", query="o")["result"]
    assert [r["title"] for r in everything["logins"]] == ["Shop", "Other"]  # matching first

    item = found[0]["id"]
    filled = host.call("fill", item_id=item, url="https://shop.example.co.uk/login")["result"]
    assert filled == {"username": "ada", "password": "s3cret-shop"}
    copied = host.call("copy", item_id=item, field="password")["result"]
    assert copied["value"] == "s3cret-shop"
    assert len(host.call("generate", length=24)["result"]["value"]) == 24
    assert host.call("lock")["ok"] is True
    assert host.call("state")["result"]["vault"]["unlocked"] is False
    assert host.close() == 0


def test_attack_browser_host_fills_only_a_matching_page(home: Path) -> None:
    """A page (or a compromised popup) cannot pull a login for another site out of the host."""
    add(home, "Bank", "ada", "https://bank.example", "bank-pw")
    host = Host(home, ORIGIN)
    item = host.call("logins", url="https://bank.example/")["result"]["logins"][0]["id"]
    for page in (
        "http://bank.example/login",  # downgraded to plain text
        "https://bank.example.evil.net/",  # the name inside another domain
        "https://bаnk.example/",  # a Cyrillic "а": another host
        "https://bank-example.com/",
        "javascript:alert(1)",
    ):
        reply = host.call("fill", item_id=item, url=page)
        assert reply["ok"] is False and reply["error"]["code"] == "no_match", page
    title_lookup = host.call("fill", item_id="Bank", url="https://bank.example/")
    assert title_lookup["ok"] is False  # ids only: never a guess by title from the page side
    assert host.close() == 0


@pytest.mark.parametrize(
    ("saved", "page", "expected"),
    [
        ("https://example.com/login", "https://example.com/", Match.ORIGIN),
        ("https://example.com", "https://www.example.com/x", Match.DOMAIN),
        ("example.com", "https://login.example.com", Match.DOMAIN),
        ("http://example.com", "https://example.com", Match.HOST),
        ("https://example.com", "http://example.com", Match.NONE),
        ("https://a.github.io", "https://b.github.io", Match.NONE),
        ("https://shop.example.co.uk", "https://example.co.uk", Match.DOMAIN),
        ("https://example.co.uk", "https://other.co.uk", Match.NONE),
        ("https://example.com", "https://example.com.evil.net", Match.NONE),
        ("https://example.com", "https://xn--exmple-4nf.com", Match.NONE),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8001/", Match.NONE),
        ("http://127.0.0.1:8000/a", "http://127.0.0.1:8000/b", Match.ORIGIN),
        ("http://localhost:3000", "http://localhost:3000/", Match.ORIGIN),
        ("https://example.com", "ftp://example.com", Match.NONE),
        ("", "https://example.com", Match.NONE),
    ],
)
def test_browser_host_matching_rules(saved: str, page: str, expected: Match) -> None:
    assert matching.match(saved, page) is expected


def test_browser_host_install_status_uninstall(tmp_path: Path) -> None:
    """`unlatch browser install` finds the browsers with a profile, pins the origin, and
    writes a launcher that keeps this UNLATCH_HOME; uninstall removes what it wrote."""
    home_dir = tmp_path / "user"
    (home_dir / ".config" / "chromium").mkdir(parents=True)  # Chromium has been run once
    (home_dir / ".mozilla").mkdir()
    unlatch_home = tmp_path / "unlatch"
    env = {"HOME": str(home_dir)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc_env = clean_env(unlatch_home, **env)
        proc_env.pop("XDG_CONFIG_HOME", None)
        return subprocess.run(
            [sys.executable, "-m", "unlatch", "browser", *args],
            env=proc_env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    out = run("install")
    assert out.returncode == 0, out.stderr
    chromium = home_dir / ".config/chromium/NativeMessagingHosts" / f"{messaging.HOST_NAME}.json"
    firefox = home_dir / ".mozilla/native-messaging-hosts" / f"{messaging.HOST_NAME}.json"
    manifest = json.loads(chromium.read_text())
    assert manifest["allowed_origins"] == [ORIGIN] and manifest["type"] == "stdio"
    assert json.loads(firefox.read_text())["allowed_extensions"] == ["unlatch@unlatch.org"]
    assert not (home_dir / ".config/google-chrome").exists()  # not found: not written
    launcher = Path(manifest["path"])
    assert launcher.stat().st_mode & 0o777 == 0o700
    assert f"UNLATCH_HOME={unlatch_home.resolve()}" in launcher.read_text()

    status = {r["browser"]: r for r in json.loads(run("status", "--json").stdout)}
    assert status["chromium"]["state"] == "installed" and status["chromium"]["found"]
    assert status["chrome"]["state"] == "not installed" and not status["chrome"]["found"]

    # The launcher, run as the browser runs it, is the host.
    proc = subprocess.run(
        [str(launcher), "chrome-extension://nope/"], input=b"", capture_output=True, timeout=60
    )
    assert proc.returncode == 1 and b"forbidden_origin" in proc.stdout

    out = run("uninstall")
    assert out.returncode == 0, out.stderr
    assert not chromium.exists() and not firefox.exists() and not launcher.exists()
    assert "nothing to remove" in run("uninstall").stdout
