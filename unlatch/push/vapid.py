"""The relay's VAPID identity (RFC 8292) and the JWTs it signs.

Push services attribute pushes to an application server by a P-256 key; a
browser subscription made with ``applicationServerKey`` only accepts pushes
signed by that key. The key is therefore generated once, at the relay's first
start, and kept: losing it orphans every phone's subscription.

Storage: PKCS#8 PEM, mode 0600, written to a temporary file in the same
directory and then hard-linked into place, so a crash never leaves a partial
key and two relays starting at once cannot each keep a different key (the
loser of the race loads the winner's file).

Tokens are ES256 JWTs signed with ``cryptography``; the signature is the raw
32-byte r || 32-byte s that JWS requires, not DER.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from unlatch.push import base64url
from unlatch.push.errors import VapidError

MAX_TOKEN_LIFETIME = 24 * 3600  # RFC 8292 section 2: exp no more than 24 hours ahead
DEFAULT_TOKEN_LIFETIME = 12 * 3600
MAX_KEY_FILE_BYTES = 16 * 1024
_JWT_HEADER = base64url.encode(json.dumps({"typ": "JWT", "alg": "ES256"}).encode())


def check_subject(subject: str) -> str:
    """Validate the VAPID ``sub`` claim: a contact, ``mailto:`` or ``https:``.

    Push services use it to reach the relay's operator when pushes misbehave.
    """
    if not isinstance(subject, str) or len(subject) > 256:
        raise VapidError("VAPID subject must be a string of at most 256 characters")
    if subject.startswith("mailto:") and "@" in subject[7:]:
        return subject
    if subject.startswith("https://") and len(subject) > len("https://"):
        return subject
    raise VapidError(
        "VAPID subject must be a contact for the relay's operator: "
        "'mailto:you@example.org' or 'https://your.site/'"
    )


@dataclass(frozen=True, repr=False)
class VapidKeys:
    """The relay's VAPID key pair. ``repr`` shows only the public key."""

    private_key: ec.EllipticCurvePrivateKey

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, ec.EllipticCurvePrivateKey) or not isinstance(
            self.private_key.curve, ec.SECP256R1
        ):
            raise VapidError("a VAPID key must be a P-256 (secp256r1) private key")

    @classmethod
    def generate(cls) -> VapidKeys:
        """A fresh key pair (kept in memory only)."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def load_or_create(cls, path: Path) -> VapidKeys:
        """Load the key at ``path``, creating it (0600, atomically) if absent."""
        path = Path(path)
        try:
            return cls._load(path)
        except FileNotFoundError:
            pass
        keys = cls.generate()
        pem = keys.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(pem)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # fails if another process won the race
            except FileExistsError:
                return cls._load(path)
        except OSError as exc:
            raise VapidError(f"cannot write VAPID key {path}: {exc.strerror}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return keys

    @classmethod
    def _load(cls, path: Path) -> VapidKeys:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise VapidError(f"cannot read VAPID key {path}: {exc.strerror}") from None
        if not stat.S_ISREG(st.st_mode):
            raise VapidError(f"VAPID key {path} is not a regular file")
        if st.st_mode & 0o077:
            raise VapidError(f"VAPID key {path} is readable by other users; run: chmod 600 {path}")
        if st.st_size > MAX_KEY_FILE_BYTES:
            raise VapidError(f"VAPID key {path} is too large to be a key file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise VapidError(f"cannot read VAPID key {path}: {exc.strerror}") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            raise VapidError(
                f"VAPID key {path} is not an unencrypted PEM private key; "
                "move it away to have a new one generated (phones must then re-subscribe)"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise VapidError(f"VAPID key {path} is not a P-256 key")
        return cls(key)

    @property
    def public_key_bytes(self) -> bytes:
        """The uncompressed public point (65 bytes)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def public_key_b64url(self) -> str:
        """What the phone passes as ``applicationServerKey`` to ``subscribe()``."""
        return base64url.encode(self.public_key_bytes)

    def sign_token(
        self,
        audience: str,
        subject: str,
        *,
        lifetime: int = DEFAULT_TOKEN_LIFETIME,
        now: float | None = None,
    ) -> str:
        """An ES256 JWT with ``aud``, ``exp`` (now + lifetime) and ``sub``."""
        if not 0 < lifetime <= MAX_TOKEN_LIFETIME:
            raise VapidError(f"VAPID token lifetime must be 1..{MAX_TOKEN_LIFETIME} seconds")
        check_subject(subject)
        issued = int(time.time() if now is None else now)
        claims = {"aud": audience, "exp": issued + lifetime, "sub": subject}
        body = base64url.encode(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{_JWT_HEADER}.{body}".encode("ascii")
        der = self.private_key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{signing_input.decode('ascii')}.{base64url.encode(signature)}"

    def authorization(
        self,
        audience: str,
        subject: str,
        *,
        lifetime: int = DEFAULT_TOKEN_LIFETIME,
        now: float | None = None,
    ) -> str:
        """The ``Authorization`` header value: ``vapid t=<jwt>, k=<public key>``."""
        token = self.sign_token(audience, subject, lifetime=lifetime, now=now)
        return f"vapid t={token}, k={self.public_key_b64url}"

    def __repr__(self) -> str:
        return f"VapidKeys(public_key={self.public_key_b64url!r})"
