"""Base64url without padding, the encoding every Web Push value travels in.

Browsers' ``PushSubscription.toJSON()`` and VAPID (RFC 8292) both use the
URL-safe alphabet without ``=`` padding. Decoding is strict (alphabet and
length are checked) because these values arrive from the network, and a
lenient decoder would turn garbage into silently wrong keys.
"""

from __future__ import annotations

import base64
import binascii
import re

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


def encode(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url text."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(text: str, *, max_chars: int = 4096) -> bytes:
    """Decode base64url text, with or without padding.

    Raises :class:`ValueError` (with a message that never echoes the input,
    which may be key material) on a wrong alphabet, impossible length or
    text longer than ``max_chars``.
    """
    if len(text) > max_chars:
        raise ValueError(f"longer than {max_chars} characters")
    stripped = text.rstrip("=")
    if len(text) - len(stripped) > 2 or not _ALPHABET.fullmatch(stripped):
        raise ValueError("not base64url (allowed: A-Z a-z 0-9 - _)")
    if len(stripped) % 4 == 1:
        raise ValueError("not base64url (impossible length)")
    try:
        return base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not base64url") from None
