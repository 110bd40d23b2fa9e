"""Transition-table state machines: the machinery every session in unlatch shares.

A session is a sans-IO state machine (the h11 ``_state.py`` / wsproto
``connection.py`` way): an enum state, fed events, returning commands. It
never sleeps, reads a clock or touches a socket: the time comes in the
events (``now``), and what should happen outside (send a frame, read the
store, unlock the vault, wake me at T) goes out as commands that a thin
asyncio driver carries out, feeding the results back as events. The desktop's
sessions (:mod:`unlatch.desktop.sessions`) and the relay's socket sessions
(:mod:`unlatch.relay.waiter`) are built on it.

Every (state, event type) pair is written in ONE table, :attr:`Session.TABLE`,
as either a :class:`Step` (the handler, and every state it may lead to) or a
:class:`Refuse` (why that event makes no sense in that state). Nothing is
implied: a pair missing from the table is a bug, and the tests check that the
table is complete, that a handler only ever reaches the states its row names,
and the docs' state tables are generated from the same rows.

Why two kinds of row: events that come from outside (relay messages, channel
ends, ticks, the results of commands, a client's frames) are never refused,
because a malicious or late peer may send anything at any time; they are
handled or explicitly ignored. Refusals are for local misuse ("cannot confirm
a pairing that is done"), raised as :class:`SessionError` with a human
message, like wsproto's "Event X cannot be sent in state Y".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Generic, TypeVar

from unlatch.errors import UnlatchError


class Stage(Enum):
    """Base of a session's state enum (no members of its own)."""

    @property
    def final(self) -> bool:
        """Nothing more can happen: the session's driver can stop."""
        raise NotImplementedError

    @property
    def public(self) -> str:
        """The state's name as the UI and the API show it."""
        return str(self.value)


S = TypeVar("S", bound=Stage)


class SessionError(UnlatchError):
    """An event that the session's current state refuses (a caller's mistake)."""


class Event:
    """Base of the events a session is fed (each a small frozen dataclass)."""

    NAME: ClassVar[str] = "event"


class Command:
    """Base of the commands a session returns, for its driver to carry out."""


@dataclass(frozen=True)
class Tick(Event):
    """The time is ``now`` (fed when a :class:`ScheduleTick` falls due)."""

    NAME = "tick"
    now: float


@dataclass(frozen=True)
class ScheduleTick(Command):
    """Feed a :class:`Tick` at ``at`` (replaces any earlier schedule); None: none needed."""

    at: float | None


Handler = Callable[[Any, Any], list[Command]]


@dataclass(frozen=True)
class Step(Generic[S]):
    """A row that handles the event: ``handler`` may only lead to a state in ``to``."""

    handler: Handler
    to: tuple[S, ...]
    why: str


@dataclass(frozen=True)
class Refuse:
    """A row that refuses the event with :class:`SessionError`, saying ``why``."""

    why: str


Row = Step[Any] | Refuse


def ignore(session: Any, event: Any) -> list[Command]:
    """Handler of events that change nothing (late, duplicate, not ours)."""
    return []


def rows(
    states: Iterable[S], events: Iterable[type[Event]], row: Callable[[S], Row]
) -> dict[tuple[S, type[Event]], Row]:
    """The same kind of row for several states and events (keeps the table short)."""
    return {(s, e): row(s) for s in states for e in events}


def stay(why: str) -> Callable[[S], Row]:
    """Rows that ignore the event and keep each state as it is."""
    return lambda s: Step(ignore, (s,), why)


class Session(Generic[S]):
    """A state and the one table that moves it (subclasses give both)."""

    TABLE: ClassVar[Mapping[tuple[Any, type[Event]], Row]]
    STATES: ClassVar[type[Stage]]
    EVENTS: ClassVar[tuple[type[Event], ...]]
    WHAT: ClassVar[str] = "this session"  # for messages: "<WHAT> is <state>: <why>"

    __slots__ = ("state",)  # subclasses may add slots: a relay keeps thousands of sessions

    def __init__(self, state: S) -> None:
        self.state: S = state

    def handle(self, event: Event) -> list[Command]:
        """Feed one event; returns the commands to carry out, in order."""
        before = self.state
        row = self.TABLE.get((before, type(event)))
        if row is None:  # the completeness test makes this unreachable
            raise SessionError(f"{self.WHAT} has no rule for {event.NAME} in state {before.value}")
        if isinstance(row, Refuse):
            raise SessionError(f"{self.WHAT} is {before.public}: {row.why}")
        commands = row.handler(self, event)
        if self.state not in row.to:
            raise AssertionError(
                f"{type(self).__name__}: {event.NAME} in {before.value} led to "
                f"{self.state.value}, not one of {[s.value for s in row.to]}"
            )
        return commands

    @property
    def final(self) -> bool:
        return self.state.final

    @classmethod
    def table_markdown(cls) -> str:
        """The transition table as Markdown (docs/desktop.md holds it, generated from here).

        One line per state and outcome: the events of a state that lead to the
        same states for the same reason share a line.
        """
        lines = ["| state | events | next state | why |", "|---|---|---|---|"]
        for state in cls.STATES:
            groups: dict[tuple[str, str], list[str]] = {}
            for event in cls.EVENTS:
                row = cls.TABLE[(state, event)]
                to = "refused" if isinstance(row, Refuse) else ", ".join(s.value for s in row.to)
                groups.setdefault((to, row.why), []).append(event.NAME)
            for (to, why), names in groups.items():
                lines.append(f"| {state.value} | {', '.join(names)} | {to} | {why} |")
        return "\n".join(lines) + "\n"
