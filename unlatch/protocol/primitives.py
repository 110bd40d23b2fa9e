"""Thin, labelled wrappers over the standard primitives the protocol uses.

HKDF-SHA256, HMAC-SHA256 and AES-256-GCM come from ``cryptography``; HPKE
(RFC 9180) from ``pyhpke``, checked against the RFC's published vectors in
``tests/test_protocol_hpke_rfc9180.py``. Nothing here invents a mode: this
module only fixes parameters and turns library failures into
:class:`~unlatch.protocol.errors.ProtocolError` subclasses.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field

import pyhpke
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from unlatch.protocol.constants import KEY_LEN, MAC_LEN
from unlatch.protocol.errors import AuthenticationFailed, MalformedMessage

Random = Callable[[int], bytes]
"""A source of random bytes: ``os.urandom`` in production, a seeded stream in vectors."""

SUITE = pyhpke.CipherSuite.new(
    pyhpke.KEMId.DHKEM_X25519_HKDF_SHA256,
    pyhpke.KDFId.HKDF_SHA256,
    pyhpke.AEADId.AES256_GCM,
)


def hkdf(ikm: bytes, *, salt: bytes, info: bytes, length: int = KEY_LEN) -> bytes:
    """HKDF-SHA256 (RFC 5869) with an explicit salt and a labelled info."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def mac(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 truncated to :data:`MAC_LEN` bytes (128-bit tags)."""
    return hmac.new(key, data, hashlib.sha256).digest()[:MAC_LEN]


def verify_mac(key: bytes, data: bytes, tag: bytes, what: str) -> None:
    """Constant-time check of a :func:`mac` tag."""
    if not hmac.compare_digest(mac(key, data), tag):
        raise AuthenticationFailed(f"{what} failed authentication (forged or altered)")


def aead_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def aead_open(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes, what: str) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise AuthenticationFailed(f"{what} failed authentication (forged or altered)") from None


@dataclass(frozen=True)
class KeyPair:
    """An X25519 key pair in HPKE form, made by RFC 9180 DeriveKeyPair from a seed.

    Deriving from a 32-byte seed (rather than clamping raw bytes ourselves)
    lets the JavaScript side reproduce every key of the test vectors with
    its HPKE library's own ``deriveKeyPair``.
    """

    public: bytes
    _pair: pyhpke.KEMKeyPair = field(repr=False, compare=False)

    @classmethod
    def derive(cls, seed: bytes) -> KeyPair:
        if len(seed) != KEY_LEN:
            raise ValueError("a key seed is 32 bytes")
        pair = SUITE.kem.derive_key_pair(seed)
        return cls(public=pair.public_key.to_public_bytes(), _pair=pair)

    @classmethod
    def generate(cls, rng: Random) -> KeyPair:
        return cls.derive(rng(KEY_LEN))

    @classmethod
    def from_private_bytes(cls, private: bytes) -> KeyPair:
        """Load a stored private scalar (as given by :meth:`private_bytes`)."""
        if len(private) != KEY_LEN:
            raise ValueError("an X25519 private key is 32 bytes")
        sk = SUITE.kem.deserialize_private_key(private)
        pk = SUITE.kem.deserialize_public_key(
            X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()
        )
        pair = pyhpke.KEMKeyPair(sk, pk)
        return cls(public=pair.public_key.to_public_bytes(), _pair=pair)

    def private_bytes(self) -> bytes:
        return bytes(self._pair.private_key.to_private_bytes())


# Any fixed scalar serves to test a point: a clamped X25519 scalar is a multiple
# of 8 and not of the group order, so the shared secret is all zeros exactly
# when the peer's point has small order (RFC 7748 section 6.1).
_PROBE = X25519PrivateKey.from_private_bytes(bytes(KEY_LEN))


def check_public_key(pk: bytes, what: str) -> None:
    """Refuse a peer X25519 key that is not usable: wrong size, or of small order.

    A small-order point (all zeros, ``01 00..``, ``e0eb7a..`` and the rest of
    RFC 7748's list, with or without the ignored top bit) makes every
    Diffie-Hellman with it all zeros, which HPKE refuses with a library
    ``ValueError``; checking first turns that into a
    :class:`~unlatch.protocol.errors.MalformedMessage` that names the key, at
    the step that received it rather than at a later one.
    """
    if not isinstance(pk, bytes | bytearray) or len(pk) != KEY_LEN:
        raise MalformedMessage(f"{what} is not usable: an X25519 key is {KEY_LEN} bytes")
    try:
        _PROBE.exchange(X25519PublicKey.from_public_bytes(bytes(pk)))
    except ValueError:
        raise MalformedMessage(f"{what} is not usable (a small-order X25519 point)") from None


def _public(pk: bytes, what: str) -> pyhpke.KEMKeyInterface:
    check_public_key(pk, what)
    try:
        return SUITE.kem.deserialize_public_key(pk)
    except Exception:  # noqa: BLE001 - pyhpke raises several types for bad points
        raise MalformedMessage(f"{what} is not a valid X25519 public key") from None


def hpke_seal(
    *,
    recipient_pk: bytes,
    info: bytes,
    aad: bytes,
    plaintext: bytes,
    psk: bytes,
    psk_id: bytes,
    ephemeral_seed: bytes,
    sender: KeyPair | None = None,
    export_context: Callable[[bytes, bytes], bytes] | None = None,
    export_len: int = KEY_LEN,
    recipient: str = "the recipient's key",
) -> tuple[bytes, bytes, bytes]:
    """HPKE single-shot seal in mode_psk (no ``sender``) or mode_auth_psk.

    Returns ``(enc, ciphertext, exported)``; ``exported`` is the HPKE
    exporter output for ``export_context(enc, ciphertext)`` (empty if none
    was asked for): a function, because the pairing binds the exported
    secret to a transcript that includes the ciphertext itself.
    ``recipient`` names the peer key in the error if it is not usable: the
    key came from a message, so that is a :class:`MalformedMessage`, never
    a library ``ValueError``.
    """
    eks = SUITE.kem.derive_key_pair(ephemeral_seed)
    recipient_key = _public(recipient_pk, recipient)
    try:
        enc, ctx = SUITE.create_sender_context(
            recipient_key,
            info=info,
            sks=sender._pair.private_key if sender else None,
            psk=psk,
            psk_id=psk_id,
            eks=eks,
        )
    except (pyhpke.PyHPKEError, ValueError):
        raise MalformedMessage(f"{recipient} is not usable for HPKE") from None
    ciphertext = ctx.seal(plaintext, aad)
    exported = (
        ctx.export(export_context(enc, ciphertext), export_len)
        if export_context is not None
        else b""
    )
    return enc, ciphertext, exported


def hpke_open(
    *,
    recipient: KeyPair,
    enc: bytes,
    info: bytes,
    aad: bytes,
    ciphertext: bytes,
    psk: bytes,
    psk_id: bytes,
    sender_pk: bytes | None = None,
    export_context: bytes | None = None,
    export_len: int = KEY_LEN,
    what: str,
) -> tuple[bytes, bytes]:
    """Open an :func:`hpke_seal` ciphertext; any failure is :class:`AuthenticationFailed`."""
    try:
        ctx = SUITE.create_recipient_context(
            enc,
            recipient._pair.private_key,
            info=info,
            pks=_public(sender_pk, "sender key") if sender_pk is not None else None,
            psk=psk,
            psk_id=psk_id,
        )
        plaintext = ctx.open(ciphertext, aad)
    except (pyhpke.PyHPKEError, ValueError):
        raise AuthenticationFailed(f"{what} failed authentication (forged or altered)") from None
    exported = ctx.export(export_context, export_len) if export_context is not None else b""
    return plaintext, exported
