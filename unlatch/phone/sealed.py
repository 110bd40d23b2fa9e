"""Encryption at rest for the phone's state: one sealed JSON envelope.

The state holds the phone's protocol identity and, per paired desktop, the
pairing keys and the unlock share K_P, so it is never written in clear. The
envelope is AES-256-GCM under a key made with HKDF from

* the 32 random bytes of ``storage.key`` (mode 0600) alone, or
* those bytes **and** Argon2id(PIN) when the user set a PIN, so the share
  cannot be read without the PIN even by someone holding every file.

The key-derivation parameters travel in the envelope and are bound into the
AEAD's associated data as length-prefixed bytes: an attacker cannot lower the
Argon2id cost or swap the salt without the open failing. Parameters read from
disk are bounded so a tampered file cannot make the client allocate
gigabytes. An envelope sealed with a lower cost than today's defaults (the
64 MiB of earlier versions) still opens, and :mod:`unlatch.phone.store`
re-seals it with the defaults at that first opening.

What one guess of an offline attacker costs (someone with a copy of both
files, ``storage.key`` and ``state.sealed``) is one Argon2id derivation with
these parameters: docs/phone-client.md has the table per PIN length.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from unlatch.phone.errors import PhoneError, PinRequired, StorageError, WrongPin
from unlatch.protocol.encoding import b64d, b64e
from unlatch.protocol.errors import ProtocolError

FORMAT = "unlatch-phone-state"
VERSION = 1
STORAGE_KEY_LEN = 32
NONCE_LEN = 12
SALT_LEN = 16
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024

_STATE_KEY_LABEL = b"unlatch phone state key v1"
_AAD_LABEL = b"unlatch phone state v1"

# Argon2id costs of a new PIN envelope: 256 MiB and 3 passes, one lane, so each
# guess needs 256 MiB of memory touched 3 times (RFC 9106 section 4's second
# option with four times its memory). Measured by bench/bench_phone_pin.py:
# about 0.7 s on one x86-64 server core (AMD EPYC); that is what each guess of
# an offline attacker costs (docs/phone-client.md, the table). A phone's slower
# core makes the user wait longer at each opening, not the attacker.
DEFAULT_TIME_COST = 3
DEFAULT_MEMORY_KIB = 256 * 1024
DEFAULT_PARALLELISM = 1
# Seconds per guess on one core with the defaults, as measured and documented
# (docs/phone-client.md): what the CLI quotes to a user with a short PIN.
MEASURED_SECONDS_PER_GUESS = 0.7
# Bounds refuse absurd values from a tampered file (before any work).
_MAX_TIME_COST = 20
_MAX_MEMORY_KIB = 1024 * 1024
_MAX_PARALLELISM = 8
# A new PIN has at least 6 characters: 10^6 guesses of 0.7 s, about 8 days per
# core for 6 digits, where 4 digits fell in about 2 hours. A state sealed under
# a shorter PIN by an earlier version still opens (LEGACY_MIN_PIN_LEN).
MIN_PIN_LEN = 6
LEGACY_MIN_PIN_LEN = 4
MAX_PIN_LEN = 128


def _lp(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


@dataclass(frozen=True)
class KdfParams:
    """How the state key is derived: from the key file only, or also from a PIN."""

    name: str  # "keyfile" | "argon2id"
    salt: bytes = b""
    time_cost: int = 0
    memory_kib: int = 0
    parallelism: int = 0

    @property
    def needs_pin(self) -> bool:
        return self.name == "argon2id"

    @property
    def below_defaults(self) -> bool:
        """A PIN envelope cheaper to guess than today's defaults: re-seal it."""
        return self.needs_pin and (
            self.memory_kib < DEFAULT_MEMORY_KIB or self.time_cost < DEFAULT_TIME_COST
        )

    @classmethod
    def keyfile(cls) -> KdfParams:
        return cls("keyfile")

    @classmethod
    def argon2id(
        cls,
        *,
        time_cost: int = DEFAULT_TIME_COST,
        memory_kib: int = DEFAULT_MEMORY_KIB,
        parallelism: int = DEFAULT_PARALLELISM,
    ) -> KdfParams:
        return cls("argon2id", os.urandom(SALT_LEN), time_cost, memory_kib, parallelism)

    def aad(self) -> bytes:
        """The associated data: label, format version and every KDF parameter."""
        return (
            _lp(_AAD_LABEL)
            + struct.pack(">H", VERSION)
            + _lp(self.name.encode())
            + _lp(self.salt)
            + struct.pack(">III", self.time_cost, self.memory_kib, self.parallelism)
        )

    def to_dict(self) -> dict[str, Any]:
        if not self.needs_pin:
            return {"name": self.name}
        return {
            "name": self.name,
            "salt": b64e(self.salt),
            "time_cost": self.time_cost,
            "memory_kib": self.memory_kib,
            "parallelism": self.parallelism,
        }

    @classmethod
    def from_dict(cls, data: object) -> KdfParams:
        if not isinstance(data, dict):
            raise StorageError("phone state: key derivation parameters are missing")
        name = data.get("name")
        if name == "keyfile":
            return cls.keyfile()
        if name != "argon2id":
            raise StorageError(f"phone state: unknown key derivation {name!r}")
        try:
            salt = b64d(str(data["salt"]), "salt", max_len=64)
            t, m, p = (int(data[k]) for k in ("time_cost", "memory_kib", "parallelism"))
        except (KeyError, TypeError, ValueError, ProtocolError):
            raise StorageError("phone state: invalid Argon2id parameters") from None
        if not (
            len(salt) == SALT_LEN
            and 1 <= t <= _MAX_TIME_COST
            and 8 * p <= m <= _MAX_MEMORY_KIB
            and 1 <= p <= _MAX_PARALLELISM
        ):
            raise StorageError("phone state: Argon2id parameters out of bounds")
        return cls("argon2id", salt, t, m, p)


def check_pin(pin: str, *, minimum: int = MIN_PIN_LEN) -> str:
    """A PIN's shape: digits or a passphrase, bounded, without surrounding spaces.

    New PINs need ``MIN_PIN_LEN`` characters; opening a state sealed by an
    earlier version passes ``LEGACY_MIN_PIN_LEN``.
    """
    pin = pin.strip()
    if not minimum <= len(pin) <= MAX_PIN_LEN:
        raise PhoneError(f"a PIN has {minimum} to {MAX_PIN_LEN} characters")
    return pin


def offline_guess_time(pin: str) -> str:
    """Roughly how long one core needs to try every PIN of this shape (for warnings)."""
    alphabet = 10 if pin.isdigit() else 95
    return format_duration(alphabet ** len(pin) * MEASURED_SECONDS_PER_GUESS)


def format_duration(seconds: float) -> str:
    """A long duration in the largest unit that gives at least 2 of it."""
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("hours", 3600)):
        if seconds >= 2 * size:
            return f"{seconds / size:,.0f} {unit}"
    return f"{seconds / 60:,.0f} minutes"


def derive_key(storage_key: bytes, params: KdfParams, pin: str | None) -> bytes:
    """The AES-256-GCM key of the state for these parameters (and PIN, when needed)."""
    if len(storage_key) != STORAGE_KEY_LEN:
        raise StorageError("phone storage key file is damaged (wrong size)")
    ikm = storage_key
    if params.needs_pin:
        if pin is None:
            raise PinRequired("this phone is protected by a PIN: give it to continue")
        ikm += hash_secret_raw(
            check_pin(pin, minimum=LEGACY_MIN_PIN_LEN).encode("utf-8"),
            params.salt,
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=32,
            type=Type.ID,
        )
    return HKDF(hashes.SHA256(), 32, salt=None, info=_STATE_KEY_LABEL).derive(ikm)


def seal(key: bytes, params: KdfParams, plaintext: bytes) -> bytes:
    """The envelope (JSON bytes) holding ``plaintext`` encrypted under ``key``."""
    nonce = os.urandom(NONCE_LEN)
    ct = AESGCM(key).encrypt(nonce, plaintext, params.aad())
    envelope = {
        "format": FORMAT,
        "v": VERSION,
        "kdf": params.to_dict(),
        "nonce": b64e(nonce),
        "ciphertext": b64e(ct),
    }
    return json.dumps(envelope, indent=1).encode() + b"\n"


def read_params(envelope: bytes) -> tuple[KdfParams, bytes, bytes]:
    """Parse an envelope: its KDF parameters, nonce and ciphertext (not yet opened)."""
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise StorageError("phone state file is too large")
    try:
        data = json.loads(envelope)
    except (ValueError, UnicodeDecodeError):
        raise StorageError("phone state file is not a sealed unlatch state") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StorageError("phone state file is not a sealed unlatch state")
    if data.get("v") != VERSION:
        raise StorageError(f"phone state format version {data.get('v')!r} is not supported")
    params = KdfParams.from_dict(data.get("kdf"))
    try:
        nonce = b64d(str(data["nonce"]), "nonce", max_len=64)
        ct = b64d(str(data["ciphertext"]), "ciphertext", max_len=MAX_ENVELOPE_BYTES)
    except (KeyError, ProtocolError):
        raise StorageError("phone state file is damaged") from None
    if len(nonce) != NONCE_LEN:
        raise StorageError("phone state file is damaged (nonce)")
    return params, nonce, ct


def open_sealed(key: bytes, params: KdfParams, nonce: bytes, ciphertext: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, params.aad())
    except InvalidTag:
        if params.needs_pin:
            raise WrongPin("wrong PIN (or the phone state file was altered)") from None
        raise StorageError(
            "phone state failed authentication: the file was altered or storage.key replaced"
        ) from None
