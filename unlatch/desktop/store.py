"""Paired phones on disk: ``$UNLATCH_HOME/desktop/pairings.json`` (0600, atomic).

A :class:`PairedPhone` joins the protocol's
:class:`~unlatch.protocol.DesktopPairingRecord` (pairing keys, the phone's
public key and relay device id) with what the desktop added: the vault slot
that this phone's share opens, the reference of its desktop-local secret
K_L, the relay it was paired through and a user-chosen label.

The records hold pairing keys (MAC and push keys, not the phone's share),
so the file is owner-only like the local key file. Slots whose phone was
revoked while the vault was locked are listed under ``orphan_slots`` and
removed at the next unlock (their K_L is already gone, so they open nothing
in the meantime).
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from unlatch import paths
from unlatch.desktop.errors import NotPairedError, StateFileError
from unlatch.desktop.files import read_json, write_json
from unlatch.protocol import DesktopPairingRecord, ProtocolError
from unlatch.protocol.encoding import b64e

PAIRINGS_FILE = "pairings.json"
FILE_VERSION = 1
MAX_PAIRINGS = 64


def phone_id_of(record: DesktopPairingRecord) -> str:
    """A stable id for a paired phone: the hex of its pairing id.

    Hex, not base64url: an id that began with "-" (one in 64 of those)
    would be read as an option by the command line.
    """
    return record.pairing_id.hex()


MIN_ID_PREFIX = 6


def local_ref_of(record: DesktopPairingRecord) -> str:
    """The key under which this pairing's K_L is kept in the local key store."""
    return "phone-" + record.pairing_id.hex()


@dataclass(frozen=True)
class PairedPhone:
    """One paired phone as the desktop remembers it.

    ``allows_number_matching`` is what the phone's last authenticated reply
    said about its policy for this pairing (docs/protocol.md 6.8). It only
    decides which request the desktop makes: the phone holds the policy and
    refuses what it did not allow, so editing this file widens nothing.
    """

    record: DesktopPairingRecord
    slot_id: str
    relay_url: str
    label: str
    created_at: int
    allows_number_matching: bool = False

    @property
    def id(self) -> str:
        return phone_id_of(self.record)

    @property
    def local_ref(self) -> str:
        return local_ref_of(self.record)

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record.to_dict(),
            "slot_id": self.slot_id,
            "relay_url": self.relay_url,
            "label": self.label,
            "created_at": self.created_at,
            "allows_number_matching": self.allows_number_matching,
        }

    @classmethod
    def from_dict(cls, data: Any) -> PairedPhone:
        if not isinstance(data, dict):
            raise ValueError("not an object")
        record = DesktopPairingRecord.from_dict(data["record"])
        slot_id, relay_url, label = data["slot_id"], data["relay_url"], data["label"]
        created = data["created_at"]
        if not all(isinstance(v, str) for v in (slot_id, relay_url, label)):
            raise ValueError("bad text field")
        if not isinstance(created, int):
            raise ValueError("bad time")
        allows = data.get("allows_number_matching", False)  # absent in older files
        if not isinstance(allows, bool):
            raise ValueError("bad policy")
        return cls(record, slot_id, relay_url, label, created, allows)

    def public_view(self) -> dict[str, Any]:
        """What the UI and ``unlatch devices --json`` show (no key material)."""
        return {
            "id": self.id,
            "label": self.label,
            "phone_name": self.record.phone_name,
            "phone_device_id": self.record.phone_device_id,
            "relay_url": self.relay_url,
            "created_at": self.created_at,
            "allows_number_matching": self.allows_number_matching,
        }


class PairingStore:
    """Load/modify/save of the pairings file.

    Serialised by a thread lock and an ``flock`` on a side file, because the
    agent (web UI) and a CLI process (``unlatch pair``) may both write it.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.subdir("desktop") / PAIRINGS_FILE
        self._thread_lock = threading.Lock()

    @contextmanager
    def _lock(self) -> Iterator[None]:
        with self._thread_lock:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(
                self.path.with_name(self.path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _load(self) -> tuple[list[PairedPhone], list[str]]:
        data = read_json(self.path)
        if data is None:
            return [], []
        if data.get("version") != FILE_VERSION:
            raise StateFileError(f"{self.path} has an unknown version")
        raw, orphans = data.get("phones"), data.get("orphan_slots", [])
        if not isinstance(raw, list) or len(raw) > MAX_PAIRINGS or not isinstance(orphans, list):
            raise StateFileError(f"{self.path} is damaged")
        try:
            phones = [PairedPhone.from_dict(p) for p in raw]
        except (KeyError, ValueError, TypeError, ProtocolError):
            raise StateFileError(f"{self.path} is damaged (a pairing record is invalid)") from None
        return phones, [str(s) for s in orphans if isinstance(s, str)]

    def _save(self, phones: list[PairedPhone], orphans: list[str]) -> None:
        write_json(
            self.path,
            {
                "version": FILE_VERSION,
                "phones": [p.to_dict() for p in phones],
                "orphan_slots": orphans,
            },
        )

    def all(self) -> list[PairedPhone]:
        """Every paired phone, oldest first."""
        with self._lock():
            return self._load()[0]

    def get(self, phone_id: str) -> PairedPhone:
        """The phone with this id, its (unique) label or a unique id prefix.

        Also accepts the base64url form that earlier versions showed, so a
        script written against them keeps working.
        """
        phones = self.all()
        wanted = phone_id.strip()
        for p in phones:
            if wanted in (p.id, b64e(p.record.pairing_id)):
                return p
        named = [p for p in phones if p.label.casefold() == wanted.casefold()]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            raise NotPairedError(
                f"{len(named)} paired phones are named {wanted!r}: give the id instead "
                "(see `unlatch devices`)"
            )
        if len(wanted) >= MIN_ID_PREFIX:
            prefixed = [p for p in phones if p.id.startswith(wanted.lower())]
            if len(prefixed) == 1:
                return prefixed[0]
        raise NotPairedError(f"no paired phone {wanted!r} (see `unlatch devices`)")

    def add(self, phone: PairedPhone) -> None:
        """Remember a newly paired phone."""
        with self._lock():
            phones, orphans = self._load()
            if len(phones) >= MAX_PAIRINGS:
                raise StateFileError(f"at most {MAX_PAIRINGS} phones can be paired")
            phones = [p for p in phones if p.id != phone.id] + [phone]
            self._save(phones, orphans)

    def rename(self, phone_id: str, label: str) -> PairedPhone:
        """Change a phone's label; returns the updated entry."""
        target = self.get(phone_id)
        with self._lock():
            phones, orphans = self._load()
            updated = replace(target, label=label)
            self._save([updated if p.id == target.id else p for p in phones], orphans)
        return updated

    def learn_policy(self, phone_id: str, allows_number_matching: bool) -> PairedPhone | None:
        """Record the policy a phone's authenticated reply stated; None if it is gone.

        Keyed by the exact id: the phone may have been revoked meanwhile.
        """
        with self._lock():
            phones, orphans = self._load()
            target = next((p for p in phones if p.id == phone_id), None)
            if target is None:
                return None
            updated = replace(target, allows_number_matching=allows_number_matching)
            if updated != target:
                self._save([updated if p.id == phone_id else p for p in phones], orphans)
        return updated

    def remove(self, phone_id: str, *, orphan_slot: bool) -> PairedPhone:
        """Forget a phone; with ``orphan_slot`` its slot is queued for removal at next unlock."""
        target = self.get(phone_id)
        with self._lock():
            phones, orphans = self._load()
            if orphan_slot and target.slot_id not in orphans:
                orphans.append(target.slot_id)
            self._save([p for p in phones if p.id != target.id], orphans)
        return target

    def orphan_slots(self) -> list[str]:
        """Slot ids of revoked phones still to delete from the vault."""
        with self._lock():
            return self._load()[1]

    def clear_orphans(self, slot_ids: list[str]) -> None:
        """Drop these slot ids from the removal queue (they are gone from the vault)."""
        with self._lock():
            phones, orphans = self._load()
            self._save(phones, [s for s in orphans if s not in slot_ids])
