"""Key slots: one wrapping of the vault key per unlock method.

A slot is ``(id, kind, label, created_at, meta, nonce, wrapped_key)``. The
vault key is sealed with AES-256-GCM under a 32-byte key-encryption key
(KEK) that only the unlock method can produce; the AAD binds the vault id,
the slot id and the kind, so a wrapped key cannot be moved to another slot,
relabelled as another kind, or copied into another vault.

Every slot also carries a renewal public key derived from its KEK, so a
key rotation can hand the new vault key to a phone or passkey slot without
the phone or the passkey (see :meth:`unlatch.vault.Vault.rotate_key`).

The table is generic on purpose: ``password`` (Argon2id, params in
``meta``) today; ``phone`` (KEK = HKDF over the phone's share and a
desktop-local secret) and ``passkey`` (KEK from the WebAuthn PRF output)
are just further kinds with their own ``meta``, needing no format change.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from unlatch import safejson
from unlatch.vault.crypto import LABEL_SLOT_WRAP, lp
from unlatch.vault.errors import VaultError

KIND_PASSWORD = "password"  # noqa: S105 (a slot kind, not a secret)
KIND_PHONE = "phone"
KIND_PASSKEY = "passkey"

SlotMeta = dict[str, str | int]

_KIND_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
MAX_LABEL = 128
MAX_META_ENTRIES = 32
MAX_META_KEY = 64
MAX_META_VALUE = 4096


class InvalidSlotError(VaultError):
    """A slot's kind, label or meta is malformed."""


@dataclass(frozen=True)
class SlotInfo:
    """What a caller may see of a slot (never the wrapped key)."""

    id: str
    kind: str
    label: str
    created_at: int
    meta: SlotMeta
    #: Key rotation (docs/vault.md): ``ready`` (a rotation can renew this slot),
    #: ``pending`` (sealed by a rotation, rewrapped at its next use) or ``none``
    #: (made by an older unlatch and not used since: a rotation drops it).
    renewal: str = "ready"


def slot_aad(vault_id: bytes, slot_id: str, kind: str) -> bytes:
    """AAD of a slot's wrapped key: label, vault id, slot id, kind."""
    return lp(LABEL_SLOT_WRAP, vault_id, slot_id.encode("ascii"), kind.encode("ascii"))


def check_kind(kind: str) -> None:
    """Kinds are short lowercase names (``password``, ``phone``, ``passkey``...)."""
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        raise InvalidSlotError("a slot kind is 1-32 lowercase letters, digits or dashes")


def check_label(label: str) -> str:
    """A label is the human name of a slot (e.g. "Pixel 8"); returns it stripped."""
    label = label.strip() if isinstance(label, str) else ""
    if not label or len(label) > MAX_LABEL or any(ord(c) < 32 for c in label):
        raise InvalidSlotError(f"a slot label must be 1-{MAX_LABEL} printable characters")
    return label


def encode_meta(meta: SlotMeta) -> str:
    """Validate and serialise a slot's meta (str -> str | int), bounded."""
    if not isinstance(meta, dict) or len(meta) > MAX_META_ENTRIES:
        raise InvalidSlotError(f"slot meta must be a dict of at most {MAX_META_ENTRIES} entries")
    for key, value in meta.items():
        if not isinstance(key, str) or not 0 < len(key) <= MAX_META_KEY:
            raise InvalidSlotError("slot meta keys must be short strings")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidSlotError("slot meta values must be strings or integers")
        if isinstance(value, str) and len(value) > MAX_META_VALUE:
            raise InvalidSlotError("slot meta value too long")
    return json.dumps(meta, sort_keys=True, separators=(",", ":"))


def decode_meta(text: str) -> SlotMeta:
    """Parse a stored meta column; malformed -> :class:`InvalidSlotError`."""
    try:
        data = safejson.loads(text) if len(text) <= MAX_META_ENTRIES * 4300 else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise InvalidSlotError("a key slot's meta is damaged")
    encode_meta(data)
    return data
