"""Errors of the Python phone client, each with a message a person can act on.

They derive from :class:`~unlatch.errors.UnlatchError`, so the CLI prints them
as one line and exits non-zero; relay and protocol failures keep their own
types (:class:`~unlatch.relay.errors.RelayError`,
:class:`~unlatch.protocol.ProtocolError`), which derive from it too.
"""

from __future__ import annotations

from unlatch.errors import UnlatchError


class PhoneError(UnlatchError):
    """A phone client operation failed."""


class NotInitialized(PhoneError):
    """The phone has no state yet (run ``unlatch phone init`` or ``pair``)."""


class StorageError(PhoneError):
    """The phone's state files are unreadable, altered, or of an unknown format."""


class PinRequired(PhoneError):
    """The state is protected by a PIN and none was given."""


class WrongPin(PhoneError):
    """The PIN does not open the phone's state (or the state file was altered)."""


class QRImageError(PhoneError):
    """The image cannot be read, holds no QR code, or not an unlatch code."""


class UnknownDesktop(PhoneError):
    """No paired desktop matches the name or id given."""


class PairingTimeout(PhoneError):
    """The desktop did not confirm the pairing in time."""


class PairingRefused(PhoneError):
    """The desktop refused the pairing after this phone's hello: its user said the codes differ."""


class RequestClosed(PhoneError):
    """The desktop no longer waits for this request: the relay closed or forgot it."""

    exit_code = 6


class UserDeclined(PhoneError):
    """The user answered "no" at a confirmation prompt: nothing was sent."""

    exit_code = 3
