"""Small JSON state files written atomically with owner-only permissions.

The desktop keeps its identity, its pairing records and its UI settings in
separate files so that a damaged one never takes the others with it. Every
write goes to a temporary file (0600) that is fsynced and renamed over the
old one, then the directory is fsynced: a crash leaves either the old or the
new file, never half of one. Reads are bounded so garbage cannot exhaust
memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from unlatch import safejson
from unlatch.desktop.errors import StateFileError

MAX_STATE_BYTES = 1024 * 1024


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if the file does not exist."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_STATE_BYTES:
        raise StateFileError(f"{path} is too large to be an unlatch state file")
    try:
        data = safejson.loads(raw)
    except ValueError:
        raise StateFileError(f"{path} is damaged (not JSON)") from None
    if not isinstance(data, dict):
        raise StateFileError(f"{path} is damaged (not a JSON object)")
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically with ``data`` (mode 0600)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
