"""JSON from outside the process: one parser whose every failure is a :class:`ValueError`.

The standard parser recurses once per nesting level, so about a thousand
``[`` (a 1 KiB body) raise :class:`RecursionError`, which is not a
``ValueError`` and escapes every "not JSON" handler: the relay or the desktop
UI would answer 500, the agent's socket "internal error", a damaged state file
a traceback. Everything that parses JSON it did not just write itself (HTTP
bodies, WebSocket frames, bus envelopes, the agent's socket lines, state files)
goes through :func:`loads`, so a too-deep document is one more kind of bad
input, refused with the caller's own typed error.
"""

from __future__ import annotations

import json
from typing import Any


class JSONInputError(ValueError):
    """The text is not JSON this process accepts (here: nested too deeply)."""


def loads(data: str | bytes) -> Any:
    """``json.loads`` whose every failure is a :class:`ValueError`.

    Malformed text raises :class:`json.JSONDecodeError`, undecodable bytes
    :class:`UnicodeDecodeError`, too deep nesting :class:`JSONInputError`: all
    three are ``ValueError``. The message never echoes the input.
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise JSONInputError("JSON nested too deeply") from None
