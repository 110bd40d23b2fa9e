"""The agent's socket protocol: newline-delimited JSON, one object per line.

Request:  ``{"op": "unlock", "args": {"password": "..."}}``
Reply:    ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": {"type":
          "WrongPasswordError", "message": "...", "exit_code": 1}}``

Requests are capped at :data:`MAX_REQUEST` bytes, replies at
:data:`MAX_REPLY`. Error ``type`` names an :class:`~unlatch.errors.UnlatchError`
subclass, which the client raises again so the CLI prints the same message.
"""

from __future__ import annotations

import json
from typing import Any

from unlatch import errors as base_errors
from unlatch import safejson
from unlatch.agent import errors as agent_errors
from unlatch.agent.errors import AgentError, BadRequestError
from unlatch.errors import UnlatchError
from unlatch.vault import errors as vault_errors
from unlatch.vault import generator, localkeys, slots

MAX_REQUEST = 256 * 1024
MAX_REPLY = 64 * 1024 * 1024


def encode(obj: Any) -> bytes:
    """One JSON line.

    Text that cannot be UTF-8 (lone surrogates, which Python uses for invalid
    bytes in command-line arguments) is refused with :class:`BadRequestError`
    rather than a traceback.
    """
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        raise BadRequestError(
            "text that is not valid UTF-8 cannot be sent to the agent "
            "(check the terminal's encoding)"
        ) from None


def decode_request(line: bytes) -> tuple[str, dict[str, Any]]:
    """Parse and shape-check a request line into ``(op, args)``."""
    if len(line) > MAX_REQUEST:
        raise BadRequestError(f"request larger than {MAX_REQUEST} bytes")
    try:
        data = safejson.loads(line)
    except safejson.JSONInputError:
        raise BadRequestError("request is JSON nested too deeply") from None
    except ValueError:
        raise BadRequestError("request is not valid JSON") from None
    if not isinstance(data, dict):
        raise BadRequestError("request must be a JSON object")
    op, args = data.get("op"), data.get("args", {})
    if not isinstance(op, str) or not isinstance(args, dict):
        raise BadRequestError('request needs "op" (string) and "args" (object)')
    return op, args


def error_reply(exc: UnlatchError) -> dict[str, Any]:
    """The reply for an expected failure (its message is safe to show)."""
    return {
        "ok": False,
        "error": {"type": type(exc).__name__, "message": str(exc), "exit_code": exc.exit_code},
    }


def _known_errors() -> dict[str, type[UnlatchError]]:
    found: dict[str, type[UnlatchError]] = {}
    for module in (base_errors, vault_errors, agent_errors, generator, localkeys, slots):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, UnlatchError):
                found[value.__name__] = value
    return found


def raise_error(error: Any) -> None:
    """Re-raise an error reply as its typed exception on the client side."""
    if not isinstance(error, dict):
        raise AgentError("the agent sent a malformed error")
    message = str(error.get("message", "agent error"))[:2000]
    cls = _known_errors().get(str(error.get("type")), AgentError)
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exit_code = error.get("exit_code")
    if isinstance(exit_code, int) and 0 < exit_code < 126:
        exc.exit_code = exit_code
    raise exc
