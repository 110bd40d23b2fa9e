"""Item types, import and export through the real CLI (``python -m unlatch``) and agent.

Names match ``-k "import or export"`` or ``-k item_type``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import sys
from pathlib import Path

from fixtures.vault import KDF_ARGS, PASSWORD, Cli
from pykeepass import PyKeePass
from test_agent_socket import agent, exchange, req  # noqa: F401  (agent is a fixture)
from test_cli_vault import no_traceback

from unlatch.vault import OWASP_MINIMUM

FILE_PASSWORD = "file password 789"


def titles(cli: Cli) -> list[str]:
    return [i["title"] for i in json.loads(cli("list", "--json", check=True).stdout)]


def chrome_csv(n: int) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["name", "url", "username", "password", "note"])
    for i in range(n):
        writer.writerow(
            [f"site {i:04d}", f"https://s{i}.example", f"user{i}", f"pw-{i}", "n" * 100]
        )
    return out.getvalue()


def test_cli_item_type_card_add_get_list_edit(cli: Cli) -> None:
    cli.init()
    proc = cli(
        "add",
        "visa",
        "--type",
        "card",
        "--set",
        "cardholder=A. Person",
        "--set",
        "exp_year=2030",
        "--secret",
        "number",
        "--secret",
        "code",
        "--hidden-field",
        "online pin",
        "--field",
        "bank=Example Bank",
        "--favorite",
        input="4111111111111111\n123\n9999\n",
    )
    assert proc.returncode == 0, proc.stderr
    cli("add", "github", "-u", "alice", input="pw\n", check=True)
    shown = cli("get", "visa", check=True).stdout
    assert "type:     card" in shown and "(favourite)" in shown
    assert "Cardholder name: A. Person" in shown and "online pin (hidden): ********" in shown
    for secret in ("4111111111111111", "123", "9999"):
        assert secret not in shown
    assert cli("get", "visa", "-f", "number", check=True).stdout == "4111111111111111\n"
    assert cli("get", "visa", "-f", "online pin", check=True).stdout == "9999\n"
    listing = cli("list", check=True).stdout
    assert "* visa" in listing and "[card]" in listing
    assert titles_of(cli, "--type", "card") == ["visa"]
    assert titles_of(cli, "--favorites") == ["visa"]
    listed = json.loads(cli("list", "visa", "--json", check=True).stdout)[0]
    hidden = next(f for f in listed["fields"] if f["name"] == "online pin")
    assert "number" not in listed["data"] and "value" not in hidden
    # A secret field is never taken from the command line.
    proc = cli("edit", "visa", "--set", "number=4000")
    assert proc.returncode != 0 and "--secret number" in proc.stderr
    no_traceback(proc)
    proc = cli("edit", "visa", "--no-favorite", "--remove-field", "bank", "--set", "brand=Visa")
    assert proc.returncode == 0, proc.stderr
    item = json.loads(cli("get", "visa", "--json", check=True).stdout)
    assert item["favorite"] is False and item["data"]["brand"] == "Visa"
    assert [f["name"] for f in item["fields"]] == ["online pin"]
    assert item["data"]["number"] == "4111111111111111"  # untouched by the edit
    proc = cli("add", "x", "--type", "note", "--set", "number=1")
    assert proc.returncode != 0 and "has no field 'number'" in proc.stderr


def titles_of(cli: Cli, *args: str) -> list[str]:
    return [i["title"] for i in json.loads(cli("list", *args, "--json", check=True).stdout)]


def test_cli_import_chrome_dry_run_then_import_in_batches(cli: Cli, tmp_path: Path) -> None:
    cli.init()
    src = tmp_path / "Chrome Passwords.csv"
    src.write_text(chrome_csv(1500))  # several socket batches, one transaction
    proc = cli("import", "chrome", str(src), "--dry-run", check=True)
    assert "would import 1500 item(s) from chrome (dry run: vault unchanged)" in proc.stdout
    assert titles(cli) == []
    proc = cli("import", "chrome", str(src), check=True)
    assert proc.stdout.startswith("imported 1500 item(s) from chrome")
    assert len(titles(cli)) == 1500
    assert cli("get", "site 0042", "-f", "password", check=True).stdout == "pw-42\n"


def test_cli_import_malformed_file_names_the_entry_and_changes_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    cli.init()
    cli("add", "existing", input="pw\n", check=True)
    bad = tmp_path / "bitwarden.json"
    items = [{"type": 1, "name": f"ok {n}", "login": {"username": "u"}} for n in range(5)]
    items.append({"type": 1, "name": "broken", "login": {"uris": "not a list"}})
    bad.write_text(json.dumps({"encrypted": False, "items": items}))
    proc = cli("import", "bitwarden", str(bad))
    assert proc.returncode == 2 and "item 6 ('broken') uris must be a list" in proc.stderr
    no_traceback(proc)
    assert titles(cli) == ["existing"]


async def test_agent_import_commit_is_one_transaction(agent: Path) -> None:  # noqa: F811
    """A batch that fails at commit leaves every earlier batch out too."""
    kdf = {"memory_kib": OWASP_MINIMUM.memory_kib, "time_cost": OWASP_MINIMUM.time_cost}
    replies = await exchange(agent, req("init", password=PASSWORD, kdf=kdf), req("import_begin"))
    token = replies[1]["result"]["token"]
    replies = await exchange(
        agent,
        req("import_add", token=token, items=[{"title": "a"}, {"title": "b"}]),
        req("import_add", token=token, items=[{"title": "x" * 300}]),
        req("import_commit", token=token),
        req("import_commit", token=token),
        req("search"),
    )
    assert replies[0]["result"] == {"staged": 2} and replies[1]["result"] == {"staged": 3}
    assert replies[2]["error"]["type"] == "InvalidItemError"
    assert "no such import" in replies[3]["error"]["message"]
    assert replies[4]["result"] == []
    # Locking drops staged items (they hold secrets).
    replies = await exchange(agent, req("import_begin"))
    token = replies[0]["result"]["token"]
    replies = await exchange(
        agent,
        req("import_add", token=token, items=[{"title": "a", "password": "pw"}]),
        req("lock"),
        req("unlock", password=PASSWORD),
        req("import_commit", token=token),
    )
    assert "no such import" in replies[3]["error"]["message"]


def test_cli_import_keepass_password_from_stdin_or_file(cli: Cli, tmp_path: Path) -> None:
    from pykeepass import create_database

    cli.init()
    db = tmp_path / "Passwords.kdbx"
    kp = create_database(str(db), password=FILE_PASSWORD)
    kp.add_entry(kp.root_group, "Mail", "alice", "mail-pw")
    kp.save()
    proc = cli("import", "keepass", str(db))  # no terminal, no password source
    assert proc.returncode == 2 and "--password-file or --password-stdin" in proc.stderr
    proc = cli("import", "keepass", str(db), "--password-stdin", input="wrong password\n")
    assert proc.returncode == 1 and "wrong password for the KeePass database" in proc.stderr
    no_traceback(proc)
    pw_file = tmp_path / "kdbx-password.txt"
    pw_file.write_text(FILE_PASSWORD + "\n")
    proc = cli("import", "keepass", str(db), "--password-file", str(pw_file), check=True)
    assert "imported 1 item(s) from keepass" in proc.stdout
    assert cli("get", "Mail", "-f", "password", check=True).stdout == "mail-pw\n"


def test_cli_export_unlatch_then_import_gives_the_same_items(cli: Cli, tmp_path: Path) -> None:
    cli.init()
    cli(
        "add",
        "github",
        "-u",
        "alice",
        "--url",
        "https://github.com",
        "--tag",
        "dev",
        "--field",
        "team=core",
        "--favorite",
        input="gh-pw\n",
        check=True,
    )
    cli(
        "add",
        "visa",
        "--type",
        "card",
        "--secret",
        "number",
        input="4111111111111111\n",
        check=True,
    )
    before = json.loads(cli("list", "--json", check=True).stdout)
    out = tmp_path / "backup.unlatch"
    proc = cli(
        "export", "unlatch", str(out), "--password-stdin", *KDF_ARGS, input=FILE_PASSWORD + "\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert b"gh-pw" not in out.read_bytes() and b"4111" not in out.read_bytes()
    proc = cli("export", "unlatch", str(out), "--password-stdin", input=FILE_PASSWORD + "\n")
    assert proc.returncode != 0 and "exists" in proc.stderr  # never overwritten silently
    for title in ("github", "visa"):
        cli("rm", title, "--yes", check=True)
    proc = cli("import", "unlatch", str(out), "--password-stdin", input=FILE_PASSWORD + "\n")
    assert proc.returncode == 0 and "imported 2 item(s) from unlatch" in proc.stdout
    after = json.loads(cli("list", "--json", check=True).stdout)

    def same(items: list[dict]) -> list[dict]:  # type: ignore[type-arg]
        return [
            {k: v for k, v in i.items() if k not in ("id", "version", "created_at", "updated_at")}
            for i in items
        ]

    assert same(after) == same(before)
    assert cli("get", "visa", "-f", "number", check=True).stdout == "4111111111111111\n"


def test_cli_export_keepass_opens_with_pykeepass(cli: Cli, tmp_path: Path) -> None:
    cli.init()
    cli("add", "github", "-u", "alice", input="gh-pw\n", check=True)
    out = tmp_path / "vault.kdbx"
    cli("export", "keepass", str(out), "--password-stdin", input=FILE_PASSWORD + "\n", check=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    kp = PyKeePass(str(out), password=FILE_PASSWORD)
    entry = kp.find_entries(title="github", first=True)
    assert kp.version == (4, 0) and (entry.username, entry.password) == ("alice", "gh-pw")


def test_cli_export_csv_only_with_unencrypted(cli: Cli, tmp_path: Path) -> None:
    cli.init()
    cli("add", "github", "-u", "alice", input="gh-pw\n", check=True)
    out = tmp_path / "vault.csv"
    proc = cli("export", "csv", str(out))
    assert proc.returncode == 2 and "--unencrypted" in proc.stderr and not out.exists()
    cli("export", "csv", str(out), "--unencrypted", check=True)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    (row,) = csv.DictReader(io.StringIO(out.read_text()))
    assert (row["title"], row["password"]) == ("github", "gh-pw")


def test_cli_import_export_help_has_examples(cli: Cli) -> None:
    for command in ("import", "export"):
        proc = cli(command, "--help", check=True)
        assert "Examples:" in proc.stdout
    assert "--kdf-memory-kib" not in cli("export", "--help").stdout
    assert "1password" in cli("import", "--help").stdout


def test_cli_item_type_help_examples_work_as_printed(cli: Cli, tmp_path: Path) -> None:
    """The card and note examples of `unlatch add --help`, run by a shell as printed."""
    import subprocess

    cli.init()
    lines = cli("add", "--help", check=True).stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if "--type card" in line)
    card = "\n".join(line.strip() for line in lines[start : start + 3])
    (note,) = [line.strip() for line in lines if "--type note" in line]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "unlatch").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m unlatch "$@"\n')
    (bin_dir / "unlatch").chmod(0o755)
    env = {**cli.env, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for example in (card, note):
        proc = subprocess.run(["bash", "-c", example], env=env, capture_output=True, text=True)
        assert proc.returncode == 0, (example, proc.stderr)
    assert cli("get", "visa", "-f", "code", check=True).stdout == "123\n"
    assert json.loads(cli("get", "wifi at home", "--json", check=True).stdout)["favorite"]
