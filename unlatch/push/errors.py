"""Typed failures of the push layer.

Each one is a :class:`~unlatch.errors.UnlatchError` because each can be
caused by input a person or a client supplied (a bad subscription, an
oversized payload, a bad configuration). Messages name the problem but never
contain key material, payloads or full endpoint URLs (an endpoint URL is a
capability: whoever knows it can push to that phone).
"""

from __future__ import annotations

from unlatch.errors import UnlatchError


class PushError(UnlatchError):
    """Base class of every push-layer error."""


class InvalidPushTarget(PushError):
    """A push subscription (endpoint, keys) failed validation."""


class PayloadTooLarge(PushError):
    """A payload does not fit in one push message."""


class InvalidPushOptions(PushError):
    """TTL, Urgency or Topic out of the range RFC 8030 allows."""


class VapidError(PushError):
    """The VAPID key file or subject is unusable."""
