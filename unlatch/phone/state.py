"""What the phone remembers: its identity, its paired desktops, answered requests.

:class:`PhoneState` is plain data; :mod:`unlatch.phone.store` seals it to disk.
Everything secret (the X25519 private key, each desktop's pairing keys and
unlock share K_P) lives only here, so it is only ever written encrypted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from unlatch.phone.errors import StorageError, UnknownDesktop
from unlatch.protocol import KeyPair, PhonePairingRecord, ReplayGuard
from unlatch.protocol.encoding import b64d, b64e
from unlatch.protocol.errors import ProtocolError

MAX_PAIRINGS = 64
MAX_NAME_CHARS = 64
SHORT_ID_CHARS = 8


def clean_name(name: str, what: str = "name") -> str:
    """A display name: trimmed, printable, bounded."""
    name = " ".join(name.split())
    if not name:
        raise StorageError(f"the {what} must not be empty")
    if len(name) > MAX_NAME_CHARS:
        raise StorageError(f"the {what} is longer than {MAX_NAME_CHARS} characters")
    if not name.isprintable():
        raise StorageError(f"the {what} contains control characters")
    return name


def printable(text: str, limit: int = 200) -> str:
    """Text from a peer made safe for a terminal: control characters (escape
    sequences) replaced, whitespace collapsed, length bounded."""
    cleaned = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned[:limit]


@dataclass
class Pairing:
    """One paired desktop, with the phone's own bookkeeping around the protocol record."""

    record: PhonePairingRecord
    label: str  # what the user calls it (starts as the desktop's own name)
    paired_at: int
    blocked: bool = False  # the user said "I did not ask for this"
    removed: bool = False  # the relay said the desktop removed this pairing: forget it

    @property
    def short_id(self) -> str:
        """A stable short handle for the CLI: hex prefix of the pairing id (never starts with -)."""
        return self.record.pairing_id.hex()[:SHORT_ID_CHARS]

    @property
    def routing_id(self) -> bytes:
        return self.record.keys.routing_id

    def summary(self) -> dict[str, Any]:
        """Public facts only (no keys): what ``list --json`` prints."""
        return {
            "id": self.short_id,
            "name": self.label,
            "desktop_name": self.record.desktop_name,
            "desktop_device_id": self.record.desktop_device_id,
            "relay_url": self.record.relay_url,
            "routing_id": b64e(self.routing_id),
            "paired_at": self.paired_at,
            "blocked": self.blocked,
            "removed": self.removed,
            "number_matching": self.record.allow_number_matching,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record.to_dict(),
            "label": self.label,
            "paired_at": self.paired_at,
            "blocked": self.blocked,
            "removed": self.removed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pairing:
        return cls(
            record=PhonePairingRecord.from_dict(data["record"]),
            label=str(data["label"]),
            paired_at=int(data["paired_at"]),
            blocked=bool(data.get("blocked", False)),
            removed=bool(data.get("removed", False)),
        )


def _same_desktop(a: Pairing, b: Pairing) -> bool:
    """The same desktop: its relay identity on the same relay."""
    return (
        a.record.desktop_device_id == b.record.desktop_device_id
        and a.record.relay_url == b.record.relay_url
    )


@dataclass
class PhoneState:
    """The whole (secret) state of one phone."""

    name: str
    identity: KeyPair
    pairings: list[Pairing] = field(default_factory=list)
    replay: ReplayGuard = field(default_factory=ReplayGuard)
    push: dict[str, str] | None = None  # the registered push target, for `list`
    created_at: int = field(default_factory=lambda: int(time.time()))

    @property
    def records(self) -> list[PhonePairingRecord]:
        return [p.record for p in self.pairings]

    def find(self, key: str) -> Pairing:
        """A pairing by its name (case-insensitive), id prefix, or desktop device id."""
        key = key.strip()
        if not key:
            raise UnknownDesktop("name a desktop (see `unlatch phone list`)")
        by_name = [p for p in self.pairings if p.label.casefold() == key.casefold()]
        if len(by_name) == 1:
            return by_name[0]
        by_id = [
            p
            for p in self.pairings
            if (len(key) >= 4 and p.record.pairing_id.hex().startswith(key.lower()))
            or p.record.desktop_device_id == key
        ]
        matches = by_name or by_id
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise UnknownDesktop(f"no paired desktop called {key!r} (see `unlatch phone list`)")
        raise UnknownDesktop(
            f"{key!r} names several desktops: use the id from `unlatch phone list`"
        )

    def by_routing_id(self, routing_id: bytes) -> Pairing | None:
        for p in self.pairings:
            if p.routing_id == routing_id:
                return p
        return None

    def by_pairing_id(self, pairing_id: bytes) -> Pairing | None:
        for p in self.pairings:
            if p.record.pairing_id == pairing_id:
                return p
        return None

    def add(self, pairing: Pairing) -> None:
        """Add a pairing; it replaces an earlier pairing with the same desktop.

        Pairing the same desktop again (after it removed this phone, or to
        start afresh) leaves one entry, not two identical ones: the old
        record's keys can no longer unlock anything the desktop keeps.
        """
        self.pairings = [
            p
            for p in self.pairings
            if p.record.pairing_id != pairing.record.pairing_id and not _same_desktop(p, pairing)
        ]
        if len(self.pairings) >= MAX_PAIRINGS:
            raise StorageError(f"this phone already has {MAX_PAIRINGS} paired desktops")
        taken = {p.label.casefold() for p in self.pairings}
        base, n = pairing.label, 2
        while pairing.label.casefold() in taken:  # keep names unique so they work as handles
            pairing.label = f"{base} ({n})"
            n += 1
        self.pairings.append(pairing)

    def remove(self, pairing: Pairing) -> None:
        self.pairings = [p for p in self.pairings if p is not pairing]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "identity": b64e(self.identity.private_bytes()),
            "pairings": [p.to_dict() for p in self.pairings],
            "replay": self.replay.to_dict(),
            "push": self.push,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Any) -> PhoneState:
        try:
            pairings = data["pairings"]
            if not isinstance(pairings, list) or len(pairings) > MAX_PAIRINGS:
                raise StorageError("phone state: too many pairings")
            push = data.get("push")
            return cls(
                name=str(data["name"]),
                identity=KeyPair.from_private_bytes(b64d(str(data["identity"]), "identity")),
                pairings=[Pairing.from_dict(p) for p in pairings],
                replay=ReplayGuard.from_dict(data.get("replay", {})),
                push={str(k): str(v) for k, v in push.items()} if isinstance(push, dict) else None,
                created_at=int(data.get("created_at", 0)),
            )
        except (KeyError, TypeError, ValueError, ProtocolError):
            raise StorageError("phone state is damaged (unexpected contents)") from None
