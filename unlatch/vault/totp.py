"""TOTP (RFC 6238) for items that carry a one-time-password secret.

Accepts what sites hand out: a base32 secret (spaces and case ignored) or
an ``otpauth://totp/...`` URI with its ``digits``, ``period`` and
``algorithm``. The code itself comes from :mod:`cryptography`'s TOTP.
"""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from unlatch.vault.errors import InvalidItemError

MAX_SECRET_CHARS = 512
_ALGORITHMS: dict[str, hashes.SHA1 | hashes.SHA256 | hashes.SHA512] = {
    "SHA1": hashes.SHA1(),  # noqa: S303 (RFC 6238 default; HMAC-SHA1 is sound)
    "SHA256": hashes.SHA256(),
    "SHA512": hashes.SHA512(),
}


@dataclass(frozen=True)
class TotpSpec:
    """A parsed TOTP secret with its parameters."""

    key: bytes
    digits: int = 6
    period: int = 30
    algorithm: str = "SHA1"


def parse(secret: str) -> TotpSpec:
    """Parse a base32 secret or an otpauth URI; :class:`InvalidItemError` if unusable."""
    text = secret.strip()
    if not text or len(text) > MAX_SECRET_CHARS:
        raise InvalidItemError(f"a TOTP secret must be 1-{MAX_SECRET_CHARS} characters")
    if text.lower().startswith("otpauth://"):
        return _parse_uri(text)
    return TotpSpec(key=_decode_base32(text))


def _parse_uri(uri: str) -> TotpSpec:
    parts = urlsplit(uri)
    if parts.netloc.lower() != "totp":
        raise InvalidItemError("only otpauth://totp/ URIs are supported (not HOTP)")
    query = parse_qs(parts.query)

    def one(name: str, default: str) -> str:
        values = query.get(name)
        return values[0] if values else default

    try:
        digits = int(one("digits", "6"))
        period = int(one("period", "30"))
    except ValueError:
        raise InvalidItemError("otpauth URI: digits and period must be numbers") from None
    algorithm = one("algorithm", "SHA1").upper()
    if digits not in (6, 7, 8) or not 1 <= period <= 300 or algorithm not in _ALGORITHMS:
        raise InvalidItemError("otpauth URI: unsupported digits, period or algorithm")
    return TotpSpec(_decode_base32(one("secret", "")), digits, period, algorithm)


def _decode_base32(text: str) -> bytes:
    cleaned = text.replace(" ", "").replace("-", "").upper().rstrip("=")
    padded = cleaned + "=" * (-len(cleaned) % 8)
    try:
        key = base64.b32decode(padded)
    except (binascii.Error, ValueError):
        raise InvalidItemError("the TOTP secret is not valid base32") from None
    if len(key) < 10:
        raise InvalidItemError("the TOTP secret is too short (at least 16 base32 characters)")
    return key


def current_code(secret: str, at: float | None = None) -> tuple[str, int]:
    """The code valid at ``at`` (default: now) and the seconds it stays valid."""
    spec = parse(secret)
    now = time.time() if at is None else at
    totp = TOTP(
        spec.key, spec.digits, _ALGORITHMS[spec.algorithm], spec.period, enforce_key_length=False
    )
    code = totp.generate(int(now)).decode("ascii")
    return code, spec.period - int(now) % spec.period


def current_view(secret: str, at: float | None = None) -> dict[str, str | int]:
    """What a screen shows for an item's one-time code: the code, the seconds it
    stays valid and the period (for a countdown ring), never the secret itself."""
    spec = parse(secret)
    code, remaining = current_code(secret, at)
    return {"code": code, "remaining": remaining, "period": spec.period}
