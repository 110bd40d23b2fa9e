"""The relay's rules, independent of HTTP: who may post what, when, and how often.

Routes (:mod:`unlatch.relay.app`) parse and bound the input, then call one
method here; this module talks only to the :class:`~unlatch.relay.store.Store`,
the :class:`~unlatch.relay.bus.Bus` and the
:class:`~unlatch.relay.ratelimit.RateLimiter` interfaces, so the same rules hold
on SQLite and in-process, or on PostgreSQL and Redis across many nodes.
Refusals are :class:`~unlatch.relay.apierror.ApiError` with stable codes.
"""

from __future__ import annotations

from unlatch.relay.frames import (
    channel_topic,
    device_topic,
    message_json,
    notification_json,
    push_view,
    request_frame,
)
from unlatch.relay.service_auth import AuthOps
from unlatch.relay.service_pairing import PairingOps
from unlatch.relay.service_unlock import UnlockOps

__all__ = [
    "RelayService",
    "channel_topic",
    "device_topic",
    "message_json",
    "notification_json",
    "push_view",
    "request_frame",
]


class RelayService(AuthOps, PairingOps, UnlockOps):
    """One relay node's logic; shared by all requests of the process.

    Split by concern (service_base, service_auth, service_channels,
    service_pairing, service_unlock); this class only joins them.
    """
