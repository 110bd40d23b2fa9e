"""Base64url without padding (the one binary encoding of the relay's JSON) and JSON parsing.

Decoding is strict (alphabet, no padding, canonical form) so that one value has
exactly one spelling; ids compared as text can then never alias.
"""

from __future__ import annotations

import json
from typing import Any

from unlatch import b64url


class CodecError(ValueError):
    """A value is not canonical base64url."""


def b64e(data: bytes) -> str:
    """Encode bytes as unpadded base64url text."""
    return b64url.encode(data)


def b64d(text: str, *, max_len: int | None = None) -> bytes:
    """Decode unpadded base64url, refusing anything non-canonical.

    ``max_len`` bounds the *decoded* size and is checked before decoding so a
    huge string costs nothing.
    """
    max_chars = (max_len * 4 + 2) // 3 if max_len is not None else 1 << 20
    try:
        return b64url.decode(text, max_chars=max_chars)
    except b64url.Base64urlError as exc:
        raise CodecError(str(exc)) from None


def json_loads(data: str | bytes) -> Any:
    """``json.loads`` whose every failure is a :class:`ValueError`.

    The standard parser recurses once per nesting level, so about a thousand
    ``[`` (a 1 KiB body) raise :class:`RecursionError`, which is not a
    ``ValueError`` and would escape the callers' "not JSON" handling as a 500
    or a crashed socket. Input from the other side of the relay (request
    bodies, WebSocket frames, bus envelopes, the relay's answers to a client)
    goes through here.
    """
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
