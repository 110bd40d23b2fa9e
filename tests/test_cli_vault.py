"""Every vault command through the real CLI (``python -m unlatch``) in a temporary home."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

from fixtures.vault import KDF_ARGS, PASSWORD, Cli, copy_file, key_from, readable_items

from unlatch.agent import client
from unlatch.vault import totp

TOTP_SECRET = "JBSWY3DPEHPK3PXP"


def no_traceback(proc) -> None:  # type: ignore[no-untyped-def]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


def test_init_unlock_lock_status(cli: Cli) -> None:
    proc = cli("status")
    assert "run `unlatch init`" in proc.stdout
    proc = cli("list")
    assert proc.returncode != 0 and "no vault yet: run `unlatch init`" in proc.stderr

    proc = cli("init", "--password-stdin", *KDF_ARGS, "--json", input=PASSWORD + "\n", check=True)
    info = json.loads(proc.stdout)
    assert info["unlocked"] is True and info["kdf"]["m"] == 19456 and info["kdf"]["t"] == 2
    vault_file = cli.home / "desktop" / "vault.db"
    assert vault_file.is_file() and stat.S_IMODE(vault_file.stat().st_mode) == 0o600

    status = json.loads(cli("status", "--json", check=True).stdout)
    assert status["unlocked"] is True and status["agent_running"] is True
    # Default idle lock 600 s, counted from init; a loaded machine may take a while
    # between the two commands, so only a wide lower bound.
    assert status["items"] == 0 and 480 <= status["locks_in_seconds"] <= 600
    assert "state: unlocked" in cli("status", check=True).stdout

    proc = cli("init", "--password-stdin", *KDF_ARGS, input=PASSWORD + "\n")
    assert proc.returncode != 0 and "already exists" in proc.stderr

    assert "vault locked" in cli("lock", check=True).stdout
    assert json.loads(cli("status", "--json", check=True).stdout)["unlocked"] is False
    for command in (["list"], ["get", "x"], ["add", "x"], ["rm", "x", "--yes"], ["edit", "x"]):
        proc = cli(*command, input="pw\n")
        assert proc.returncode != 0, command
        assert "vault is locked: run `unlatch unlock`" in proc.stderr, command
        no_traceback(proc)

    proc = cli("unlock", "--password-stdin", input="wrong password\n")
    assert proc.returncode != 0 and "wrong master password" in proc.stderr
    no_traceback(proc)
    proc = cli("unlock", input="")  # no terminal and no --password-stdin
    assert proc.returncode != 0 and "--password-stdin" in proc.stderr
    assert "vault unlocked" in cli("unlock", "--password-stdin", input=PASSWORD + "\n").stdout
    assert "already unlocked" in cli("unlock", "--password-stdin", input="").stdout

    # Stopping the agent locks the vault; the next command starts a fresh (locked) agent.
    assert "vault locked" in cli("agent", "stop", check=True).stdout
    proc = cli("list")
    assert "vault is locked" in proc.stderr


def test_items_add_list_get_edit_rm(cli: Cli) -> None:
    cli.init()
    out = cli(
        "add",
        "GitHub",
        "-u",
        "alice",
        "--url",
        "https://github.com",
        "--tag",
        "dev",
        "--json",
        input="hunter2\n",
        check=True,
    ).stdout
    github = json.loads(out)
    assert github["title"] == "GitHub" and "password" not in github
    proc = cli(
        "add",
        "Bank",
        "--generate",
        "--length",
        "30",
        "--totp",
        "--tag",
        "money",
        input=TOTP_SECRET + "\n",
        check=True,
    )
    assert "generated a" in proc.stderr
    cli("add", "Forum", "-u", "bob", "--notes", "line one\nline two", input="pw\n", check=True)

    listing = cli("list", check=True).stdout.splitlines()
    assert [line.split()[0] for line in listing] == ["Bank", "Forum", "GitHub"]
    assert cli("list", "github", check=True).stdout.startswith("GitHub")
    assert cli("list", "BOB", check=True).stdout.startswith("Forum")
    tagged = json.loads(cli("list", "--tag", "money", "--json", check=True).stdout)
    assert [i["title"] for i in tagged] == ["Bank"] and tagged[0]["has_totp"] is True
    assert all("password" not in i for i in tagged)
    assert "no items" in cli("list", "nothing-matches").stderr

    assert cli("get", "github", "--field", "password", check=True).stdout == "hunter2\n"
    assert len(cli("get", "Bank", "-f", "password", check=True).stdout.strip()) == 30
    shown = cli("get", "GitHub", check=True).stdout
    assert "username: alice" in shown and "hunter2" not in shown and "url:      https" in shown
    before = time.time()
    code = cli("get", "bank", "--field", "totp", check=True).stdout.strip()
    after = time.time()
    assert code in {totp.current_code(TOTP_SECRET, at=t)[0] for t in (before, after)}
    full = json.loads(cli("get", "Bank", "--json", check=True).stdout)
    assert full["totp_secret"] == TOTP_SECRET and full["totp"]["code"].isdigit()
    proc = cli("get", "GitHub", "--field", "totp")
    assert proc.returncode != 0 and "no TOTP secret" in proc.stderr

    cli("edit", "github", "--username", "alice2", "--tag", "dev", "--tag", "work", check=True)
    cli("edit", "github", "--password", input="new-pass\n", check=True)
    edited = json.loads(cli("get", github["id"], "--json", check=True).stdout)
    assert (edited["username"], edited["password"], edited["tags"], edited["version"]) == (
        "alice2",
        "new-pass",
        ["dev", "work"],
        3,
    )
    proc = cli("edit", "github")
    assert proc.returncode != 0 and "nothing to change" in proc.stderr
    cli("edit", "Bank", "--clear-totp", check=True)
    assert json.loads(cli("get", "Bank", "--json", check=True).stdout)["totp"] is None

    proc = cli("rm", "Forum")
    assert proc.returncode != 0 and "--yes" in proc.stderr
    assert "deleted 'Forum'" in cli("rm", "forum", "--yes", check=True).stdout
    proc = cli("get", "Forum")
    assert proc.returncode != 0 and "no item titled 'Forum'" in proc.stderr
    no_traceback(proc)

    cli("add", "github", input="x\n", check=True)  # same title, other case
    proc = cli("get", "GitHub")
    assert proc.returncode != 0 and "use an id" in proc.stderr

    proc = cli("add", "Bad", "--totp", input="pw\nnot-base32!\n")
    assert proc.returncode != 0 and "base32" in proc.stderr
    no_traceback(proc)


def test_generate_needs_no_vault(cli: Cli) -> None:
    proc = cli("generate", "--length", "20", check=True)
    assert len(proc.stdout.strip()) == 20 and "entropy:" in proc.stderr
    data = json.loads(cli("generate", "--passphrase", "--words", "4", "--json", check=True).stdout)
    assert len(data["value"].split("-")) == 4 and data["entropy_bits"] == 44.0
    digits = cli("generate", "--no-lower", "--no-upper", "--no-symbols", "-l", "12", check=True)
    assert digits.stdout.strip().isdigit()
    proc = cli("generate", "--length", "3")
    assert proc.returncode != 0 and "between 8 and 256" in proc.stderr
    no_traceback(proc)
    assert not (cli.home / "desktop" / "vault.db").exists()


def test_passwd(cli: Cli) -> None:
    cli.init()
    proc = cli("passwd", "--password-stdin", input="wrong one\nnew password 1\n")
    assert proc.returncode != 0 and "current master password is wrong" in proc.stderr
    proc = cli("passwd", "--password-stdin", input=PASSWORD + "\nshort\n")
    assert proc.returncode != 0 and "at least 8" in proc.stderr
    cli("passwd", "--password-stdin", input=PASSWORD + "\nnew password 1\n", check=True)
    cli("lock", check=True)
    assert cli("unlock", "--password-stdin", input=PASSWORD + "\n").returncode != 0
    cli("unlock", "--password-stdin", input="new password 1\n", check=True)


def test_attack_old_password_and_old_file_after_passwd_rotate_key(cli: Cli, tmp_path: Path) -> None:
    """Issue 11.6: someone who learnt the old master password and kept an old copy of the
    vault file reads nothing of the current file after `passwd --rotate-key`, items added
    later included (with plain `passwd` they read everything: see test_vault_rotation)."""
    cli.init()
    vault_file = cli.home / "desktop" / "vault.db"
    cli("add", "before", input="secret-1\n", check=True)
    old_copy = copy_file(vault_file, tmp_path / "stolen-copy.db")
    proc = cli("passwd", "--rotate-key", "--password-stdin", input=f"{PASSWORD}\nnew password 1\n")
    assert proc.returncode == 0, proc.stderr
    assert "vault key rotated: 1 item(s) re-encrypted" in proc.stdout
    cli("add", "after", input="secret-2\n", check=True)  # the agent holds the new key
    current = copy_file(vault_file, tmp_path / "current.db")

    old_key = key_from(old_copy, PASSWORD)
    assert readable_items(old_copy, old_key) == ["before"]
    assert readable_items(current, old_key) == []
    assert readable_items(current, key_from(current, "new password 1")) == ["after", "before"]
    cli("lock", check=True)
    assert cli("unlock", "--password-stdin", input=PASSWORD + "\n").returncode != 0
    cli("unlock", "--password-stdin", input="new password 1\n", check=True)
    assert cli("get", "before", "--field", "password", check=True).stdout == "secret-1\n"


def test_rotate_key_keeps_phones_and_asks_before_dropping_one(cli: Cli) -> None:
    cli.init()
    cli("add", "item", input="pw\n", check=True)
    kek = os.urandom(32)
    with client.connect(start=False) as agent:
        args = {"kek": base64.b64encode(kek).decode(), "meta": {}}
        phone = agent.call("add_slot", kind="phone", label="Pixel 8", **args)["slot_id"]
        old = agent.call("add_slot", kind="phone", label="Old phone", **args)["slot_id"]
    conn = sqlite3.connect(cli.home / "desktop" / "vault.db")  # as an older unlatch left it
    conn.execute("UPDATE slots SET renew_key = NULL, renew_mac = NULL WHERE id = ?", (old,))
    conn.commit()
    conn.close()

    proc = cli("rotate-key", "--password-stdin", input=PASSWORD + "\n")
    assert proc.returncode == 2 and "add --yes" in proc.stderr
    assert "cannot renew, and will remove: phone 'Old phone'" in proc.stderr
    no_traceback(proc)
    proc = cli("rotate-key", "--password-stdin", "--yes", input=PASSWORD + "\n", check=True)
    assert "kept, renewed the next time each unlocks: phone 'Pixel 8'" in proc.stdout
    assert "removed phone 'Old phone': it was added by an older unlatch" in proc.stdout
    assert "unlatch devices revoke 'Old phone'" in proc.stdout
    status = json.loads(cli("status", "--json", check=True).stdout)
    assert {s["label"]: s["renewal"] for s in status["slots"]} == {
        "master password": "ready",
        "Pixel 8": "pending",
    }
    cli("lock", check=True)
    with client.connect(start=False) as agent:
        agent.call("unlock_slot", slot_id=phone, kek=base64.b64encode(kek).decode())
        assert {s["id"]: s["renewal"] for s in agent.call("slots")}[phone] == "ready"
    assert cli("get", "item", "--field", "password", check=True).stdout == "pw\n"
    proc = cli("rotate-key", "--password-stdin", input="wrong password\n")
    assert proc.returncode != 0 and "current master password is wrong" in proc.stderr


def test_kdf_options_never_go_below_owasp(cli: Cli) -> None:
    proc = cli(
        "init",
        "--password-stdin",
        "--kdf-memory-kib",
        "1024",
        "--kdf-time",
        "1",
        input=PASSWORD + "\n",
    )
    assert proc.returncode != 0 and "OWASP minimum" in proc.stderr
    assert not (cli.home / "desktop" / "vault.db").exists()
    proc = cli("init", "--password-stdin", "--kdf-memory-kib", "19456", input=PASSWORD + "\n")
    assert proc.returncode != 0 and "go together" in proc.stderr


def test_damaged_files_give_clear_errors(cli: Cli) -> None:
    desktop = cli.home / "desktop"
    desktop.mkdir(mode=0o700)
    (desktop / "vault.db").write_bytes(b"this is not a database\n" * 50)
    proc = cli("unlock", "--password-stdin", input=PASSWORD + "\n")
    assert proc.returncode != 0 and "not an unlatch vault" in proc.stderr
    no_traceback(proc)
    assert "not an unlatch vault" in cli("status", check=True).stdout


def test_tampered_item_is_reported_not_shown(cli: Cli) -> None:
    cli.init()
    cli("add", "target", input="secret-value\n", check=True)
    cli("lock", check=True)  # also drops the agent's decrypted-item cache
    conn = sqlite3.connect(cli.home / "desktop" / "vault.db")
    (ct,) = conn.execute("SELECT ciphertext FROM items").fetchone()
    flipped = bytes([ct[0] ^ 0x80]) + ct[1:]
    conn.execute("UPDATE items SET ciphertext = ?", (flipped,))
    conn.commit()
    conn.close()
    cli("unlock", "--password-stdin", input=PASSWORD + "\n", check=True)
    for command in (["list"], ["get", "target", "-f", "password"]):
        proc = cli(*command)
        assert proc.returncode != 0 and "integrity check" in proc.stderr
        assert "secret-value" not in proc.stdout + proc.stderr
        no_traceback(proc)


def test_help_teaches_every_command(cli: Cli) -> None:
    for command in (
        "init",
        "unlock",
        "lock",
        "status",
        "add",
        "list",
        "get",
        "edit",
        "rm",
        "generate",
        "passwd",
        "agent",
        "agent start",
        "agent stop",
        "agent status",
    ):
        proc = cli(*command.split(), "--help", check=True)
        assert "Example" in proc.stdout, command
    assert "--kdf-memory-kib" not in cli("init", "--help").stdout  # hidden test knob


def run_bytes(cli: Cli, *args: str, data: bytes) -> subprocess.CompletedProcess[str]:
    """The CLI with raw bytes on stdin (``Cli`` sends text)."""
    proc = subprocess.run(
        [sys.executable, "-m", "unlatch", *args],
        input=data,
        capture_output=True,
        env=cli.env,
        timeout=60,
    )
    return subprocess.CompletedProcess(
        proc.args,
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def test_stdin_that_is_not_utf8_is_refused_clearly(cli: Cli) -> None:
    cli.init()
    proc = run_bytes(cli, "add", "x", data=b"\xff\xfepw\n")
    assert proc.returncode == 2 and "not valid UTF-8" in proc.stderr
    no_traceback(proc)
    assert "no items" in cli("list").stderr  # nothing half-added
    cli("lock", check=True)
    proc = run_bytes(cli, "unlock", "--password-stdin", data=b"\xff\xfepw\n")
    assert proc.returncode == 2 and "master password on standard input" in proc.stderr
    no_traceback(proc)
    proc = run_bytes(cli, "unlock", "--password-stdin", data=b"x" * (64 * 1024 + 5) + b"\n")
    assert proc.returncode == 2 and "longer than" in proc.stderr
    # Valid UTF-8 beyond ASCII is fine.
    proc = run_bytes(cli, "unlock", "--password-stdin", data=PASSWORD.encode() + b"\n")
    assert proc.returncode == 0, proc.stderr
    proc = run_bytes(cli, "add", "café", data="pässwörd\n".encode())
    assert proc.returncode == 0, proc.stderr
    assert cli("get", "café", "-f", "password", check=True).stdout == "pässwörd\n"


def test_non_utf8_argument_is_a_clean_error(cli: Cli) -> None:
    cli.init()
    proc = subprocess.run(
        [sys.executable.encode(), b"-m", b"unlatch", b"get", b"\xff"],
        capture_output=True,
        env=cli.env,
        timeout=60,
    )
    stderr = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode != 0 and "not valid UTF-8" in stderr and "Traceback" not in stderr


def test_unusable_unlatch_home_is_named_not_a_traceback(cli: Cli, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    cases = [(a_file, "is not a directory"), (a_file / "below", "cannot create")]
    if os.geteuid() != 0:  # root can write anywhere
        locked = tmp_path / "read-only"
        locked.mkdir(mode=0o500)
        cases.append((locked / "home", "Permission denied"))
    for home, reason in cases:
        cli.env["UNLATCH_HOME"] = str(home)
        for command in (["status"], ["list"], ["agent", "status"], ["add", "x"]):
            proc = cli(*command, input="pw\n")
            assert proc.returncode == 1, (home, command)
            assert str(home) in proc.stderr and reason in proc.stderr, (home, proc.stderr)
            no_traceback(proc)
    # The home is fine but its desktop/ sub-directory is a file.
    home = tmp_path / "home2"
    home.mkdir()
    (home / "desktop").write_text("")
    cli.env["UNLATCH_HOME"] = str(home)
    proc = cli("status")
    assert proc.returncode == 1 and str(home / "desktop") in proc.stderr
    no_traceback(proc)
    cli.env["UNLATCH_HOME"] = str(cli.home)  # for the fixture's `agent stop`


def test_title_starting_with_dash_goes_after_double_dash(cli: Cli) -> None:
    cli.init()
    proc = cli("add", "-foo", input="pw\n")
    assert proc.returncode == 2 and "unlatch add -- -title" in proc.stderr
    proc = cli("get", "-foo")
    assert proc.returncode == 2 and "unlatch get -- -title" in proc.stderr
    added = json.loads(cli("add", "--json", "--", "-foo", input="dash-pw\n", check=True).stdout)
    assert added["title"] == "-foo"
    assert cli("get", "-f", "password", "--", "-foo", check=True).stdout == "dash-pw\n"
    assert cli("list", "--", "-fo", check=True).stdout.startswith("-foo")
    cli("edit", "-u", "dash-user", "--", "-foo", check=True)
    assert json.loads(cli("get", "--json", "--", "-foo", check=True).stdout)["username"] == (
        "dash-user"
    )
    assert "deleted '-foo'" in cli("rm", "--yes", "--", "-foo", check=True).stdout
    for command in ("add", "get", "edit", "rm"):
        help_text = " ".join(cli(command, "--help").stdout.split())
        assert "Put -- before a TITLE that starts with -" in help_text, command
    proc = cli("add", "--words", "x", "fine")  # a long option's bad value gets no such hint
    assert proc.returncode == 2 and "-- -title" not in proc.stderr


def test_add_and_edit_generate_take_the_generator_options(cli: Cli) -> None:
    cli.init()
    cli("add", "pin", "--generate", "-l", "12", "--no-lower", "--no-upper", "--no-symbols")
    assert re.fullmatch(r"[0-9]{12}\n", cli("get", "pin", "-f", "password", check=True).stdout)
    cli("add", "low", "--generate", "--length", "20", "--no-upper", "--no-digits", "--no-symbols")
    assert re.fullmatch(r"[a-z]{20}\n", cli("get", "low", "-f", "password", check=True).stdout)
    cli("edit", "pin", "--generate", "--passphrase", "--words", "4", "--separator", ".")
    words = cli("get", "pin", "-f", "password", check=True).stdout.strip().split(".")
    assert len(words) == 4 and all(w.isalpha() for w in words)
    cli("edit", "low", "--generate", "-l", "16", "--no-lower", "--no-digits", "--no-symbols")
    assert re.fullmatch(r"[A-Z]{16}\n", cli("get", "low", "-f", "password", check=True).stdout)
    # Generator options without --generate are an error, not silently ignored.
    for command in (["add", "x", "--length", "12"], ["edit", "low", "--no-symbols"]):
        proc = cli(*command, input="pw\n")
        assert proc.returncode == 2 and "use together with --generate" in proc.stderr, command
    proc = cli("add", "x", "--generate", "--no-lower", "--no-upper", "--no-digits", "--no-symbols")
    assert proc.returncode != 0 and "at least one character set" in proc.stderr
    assert [i["title"] for i in json.loads(cli("list", "--json").stdout)] == ["low", "pin"]


def test_edit_clears_urls_and_tags(cli: Cli) -> None:
    cli.init()
    cli("add", "site", "--url", "https://a.example", "--tag", "t1", "--tag", "t2", input="pw\n")
    cli("edit", "site", "--clear-urls", check=True)
    item = json.loads(cli("get", "site", "--json", check=True).stdout)
    assert item["urls"] == [] and item["tags"] == ["t1", "t2"]
    cli("edit", "site", "--clear-tags", check=True)
    item = json.loads(cli("get", "site", "--json", check=True).stdout)
    assert item["tags"] == [] and item["password"] == "pw"
    cli("edit", "site", "--notes", "n", check=True)
    cli("edit", "site", "--notes", "", check=True)
    assert json.loads(cli("get", "site", "--json", check=True).stdout)["notes"] == ""
    for flags in (["--url", "u", "--clear-urls"], ["--tag", "t", "--clear-tags"]):
        proc = cli("edit", "site", *flags)
        assert proc.returncode == 2 and "contradict" in proc.stderr, flags
    for command in ("add", "edit", "generate"):
        assert "--no-symbols" in cli(command, "--help", check=True).stdout, command
    assert "--clear-urls" in cli("edit", "--help", check=True).stdout


def test_add_warns_about_a_duplicate_title(cli: Cli) -> None:
    cli.init()
    first = json.loads(cli("add", "GitHub", "--json", input="a\n", check=True).stdout)
    assert "warning" not in cli("add", "Bank", input="b\n", check=True).stderr
    proc = cli("add", "github", "--json", input="c\n", check=True)  # other case: same title
    second = json.loads(proc.stdout)
    assert "warning: 2 items are now titled 'github'" in proc.stderr
    assert first["id"][:8] in proc.stderr and second["id"][:8] in proc.stderr
    assert "first 4+ characters" in proc.stderr


def test_item_ids_are_accepted_by_unique_prefix(cli: Cli) -> None:
    cli.init()
    made = [
        json.loads(cli("add", f"item{n}", "--json", input=f"pw{n}\n", check=True).stdout)
        for n in range(40)
    ]
    one = made[0]
    for command in (["get", one["id"][:4], "-f", "password"], ["get", one["id"][:8].upper()]):
        proc = cli(*command, check=True)
        assert "pw0" in proc.stdout or "item0" in proc.stdout, command
    cli("edit", one["id"][:6], "--username", "ada", check=True)
    assert json.loads(cli("get", one["id"], "--json", check=True).stdout)["username"] == "ada"
    # Too short: never a guess.
    proc = cli("get", one["id"][:3])
    assert proc.returncode != 0 and "at least 4 characters" in proc.stderr
    # A title wins over an id prefix that spells it.
    hexy = made[1]["id"][:4]
    cli("add", hexy, input="titled\n", check=True)
    assert cli("get", hexy, "-f", "password", check=True).stdout == "titled\n"
    proc = cli("rm", one["id"][:5], "--yes", check=True)
    assert "deleted 'item0'" in proc.stdout


def test_questions_follow_one_rule(cli: Cli) -> None:
    """--yes answers; otherwise the next stdin line is the answer (y/yes, anything else is
    no); no line at all stops the command with exit 2 and names --yes."""
    cli.init()
    for title in ("a", "b", "c"):
        cli("add", title, input="pw\n", check=True)
    proc = cli("rm", "a", input="")
    assert proc.returncode == 2 and "add --yes to answer yes" in proc.stderr
    proc = cli("rm", "a", input="n\n")
    assert proc.returncode == 1 and "Aborted" in proc.stderr
    proc = cli("rm", "a", input="\n")  # an empty answer is no, never a silent yes
    assert proc.returncode == 1
    assert "deleted 'a'" in cli("rm", "a", input="y\n", check=True).stdout
    assert "deleted 'b'" in cli("rm", "b", "--yes", check=True).stdout
    assert "deleted 'c'" in cli("rm", "c", "-y", check=True).stdout


def test_every_command_that_asks_uses_the_one_rule() -> None:
    """The commands with --yes are exactly the ones listed in unlatch.cli.ask, and no
    command asks a yes/no question any other way."""
    import click

    from unlatch.cli import ask, main

    listed = set(re.findall(r"``([a-z -]+)``", ask.__doc__.split("behave alike")[0]))
    ctx = click.Context(main, info_name="unlatch")
    with_yes: set[str] = set()

    def walk(cmd: click.Command, path: str) -> None:
        if any("--yes" in p.opts for p in cmd.params):
            with_yes.add(path)
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), f"{path} {name}".strip())  # type: ignore[arg-type]

    walk(main, "")
    assert with_yes == listed
    cli_dir = Path(ask.__file__).parent
    for source in cli_dir.glob("*.py"):
        if source.name != "ask.py":
            assert "click.confirm(" not in source.read_text(), source.name
