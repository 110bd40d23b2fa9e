"""The events and commands the desktop's sessions share.

The machinery (enum states, one transition table, :class:`Session`) is
:mod:`unlatch.statemachine`, shared with the relay's socket sessions; its
names are re-exported here so the desktop sessions import from one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from unlatch.statemachine import (
    Command,
    Event,
    Handler,
    Refuse,
    Row,
    S,
    ScheduleTick,
    Session,
    SessionError,
    Stage,
    Step,
    Tick,
    ignore,
    rows,
    stay,
)

__all__ = [
    "Handler",
    "Refuse",
    "Row",
    "S",
    "ScheduleTick",
    "Session",
    "SessionError",
    "Stage",
    "Step",
    "Tick",
    "ignore",
    "rows",
    "stay",
]


@dataclass(frozen=True)
class Start(Event):
    """Begin: make what the session needs on the relay (the driver's first event)."""

    NAME = "start"
    now: float


@dataclass(frozen=True)
class Cancel(Event):
    """The user gave up (closed the dialog, or started another attempt)."""

    NAME = "cancel"


@dataclass(frozen=True)
class Restart(Event):
    """The desktop is stopping or changing relay: nothing of this session survives it."""

    NAME = "restart"


# Channel events and commands: ``channel`` is the relay channel's id (an unlock
# request's id, or a pairing offer's channel id).


@dataclass(frozen=True)
class ChannelCreated(Event):
    """The relay made the channel (``notified``: its listener/push report, for unlocks)."""

    NAME = "channel created"
    channel: bytes
    notified: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChannelCreateFailed(Event):
    """The relay refused, or could not be reached, to make the channel."""

    NAME = "channel create failed"
    channel: bytes
    message: str


@dataclass(frozen=True)
class ChannelExpired(Event):
    """The relay says the channel's life is over: nothing more will come on it."""

    NAME = "channel expired"
    channel: bytes


@dataclass(frozen=True)
class ChannelClosed(Event):
    """The relay closed the channel (acknowledged or withdrawn): nothing more will come."""

    NAME = "channel closed"
    channel: bytes


@dataclass(frozen=True)
class ChannelFailed(Event):
    """The channel could not be followed (the relay stayed unreachable)."""

    NAME = "channel failed"
    channel: bytes
    message: str


@dataclass(frozen=True)
class FollowChannel(Command):
    """Follow the channel's messages and end (as events) until it is closed."""

    channel: bytes


@dataclass(frozen=True)
class CloseChannel(Command):
    """Stop following and close the channel on the relay (errors do not matter)."""

    channel: bytes
