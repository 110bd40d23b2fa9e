"""Launch files: the browser gets the launch secret from a private file, never from argv.

``unlatch desktop`` used to open ``http://localhost:PORT/?k=<secret>`` with
:func:`webbrowser.open`, which runs the browser with that URL as an argument,
and every local user can read every process's arguments in
``/proc/PID/cmdline``: a watcher redeemed the secret before the browser did.

Instead, as Jupyter does, the agent writes a small HTML page into a private
directory, and the browser is started with that file's path
(``file:///…/launch-<random>.html``), which opens nothing for anyone who
cannot read the file. The page redirects to the UI's hand-over page on
localhost with the secret in the ``#fragment``
(:meth:`~unlatch.desktop.web.security.UISecurity.new_handover_url`: a
navigation started by a ``file://`` page is cross-site, so the
``SameSite=Strict`` session cookie would not follow the launch link's own
redirect). Where and how:

* the directory is ``$XDG_RUNTIME_DIR/unlatch`` (a per-user tmpfs, so the
  secret never reaches a disk) when that directory is the user's own and
  private, else ``$UNLATCH_HOME/desktop/launch``; either is made 0700 and
  checked (a directory, not a link, owned by this user, nothing for group or
  others) before any file is written in it;
* a file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and mode 0600 from
  the first instant (no window where it is readable, no following a planted
  link), with a random name;
* it is deleted as soon as its secret is spent: redeemed, expired (10
  minutes), evicted by newer ones, or the agent exits; files of an agent that
  died are removed by the next one once they are older than a secret's life.

The secret thus exists in the agent's memory, in this file, and in the
user's own browser, and nowhere a process list shows.
"""

from __future__ import annotations

import contextlib
import html
import os
import secrets
import stat
import time
from pathlib import Path

from unlatch import paths
from unlatch.desktop.errors import DesktopError

PREFIX = "launch-"
SUFFIX = ".html"
RUNTIME_SUBDIR = "unlatch"


class LaunchFileError(DesktopError):
    """The launch file could not be written safely."""

    code = "launch_file"
    status = 500


def _private(path: Path, *, create: bool) -> bool:
    """Whether ``path`` is a directory of this user that no one else can enter or write.

    With ``create``, makes it (0700) when missing and takes group/other bits
    off a directory of ours.
    """
    if create:
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return False
    if st.st_mode & 0o077:
        if not create:
            return False
        os.chmod(path, 0o700)
    return True


def launch_dir() -> Path:
    """The private directory launch files go to (created 0700; see the module doc)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and Path(runtime).is_absolute() and _private(Path(runtime), create=False):
        candidate = Path(runtime) / RUNTIME_SUBDIR
    else:
        candidate = paths.subdir("desktop") / "launch"
    try:
        ok = _private(candidate, create=True)
    except OSError as exc:
        raise LaunchFileError(f"cannot create {candidate}: {exc.strerror or exc}") from None
    if not ok:
        raise LaunchFileError(
            f"{candidate} is not a private directory of this user: remove it and try again"
        )
    return candidate


def page(url: str) -> bytes:
    """The redirecting page: a meta refresh to ``url``, and a link if refreshes are off."""
    href = html.escape(url, quote=True)
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<meta name="referrer" content="no-referrer">'
        f'<meta http-equiv="refresh" content="0;url={href}">'
        "<title>unlatch</title></head><body>"
        f'<p><a href="{href}">Open the unlatch vault window</a></p>'
        "</body></html>"
    ).encode()


class LaunchFiles:
    """The launch files of one UI, by the key (digest) of the secret each one holds."""

    def __init__(self, stale_after: float) -> None:
        self._stale_after = stale_after
        self._dir: Path | None = None
        self._files: dict[str, Path] = {}

    def _directory(self) -> Path:
        if self._dir is None:
            self._dir = launch_dir()
            self._remove_stale(self._dir)
        return self._dir

    def _remove_stale(self, directory: Path) -> None:
        # Left by an agent that was killed: their secrets died with it, and every
        # live one is younger than a secret's life (so another agent's are safe).
        cutoff = time.time() - self._stale_after
        for old in directory.glob(f"{PREFIX}*{SUFFIX}"):
            with contextlib.suppress(OSError):
                if old.lstat().st_mtime < cutoff:
                    old.unlink()

    def write(self, key: str, url: str) -> Path:
        """A new 0600 file redirecting to ``url`` (which holds the secret of ``key``)."""
        directory = self._directory()
        path = directory / f"{PREFIX}{secrets.token_hex(12)}{SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise LaunchFileError(f"cannot create {path}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(page(url))
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self._files[key] = path
        return path

    def remove(self, key: str) -> None:
        """Delete the file of ``key``'s secret, if there is one (its secret is spent)."""
        path = self._files.pop(key, None)
        if path is not None:
            with contextlib.suppress(OSError):
                path.unlink()

    def remove_all(self) -> None:
        """Delete every file still there (the agent is exiting)."""
        for key in list(self._files):
            self.remove(key)

    def __contains__(self, key: object) -> bool:
        return key in self._files


__all__ = ["LaunchFileError", "LaunchFiles", "launch_dir", "page"]
