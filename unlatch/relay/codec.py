"""Base64url without padding: the one binary encoding of the relay's JSON.

Decoding is strict (alphabet, no padding, canonical form) so that one value has
exactly one spelling; ids compared as text can then never alias.
"""

from __future__ import annotations

import base64
import binascii
import re

_B64URL = re.compile(r"\A[A-Za-z0-9_-]*\Z")


class CodecError(ValueError):
    """A value is not canonical base64url."""


def b64e(data: bytes) -> str:
    """Encode bytes as unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str, *, max_len: int | None = None) -> bytes:
    """Decode unpadded base64url, refusing anything non-canonical.

    ``max_len`` bounds the *decoded* size and is checked before decoding so a
    huge string costs nothing.
    """
    if not isinstance(text, str):
        raise CodecError("expected a base64url string")
    if max_len is not None and len(text) > (max_len * 4 + 2) // 3:
        raise CodecError("value too long")
    if not _B64URL.match(text) or len(text) % 4 == 1:
        raise CodecError("not base64url (unpadded, URL-safe alphabet)")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise CodecError("not base64url") from None
    if b64e(raw) != text:
        raise CodecError("non-canonical base64url")
    return raw
