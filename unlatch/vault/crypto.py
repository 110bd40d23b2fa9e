"""The few primitives the vault uses, each with its own label.

Everything binds over length-prefixed bytes (never JSON text), so two
different tuples can never encode to the same bytes. Labels carry a version
so a later format can change a derivation without ambiguity.
"""

from __future__ import annotations

import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

KEY_LEN = 32
NONCE_LEN = 12

# Labels: one per purpose. They appear in docs/vault.md; never reuse one.
LABEL_SLOT_WRAP = b"unlatch/vault/v1/slot-wrap"
LABEL_PASSWORD_KEK = b"unlatch/vault/v1/password-kek"
LABEL_ITEM_KEY = b"unlatch/vault/v1/item-key"
LABEL_ITEM_AAD = b"unlatch/vault/v1/item"
LABEL_MANIFEST_KEY = b"unlatch/vault/v1/manifest-key"
LABEL_MANIFEST = b"unlatch/vault/v1/manifest"


class AeadFailure(Exception):
    """Internal: authentication failed. Callers turn it into a typed vault error."""


def lp(*parts: bytes) -> bytes:
    """Length-prefix each part (4-byte big-endian length) and concatenate."""
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def random_bytes(n: int) -> bytes:
    """Fresh randomness from the operating system."""
    return os.urandom(n)


def hkdf(ikm: bytes, label: bytes, context: bytes = b"", length: int = KEY_LEN) -> bytes:
    """HKDF-SHA256 with ``info = lp(label, context)``."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=lp(label, context)
    ).derive(ikm)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """AES-256-GCM with a random 96-bit nonce; returns ``(nonce, ciphertext+tag)``."""
    nonce = os.urandom(NONCE_LEN)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`seal`; raises :class:`AeadFailure` on any mismatch."""
    if len(nonce) != NONCE_LEN or len(key) != KEY_LEN:
        raise AeadFailure
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise AeadFailure from None
