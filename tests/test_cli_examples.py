"""Every example in every command's --help works as printed.

The examples are taken from the help text itself (lines of the
``Examples:`` / ``Example:`` / ``Typical use:`` / ``Quick start:`` blocks,
with their ``\\`` continuations). Each must be shell text a person can paste:
comments after ``#``, no ``<placeholder>`` (a redirection in a shell);
placeholders are CAPITALS (``LINK``, ``REQUEST_ID``). Each ``unlatch ...``
part must parse with click's own parser, through the real command tree. The
ones that are safe here (no phone, no relay, no browser, no terminal) then
run as printed in bash, in order, against a test vault.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from fixtures.vault import PASSWORD

from unlatch.cli import main

BLOCKS = ("Examples:", "Example:", "Typical use:", "Quick start:")
# Files that options with click.Path(exists=True) need to exist when parsed.
EXAMPLE_FILES = ("fullchain.pem", "privkey.pem")


def commands() -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(main, info_name="unlatch")

    def walk(cmd: click.Command, path: str) -> Iterator[tuple[str, click.Command]]:
        yield path, cmd
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, f"{path} {name}".strip())

    yield from walk(main, "")


def examples(cmd: click.Command) -> list[str]:
    """The example lines of a command's help (continuations joined)."""
    found: list[str] = []
    inside = False
    pending = ""
    for raw in (cmd.help or "").splitlines():
        line = raw.strip()
        if line in BLOCKS:
            inside = True
            continue
        if not inside:
            continue
        if not line:
            inside = False
            continue
        line = pending + line
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        found.append(line)
    return found


ALL = [(path, line) for path, cmd in commands() for line in examples(cmd)]


def unlatch_parts(line: str) -> list[list[str]]:
    """The argument lists of each ``unlatch`` command in a shell line (pipes, &&, <)."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.commenters = "#"
    lexer.whitespace_split = True
    parts: list[list[str]] = [[]]
    for token in lexer:
        if token in ("|", "&&", ";", "||"):
            parts.append([])
        else:
            parts[-1].append(token)
    result = []
    for part in parts:
        while part and "=" in part[0] and part[0].split("=")[0].isidentifier():
            part = part[1:]  # NAME=value before the command: the environment
        if "<" in part:  # "unlatch x < file": the redirection is the shell's
            part = part[: part.index("<")]
        if part and part[0] == "unlatch":
            result.append(part[1:])
    return result


def parse(args: list[str]) -> click.Context:
    """Parse like ``unlatch ARGS`` would, down to the leaf command (no callback runs)."""
    cmd: click.Command = main
    ctx = cmd.make_context("unlatch", list(args))
    while isinstance(cmd, click.Group):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return ctx  # a group run without a subcommand (e.g. `unlatch devices`)
        name, sub, rest = cmd.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        cmd = sub
        ctx = cmd.make_context(name, rest, parent=ctx)
    return ctx


def test_help_examples_exist_for_every_command() -> None:
    with_examples = {path for path, _ in ALL}
    hidden = {"browser host"}  # launched by the browser, not by people
    for path, cmd in commands():
        if path and not cmd.hidden and path not in hidden and path.split()[0] != "browser":
            assert path in with_examples, f"`unlatch {path} --help` has no example"
    assert len(ALL) > 60


@pytest.mark.parametrize(("path", "line"), ALL, ids=[f"{p or 'unlatch'}: {ln}" for p, ln in ALL])
def test_help_example_parses(
    path: str, line: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "<" not in line.split("#")[0].replace("< password-file", ""), "a <placeholder>"
    monkeypatch.chdir(tmp_path)
    for name in EXAMPLE_FILES:
        (tmp_path / name).write_text("x")
    parts = unlatch_parts(line)
    assert parts, f"no unlatch command in {line!r}"
    for args in parts:
        try:
            parse(args)
        except click.ClickException as exc:
            pytest.fail(f"`unlatch {path} --help` example {line!r}: {exc.format_message()}")


# Run as printed, in this order, against one vault (each line must exit 0).
# Not run here: what needs a phone, a relay, a browser, a terminal or a
# second machine (pair, unlock --phone, desktop, demo, relay, phone ..., the
# prompts of `init`/`unlock`/`passwd` without --password-stdin).
RUN = [
    ("init", "printf '%s\\n' \"$PASSWORD\" | unlatch init --password-stdin"),
    ("add", "unlatch add github -u alice --url https://github.com --generate"),
    ("add", "unlatch add bank --generate --length 16 --no-symbols"),
    ("add", "printf 'hunter2\\n' | unlatch add forum -u bob"),
    ("add", "unlatch add --generate -- -dash-title"),
    ("list", "unlatch list"),
    ("list", "unlatch list github"),
    ("get", "unlatch get github"),
    ("get", "unlatch get --field password -- -dash-title"),
    ("edit", "unlatch edit github --username alice2"),
    ("edit", "unlatch edit github --generate --length 32 --no-symbols"),
    ("edit", "unlatch edit github --clear-urls --clear-tags"),
    ("edit", "printf 'new-secret\\n' | unlatch edit forum --password"),
    ("edit", "unlatch edit github --url https://github.com --url https://gist.github.com"),
    ("edit", "unlatch edit --username bob -- -dash-title"),
    ("rm", "unlatch rm --yes -- -dash-title"),
    ("generate", "unlatch generate"),
    ("generate", "unlatch generate --length 16 --no-symbols"),
    ("generate", "unlatch generate --passphrase --words 7"),
    ("status", "unlatch status"),
    ("status", "unlatch status --json | jq .unlocked"),
    ("agent status", "unlatch agent status"),
    ("agent status", "unlatch agent status --json | jq .idle_lock_seconds"),
    ("devices", "unlatch devices"),
    ("phone init", 'unlatch phone --home ~/.phone2 init --name "Test phone"'),
    ("passwd", 'printf \'%s\\n%s\\n\' "$OLD" "$NEW" | unlatch passwd --password-stdin'),
    ("lock", "unlatch lock"),
    ("unlock", "unlatch unlock --password-stdin < password-file"),
    ("agent stop", "unlatch agent stop"),
]


def test_help_examples_run_as_printed(tmp_path: Path) -> None:
    printed = set(ALL)
    for entry in RUN:
        assert entry in printed, f"{entry} is no longer in the help: update RUN"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "unlatch"  # the `unlatch` command, as after `pip install`
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m unlatch "$@"\n')
    shim.chmod(0o755)
    home = tmp_path / "home"
    work = tmp_path / "work"
    work.mkdir()
    new = "another horse battery staple"
    (work / "password-file").write_text(new + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLATCH_")}
    env.update(
        UNLATCH_HOME=str(home),
        HOME=str(tmp_path),
        PATH=f"{bin_dir}:{env['PATH']}",
        PASSWORD=PASSWORD,
        OLD=PASSWORD,
        NEW=new,
    )
    try:
        for path, line in RUN:
            proc = subprocess.run(
                ["bash", "-o", "pipefail", "-c", line],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
            )
            assert proc.returncode == 0, f"{line!r} ({path}):\n{proc.stdout}\n{proc.stderr}"
            assert "Traceback" not in proc.stderr
    finally:
        subprocess.run(
            [sys.executable, "-m", "unlatch", "agent", "stop"], env=env, capture_output=True
        )
