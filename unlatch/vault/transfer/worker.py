"""Parse an import file in a process of its own: ``python -m unlatch.vault.transfer.worker``.

The CLI parses import files in the CLI process, never in the agent that holds
the vault key. The web UI is served *by* the agent, so an uploaded file is
parsed here instead: a fresh interpreter (``exec``, not ``fork``: none of the
agent's memory, so no vault key) that reads one request on stdin and writes
one JSON answer on stdout. A parser bug a hostile file could reach (XML in a
KDBX, ZIP in a 1PUX, CSV quirks) then runs where there is no key to take,
and a file that makes it hang or crash costs this process only (the agent
kills it after :data:`TIMEOUT` seconds).

stdin: one line of JSON ``{"format": NAME, "password": TEXT | null}`` (the
file's password, if the format needs one), then the file's bytes.
stdout: ``{"ok": true, "format", "items": [item dicts], "skipped":
[{"entry", "reason"}], "ignored": [...]}`` or ``{"ok": false, "error": code,
"message": text}`` (the message names the line or entry, never a value).
"""

from __future__ import annotations

import contextlib
import json
import resource
import sys
from typing import Any

from unlatch.vault.items import EDITABLE_FIELDS
from unlatch.vault.transfer import import_file
from unlatch.vault.transfer.base import MAX_FILE_BYTES, TransferError, TransferPasswordError

TIMEOUT = 120.0  # seconds the agent waits for an answer (a KDBX's Argon2 may take a few)
MAX_HEADER = 8192  # the request line (format + password)


class PasswordNeeded(TransferPasswordError):
    """The format needs the file's password and none was given."""


def parse(request: dict[str, Any], data: bytes) -> dict[str, Any]:
    """The answer for one request (errors become ``ok: false`` with a code)."""
    fmt, password = request.get("format"), request.get("password")
    if not isinstance(fmt, str) or not (password is None or isinstance(password, str)):
        return {"ok": False, "error": "bad_request", "message": "malformed request"}

    def ask(what: str) -> str:
        if not password:
            raise PasswordNeeded(f"{what} is needed to read this file")
        return password

    try:
        result = import_file(fmt, data, ask)
    except PasswordNeeded as exc:
        return {"ok": False, "error": "password_needed", "message": str(exc)}
    except TransferPasswordError as exc:
        return {"ok": False, "error": "wrong_file_password", "message": str(exc)}
    except TransferError as exc:
        return {"ok": False, "error": "bad_file", "message": str(exc)}
    return {
        "ok": True,
        "format": result.format,
        "items": [
            {k: v for k, v in i.to_dict().items() if k in EDITABLE_FIELDS} for i in result.items
        ],
        "skipped": [{"entry": s.entry, "reason": s.reason} for s in result.skipped],
        "ignored": result.ignored,
    }


def main() -> int:
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file holding the passwords
    stdin = sys.stdin.buffer
    header = stdin.readline(MAX_HEADER + 1)
    data = stdin.read(MAX_FILE_BYTES + 1)
    try:
        request = json.loads(header)
        if not isinstance(request, dict):
            raise ValueError
    except ValueError:
        answer: dict[str, Any] = {"ok": False, "error": "bad_request", "message": "bad request"}
    else:
        answer = parse(request, data)
    sys.stdout.write(json.dumps(answer, ensure_ascii=False))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
