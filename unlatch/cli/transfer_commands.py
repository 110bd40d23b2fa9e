"""``unlatch import`` and ``unlatch export``: move items in and out of the vault.

Files are parsed here, in the CLI process (a hostile file never reaches the
agent that holds the vault key); the items go to the agent in batches and are
committed in one transaction, so a failure at any point leaves the vault as it
was. File passwords (KeePass database, unlatch export) come from a hidden
prompt, ``--password-file`` or ``--password-stdin``, never from arguments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from unlatch.cli import main
from unlatch.cli.vault_commands import (
    MAX_STDIN_LINE,
    InputError,
    _agent,
    _echo_json,
    _kdf_args,
    _require_unlocked,
    _stdin_is_terminal,
    _with_kdf_options,
    read_stdin_line,
)
from unlatch.vault.items import EDITABLE_FIELDS, Item
from unlatch.vault.kdf import KdfParams
from unlatch.vault.transfer import (
    EXPORTERS,
    IMPORTERS,
    ImportResult,
    export_items,
    import_file,
    write_private,
)
from unlatch.vault.transfer.base import MAX_FILE_BYTES, FileTooLargeError

BATCH_BYTES = 192 * 1024  # below the agent's 256 KiB request limit


class FilePasswords:
    """Where file passwords come from: ``--password-file``, stdin, or a hidden prompt."""

    def __init__(self, password_file: Path | None, from_stdin: bool) -> None:
        self.password_file = password_file
        self.from_stdin = from_stdin

    def __call__(self, what: str, *, confirm: bool = False) -> str:
        if self.password_file is not None:
            return _first_line(self.password_file, what)
        if self.from_stdin:
            return read_stdin_line(what)
        if not _stdin_is_terminal():
            raise InputError(
                f"no terminal to ask for {what}: use --password-file or --password-stdin"
            )
        prompt = what[0].upper() + what[1:]
        return str(click.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def _first_line(path: Path, what: str) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.readline(MAX_STDIN_LINE + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        line = raw.rstrip(b"\r\n").decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} in {path} is not UTF-8 text") from None
    if not line or len(raw) > MAX_STDIN_LINE:
        raise InputError(f"{path} has no usable first line for {what}")
    return line


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise FileTooLargeError(f"{path} is larger than {MAX_FILE_BYTES // 1048576} MiB")
        with path.open("rb") as fh:
            return fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None


def _batches(items: list[Item]) -> list[list[dict[str, Any]]]:
    """Items as dicts, grouped so each request stays under :data:`BATCH_BYTES`."""
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for item in items:
        full = item.to_dict()
        data = {k: full[k] for k in EDITABLE_FIELDS}  # the vault assigns id, version, times
        n = len(json.dumps(data, ensure_ascii=False).encode("utf-8"))
        if batches[-1] and size + n > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(data)
        size += n
    return batches


def _echo_report(result: ImportResult, *, dry_run: bool) -> None:
    lines = result.report()
    if dry_run:
        lines[0] = lines[0].replace("imported", "would import", 1) + " (dry run: vault unchanged)"
    for line in lines:
        click.echo(line)


password_options = [
    click.option(
        "--password-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Read the file's password from the first line of this file.",
    ),
    click.option(
        "--password-stdin", is_flag=True, help="Read the file's password from standard input."
    ),
]


@main.command("import")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(list(IMPORTERS)))
# Not exists=True: the command reads the file itself and says "cannot read FILE: why".
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Read the file and report; change nothing.")
@password_options[0]
@password_options[1]
@click.option("--json", "as_json", is_flag=True, help="Machine-readable report.")
def import_command(
    fmt: str,
    file: Path,
    dry_run: bool,
    password_file: Path | None,
    password_stdin: bool,
    as_json: bool,
) -> None:
    """Import items from another password manager, a browser, or an unlatch export.

    FORMAT is one of: bitwarden (JSON or CSV), 1password (1PUX or CSV),
    keepass (KDBX 4), keepassxc-csv, chrome, firefox, safari, unlatch. JSON,
    CSV and 1PUX are told apart by the content. All items are added in one
    transaction: a malformed file changes nothing. What has no place on an
    item is kept in custom fields or the notes; the report lists what was
    skipped and why.

    \b
    Examples:
      unlatch import bitwarden bitwarden_export.json --dry-run
      unlatch import chrome "Chrome Passwords.csv"
      unlatch import keepass Passwords.kdbx
      unlatch import keepass Passwords.kdbx --password-file kdbx-password.txt
      unlatch import unlatch backup.unlatch
    """
    data = _read_file(file)
    passwords = FilePasswords(password_file, password_stdin)
    if dry_run:
        result = import_file(fmt, data, passwords)
    else:
        with _agent() as agent:
            _require_unlocked(agent)
            result = import_file(fmt, data, passwords)
            if result.items:
                token = agent.call("import_begin")["token"]
                for batch in _batches(result.items):
                    agent.call("import_add", token=token, items=batch)
                agent.call("import_commit", token=token)
    if as_json:
        _echo_json(
            {
                "format": result.format,
                "dry_run": dry_run,
                "imported": 0 if dry_run else len(result.items),
                "found": len(result.items),
                "skipped": [{"entry": s.entry, "reason": s.reason} for s in result.skipped],
                "ignored": result.ignored,
            }
        )
    else:
        _echo_report(result, dry_run=dry_run)


@main.command("export")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(list(EXPORTERS)))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--unencrypted",
    is_flag=True,
    help="Confirm writing every secret in the clear (needed for csv).",
)
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@password_options[0]
@password_options[1]
@_with_kdf_options
def export_command(
    fmt: str,
    file: Path,
    unencrypted: bool,
    force: bool,
    password_file: Path | None,
    password_stdin: bool,
    kdf_memory_kib: int | None,
    kdf_time: int | None,
) -> None:
    """Export every item to FILE (created with mode 0600, written whole or not at all).

    FORMAT is unlatch (encrypted with a password of its own: Argon2id and
    AES-256-GCM; import it again with `unlatch import unlatch FILE`), keepass
    (a KDBX 4 database for KeePassXC, with its own password) or csv (every
    secret in the clear: only with --unencrypted).

    \b
    Examples:
      unlatch export unlatch backup.unlatch
      unlatch export keepass vault.kdbx
      unlatch export csv vault.csv --unencrypted
    """
    exporter = EXPORTERS[fmt]
    if not exporter.encrypted and not unencrypted:
        raise InputError(
            f"a {fmt} export holds every password in the clear: add --unencrypted to confirm, "
            "or use `unlatch export unlatch FILE` (encrypted)"
        )
    if file.exists() and not force:
        raise InputError(f"{file} exists: choose another name or add --force")
    kdf = _kdf_args(kdf_memory_kib, kdf_time).get("kdf")
    params = KdfParams(kdf["memory_kib"], kdf["time_cost"]) if kdf else None
    with _agent() as agent:
        _require_unlocked(agent)
        password = None
        if exporter.encrypted:
            password = FilePasswords(password_file, password_stdin)(
                "a password for the export", confirm=True
            )
        items = [Item.from_dict(d) for d in agent.call("export")]
    write_private(file, export_items(fmt, items, password, kdf_params=params), overwrite=force)
    click.echo(f"exported {len(items)} item(s) to {file} ({exporter.description.split(' (')[0]})")
