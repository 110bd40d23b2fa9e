"""Every way a protocol message or step can fail.

All of them derive from :class:`ProtocolError`, so a caller that handles that
one type handles every parse and verification failure; the subclasses say
*why* in terms a person understands. Messages never contain key material.
"""

from __future__ import annotations

from unlatch.errors import UnlatchError


class ProtocolError(UnlatchError):
    """A protocol message or step was refused."""

    code = "protocol_error"


class MalformedMessage(ProtocolError):
    """The bytes are not a well-formed message (encoding, sizes, field count)."""

    code = "malformed"


class UnsupportedVersion(ProtocolError):
    """The message was made by an incompatible protocol version."""

    code = "unsupported_version"


class UnexpectedMessage(ProtocolError):
    """A well-formed message of the wrong type, or in the wrong state."""

    code = "unexpected"


class AuthenticationFailed(ProtocolError):
    """A MAC or AEAD tag did not verify: the message was forged or altered."""

    code = "authentication_failed"


class UnknownPairing(ProtocolError):
    """The QR code or push names a pairing this device does not have (phishing case)."""

    code = "unknown_pairing"


class RequestExpired(ProtocolError):
    """The request is older than its lifetime (or from too far in the future)."""

    code = "expired"


class AlreadyAnswered(ProtocolError):
    """The request was already answered or closed: every request is single use."""

    code = "already_answered"


class WrongRequest(ProtocolError):
    """The message belongs to another request (request id mismatch)."""

    code = "wrong_request"


class InvalidState(ProtocolError):
    """The state machine cannot take this step in its current state."""

    code = "invalid_state"


class ModeNotAllowed(ProtocolError):
    """The desktop asked for an unlock mode this phone did not allow for the pairing."""

    code = "mode_not_allowed"
