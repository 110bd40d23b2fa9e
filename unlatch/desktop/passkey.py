"""Passkey key slots: WebAuthn registration and unlock with the PRF extension.

A passkey cannot hand out a secret by itself, but with the WebAuthn ``prf``
extension (CTAP ``hmac-secret``) it computes ``PRF(credential secret, salt)``
for a salt we choose. Each passkey slot gets its own random 32-byte salt;
the PRF output for that salt, HKDF'd with the slot salt and the credential
id (:func:`unlatch.protocol.keyschedule.passkey_slot_kek`, label
``unlatch/v1/slot/passkey``), is the key-encryption key of a vault slot of
kind ``passkey``. Only the wrapping of the vault key is stored; the PRF
output is used once in memory and dropped.

The PRF output is what unlocks, yet every ceremony is still verified with
the maintained ``webauthn`` library - challenge (random, single use, short
life, bound to the UI session), origin, RP id hash, user-verification flag,
and, for an unlock, the signature under the stored public key and the sign
counter. That refuses replays of an old response, responses made for
another site, and authenticators that skipped the PIN/biometric check.

The relying party is the agent's own origin on the canonical host
``localhost`` (browsers refuse IP addresses such as 127.0.0.1 as an RP id);
the credential is bound to that host name, not to the port. See
docs/passkey.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from unlatch import b64url as _b64url
from unlatch import paths
from unlatch.agent.core import AgentCore
from unlatch.desktop.errors import DesktopError
from unlatch.desktop.files import read_json, write_json
from unlatch.protocol.keyschedule import passkey_slot_kek
from unlatch.vault import KIND_PASSKEY, SlotInfo, VaultLockedError
from unlatch.vault.errors import WrongKeyError

#: The one host name the UI uses for passkeys; also the WebAuthn RP id.
CANONICAL_HOST = "localhost"
RP_ID = CANONICAL_HOST
RP_NAME = "unlatch"
SALT_LEN = 32
PRF_LEN = 32
CHALLENGE_LEN = 32
#: How long the browser may take (ms) and how long a challenge lives (s).
CEREMONY_TIMEOUT_MS = 120_000
CHALLENGE_LIFE = 150.0
MAX_PENDING = 16
MAX_CREDENTIAL_ID = 1023  # WebAuthn: credential ids are at most 1023 bytes
MAX_PUBLIC_KEY = 2048
META_VERSION = 1
COUNTERS_FILE = "passkey-counters.json"


# ----------------------------------------------------------------- errors


class PasskeyError(DesktopError):
    """A passkey operation failed in an expected way."""

    code = "passkey_failed"


class PrfUnsupportedError(PasskeyError):
    """The authenticator did not report PRF support (or its PRF result)."""

    code = "prf_unsupported"

    def __init__(self) -> None:
        super().__init__(
            "This authenticator does not support the WebAuthn PRF extension "
            "(hmac-secret), so it cannot hold a key for the vault. Nothing was added. "
            "Use a passkey provider or security key that supports PRF "
            "(e.g. a recent phone passkey, Windows Hello, or a FIDO2 security key)."
        )


class WrongHostError(PasskeyError):
    """A passkey ceremony was attempted on a host other than the canonical one."""

    code = "use_localhost"

    def __init__(self, port: int) -> None:
        super().__init__(
            f"Passkeys work only on http://{CANONICAL_HOST}:{port}/ (a passkey is bound to "
            "a host name, and browsers refuse an IP address such as 127.0.0.1): "
            f"switch this window to {CANONICAL_HOST}."
        )


class CeremonyExpiredError(PasskeyError):
    """The challenge is unknown, already used, expired, or from another session."""

    code = "challenge_expired"

    def __init__(self) -> None:
        super().__init__(
            "This passkey request expired or was already used: press the button again."
        )


class PasskeyRejectedError(PasskeyError):
    """The WebAuthn response did not verify, or the passkey does not open the vault."""

    code = "passkey_rejected"
    status = 401


class UnknownPasskeyError(PasskeyError):
    """The credential used is not (or no longer) registered with this vault."""

    code = "passkey_unknown"
    status = 401

    def __init__(self) -> None:
        super().__init__(
            "This passkey is not registered with this vault (it may have been removed). "
            "The vault stays locked: unlock with your master password or your phone."
        )


class NoPasskeysError(PasskeyError):
    """Unlock was asked for but no passkey slot exists."""

    code = "no_passkeys"
    status = 404

    def __init__(self) -> None:
        super().__init__(
            "No passkey is registered with this vault yet: unlock another way, "
            "then add one in Settings."
        )


class PasskeyNotFoundError(PasskeyError):
    """No passkey slot has this id (it may be another kind of slot, or gone)."""

    code = "not_found"
    status = 404


class BadPasskeyInput(PasskeyError):
    """The page sent a malformed WebAuthn response."""

    code = "bad_request"


# ----------------------------------------------------------------- helpers


def b64url(data: bytes) -> str:
    """Unpadded base64url, as WebAuthn's JSON forms use."""
    return _b64url.encode(data)


def b64url_decode(text: object, what: str, max_len: int = 4096) -> bytes:
    """Strict, bounded base64url decoding; :class:`BadPasskeyInput` on garbage."""
    if not isinstance(text, str) or len(text) > max_len * 4 // 3 + 4:
        raise BadPasskeyInput(f"{what} is missing or too long")
    try:
        return _b64url.decode(text, max_chars=max_len * 4 // 3 + 4)
    except _b64url.Base64urlError:
        raise BadPasskeyInput(f"{what} is not base64url") from None


def _session_digest(session: str) -> bytes:
    return hashlib.sha256(b"unlatch/passkey/session\x00" + session.encode()).digest()


@dataclass
class _Pending:
    kind: str  # "register", "register-prf", "unlock"
    session: bytes
    challenge: bytes
    expires: float
    data: dict[str, Any] = field(default_factory=dict)


class Ceremonies:
    """Outstanding challenges: random, single use, short life, bound to one UI session."""

    def __init__(self, life: float = CHALLENGE_LIFE, limit: int = MAX_PENDING) -> None:
        self.life = life
        self.limit = limit
        self._pending: dict[str, _Pending] = {}

    def issue(self, kind: str, session: str, **data: Any) -> tuple[str, bytes]:
        """A new ``(token, challenge)``; the oldest entries go when the table is full."""
        now = time.monotonic()
        self._pending = {k: p for k, p in self._pending.items() if p.expires > now}
        while len(self._pending) >= self.limit:
            self._pending.pop(next(iter(self._pending)))
        token = secrets.token_urlsafe(18)
        challenge = secrets.token_bytes(CHALLENGE_LEN)
        self._pending[token] = _Pending(
            kind, _session_digest(session), challenge, now + self.life, dict(data)
        )
        return token, challenge

    def take(self, token: object, kind: str, session: str) -> _Pending:
        """Remove and return the challenge (single use), or raise :class:`CeremonyExpiredError`."""
        if not isinstance(token, str) or len(token) > 64:
            raise CeremonyExpiredError()
        pending = self._pending.pop(token, None)
        if (
            pending is None
            or pending.kind != kind
            or pending.expires < time.monotonic()
            or not hmac.compare_digest(pending.session, _session_digest(session))
        ):
            raise CeremonyExpiredError()
        return pending

    def __len__(self) -> int:
        return len(self._pending)


class SignCounters:
    """Last seen signature counter per credential, in a desktop-local file.

    Slot meta cannot be updated in place, so counters live next to the
    pairing records. Losing the file only weakens clone detection (the
    counter restarts from the registration value); it never locks anyone out.
    """

    def __init__(self, path: Path | None = None) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path or paths.subdir("desktop") / COUNTERS_FILE

    def get(self, credential_id: str, default: int) -> int:
        data = read_json(self.path) or {}
        value = data.get(credential_id, default)
        return value if isinstance(value, int) and 0 <= value < 2**32 else default

    def set(self, credential_id: str, count: int) -> None:
        data = read_json(self.path) or {}
        data[credential_id] = count
        write_json(self.path, data)

    def forget(self, credential_id: str) -> None:
        data = read_json(self.path) or {}
        if data.pop(credential_id, None) is not None:
            write_json(self.path, data)


@dataclass(frozen=True)
class PasskeySlot:
    """A passkey slot as the UI sees it (no salt, no key)."""

    id: str
    label: str
    created_at: int
    credential_id: str
    salt: bytes
    public_key: bytes
    sign_count: int

    @classmethod
    def from_slot(cls, slot: SlotInfo) -> PasskeySlot | None:
        """Parse a slot's meta; None when it is not a usable passkey slot."""
        meta = slot.meta
        try:
            cred = str(meta["credential_id"])
            salt = b64url_decode(meta["salt"], "salt")
            public_key = b64url_decode(meta["public_key"], "public key", MAX_PUBLIC_KEY)
            count = int(meta.get("sign_count", 0))
            b64url_decode(cred, "credential id", MAX_CREDENTIAL_ID)
        except (KeyError, ValueError, PasskeyError):
            return None
        if slot.kind != KIND_PASSKEY or len(salt) != SALT_LEN or not public_key:
            return None
        return cls(slot.id, slot.label, slot.created_at, cred, salt, public_key, count)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "created_at": self.created_at,
            "credential": self.credential_id[:12],
        }


def _prf_first(credential: Mapping[str, Any]) -> tuple[bool, bytes | None]:
    """``(prf.enabled, prf.results.first)`` from a credential's client extension results."""
    ext = credential.get("clientExtensionResults")
    prf = ext.get("prf") if isinstance(ext, dict) else None
    if not isinstance(prf, dict):
        return False, None
    enabled = prf.get("enabled") is True
    results = prf.get("results")
    if not isinstance(results, dict) or "first" not in results:
        return enabled, None
    first = b64url_decode(results["first"], "the PRF result", PRF_LEN * 2)
    if len(first) != PRF_LEN:
        raise BadPasskeyInput("the PRF result must be 32 bytes")
    return True, first


def _credential(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadPasskeyInput('"credential" must be the JSON form of a WebAuthn credential')
    return value


def _raw_id(credential: Mapping[str, Any]) -> bytes:
    raw = b64url_decode(credential.get("rawId"), "the credential id", MAX_CREDENTIAL_ID)
    if not raw or len(raw) > MAX_CREDENTIAL_ID:
        raise BadPasskeyInput("the credential id is empty or too long")
    return raw


def _wipe(buf: bytearray) -> None:
    for i in range(len(buf)):
        buf[i] = 0


# ----------------------------------------------------------------- service


class PasskeyService:
    """Registration, unlock and management of passkey slots for one agent."""

    def __init__(
        self,
        core: AgentCore,
        port: Callable[[], int],
        *,
        counters: SignCounters | None = None,
        ceremonies: Ceremonies | None = None,
    ) -> None:
        self.core = core
        self._port = port
        self.counters = counters or SignCounters()
        self.ceremonies = ceremonies or Ceremonies()

    @property
    def origin(self) -> str:
        """The only origin whose responses are accepted: ``http://localhost:PORT``."""
        return f"http://{CANONICAL_HOST}:{self._port()}"

    def check_host(self, host: str) -> None:
        """Refuse a ceremony unless the page is on the canonical host."""
        if host != f"{CANONICAL_HOST}:{self._port()}":
            raise WrongHostError(self._port())

    # ------------------------------------------------------------ queries

    async def slots(self) -> list[PasskeySlot]:
        """Every usable passkey slot (works while locked: the locked screen needs them)."""
        found = []
        for slot in await self.core.find_slots(KIND_PASSKEY):
            parsed = PasskeySlot.from_slot(slot)
            if parsed is not None:
                found.append(parsed)
        return found

    async def views(self) -> list[dict[str, Any]]:
        return [s.view() for s in await self.slots()]

    async def _slot(self, slot_id: str) -> PasskeySlot:
        for slot in await self.slots():
            if slot.id == slot_id:
                return slot
        raise PasskeyNotFoundError(f"no passkey slot {slot_id[:64]}")

    # ------------------------------------------------------- registration

    async def registration_options(self, session: str, label: str) -> dict[str, Any]:
        """Start "Add a passkey": creation options with a fresh challenge and PRF salt."""
        if not self.core.is_unlocked:
            raise VaultLockedError("unlock the vault before adding a passkey")
        label = label.strip() or "Passkey"
        if len(label) > 64 or any(ord(c) < 32 for c in label):
            raise BadPasskeyInput("a passkey name is 1-64 printable characters")
        existing = await self.slots()
        salt = secrets.token_bytes(SALT_LEN)
        token, challenge = self.ceremonies.issue("register", session, label=label, salt=salt)
        options = generate_registration_options(
            rp_id=RP_ID,
            rp_name=RP_NAME,
            user_name="unlatch vault",
            user_id=secrets.token_bytes(16),
            user_display_name=f"unlatch vault ({label})",
            challenge=challenge,
            timeout=CEREMONY_TIMEOUT_MS,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.REQUIRED,
            ),
            exclude_credentials=[
                PublicKeyCredentialDescriptor(id=b64url_decode(s.credential_id, "id"))
                for s in existing
            ],
        )
        public_key = _json_options(options)
        public_key["extensions"] = {"prf": {"eval": {"first": b64url(salt)}}}
        return {"token": token, "publicKey": public_key}

    async def register(self, session: str, token: object, credential: object) -> dict[str, Any]:
        """Verify ``navigator.credentials.create``'s answer; add the slot when PRF came back.

        Returns ``{"passkey": view}`` when done, or ``{"token", "publicKey"}``
        for a follow-up ``navigator.credentials.get`` when the authenticator
        supports PRF but only evaluates it on an assertion.
        """
        pending = self.ceremonies.take(token, "register", session)
        cred = _credential(credential)
        try:
            verified = verify_registration_response(
                credential=cred,
                expected_challenge=pending.challenge,
                expected_rp_id=RP_ID,
                expected_origin=self.origin,
                require_user_verification=True,
            )
        except Exception as exc:  # noqa: BLE001 - any parser failure on page input is a refusal
            raise PasskeyRejectedError(f"the passkey registration did not verify: {exc}") from None
        enabled, first = _prf_first(cred)
        if not enabled:
            raise PrfUnsupportedError()
        if len(verified.credential_public_key) > MAX_PUBLIC_KEY:
            raise BadPasskeyInput("the passkey's public key is too large")
        credential_id = b64url(verified.credential_id)
        if any(s.credential_id == credential_id for s in await self.slots()):
            raise PasskeyError("this passkey is already registered with this vault")
        reg = {
            "label": pending.data["label"],
            "salt": pending.data["salt"],
            "credential_id": verified.credential_id,
            "public_key": verified.credential_public_key,
            "sign_count": verified.sign_count,
            "aaguid": verified.aaguid,
            "backed_up": int(verified.credential_backed_up),
        }
        if first is not None:
            return {"passkey": await self._add_slot(reg, first)}
        # PRF supported but not evaluated at creation: one assertion to get it.
        token2, challenge = self.ceremonies.issue("register-prf", session, **reg)
        public_key = self._request_options(challenge, [(credential_id, pending.data["salt"])])
        return {"token": token2, "publicKey": public_key}

    async def register_prf(self, session: str, token: object, credential: object) -> dict[str, Any]:
        """Second step of a registration: the verified assertion that carries the PRF output."""
        pending = self.ceremonies.take(token, "register-prf", session)
        reg = pending.data
        cred = _credential(credential)
        if not hmac.compare_digest(_raw_id(cred), reg["credential_id"]):
            raise PasskeyRejectedError("use the passkey you just created")
        count = self._verify_assertion(
            cred, pending.challenge, reg["public_key"], reg["sign_count"]
        )
        reg = {**reg, "sign_count": count}
        _, first = _prf_first(cred)
        if first is None:
            raise PrfUnsupportedError()
        return {"passkey": await self._add_slot(reg, first)}

    async def _add_slot(self, reg: Mapping[str, Any], prf_first: bytes) -> dict[str, Any]:
        prf = bytearray(prf_first)
        kek = bytearray(passkey_slot_kek(bytes(prf), reg["salt"], reg["credential_id"]))
        _wipe(prf)
        credential_id = b64url(reg["credential_id"])
        meta: dict[str, str | int] = {
            "v": META_VERSION,
            "credential_id": credential_id,
            "salt": b64url(reg["salt"]),
            "public_key": b64url(reg["public_key"]),
            "sign_count": int(reg["sign_count"]),
            "rp_id": RP_ID,
            "aaguid": str(reg["aaguid"]),
            "backed_up": int(reg["backed_up"]),
        }
        try:
            slot_id = await self.core.add_slot(KIND_PASSKEY, reg["label"], bytes(kek), meta)
        finally:
            _wipe(kek)
        self.counters.set(credential_id, int(reg["sign_count"]))
        return (await self._slot(slot_id)).view()

    # ------------------------------------------------------------- unlock

    async def unlock_options(self, session: str) -> dict[str, Any]:
        """Request options naming every registered credential, each with its PRF salt."""
        slots = await self.slots()
        if not slots:
            raise NoPasskeysError()
        token, challenge = self.ceremonies.issue(
            "unlock", session, allowed=[s.credential_id for s in slots]
        )
        public_key = self._request_options(challenge, [(s.credential_id, s.salt) for s in slots])
        return {"token": token, "publicKey": public_key}

    async def unlock(self, session: str, token: object, credential: object) -> dict[str, Any]:
        """Verify the assertion, then (only then) derive the KEK and unlock the vault."""
        pending = self.ceremonies.take(token, "unlock", session)
        cred = _credential(credential)
        credential_id = b64url(_raw_id(cred))
        slot = next((s for s in await self.slots() if s.credential_id == credential_id), None)
        if slot is None or credential_id not in pending.data["allowed"]:
            raise UnknownPasskeyError()
        stored = self.counters.get(credential_id, slot.sign_count)
        count = self._verify_assertion(cred, pending.challenge, slot.public_key, stored)
        self.counters.set(credential_id, count)
        _, first = _prf_first(cred)
        if first is None:
            raise PasskeyRejectedError(
                "the passkey did not return its PRF secret, so it cannot open the vault "
                "(is this browser too old for the WebAuthn PRF extension?)"
            )
        prf = bytearray(first)
        kek = bytearray(passkey_slot_kek(bytes(prf), slot.salt, b64url_decode(credential_id, "id")))
        _wipe(prf)
        try:
            await self.core.unlock_with_slot(slot.id, bytes(kek))
        except WrongKeyError:
            raise PasskeyRejectedError(
                f"the passkey {slot.label!r} did not open the vault; it stays locked"
            ) from None
        finally:
            _wipe(kek)
        return {"unlocked": True, "passkey": slot.view()}

    # ---------------------------------------------------------- management

    async def rename(self, slot_id: str, label: str) -> dict[str, Any]:
        await self._slot(slot_id)
        await self.core.rename_slot(slot_id, label)
        return (await self._slot(slot_id)).view()

    async def remove(self, slot_id: str) -> dict[str, Any]:
        slot = await self._slot(slot_id)
        await self.core.remove_slot(slot_id)
        self.counters.forget(slot.credential_id)
        return {"removed": slot.view()}

    # ------------------------------------------------------------ internal

    def _request_options(self, challenge: bytes, creds: list[tuple[str, bytes]]) -> dict[str, Any]:
        options = generate_authentication_options(
            rp_id=RP_ID,
            challenge=challenge,
            timeout=CEREMONY_TIMEOUT_MS,
            allow_credentials=[
                PublicKeyCredentialDescriptor(id=b64url_decode(cid, "id")) for cid, _ in creds
            ],
            user_verification=UserVerificationRequirement.REQUIRED,
        )
        public_key = _json_options(options)
        public_key["extensions"] = {
            "prf": {"evalByCredential": {cid: {"first": b64url(salt)} for cid, salt in creds}}
        }
        return public_key

    def _verify_assertion(
        self, cred: dict[str, Any], challenge: bytes, public_key: bytes, sign_count: int
    ) -> int:
        try:
            verified = verify_authentication_response(
                credential=cred,
                expected_challenge=challenge,
                expected_rp_id=RP_ID,
                expected_origin=self.origin,
                credential_public_key=public_key,
                credential_current_sign_count=sign_count,
                require_user_verification=True,
            )
        except Exception as exc:  # noqa: BLE001 - any parser failure on page input is a refusal
            raise PasskeyRejectedError(
                f"the passkey's answer did not verify ({exc}); the vault stays locked"
            ) from None
        return int(verified.new_sign_count)


def _json_options(options: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(options_to_json(options))
    return data


__all__ = [
    "CANONICAL_HOST",
    "RP_ID",
    "Ceremonies",
    "NoPasskeysError",
    "PasskeyError",
    "PasskeyNotFoundError",
    "PasskeyRejectedError",
    "PasskeyService",
    "PasskeySlot",
    "PrfUnsupportedError",
    "SignCounters",
    "UnknownPasskeyError",
    "WrongHostError",
]
