"""Typed errors of the relay client and of relay configuration.

Each subclass maps one JSON ``error`` code of the API (docs/relay.md) so a
caller can react (retry later, start a new request, tell the user the phone
blocked this desktop) without parsing messages. Messages never contain tokens
or payloads.
"""

from __future__ import annotations

from unlatch.errors import UnlatchError


class RelayConfigError(UnlatchError):
    """The relay's configuration or command-line options are invalid."""

    exit_code = 2


class RelayError(UnlatchError):
    """A request to the relay failed; ``code`` is the API's error code."""

    def __init__(self, message: str, *, status: int | None = None, code: str = "error") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RelayUnavailable(RelayError):
    """The relay cannot be reached or answered with a server error; try again later."""


class BadRequest(RelayError):
    """The relay refused the request as malformed or too large (a bug in the caller)."""


class AuthFailed(RelayError):
    """The relay refused this device's signature, challenge or session."""


class Forbidden(RelayError):
    """This device may not do that (wrong kind, or not a party of the channel)."""


class NotPaired(RelayError):
    """The routing id is not a linked pairing of this device on the relay."""


class Blocked(RelayError):
    """The phone said "I did not ask for this"; it must re-confirm before new requests."""


class UnknownChannel(RelayError):
    """No such channel on the relay."""


class ChannelExpired(RelayError):
    """The channel's life is over; start a new request."""


class ChannelGone(RelayError):
    """The channel was closed (already delivered and acknowledged, or cancelled)."""


class PairingRejected(ChannelGone):
    """The desktop closed the pairing channel after this phone's hello: its user refused.

    On the desktop that is "the codes differ" (or pairing cancelled at the
    code step): someone else's phone may have scanned the code, or this
    phone read another code. Nothing is kept on either side.
    """


class AlreadyPosted(RelayError):
    """This message was already posted on the channel (single use)."""


class AlreadyAnswered(AlreadyPosted):
    """The unlock request already has a reply."""


class ChannelTaken(RelayError):
    """Another phone already answered this pairing channel."""


class ChannelExists(RelayError):
    """A channel with this id already exists."""


class PairingConflict(RelayError):
    """The routing id is already linked to other devices."""


class RateLimited(RelayError):
    """Too many requests; ``retry_after`` says how many seconds to wait."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        status: int | None = 429,
        code: str = "rate_limited",
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


class TooManyPending(RateLimited):
    """This device has too many open channels; close some or wait for them to expire."""


ERROR_CLASSES: dict[str, type[RelayError]] = {
    "bad_request": BadRequest,
    "too_large": BadRequest,
    "headers_too_large": BadRequest,
    "unsupported_media_type": BadRequest,
    "unauthorized": AuthFailed,
    "bad_signature": AuthFailed,
    "bad_challenge": AuthFailed,
    "forbidden": Forbidden,
    "not_paired": NotPaired,
    "blocked": Blocked,
    "unknown_channel": UnknownChannel,
    "unknown_pairing": NotPaired,
    "channel_exists": ChannelExists,
    "channel_taken": ChannelTaken,
    "already_posted": AlreadyPosted,
    "already_answered": AlreadyAnswered,
    "pairing_conflict": PairingConflict,
    "expired": ChannelExpired,
    "closed": ChannelGone,
}
