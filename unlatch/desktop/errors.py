"""Errors of the desktop side (pairing, phone unlock, local web UI).

Every one is an :class:`~unlatch.errors.UnlatchError` with a message a person
can act on; the web UI shows ``str(exc)`` and a short ``code`` so the page can
pick a matching hint (e.g. "start the relay") without parsing text.
"""

from __future__ import annotations

from unlatch.errors import UnlatchError


class DesktopError(UnlatchError):
    """A desktop operation failed in an expected way."""

    code: str = "desktop_error"
    status: int = 400  # HTTP status the local web UI answers with


class NotPairedError(DesktopError):
    """No phone is paired (or the named one is not)."""

    code = "not_paired"
    status = 404

    def __init__(
        self, message: str = "no phone is paired yet: pair one first (`unlatch pair`)"
    ) -> None:
        super().__init__(message)


class PairingFailedError(DesktopError):
    """A pairing attempt could not complete."""

    code = "pairing_failed"


class UnlockFailedError(DesktopError):
    """A phone unlock attempt ended without unlocking."""

    code = "unlock_failed"


class PortTaken(DesktopError):
    """The web UI cannot hold its port on both loopback addresses (another program has one)."""

    code = "port_taken"
    status = 409


class StateFileError(DesktopError):
    """A desktop state file (identity, pairings, settings) is unreadable or damaged."""

    code = "state_damaged"
    status = 500


class AppMismatchError(PairingFailedError):
    """The phone app at a pairing link's origin is not this desktop's build: the link is refused.

    The message names the origin: that server would run other code next to the
    phone's keys (docs/security.md section 1).
    """

    code = "app_mismatch"
    status = 409

    def __init__(self, origin: str, detail: str) -> None:
        self.origin = origin
        super().__init__(
            f"refusing to show a pairing link to {origin}: {detail}. A phone that opened it"
            " would run that code with its keys. If you did not just update unlatch there, that"
            " server may be compromised; otherwise update this desktop to the same version."
        )


class AppBuildError(PairingFailedError):
    """This desktop has no usable copy of the phone app to compare an app origin with."""

    code = "app_build_missing"
    status = 500
