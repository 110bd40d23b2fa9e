"""Push notifications that wake the phone: Web Push and UnifiedPush.

The relay hands a payload it cannot read (the protocol already encrypted it
end to end) to :class:`PushDispatcher`, which encrypts it once more for the
phone's push subscription (RFC 8291), identifies the relay with VAPID
(RFC 8292), posts it to the push service (RFC 8030) and reports a
:class:`PushResult`. See docs/push.md.
"""

from unlatch.push.dispatcher import PushDispatcher, PushOutcome, PushResult
from unlatch.push.encryption import MAX_PLAINTEXT
from unlatch.push.errors import (
    InvalidPushOptions,
    InvalidPushTarget,
    PayloadTooLarge,
    PushError,
    VapidError,
)
from unlatch.push.target import PushKind, PushTarget
from unlatch.push.vapid import VapidKeys

__all__ = [
    "MAX_PLAINTEXT",
    "InvalidPushOptions",
    "InvalidPushTarget",
    "PayloadTooLarge",
    "PushDispatcher",
    "PushError",
    "PushKind",
    "PushOutcome",
    "PushResult",
    "PushTarget",
    "VapidError",
    "VapidKeys",
]
