"""``unlatch browser``: connect the browser extension to this machine's vault."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from unlatch.browser import install as installer
from unlatch.cli import main


@main.group("browser")
def browser() -> None:
    """The browser extension: install its native messaging host, check it.

    \b
    The extension (web/extension, loaded in Chromium, Chrome, Edge or Brave)
    reaches the vault through a small host program the browser starts; this
    command registers it, for the extension's pinned id only.

    \b
    Examples:
      unlatch browser install                   # every browser found
      unlatch browser install --browser chrome  # only Google Chrome
      unlatch browser status
      unlatch browser uninstall
    """


_BROWSER = click.option(
    "--browser",
    type=click.Choice(installer.BROWSER_NAMES),
    default=None,
    help="Only this browser (default: every one with a profile on this machine).",
)
_USER_DATA = click.option(
    "--user-data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A Chromium-family profile directory started with --user-data-dir (portable browsers).",
)


@browser.command("install")
@_BROWSER
@_USER_DATA
def browser_install(browser: str | None, user_data_dir: Path | None) -> None:
    """Register the host with the browser(s); the extension can then unlock and fill."""
    for line in installer.install(browser, user_data_dir):
        click.echo(f"installed for {line}")
    click.echo("Reload the unlatch extension (or restart the browser) to connect.")


@browser.command("uninstall")
@_BROWSER
@_USER_DATA
def browser_uninstall(browser: str | None, user_data_dir: Path | None) -> None:
    """Remove the host registration (the extension then shows "not connected")."""
    removed = installer.uninstall(browser, user_data_dir)
    for line in removed:
        click.echo(f"removed from {line}")
    if not removed:
        click.echo("nothing to remove: the host was not installed")


@browser.command("status")
@_USER_DATA
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def browser_status(user_data_dir: Path | None, as_json: bool) -> None:
    """Which browsers are found and where the host is installed."""
    rows = installer.status(user_data_dir)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        found = "" if row["found"] else " (browser not found)"
        click.echo(f"{row['title']}{found}: {row['state']} ({row['manifest']})")


@browser.command(
    "host",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    hidden=True,
)
@click.argument("caller", nargs=-1, type=click.UNPROCESSED)
def browser_host(caller: tuple[str, ...]) -> None:
    """The native messaging host itself (the browser starts it; not for people)."""
    from unlatch.browser import host

    sys.exit(host.main(list(caller)))
