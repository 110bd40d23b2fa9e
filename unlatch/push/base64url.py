"""Base64url without padding, the encoding every Web Push value travels in.

Browsers' ``PushSubscription.toJSON()`` and VAPID (RFC 8292) both use the
URL-safe alphabet without ``=`` padding. Decoding is strict (alphabet and
length are checked) because these values arrive from the network, and a
lenient decoder would turn garbage into silently wrong keys.
"""

from __future__ import annotations

from unlatch import b64url


def encode(data: bytes) -> str:
    """Encode ``data`` as unpadded base64url text."""
    return b64url.encode(data)


def decode(text: str, *, max_chars: int = 4096) -> bytes:
    """Decode base64url text, with or without padding.

    Raises :class:`ValueError` (with a message that never echoes the input,
    which may be key material) on a wrong alphabet, impossible length,
    non-canonical form or text longer than ``max_chars``.
    """
    return b64url.decode(text, max_chars=max_chars, padding_ok=True)
