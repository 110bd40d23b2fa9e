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
    "rotate-key": "vault_commands",
    "import": "transfer_commands",
    "export": "transfer_commands",
    "agent": "agent_commands",
    "relay": "relay_commands",
    "phone": "phone_commands",
    "desktop": "desktop_commands",
    "pair": "desktop_commands",
    "devices": "desktop_commands",
    "demo": "desktop_commands",
    "browser": "browser_commands",
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
        except click.UsageError as exc:
            command = ctx.invoked_subcommand
            if command in _TITLE_COMMANDS and _maybe_dash_title(exc):
                hint = f"A TITLE that starts with - goes after --: unlatch {command} -- -title"
                raise click.UsageError(f"{exc.format_message()}\n{hint}", exc.ctx) from None
            raise


# Commands whose TITLE argument may start with "-" (click then reads it as options).
_TITLE_COMMANDS = frozenset({"add", "get", "edit", "rm"})


def _maybe_dash_title(exc: click.UsageError) -> bool:
    """Whether ``exc`` is what click says when a title like ``-foo`` was taken for options.

    ``-foo`` is an unknown ``-f`` (``add``, ``edit``, ``rm``), a bad value for
    a short option that exists (``get -f oo``), or it swallowed the title so
    TITLE is missing; a long option's bad value (``--length x``) is not.
    """
    if isinstance(exc, click.NoSuchOption):
        return True
    if isinstance(exc, click.BadParameter) and exc.param is not None:
        param = exc.param
        return isinstance(param, click.Argument) or any(
            len(opt) == 2 for opt in param.opts + param.secondary_opts
        )
    return False


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="unlatch")
def main() -> None:
    """unlatch: unlock your password vault with your phone or a passkey.

    \b
    Quick start:
      unlatch init                 # create a vault (asks for a master password)
      unlatch add github --generate
      unlatch lock
      unlatch unlock               # with the master password
      unlatch relay                # run the relay ("the service") on this machine
      unlatch pair                 # pair a phone (scan the QR with it)
      unlatch unlock --phone       # unlock by scanning a QR with the paired phone
      unlatch desktop              # the local web UI

    State lives in $UNLATCH_HOME (default: your user data directory).
    """
