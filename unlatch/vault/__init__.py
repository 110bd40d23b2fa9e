"""The encrypted vault: items, key slots, the master-password KDF, local keys.

Public surface (used by the agent, the CLI and the phone/passkey code):

* :class:`Vault` - ``create``/``open``, unlock by password or slot KEK, items, slots.
* :class:`Item`, :class:`SlotInfo`, :class:`KdfParams` (+ ``OWASP_MINIMUM``).
* :mod:`unlatch.vault.localkeys` - desktop-local secrets for phone slots.
* :mod:`unlatch.vault.generator` - passwords and passphrases with entropy.
* :mod:`unlatch.vault.errors` - every typed failure.
"""

from unlatch.vault.errors import (
    CorruptVaultError,
    ItemIntegrityError,
    ItemNotFoundError,
    LastPasswordSlotError,
    NotAVaultError,
    UnsupportedSchemaError,
    VaultError,
    VaultLockedError,
    WrongKeyError,
    WrongPasswordError,
)
from unlatch.vault.items import Item
from unlatch.vault.kdf import OWASP_MINIMUM, KdfParams
from unlatch.vault.slots import KIND_PASSKEY, KIND_PASSWORD, KIND_PHONE, SlotInfo
from unlatch.vault.vault import Vault

__all__ = [
    "KIND_PASSKEY",
    "KIND_PASSWORD",
    "KIND_PHONE",
    "OWASP_MINIMUM",
    "CorruptVaultError",
    "Item",
    "ItemIntegrityError",
    "ItemNotFoundError",
    "KdfParams",
    "LastPasswordSlotError",
    "NotAVaultError",
    "SlotInfo",
    "UnsupportedSchemaError",
    "Vault",
    "VaultError",
    "VaultLockedError",
    "WrongKeyError",
    "WrongPasswordError",
]
