"""Typed vault errors.

Each names one thing a person can act on (wrong password, damaged file,
newer format...). Messages never contain a secret: not a password, not a
key, not an item's contents (item ids are random and safe to show).
"""

from __future__ import annotations

from unlatch.errors import UnlatchError


class VaultError(UnlatchError):
    """Base of every vault failure."""


class NotAVaultError(VaultError):
    """The file exists but is not an unlatch vault (or not SQLite at all)."""


class CorruptVaultError(VaultError):
    """The file is an unlatch vault but is damaged or truncated."""


class UnsupportedSchemaError(VaultError):
    """The vault was written by a newer unlatch (unknown schema version)."""


class VaultNotFoundError(VaultError):
    """There is no vault at the expected path yet."""


class VaultExistsError(VaultError):
    """``init`` would overwrite an existing vault."""


class VaultLockedError(VaultError):
    """An operation needs the vault key but the vault is locked."""

    def __init__(self, message: str = "vault is locked: run `unlatch unlock`") -> None:
        super().__init__(message)


class WrongPasswordError(VaultError):
    """The master password did not unwrap the vault key."""

    def __init__(self, message: str = "wrong master password") -> None:
        super().__init__(message)


class WrongKeyError(VaultError):
    """A key-encryption key did not unwrap its slot (wrong phone share, passkey, ...)."""


class WeakKdfError(VaultError):
    """Argon2id parameters below the OWASP minimum (or absurdly high) were requested."""


class SlotNotFoundError(VaultError):
    """No key slot has the given id."""


class LastPasswordSlotError(VaultError):
    """Removing the only password slot would remove the recovery path."""


class ItemNotFoundError(VaultError):
    """No item matches the given title or id."""


class AmbiguousItemError(VaultError):
    """More than one item has the given title."""


class ItemIntegrityError(VaultError):
    """An item (or the item list) failed authentication: tampered, swapped or rolled back."""


class InvalidItemError(VaultError):
    """An item's fields are out of bounds (too long, too many URLs, bad TOTP secret...)."""
