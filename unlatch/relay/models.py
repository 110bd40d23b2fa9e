"""Plain records passed between the store, the service and the routes.

They carry bytes for ids and payloads; encoding to JSON happens only at the
HTTP edge (:mod:`unlatch.relay.app`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

DeviceKind = Literal["desktop", "phone"]
ChannelKind = Literal["pairing", "unlock"]


class ChannelState(StrEnum):
    """Life of a channel: open, then expired or closed (kept as a payload-free tombstone)."""

    OPEN = "open"
    EXPIRED = "expired"
    CLOSED = "closed"


# Why a closed channel closed, kept on its tombstone (meta "outcome") and sent as
# ``outcome`` with a closed wait answer or closing frame: answered (an unlock with a
# reply), cancelled (an unlock closed unanswered), rejected (a pairing the desktop
# closed after the phone's hello without an accept: its user refused), closed (other).
CHANNEL_OUTCOMES = ("answered", "cancelled", "rejected", "closed")

# What a phone hears about one of its requests (listener frame "request", GET .../state):
# open, renewed (a newer request of the same desktop replaced it), answered (a reply was
# posted; "acknowledged" once the desktop closed the request after reading it),
# cancelled (the desktop closed it unanswered), expired, closed (unpaired, or gone).
REQUEST_STATES = ("open", "renewed", "answered", "cancelled", "expired", "closed")


@dataclass(frozen=True)
class Device:
    """A registered device: only its public key and kind, never a secret."""

    device_id: str
    public_key: bytes
    kind: DeviceKind
    created_at: float
    push_target: dict[str, Any] | None = None


@dataclass(frozen=True)
class Channel:
    """A pairing or unlock channel.

    ``peer`` is the phone: for an unlock channel it is fixed at creation (the
    paired phone); for a pairing channel it is claimed by the first ``hello``.
    ``push`` and ``meta`` are set for unlock channels only.
    """

    channel_id: bytes
    kind: ChannelKind
    creator: str
    peer: str | None
    created_at: float
    expires_at: float
    state: ChannelState = ChannelState.OPEN
    routing_id: bytes | None = None
    push: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def is_live(self, now: float) -> bool:
        """Open and not past its expiry (the sweeper may not have run yet)."""
        return self.state is ChannelState.OPEN and now < self.expires_at


@dataclass(frozen=True)
class Message:
    """One opaque message posted on a channel; ``seq`` orders and resumes delivery."""

    channel_id: bytes
    seq: int
    type: str
    sender: str
    data: bytes
    created_at: float


@dataclass(frozen=True)
class PairingEntry:
    """One side's registration of a pairing (``device_id`` says ``peer_device_id`` is its peer)."""

    routing_id: bytes
    device_id: str
    peer_device_id: str
    kind: DeviceKind
    created_at: float
    blocked: bool = False


@dataclass(frozen=True)
class PairingView:
    """A device's view of one of its pairings."""

    routing_id: bytes
    peer_device_id: str
    linked: bool
    blocked: bool
    created_at: float


def channel_state(ch: Channel | None, now: float) -> str:
    """``open``, ``expired`` or ``closed``: what a waiter is told about the channel."""
    if ch is None or ch.state is ChannelState.CLOSED:
        return "closed"
    if ch.state is ChannelState.EXPIRED or now >= ch.expires_at:
        return "expired"
    return "open"


def channel_outcome(ch: Channel | None) -> str | None:
    """Why a closed channel closed (stored on its tombstone), else None."""
    if ch is None or ch.state is not ChannelState.CLOSED:
        return None
    outcome = ch.meta.get("outcome")
    return outcome if isinstance(outcome, str) else "closed"
