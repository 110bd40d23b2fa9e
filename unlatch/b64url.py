"""Base64url without padding (RFC 4648 section 5): the one codec every layer uses.

Protocol messages, relay JSON, Web Push keys and WebAuthn values all travel
as unpadded base64url. Decoding is strict and bounded because these values
arrive from the network: the alphabet, the length and canonical form are
checked (a lenient decoder turns garbage into silently wrong keys, and two
spellings of one value would defeat comparisons), and an over-long text is
refused before any work. Each layer turns :class:`Base64urlError` into its own
typed error; messages never echo the input, which may be key material.
"""

from __future__ import annotations

import base64
import binascii
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


class Base64urlError(ValueError):
    """The text is not canonical, bounded base64url."""


def encode(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: object, *, max_chars: int = 8192, padding_ok: bool = False) -> bytes:
    """Decode unpadded base64url text, refusing anything non-canonical.

    ``padding_ok`` also accepts trailing ``=`` (some Web Push producers add
    it); the rest must still be canonical.
    """
    if not isinstance(text, str):
        raise Base64urlError("expected base64url text")
    if len(text) > max_chars:
        raise Base64urlError(f"longer than {max_chars} characters")
    stripped = text.rstrip("=") if padding_ok else text
    if len(text) - len(stripped) > 2 or not _ALPHABET.fullmatch(stripped):
        raise Base64urlError("not base64url (allowed: A-Z a-z 0-9 - _, no padding)")
    if len(stripped) % 4 == 1:
        raise Base64urlError("not base64url (impossible length)")
    try:
        raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise Base64urlError("not base64url") from None
    if encode(raw) != stripped:
        raise Base64urlError("non-canonical base64url")
    return raw
