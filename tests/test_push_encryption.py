"""RFC 8291 payload encryption: the RFC's own vector, byte for byte, and limits."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from unlatch.push import MAX_PLAINTEXT, PayloadTooLarge, PushError, base64url, encryption

# RFC 8291, Appendix A ("Intermediate Values for Encryption").
RFC_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC_AS_PRIVATE = "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
RFC_AS_PUBLIC = (
    "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
)
RFC_UA_PRIVATE = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
RFC_UA_PUBLIC = (
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
)
RFC_SALT = "DGv6ra1nlYgDCS1FRnbzlw"
RFC_AUTH = "BTBZMqHH6r4Tts7J_aSIgg"
RFC_BODY = (
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmY"
    "WAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexS"
    "gSxsj_Qulcy4a-fN"
)


def _private(b64: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(base64url.decode(b64), "big"), ec.SECP256R1())


def _public_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def browser_decrypt(body: bytes, ua_key: ec.EllipticCurvePrivateKey, auth: bytes) -> bytes:
    """What a user agent does (RFC 8291 section 3.4, RFC 8188), written from the RFCs
    with `cryptography` only, independent of http_ece."""
    salt, (rs,), idlen = body[:16], struct.unpack("!L", body[16:20]), body[20]
    as_public = body[21 : 21 + idlen]
    record = body[21 + idlen :]
    assert len(record) <= rs
    shared = ua_key.exchange(
        ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), as_public)
    )
    key_info = b"WebPush: info\x00" + _public_bytes(ua_key) + as_public
    ikm = HKDF(hashes.SHA256(), 32, auth, key_info).derive(shared)
    cek = HKDF(hashes.SHA256(), 16, salt, b"Content-Encoding: aes128gcm\x00").derive(ikm)
    nonce = HKDF(hashes.SHA256(), 12, salt, b"Content-Encoding: nonce\x00").derive(ikm)
    padded = AESGCM(cek).decrypt(nonce, record, None)
    stripped = padded.rstrip(b"\x00")
    assert stripped[-1:] == b"\x02", "last-record delimiter"
    return stripped[:-1]


def test_rfc8291_appendix_a_vector_is_reproduced_byte_for_byte() -> None:
    as_key = _private(RFC_AS_PRIVATE)
    assert base64url.encode(_public_bytes(as_key)) == RFC_AS_PUBLIC
    body = encryption.encrypt(
        RFC_PLAINTEXT,
        base64url.decode(RFC_UA_PUBLIC),
        base64url.decode(RFC_AUTH),
        salt=base64url.decode(RFC_SALT),
        sender_key=as_key,
    )
    assert base64url.encode(body) == RFC_BODY


def test_rfc8291_vector_decrypts_with_the_independent_browser_side() -> None:
    ua_key = _private(RFC_UA_PRIVATE)
    assert base64url.encode(_public_bytes(ua_key)) == RFC_UA_PUBLIC
    plain = browser_decrypt(base64url.decode(RFC_BODY), ua_key, base64url.decode(RFC_AUTH))
    assert plain == RFC_PLAINTEXT


def test_random_messages_round_trip_and_never_reuse_salt_or_key() -> None:
    ua_key = ec.generate_private_key(ec.SECP256R1())
    auth = bytes(range(16))
    payload = b"opaque protocol bytes \x00\x01\xff" * 10
    first = encryption.encrypt(payload, _public_bytes(ua_key), auth)
    second = encryption.encrypt(payload, _public_bytes(ua_key), auth)
    assert browser_decrypt(first, ua_key, auth) == payload
    assert browser_decrypt(second, ua_key, auth) == payload
    assert first[:16] != second[:16], "fresh salt per message"
    assert first[21:86] != second[21:86], "fresh ephemeral key per message"


def test_largest_payload_fills_exactly_one_4096_byte_message() -> None:
    ua_key = ec.generate_private_key(ec.SECP256R1())
    payload = b"\xa5" * MAX_PLAINTEXT
    body = encryption.encrypt(payload, _public_bytes(ua_key), b"k" * 16)
    assert MAX_PLAINTEXT == 3993
    assert len(body) == 4096
    assert browser_decrypt(body, ua_key, b"k" * 16) == payload


def test_one_byte_too_many_is_refused_with_a_typed_error() -> None:
    ua_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PayloadTooLarge, match=r"3994 bytes.*at most 3993"):
        encryption.encrypt(b"x" * (MAX_PLAINTEXT + 1), _public_bytes(ua_key), b"k" * 16)


def test_empty_payload_is_refused_for_encryption() -> None:
    ua_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PushError, match="cannot be empty"):
        encryption.encrypt(b"", _public_bytes(ua_key), b"k" * 16)
