"""The root of every error unlatch raises on purpose.

A :class:`UnlatchError` carries a message written for a person; the CLI prints
it (without a traceback) and exits non-zero. Messages never contain secrets.
"""


class UnlatchError(Exception):
    """An expected failure with a message a user can act on."""

    exit_code: int = 1


class StateDirError(UnlatchError):
    """unlatch's state directory (``$UNLATCH_HOME``) cannot be created or used."""
