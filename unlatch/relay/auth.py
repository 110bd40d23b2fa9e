"""Device identity on the relay: ids, the signed challenge message, verification.

A device proves it holds its ECDSA P-256 relay key by signing a relay-issued
challenge. The signed message binds a label, the relay's origin, the challenge
and the public key, each length-prefixed, so a signature made for one relay (or
for any other purpose) is useless anywhere else. Signatures use WebCrypto's raw
``r||s`` form so the phone PWA can sign with a non-extractable key.
"""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from unlatch.relay.codec import b64e

AUTH_LABEL = b"unlatch relay auth v1"
DEVICE_ID_LABEL = b"unlatch relay device id v1"
TOKEN_HASH_LABEL = b"unlatch relay session token v1"
PUBLIC_KEY_LEN = 65
SIGNATURE_LEN = 64
CHALLENGE_LEN = 32


def _lp(part: bytes) -> bytes:
    if len(part) > 0xFFFF:
        raise ValueError("field too long for a uint16 length prefix")
    return len(part).to_bytes(2, "big") + part


def canonical_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, lowercase, default port omitted."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def auth_message(origin: str, challenge: bytes, public_key: bytes) -> bytes:
    """The exact bytes a device signs to open a session on ``origin``."""
    return _lp(AUTH_LABEL) + _lp(origin.encode("utf-8")) + _lp(challenge) + _lp(public_key)


def device_id_for(public_key: bytes) -> str:
    """The device id: a labelled hash of the public key (22 base64url characters)."""
    return b64e(hashlib.sha256(DEVICE_ID_LABEL + b"\x00" + public_key).digest()[:16])


def token_hash(token: str) -> bytes:
    """What the store keeps of a session token: a labelled SHA-256, never the token."""
    return hashlib.sha256(TOKEN_HASH_LABEL + b"\x00" + token.encode("ascii", "replace")).digest()


def load_public_key(public_key: bytes) -> ec.EllipticCurvePublicKey:
    """Parse an uncompressed P-256 point; raises ValueError on anything else."""
    if len(public_key) != PUBLIC_KEY_LEN or public_key[0] != 4:
        raise ValueError("public key must be an uncompressed P-256 point (65 bytes)")
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Check a raw ``r||s`` ECDSA P-256/SHA-256 signature; never raises on bad input."""
    if len(signature) != SIGNATURE_LEN:
        return False
    try:
        key = load_public_key(public_key)
    except ValueError:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if r == 0 or s == 0:
        return False
    try:
        key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
