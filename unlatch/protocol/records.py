"""What each side keeps after pairing, and how it is serialised.

The records are plain data (JSON-friendly dicts of base64url strings) so the
desktop agent, the Python phone client and the PWA store them the same way.
Secrets inside them must be stored with care by the caller: the phone client
encrypts its records at rest; the desktop keeps its record beside its other
local secrets (mode 0600). The phone share K_P is in the phone's record only:
the desktop forgets it as soon as the vault slot is made.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Self

from unlatch.protocol.constants import ID_LEN, KEY_LEN, UnlockPolicy
from unlatch.protocol.encoding import b64d, b64e
from unlatch.protocol.errors import MalformedMessage
from unlatch.protocol.keyschedule import PairingKeys

_KEY_FIELDS = tuple(f.name for f in fields(PairingKeys))


def _keys_to_dict(keys: PairingKeys) -> dict[str, str]:
    return {name: b64e(getattr(keys, name)) for name in _KEY_FIELDS}


def _mapping(data: object) -> dict[str, Any]:
    """Stored records come from JSON the caller read: refuse anything but an object."""
    if not isinstance(data, dict):
        raise MalformedMessage("a pairing record must be a mapping of its fields")
    return data


def _keys_from_dict(data: dict[str, Any]) -> PairingKeys:
    sizes = {"pairing_id": ID_LEN, "routing_id": ID_LEN}
    return PairingKeys(**{n: _bytes(data, n, sizes.get(n, KEY_LEN)) for n in _KEY_FIELDS})


def _bytes(data: dict[str, Any], name: str, size: int = KEY_LEN) -> bytes:
    value = data.get(name)
    if not isinstance(value, str):
        raise MalformedMessage(f"pairing record lacks {name}")
    raw = b64d(value, name)
    if len(raw) != size:
        raise MalformedMessage(f"pairing record field {name} must be {size} bytes")
    return raw


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise MalformedMessage(f"pairing record lacks {name}")
    return value


def _flag(data: dict[str, Any], name: str) -> bool:
    """A yes/no field that records made before it existed lack: absent means no."""
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise MalformedMessage(f"pairing record field {name} must be true or false")
    return value


def _int(data: dict[str, Any], name: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MalformedMessage(f"pairing record lacks {name}")
    return value


@dataclass(frozen=True)
class DesktopPairingRecord:
    """The desktop's view of a paired phone."""

    keys: PairingKeys
    phone_pk: bytes
    phone_name: str
    phone_device_id: str
    created_at: int

    @property
    def pairing_id(self) -> bytes:
        return self.keys.pairing_id

    def to_dict(self) -> dict[str, Any]:
        return {
            **_keys_to_dict(self.keys),
            "phone_pk": b64e(self.phone_pk),
            "phone_name": self.phone_name,
            "phone_device_id": self.phone_device_id,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = _mapping(data)
        return cls(
            keys=_keys_from_dict(data),
            phone_pk=_bytes(data, "phone_pk"),
            phone_name=_text(data, "phone_name"),
            phone_device_id=_text(data, "phone_device_id"),
            created_at=_int(data, "created_at"),
        )


@dataclass(frozen=True)
class PhonePairingRecord:
    """The phone's view of a paired desktop, including its unlock share K_P.

    ``allow_number_matching`` is the pairing's unlock policy, the phone
    user's choice (docs/protocol.md 6.8): off, the phone answers only
    requests whose QR it scanned, whatever the desktop asks. A record
    stored before the policy existed lacks the field and reads as off.
    """

    keys: PairingKeys
    desktop_pk: bytes
    desktop_name: str
    desktop_device_id: str
    relay_url: str
    phone_share: bytes
    created_at: int
    allow_number_matching: bool = False

    @property
    def policy(self) -> UnlockPolicy:
        """The policy as the replies carry it."""
        if self.allow_number_matching:
            return UnlockPolicy.NUMBER_MATCHING
        return UnlockPolicy.SCAN_ONLY

    @property
    def pairing_id(self) -> bytes:
        return self.keys.pairing_id

    def to_dict(self) -> dict[str, Any]:
        return {
            **_keys_to_dict(self.keys),
            "desktop_pk": b64e(self.desktop_pk),
            "desktop_name": self.desktop_name,
            "desktop_device_id": self.desktop_device_id,
            "relay_url": self.relay_url,
            "phone_share": b64e(self.phone_share),
            "created_at": self.created_at,
            "allow_number_matching": self.allow_number_matching,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = _mapping(data)
        return cls(
            keys=_keys_from_dict(data),
            desktop_pk=_bytes(data, "desktop_pk"),
            desktop_name=_text(data, "desktop_name"),
            desktop_device_id=_text(data, "desktop_device_id"),
            relay_url=_text(data, "relay_url"),
            phone_share=_bytes(data, "phone_share"),
            created_at=_int(data, "created_at"),
            allow_number_matching=_flag(data, "allow_number_matching"),
        )
