"""RFC 8291 message encryption (``aes128gcm``, RFC 8188) for push payloads.

The derivation and record format are done by ``http_ece``, the library
``pywebpush`` itself uses for this step, so the relay exercises the same code
as the reference Python sender. This module adds what the relay needs on top:
typed errors, a size check before any work, and a single-record guarantee.

Every message uses a fresh ephemeral P-256 key and a fresh 16-byte salt
(http_ece derives the content key and nonce from both), so two messages
never share an AES-GCM key/nonce pair. ``sender_key`` and ``salt`` can be
fixed only so the RFC 8291 Appendix A vector can be reproduced byte for byte.
"""

from __future__ import annotations

import os

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec

from unlatch.push.errors import PayloadTooLarge, PushError

RECORD_SIZE = 4096
SALT_BYTES = 16
# Header: salt(16) + rs(4) + idlen(1) + keyid(65 = uncompressed P-256 point).
HEADER_BYTES = SALT_BYTES + 4 + 1 + 65
TAG_BYTES = 16
# RFC 8291 section 4: push services must accept 4096-byte bodies; one record
# holds the plaintext, a 0x02 delimiter and the GCM tag after the header.
MAX_PLAINTEXT = RECORD_SIZE - HEADER_BYTES - TAG_BYTES - 1  # 3993
CONTENT_ENCODING = "aes128gcm"


def encrypt(
    plaintext: bytes,
    ua_public: bytes,
    auth_secret: bytes,
    *,
    salt: bytes | None = None,
    sender_key: ec.EllipticCurvePrivateKey | None = None,
) -> bytes:
    """Encrypt ``plaintext`` for the user agent holding ``ua_public``/``auth_secret``.

    Returns the complete ``aes128gcm`` body (header + one record). Raises
    :class:`PayloadTooLarge` beyond :data:`MAX_PLAINTEXT` bytes.
    """
    if not plaintext:
        # http_ece would emit a header without any record, which no user
        # agent accepts; a payload-less push is sent without a body instead.
        raise PushError("an encrypted push payload cannot be empty")
    if len(plaintext) > MAX_PLAINTEXT:
        raise PayloadTooLarge(
            f"push payload is {len(plaintext)} bytes; an encrypted push carries "
            f"at most {MAX_PLAINTEXT} bytes"
        )
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    if len(salt) != SALT_BYTES:
        raise PushError(f"encryption salt must be {SALT_BYTES} bytes")
    if sender_key is None:
        sender_key = ec.generate_private_key(ec.SECP256R1())
    try:
        body = http_ece.encrypt(
            plaintext,
            salt=salt,
            private_key=sender_key,
            dh=ua_public,
            auth_secret=auth_secret,
            rs=RECORD_SIZE,
            version=CONTENT_ENCODING,
        )
    except (http_ece.ECEException, ValueError) as exc:
        message = getattr(exc, "message", None) or type(exc).__name__
        raise PushError(f"push payload encryption failed: {message}") from None
    assert isinstance(body, bytes)
    assert len(body) <= RECORD_SIZE, "single-record invariant"
    return body
