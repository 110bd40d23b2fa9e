"""Scratch files of a vault being created, and the sweep of ones a crash left behind.

:meth:`Vault.create` builds the new file under ``.<name>.<random>.creating``
and links it into place, so a crash never leaves a half-made vault at the
real path. A crash (or ``kill -9``) during that window used to leave the
scratch file, with its SQLite ``-wal``/``-shm`` companions, behind for good.

The creator holds an exclusive ``flock`` on its scratch file for as long as it
exists. The next creation of a vault in the same directory removes every
scratch file of that vault name whose lock it can take: nobody is building
it any more. A scratch file of an ``init`` still running stays locked and is
left alone. (``flock`` is per open file description, so it does not interfere
with SQLite's own POSIX record locks on the same file.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

SUFFIX = ".creating"
COMPANIONS = ("", "-wal", "-shm")


def _remove(scratch: Path) -> None:
    for companion in COMPANIONS:
        Path(f"{scratch}{companion}").unlink(missing_ok=True)


def sweep(path: Path) -> list[Path]:
    """Remove the scratch files of crashed creations of the vault at ``path``; return them."""
    removed: list[Path] = []
    for scratch in sorted(path.parent.glob(f".{path.name}.*{SUFFIX}")):
        try:
            fd = os.open(scratch, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            continue  # gone meanwhile, or a symlink: not ours to follow
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a creation in progress holds it
            _remove(scratch)
            removed.append(scratch)
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def scratch_file(path: Path, token: str) -> Iterator[Path]:
    """Create ``.<name>.<token>.creating`` (0600, exclusive), locked while in use.

    The file and its SQLite companions are removed on the way out, whatever
    happens; if the process dies instead, the lock dies with it and the next
    :func:`sweep` removes them.
    """
    scratch = path.with_name(f".{path.name}.{token}{SUFFIX}")
    fd = os.open(scratch, os.O_CREAT | os.O_EXCL | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield scratch
    finally:
        _remove(scratch)
        os.close(fd)
