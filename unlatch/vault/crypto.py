"""The few primitives the vault uses, each with its own label.

Everything binds over length-prefixed bytes (never JSON text), so two
different tuples can never encode to the same bytes. Labels carry a version
so a later format can change a derivation without ambiguity.
"""

from __future__ import annotations

import hmac
import os
import struct
from hashlib import sha256

import pyhpke
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
LABEL_KEY_CHECK = b"unlatch/vault/v1/key-check"
LABEL_RENEW_SEED = b"unlatch/vault/v1/renew-seed"
LABEL_RENEW_MAC_KEY = b"unlatch/vault/v1/renew-mac-key"
LABEL_RENEW_MAC = b"unlatch/vault/v1/renew-mac"
LABEL_SLOT_SEAL = b"unlatch/vault/v1/slot-seal"

#: HPKE (RFC 9180) suite of a slot's renewal key: DHKEM(X25519, HKDF-SHA256),
#: HKDF-SHA256, AES-256-GCM, base mode. A vault-format fact, independent of
#: the protocol's choice (which happens to be the same suite).
RENEW_SUITE = pyhpke.CipherSuite.new(
    pyhpke.KEMId.DHKEM_X25519_HKDF_SHA256,
    pyhpke.KDFId.HKDF_SHA256,
    pyhpke.AEADId.AES256_GCM,
)
RENEW_KEY_LEN = 32
RENEW_ENC_LEN = 32

LABEL_EXPORT_KEY = b"unlatch/export/v1/key"
LABEL_EXPORT_AAD = b"unlatch/export/v1/payload"


class AeadFailure(Exception):
    """Internal: authentication failed. Callers turn it into a typed vault error."""


_U32 = struct.Struct(">I")


def lp(*parts: bytes) -> bytes:
    """Length-prefix each part (4-byte big-endian length) and concatenate."""
    return b"".join([_U32.pack(len(p)) + p for p in parts])


def random_bytes(n: int) -> bytes:
    """Fresh randomness from the operating system."""
    return os.urandom(n)


def hkdf(ikm: bytes, label: bytes, context: bytes = b"", length: int = KEY_LEN) -> bytes:
    """HKDF-SHA256 with ``info = lp(label, context)``."""
    return HKDF(
        algorithm=hashes.SHA256(), length=length, salt=None, info=lp(label, context)
    ).derive(ikm)


def hkdf_extract(ikm: bytes) -> bytes:
    """HKDF-Extract (RFC 5869) with the default all-zero salt: the PRK for :func:`hkdf_expand`."""
    return hmac.new(b"\0" * 32, ikm, sha256).digest()


def hkdf_expand(prk: bytes, label: bytes, context: bytes = b"") -> bytes:
    """HKDF-Expand (RFC 5869) of one 32-byte block, ``info = lp(label, context)``.

    ``hkdf_expand(hkdf_extract(k), l, c) == hkdf(k, l, c)`` (tested); used
    where a key is derived per item and the extract step can be done once.
    """
    return hmac.new(prk, lp(label, context) + b"\x01", sha256).digest()


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


def renewal_key_pair(seed: bytes) -> pyhpke.KEMKeyPair:
    """RFC 9180 DeriveKeyPair: the slot's renewal key pair from a 32-byte seed."""
    return RENEW_SUITE.kem.derive_key_pair(seed)


def renewal_public_key(seed: bytes) -> bytes:
    """The public half of :func:`renewal_key_pair` (32 bytes, stored in the slot)."""
    return bytes(renewal_key_pair(seed).public_key.to_public_bytes())


def seal_to(public_key: bytes, plaintext: bytes, info: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """HPKE base-mode single-shot seal to ``public_key``; returns ``(enc, ciphertext)``.

    Raises :class:`AeadFailure` when the public key is not a usable X25519
    point (wrong size, small order): the caller treats the slot as damaged.
    """
    if len(public_key) != RENEW_KEY_LEN:
        raise AeadFailure
    try:
        recipient = RENEW_SUITE.kem.deserialize_public_key(public_key)
        enc, ctx = RENEW_SUITE.create_sender_context(recipient, info=info)
    except (pyhpke.PyHPKEError, ValueError):
        raise AeadFailure from None
    return bytes(enc), bytes(ctx.seal(plaintext, aad))


def open_from(seed: bytes, enc: bytes, ciphertext: bytes, info: bytes, aad: bytes) -> bytes:
    """Inverse of :func:`seal_to`, with the key pair of ``seed``; :class:`AeadFailure` if wrong."""
    if len(enc) != RENEW_ENC_LEN:
        raise AeadFailure
    try:
        ctx = RENEW_SUITE.create_recipient_context(
            enc, renewal_key_pair(seed).private_key, info=info
        )
        return bytes(ctx.open(ciphertext, aad))
    except (pyhpke.PyHPKEError, ValueError):
        raise AeadFailure from None
