"""The ``unlatch`` command line.

Each area registers its commands from its own module (``vault_commands``,
``relay_commands``, ...), so this file only assembles the group and turns
:class:`~unlatch.errors.UnlatchError` into a clean message and exit code.
"""

from __future__ import annotations

import sys

import click

from unlatch import __version__
from unlatch.errors import UnlatchError


class _Group(click.Group):
    """A group that reports expected errors without a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UnlatchError as exc:
            click.echo(f"unlatch: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="unlatch")
def main() -> None:
    """unlatch: unlock your password vault with your phone or a passkey.

    \b
    Quick start:
      unlatch init                 create a vault (asks for a master password)
      unlatch add github --generate
      unlatch lock
      unlatch unlock               master password
      unlatch relay                run the relay ("the service") on this machine
      unlatch pair                 pair a phone (scan the QR with it)
      unlatch unlock --phone       unlock by scanning a QR with the paired phone
      unlatch desktop              the local web UI

    State lives in $UNLATCH_HOME (default: your user data directory).
    """


def _register() -> None:
    """Import the modules that add commands to :data:`main`."""
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(f"unlatch.cli.{name}")


# Each entry is a module under unlatch/cli/ that decorates commands onto `main`.
_COMMAND_MODULES: list[str] = [
    "relay_commands",
    "vault_commands",
    "agent_commands",
    "phone_commands",
    "desktop_commands",
]

_register()
