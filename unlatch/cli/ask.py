"""Yes/no questions: one rule for every command that asks.

The commands that ask (``rm``, ``passwd``, ``rotate-key``, ``pair``,
``devices revoke``, ``phone pair``, ``phone approve``, ``phone deny``,
``phone number-matching``, ``phone unblock``, ``phone unpair``) all behave alike:

* ``--yes`` / ``-y`` answers yes; nothing is asked or read.
* Otherwise the question goes to stderr and the answer is read from the
  terminal or, when standard input is not a terminal, from its next line
  (so ``printf 'y\\n' | unlatch rm forum`` works in a script). ``y``/``yes``
  is yes; ``n``/``no`` and an empty line are no (never a silent yes).
* No answer at all (end of input, e.g. ``< /dev/null`` or cron) stops the
  command before it does anything, with exit code 2 and a message naming
  ``--yes``: a script never hangs and never proceeds by default.

Secrets (master password, item password, PIN) are not questions: they have
their own rule (a hidden prompt, or ``--password-stdin`` / stdin lines; see
:mod:`unlatch.cli.vault_commands`).
"""

from __future__ import annotations

import sys

import click

from unlatch.errors import UnlatchError


class NoAnswerError(UnlatchError):
    """A question got no answer (no terminal, standard input at its end)."""

    exit_code = 2


def confirm(question: str, *, yes: bool) -> bool:
    """Ask ``question``; True for yes (see the module docstring for the rule)."""
    if yes:
        return True
    try:
        return bool(click.confirm(question, default=False, err=True))
    except click.Abort:
        if sys.stdin is not None and sys.stdin.isatty():
            raise  # Ctrl-C / Ctrl-D at the terminal: the user stopped it
        raise NoAnswerError(
            "no answer to the question (standard input is not a terminal and has no "
            "line left): add --yes to answer yes"
        ) from None


def confirm_or_abort(question: str, *, yes: bool) -> None:
    """Ask ``question``; a no stops the command ("Aborted!", exit 1) before it acts."""
    if not confirm(question, yes=yes):
        raise click.Abort()
