"""Base64url without padding (the one binary encoding of the relay's JSON) and JSON parsing.

JSON parsing is :func:`unlatch.safejson.loads` (every failure a ``ValueError``,
nesting included), re-exported as :func:`json_loads` for the relay's modules.

Decoding is strict (alphabet, no padding, canonical form) so that one value has
exactly one spelling; ids compared as text can then never alias.
"""

from __future__ import annotations

from unlatch import b64url
from unlatch.safejson import loads as json_loads  # the one bounded parser; re-exported here


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


__all__ = ["CodecError", "b64d", "b64e", "json_loads"]
