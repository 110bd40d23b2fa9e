"""The unlatch protocol, version 1: pure code, no sockets, no clocks.

Like ``h11`` for HTTP, this package only turns bytes and decisions into bytes
and decisions; the agent, the relay client and the phone clients do the I/O.
The wire format is specified in docs/protocol.md and pinned by the JSON test
vectors under tests/vectors/, which the JavaScript phone app must match too.

Roles and their state machines:

* pairing: :class:`DesktopPairing`, :class:`PhonePairing`
* phone unlock: :class:`DesktopUnlock` (:class:`UnlockState`), :class:`PhoneUnlock`
  (:class:`PhoneUnlockState`)

Every failure is a :class:`ProtocolError` subclass.
"""

from unlatch.protocol.constants import (
    DEFAULT_PAIRING_TTL,
    DEFAULT_UNLOCK_TTL,
    VERSION,
    MessageType,
    UnlockMode,
    UnlockPolicy,
    Verdict,
)
from unlatch.protocol.errors import (
    AlreadyAnswered,
    AuthenticationFailed,
    InvalidState,
    MalformedMessage,
    ModeNotAllowed,
    ProtocolError,
    RequestExpired,
    UnexpectedMessage,
    UnknownPairing,
    UnsupportedVersion,
    WrongRequest,
)
from unlatch.protocol.keyschedule import PairingKeys, passkey_slot_kek, phone_slot_kek
from unlatch.protocol.links import app_link, bare_link, parse_link
from unlatch.protocol.pairing import DesktopPairing, PairingState, PendingPhone, PhonePairing
from unlatch.protocol.primitives import KeyPair
from unlatch.protocol.records import DesktopPairingRecord, PhonePairingRecord
from unlatch.protocol.replay import ReplayGuard
from unlatch.protocol.unlock import (
    Approved,
    Denied,
    DesktopUnlock,
    PhoneUnlock,
    PhoneUnlockState,
    PushedRequest,
    UnlockOutcome,
    UnlockState,
)

__all__ = [
    "DEFAULT_PAIRING_TTL",
    "DEFAULT_UNLOCK_TTL",
    "VERSION",
    "AlreadyAnswered",
    "Approved",
    "AuthenticationFailed",
    "Denied",
    "DesktopPairing",
    "DesktopPairingRecord",
    "DesktopUnlock",
    "InvalidState",
    "KeyPair",
    "MalformedMessage",
    "MessageType",
    "ModeNotAllowed",
    "PairingKeys",
    "PairingState",
    "PendingPhone",
    "PhonePairing",
    "PhonePairingRecord",
    "PhoneUnlock",
    "PhoneUnlockState",
    "ProtocolError",
    "PushedRequest",
    "ReplayGuard",
    "RequestExpired",
    "UnexpectedMessage",
    "UnknownPairing",
    "UnlockMode",
    "UnlockOutcome",
    "UnlockPolicy",
    "UnlockState",
    "UnsupportedVersion",
    "Verdict",
    "WrongRequest",
    "app_link",
    "bare_link",
    "parse_link",
    "passkey_slot_kek",
    "phone_slot_kek",
]
