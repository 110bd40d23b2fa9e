"""Where unlatch keeps its state.

Everything lives under one directory so that a user (or a test) can see,
back up or wipe it as a whole: ``$UNLATCH_HOME`` when set, otherwise the
platform's user data directory (XDG on Linux, via :mod:`platformdirs`).
Each component has its own sub-directory so the phone client's state never
mixes with the desktop's, even when both run on one machine for a demo.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from unlatch.errors import StateDirError

APP_NAME = "unlatch"


def home() -> Path:
    """The root state directory, created 0700 on first use."""
    env = os.environ.get("UNLATCH_HOME")
    root = Path(env).expanduser() if env else Path(platformdirs.user_data_dir(APP_NAME))
    _make_dir(root, "UNLATCH_HOME" if env else "the state directory")
    return root


def subdir(name: str) -> Path:
    """A component's own directory under :func:`home` (``desktop``, ``phone``, ``relay``)."""
    path = home() / name
    _make_dir(path, f"the {name} state directory")
    return path


def _make_dir(path: Path, what: str) -> None:
    """``mkdir -p`` with mode 0700, or :class:`StateDirError` naming the path.

    Without this, a ``UNLATCH_HOME`` that names a file or an unwritable place
    ends every command in a ``FileExistsError``/``PermissionError`` traceback.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise StateDirError(
            f"{what} {path} exists but is not a directory: point UNLATCH_HOME elsewhere"
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise StateDirError(
            f"cannot create {what} {path}: {reason} (set UNLATCH_HOME to a writable directory)"
        ) from None


def config_file() -> Path:
    """The optional TOML configuration file (``$UNLATCH_CONFIG`` overrides)."""
    env = os.environ.get("UNLATCH_CONFIG")
    return Path(env).expanduser() if env else home() / "config.toml"


def web_dir(name: str) -> Path:
    """Browser assets: the packaged copy (``unlatch/_web``) or the source tree's ``web/``.

    ``web/phone`` is built (bundled) into ``web/phone/dist``; ``web/desktop``
    is served as written.
    """
    packaged = Path(__file__).parent / "_web" / name
    if packaged.is_dir():
        return packaged
    repo_web = Path(__file__).resolve().parent.parent / "web"
    if name == "phone":
        return repo_web / "phone" / "dist"
    return repo_web / name
