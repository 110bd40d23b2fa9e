"""Typed errors of the relay client and of relay configuration, and the error registry.

Every error code of the API lives once, in ``errors.json`` beside this file:
its HTTP status, WebSocket close code, the client exception class named here,
and the human message. The relay (:mod:`unlatch.relay.apierror`), this
client, the OpenAPI document, the phone app and docs/relay.md all read it, so
a code cannot drift between them. Each exception class lets a caller react
(retry later, start a new request, tell the user the phone blocked this
desktop) without parsing messages. Messages never contain tokens or payloads.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from unlatch.errors import UnlatchError

REGISTRY_PATH = Path(__file__).with_name("errors.json")


@dataclass(frozen=True)
class ErrorCode:
    """One entry of errors.json."""

    code: str
    status: int | None  # None: made by a client, never sent by the relay
    ws_close: int | None  # None: the error never ends a WebSocket
    exception: str
    message: str
    meaning: str


def _load() -> dict[str, ErrorCode]:
    raw = json.loads(REGISTRY_PATH.read_text(encoding="utf-8"))["codes"]
    return {code: ErrorCode(code=code, **entry) for code, entry in raw.items()}


CODES: dict[str, ErrorCode] = _load()


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


class LifetimeTooLong(BadRequest):
    """The desktop's unlock lifetime is over the relay's ``limits.unlock_ttl_max`` (GET /v1/info).

    Raised by the client before it asks, with a message naming the limit and
    the setting to change, so a desktop configured above its relay's limit
    learns why instead of failing every request.
    """

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message, status=400, code="bad_request")
        self.limit = limit


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


def _classes() -> dict[str, type[RelayError]]:
    """code -> exception class, from the registry (a name there that is no class here fails)."""
    here = sys.modules[__name__]
    out: dict[str, type[RelayError]] = {}
    for code, entry in CODES.items():
        cls = getattr(here, entry.exception, None)
        if not (isinstance(cls, type) and issubclass(cls, RelayError)):
            raise RuntimeError(f"errors.json: {code} names {entry.exception}, not a RelayError")
        out[code] = cls
    return out


ERROR_CLASSES: dict[str, type[RelayError]] = _classes()


def status_of(code: str) -> int:
    """The HTTP status the relay answers with for ``code`` (400 for a code it does not know)."""
    entry = CODES.get(code)
    return entry.status if entry is not None and entry.status is not None else 400


def error_for(
    status: int, code: str, message: str, *, retry_after: float | None = None
) -> RelayError:
    """The typed exception for an error answer: the registry's class for ``code``.

    An unknown code falls back on the status (5xx: :class:`RelayUnavailable`,
    429: :class:`RateLimited`), so a newer relay's new code still gets a
    sensible class.
    """
    cls = ERROR_CLASSES.get(code)
    if cls is None:
        cls = RelayUnavailable if status >= 500 else RateLimited if status == 429 else RelayError
    if issubclass(cls, RateLimited):
        return cls(message, retry_after=retry_after or 1.0, status=status, code=code)
    return cls(message, status=status, code=code)


def markdown_table() -> str:
    """docs/relay.md's error table (a test checks the doc holds exactly this)."""
    rows = [
        "| status | `error` | WS close | Python client | meaning | message shown to a person |",
        "|---|---|---|---|---|---|",
    ]
    for e in sorted(CODES.values(), key=lambda e: (e.status is None, e.status or 0, e.code)):
        status = str(e.status) if e.status is not None else "(client)"
        close = str(e.ws_close) if e.ws_close is not None else "-"
        rows.append(
            f"| {status} | `{e.code}` | {close} | `{e.exception}` | {e.meaning} | {e.message} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m unlatch.relay.errors > the table for docs/relay.md
    print(markdown_table(), end="")
