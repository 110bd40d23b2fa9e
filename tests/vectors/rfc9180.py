"""RFC 9180 HPKE context values, for the test vectors' intermediates only.

The protocol itself uses pyhpke (``unlatch/protocol/primitives.py``), whose
contexts keep the key schedule's values to themselves. A JavaScript (or any
other) implementer debugging a mismatch needs them: the KEM's shared secret,
the key schedule context, ``secret``, ``key``, ``base_nonce`` and
``exporter_secret`` of every HPKE use. This module writes those steps out as
RFC 9180 sections 4.1 (DHKEM), 5.1 (KeySchedule) and 5.3 (Export) state
them, over ``cryptography``'s X25519, HMAC-SHA256 and HKDF-Expand; it is never
used to encrypt anything. ``tests/test_protocol_hpke_rfc9180.py`` holds it to
the RFC's published A.1.2 and A.1.4 values and to the CFRG vectors of our own
suite, and ``generate.py`` checks every value it records against the real
messages (AES-GCM with ``key``/``base_nonce`` must give the message's
ciphertext, the exporter must give the pairing root).
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

KEM_ID = 0x0020  # DHKEM(X25519, HKDF-SHA256)
KDF_ID = 0x0001  # HKDF-SHA256
AEAD_AES256_GCM = 0x0002
AEAD_KEY_LEN = {0x0001: 16, 0x0002: 32}  # AES-128-GCM (the RFC's A.1), AES-256-GCM (ours)
NONCE_LEN = 12
HASH_LEN = 32

MODE_BASE, MODE_PSK, MODE_AUTH, MODE_AUTH_PSK = 0, 1, 2, 3


def _u16(value: int) -> bytes:
    return struct.pack(">H", value)


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    """RFC 9180 section 4: HKDF-Extract(salt, "HPKE-v1" ‖ suite_id ‖ label ‖ ikm).

    HMAC pads a short key with zeros, so an empty salt is the RFC 5869 default
    (HashLen zero bytes) without special-casing it.
    """
    return hmac.new(salt, b"HPKE-v1" + suite_id + label + ikm, hashlib.sha256).digest()


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    """RFC 9180 section 4: HKDF-Expand(prk, I2OSP(L,2) ‖ "HPKE-v1" ‖ suite_id ‖ label ‖ info, L)."""
    labeled_info = _u16(length) + b"HPKE-v1" + suite_id + label + info
    return HKDFExpand(hashes.SHA256(), length, labeled_info).derive(prk)


def _dh(private: bytes, public: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).exchange(
        X25519PublicKey.from_public_bytes(public)
    )


def _public(private: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).public_key().public_bytes_raw()


def shared_secret(sk_e: bytes, pk_r: bytes, sk_s: bytes | None = None) -> bytes:
    """DHKEM(X25519) Encap (or AuthEncap with ``sk_s``), RFC 9180 section 4.1."""
    enc = _public(sk_e)
    dh = _dh(sk_e, pk_r)
    kem_context = enc + pk_r
    if sk_s is not None:
        dh += _dh(sk_s, pk_r)
        kem_context += _public(sk_s)
    suite_id = b"KEM" + _u16(KEM_ID)
    eae_prk = labeled_extract(suite_id, b"", b"eae_prk", dh)
    return labeled_expand(suite_id, eae_prk, b"shared_secret", kem_context, HASH_LEN)


@dataclass(frozen=True)
class Context:
    """The values RFC 9180's appendix lists for each vector (names as there)."""

    mode: int
    shared_secret: bytes
    key_schedule_context: bytes
    secret: bytes
    key: bytes
    base_nonce: bytes
    exporter_secret: bytes

    def export(self, exporter_context: bytes, length: int, aead_id: int = AEAD_AES256_GCM) -> bytes:
        """RFC 9180 section 5.3: LabeledExpand(exporter_secret, "sec", context, L)."""
        return labeled_expand(
            _hpke_suite(aead_id), self.exporter_secret, b"sec", exporter_context, length
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "shared_secret": self.shared_secret.hex(),
            "key_schedule_context": self.key_schedule_context.hex(),
            "secret": self.secret.hex(),
            "key": self.key.hex(),
            "base_nonce": self.base_nonce.hex(),
            "exporter_secret": self.exporter_secret.hex(),
        }


def _hpke_suite(aead_id: int) -> bytes:
    return b"HPKE" + _u16(KEM_ID) + _u16(KDF_ID) + _u16(aead_id)


def key_schedule(
    mode: int,
    shared: bytes,
    info: bytes,
    psk: bytes = b"",
    psk_id: bytes = b"",
    aead_id: int = AEAD_AES256_GCM,
) -> Context:
    """RFC 9180 section 5.1 KeySchedule."""
    suite_id = _hpke_suite(aead_id)
    psk_id_hash = labeled_extract(suite_id, b"", b"psk_id_hash", psk_id)
    info_hash = labeled_extract(suite_id, b"", b"info_hash", info)
    ksc = bytes([mode]) + psk_id_hash + info_hash
    secret = labeled_extract(suite_id, shared, b"secret", psk)
    return Context(
        mode=mode,
        shared_secret=shared,
        key_schedule_context=ksc,
        secret=secret,
        key=labeled_expand(suite_id, secret, b"key", ksc, AEAD_KEY_LEN[aead_id]),
        base_nonce=labeled_expand(suite_id, secret, b"base_nonce", ksc, NONCE_LEN),
        exporter_secret=labeled_expand(suite_id, secret, b"exp", ksc, HASH_LEN),
    )


def sender_context(
    sk_e: bytes,
    pk_r: bytes,
    info: bytes,
    psk: bytes = b"",
    psk_id: bytes = b"",
    sk_s: bytes | None = None,
    aead_id: int = AEAD_AES256_GCM,
) -> Context:
    """The whole context of one single-shot seal, from the sender's side."""
    mode = (
        (MODE_AUTH_PSK if psk else MODE_AUTH)
        if sk_s is not None
        else (MODE_PSK if psk else MODE_BASE)
    )
    return key_schedule(mode, shared_secret(sk_e, pk_r, sk_s), info, psk, psk_id, aead_id)
