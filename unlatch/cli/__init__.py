"""The ``unlatch`` command line.

Each area registers its commands onto :data:`main` from its own module
(``vault_commands``, ``relay_commands``, ...), imported lazily by command
name; this file only assembles the group and turns
:class:`~unlatch.errors.UnlatchError` into a clean message and exit code.
"""

from __future__ import annotations

import importlib
import sys

import click

from unlatch import __version__
from unlatch.errors import UnlatchError

# Which module defines each top-level command. Modules are imported only when
# their command runs (or for --help), so `unlatch get` does not pay for the
# relay, the web UI and the phone client at every start.
_COMMAND_MODULES: dict[str, str] = {
    "init": "vault_commands",
    "unlock": "vault_commands",
    "lock": "vault_commands",
    "status": "vault_commands",
    "add": "vault_commands",
    "list": "vault_commands",
    "get": "vault_commands",
    "edit": "vault_commands",
    "rm": "vault_commands",
    "generate": "vault_commands",
    "passwd": "vault_commands",
    "agent": "agent_commands",
    "relay": "relay_commands",
    "phone": "phone_commands",
    "desktop": "desktop_commands",
    "pair": "desktop_commands",
    "devices": "desktop_commands",
    "demo": "desktop_commands",
}


class _Group(click.Group):
    """The top-level group: lazy command modules, and expected errors without a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(_COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"unlatch.cli.{module}")
        return self.commands.get(cmd_name)

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
