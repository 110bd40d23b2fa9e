"""A device's relay identity key (ECDSA P-256) kept in a 0600 PEM file.

The desktop agent and the Python phone client each own one; the relay only
ever sees the public half. It is an identity on the relay, nothing more: it
protects no vault data, so it is stored unencrypted like an SSH host key, with
owner-only permissions.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from unlatch.errors import UnlatchError
from unlatch.relay.auth import device_id_for


class DeviceKeyError(UnlatchError):
    """The device key file is missing, unreadable or not a P-256 key."""


class DeviceKey:
    """An ECDSA P-256 private key with the relay's encodings."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise DeviceKeyError("a relay device key must be on P-256")
        self._key = private_key
        self.public_key_raw: bytes = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.device_id: str = device_id_for(self.public_key_raw)

    @classmethod
    def generate(cls) -> DeviceKey:
        """A fresh random key."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load(cls, path: Path) -> DeviceKey:
        """Read a PEM (PKCS#8) private key file."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DeviceKeyError(f"cannot read device key {path}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise DeviceKeyError(f"{path} is not a PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise DeviceKeyError(f"{path} is not an EC private key")
        return cls(key)

    def save(self, path: Path) -> None:
        """Write the key atomically with mode 0600 (never world-readable, even briefly)."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)

    @classmethod
    def load_or_create(cls, path: Path) -> DeviceKey:
        """Load ``path``, or generate and save a new key there."""
        if path.exists():
            return cls.load(path)
        key = cls.generate()
        key.save(path)
        return key

    def sign(self, message: bytes) -> bytes:
        """ECDSA P-256/SHA-256 signature in WebCrypto's raw ``r||s`` form (64 bytes)."""
        der = self._key.sign(message, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
