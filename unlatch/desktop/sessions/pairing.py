"""PairingSession: one pairing attempt on the desktop, as a sans-IO state machine.

::

    start        check the phone app at the link's origin (CheckApp: is it this
                 desktop's build?) -> app checked -> DesktopPairing offer
                 -> create the relay pairing channel -> QR
    hello        the phone's hello opens -> the verification code, state "confirm"
    confirm      the user says the codes match -> accept + record + K_P
                 -> SavePairing (the driver makes K_L, the vault slot, the
                 record, posts the accept, registers the pairing; it rolls
                 everything back on failure) -> "done" or "failed"
    reject       the codes differ: nothing is kept, the channel is closed

The protocol object (:class:`~unlatch.protocol.DesktopPairing`) forgets the
offer's secret ``S`` in every final state; this session makes sure every way
out of an attempt (expiry, rejection, cancel, a refused hello, a restart)
goes through it. The driver is ``unlatch/desktop/pairing.py``.

The app check comes before the offer: until the app at ``app_url`` (where
the QR's link points, and which would run next to K_P) has been found to be
this desktop's build, no offer, no secret ``S`` and no relay channel exist,
so a refused origin (``app check failed``) gets nothing. The link is made
from the same ``app_url`` that was checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from unlatch.desktop.sessions.base import (
    Cancel,
    ChannelClosed,
    ChannelCreated,
    ChannelCreateFailed,
    ChannelExpired,
    ChannelFailed,
    CloseChannel,
    Command,
    Event,
    FollowChannel,
    Refuse,
    Restart,
    Row,
    ScheduleTick,
    Session,
    Stage,
    Start,
    Step,
    Tick,
    ignore,
    rows,
    stay,
)
from unlatch.protocol import DesktopPairing, KeyPair, PendingPhone, ProtocolError
from unlatch.protocol.primitives import Random
from unlatch.protocol.records import DesktopPairingRecord

EXPIRED_MESSAGE = "the pairing code expired: start again"
CONFIRM_MESSAGE = "compare the codes on both screens"
REJECTED_MESSAGE = "pairing cancelled: nothing was saved"
CANCELLED_MESSAGE = "pairing cancelled"
RESTARTED_MESSAGE = "the desktop stopped this pairing (it restarted or changed relay): start again"
SENDER_MESSAGE = "the phone's relay identity does not match its hello"


class PairingStage(Stage):
    """Where a pairing session is. ``public`` is the state the UI and API show."""

    NEW = "new"
    CHECKING = "checking"  # the app at the link's origin is compared with this build
    STARTING = "starting"  # the pairing channel is being created
    WAITING = "waiting"  # QR shown, waiting for a phone's hello
    CONFIRM = "confirm"  # codes shown: the user compares them
    SAVING = "saving"  # confirmed: slot, record, accept, registration under way
    DONE = "done"
    REJECTED = "rejected"
    EXPIRED = "expired"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (
            PairingStage.DONE,
            PairingStage.REJECTED,
            PairingStage.EXPIRED,
            PairingStage.FAILED,
        )

    @property
    def public(self) -> str:
        return _PUBLIC.get(self, self.value)


_PUBLIC = {
    PairingStage.NEW: "waiting",
    PairingStage.CHECKING: "waiting",
    PairingStage.STARTING: "waiting",
    PairingStage.SAVING: "confirm",  # the page keeps the codes until the outcome
}

# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class AppChecked(Event):
    """The :class:`CheckApp` command found this desktop's build at the link's origin."""

    NAME = "app checked"
    now: float


@dataclass(frozen=True)
class AppCheckFailed(Event):
    """The :class:`CheckApp` command refused the origin (``message`` names it and says why)."""

    NAME = "app check failed"
    message: str


@dataclass(frozen=True)
class Hello(Event):
    """A ``hello`` on the pairing channel; ``sender``: the relay's device id of its poster."""

    NAME = "hello"
    data: bytes
    sender: str
    now: float


@dataclass(frozen=True)
class Confirm(Event):
    """The user says the codes match; ``label`` names the phone here."""

    NAME = "confirm"
    label: str
    desktop_name: str
    desktop_device_id: str
    now: float


@dataclass(frozen=True)
class Saved(Event):
    NAME = "saved"
    label: str


@dataclass(frozen=True)
class SaveFailed(Event):
    NAME = "save failed"
    message: str


@dataclass(frozen=True)
class Reject(Event):
    """The user says the codes differ."""

    NAME = "reject"


EVENTS: tuple[type[Event], ...] = (
    Start,
    AppChecked,
    AppCheckFailed,
    Tick,
    ChannelCreated,
    ChannelCreateFailed,
    Hello,
    ChannelExpired,
    ChannelClosed,
    ChannelFailed,
    Confirm,
    Saved,
    SaveFailed,
    Reject,
    Cancel,
    Restart,
)

# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class CheckApp(Command):
    """Compare the app at ``app_url`` with this desktop's build (answer AppChecked/-Failed)."""

    app_url: str


@dataclass(frozen=True)
class CreateChannel(Command):
    """Create the pairing channel (answer with ChannelCreated / ChannelCreateFailed)."""

    channel: bytes
    ttl: int


@dataclass(frozen=True)
class SavePairing(Command):
    """Keep the pairing (answer with Saved / SaveFailed; roll back on failure)."""

    accept: bytes
    record: DesktopPairingRecord = field(repr=False)
    share: bytes = field(repr=False)
    label: str


@dataclass(frozen=True)
class ShowView(Command):
    state: str
    message: str


# ----------------------------------------------------------------- session


class PairingSession(Session[PairingStage]):
    """One pairing attempt (see the module docstring)."""

    STATES = PairingStage
    EVENTS = EVENTS
    WHAT = "this pairing"
    TABLE: ClassVar[dict[tuple[Any, type[Event]], Row]]

    def __init__(
        self,
        identity: KeyPair,
        relay_url: str,
        *,
        ttl: int,
        app_url: str = "",
        rng: Random | None = None,
    ) -> None:
        """``app_url``: the phone app the link opens (empty: ``<relay_url>/app/``)."""
        super().__init__(PairingStage.NEW)
        self._identity = identity
        self.relay_url = relay_url
        self.app_url = app_url or relay_url + "/app/"
        self.ttl = ttl
        self._rng = rng
        self.desktop: DesktopPairing | None = None
        self.pending: PendingPhone | None = None
        self.message = ""

    @property
    def expires_at(self) -> int:
        return self.desktop.expires_at if self.desktop is not None else 0

    def _dp(self) -> DesktopPairing:
        assert self.desktop is not None, "the session has not started"
        return self.desktop

    def _go(self, stage: PairingStage, message: str) -> list[Command]:
        self.state, self.message = stage, message
        at = None if stage.final else float(self.expires_at + 1)  # int(now) > expires_at
        return [ShowView(stage.public, message), ScheduleTick(at)]

    def _end(self, stage: PairingStage, message: str, *, close: bool) -> list[Command]:
        if self.desktop is not None:
            self.desktop.reject()  # forget S and the offer (a no-op once it is done)
        commands = self._go(stage, message)
        if close and self.desktop is not None:
            commands.append(CloseChannel(self.desktop.channel_id))
        return commands

    # ---------------------------------------------------------- handlers

    def _start(self, event: Start) -> list[Command]:
        self.state = PairingStage.CHECKING
        return [CheckApp(self.app_url)]

    def _on_app_checked(self, event: AppChecked) -> list[Command]:
        """The app is this desktop's build: only now is an offer (and its S) made."""
        kwargs: dict[str, Any] = {} if self._rng is None else {"rng": self._rng}
        self.desktop = DesktopPairing(
            self._identity, self.relay_url, now=int(event.now), ttl=self.ttl, **kwargs
        )
        self.state = PairingStage.STARTING
        return [CreateChannel(self.desktop.channel_id, self.ttl)]

    def _on_app_check_failed(self, event: AppCheckFailed) -> list[Command]:
        return self._end(PairingStage.FAILED, event.message, close=False)

    def _on_created(self, event: ChannelCreated) -> list[Command]:
        return [FollowChannel(self._dp().channel_id), *self._go(PairingStage.WAITING, "")]

    def _on_created_late(self, event: ChannelCreated) -> list[Command]:
        return [CloseChannel(self._dp().channel_id)]  # ended while it was being made

    def _on_create_failed(self, event: ChannelCreateFailed) -> list[Command]:
        return self._end(PairingStage.FAILED, event.message, close=False)

    def _on_hello(self, event: Hello) -> list[Command]:
        try:
            pending = self._dp().receive_hello(event.data, now=int(event.now))
        except ProtocolError as exc:
            return self._end(PairingStage.FAILED, str(exc), close=True)
        if event.sender and event.sender != pending.phone_device_id:
            return self._end(PairingStage.FAILED, SENDER_MESSAGE, close=True)
        self.pending = pending
        return self._go(PairingStage.CONFIRM, CONFIRM_MESSAGE)

    def _on_tick(self, event: Tick) -> list[Command]:
        if int(event.now) > self.expires_at:
            return self._end(PairingStage.EXPIRED, EXPIRED_MESSAGE, close=False)
        return [ScheduleTick(float(self.expires_at + 1))]

    def _on_channel_end(self, event: Event) -> list[Command]:
        return self._end(PairingStage.EXPIRED, EXPIRED_MESSAGE, close=False)

    def _on_channel_failed(self, event: ChannelFailed) -> list[Command]:
        return self._end(PairingStage.FAILED, event.message, close=True)

    def _on_confirm(self, event: Confirm) -> list[Command]:
        try:
            accept, record, share = self._dp().confirm(
                event.desktop_name, event.desktop_device_id, now=int(event.now)
            )
        except ProtocolError as exc:
            return self._end(PairingStage.FAILED, str(exc), close=True)
        self.state = PairingStage.SAVING
        return [SavePairing(accept, record, share, event.label), ScheduleTick(None)]

    def _on_saved(self, event: Saved) -> list[Command]:
        return self._go(PairingStage.DONE, f"{event.label} is paired")

    def _on_save_failed(self, event: SaveFailed) -> list[Command]:
        return self._end(PairingStage.FAILED, event.message, close=False)

    def _on_reject(self, event: Event) -> list[Command]:
        return self._end(PairingStage.REJECTED, REJECTED_MESSAGE, close=True)

    def _on_cancel(self, event: Event) -> list[Command]:
        return self._end(PairingStage.REJECTED, CANCELLED_MESSAGE, close=True)

    def _on_restart(self, event: Event) -> list[Command]:
        return self._end(PairingStage.REJECTED, RESTARTED_MESSAGE, close=True)


def _table() -> dict[tuple[Any, type[Event]], Row]:
    S, P = PairingStage, PairingSession
    every = tuple(S)
    finals = tuple(s for s in S if s.final)
    open_ = (S.NEW, S.CHECKING, S.STARTING, S.WAITING, S.CONFIRM)

    def step(handler: Callable[..., list[Command]], *to: PairingStage, why: str) -> Row:
        return Step(handler, to, why)

    t: dict[tuple[Any, type[Event]], Row] = {}
    t |= rows(every, (Start,), lambda s: Refuse("it has already started"))
    t |= rows(
        every,
        (AppChecked, AppCheckFailed),
        lambda s: Step(ignore, (s,), "late: no app check is under way; no offer is made"),
    )
    t |= rows(every, (Tick,), stay("nothing is timed in this state"))
    t |= rows(every, (ChannelCreated, ChannelCreateFailed), stay("not ours, or a duplicate"))
    t |= rows(
        every,
        (Hello, ChannelExpired, ChannelClosed, ChannelFailed),
        stay("late: the hello was already taken, or the attempt is over"),
    )
    t |= rows(every, (Confirm,), lambda s: Refuse("nothing to confirm"))
    t |= rows(every, (Saved, SaveFailed), lambda s: Refuse("nothing is being saved"))
    t |= rows(finals, (Reject, Cancel, Restart), stay("already over"))
    for s in open_:
        t[s, Reject] = step(P._on_reject, S.REJECTED, why="the codes differ: keep nothing")
        t[s, Cancel] = step(P._on_cancel, S.REJECTED, why="the user gave up: keep nothing")
        t[s, Restart] = step(P._on_restart, S.REJECTED, why="the desktop restarts")
    t[S.SAVING, Reject] = Refuse("it is being saved: too late to reject")
    for e in (Cancel, Restart):
        t[S.SAVING, e] = step(ignore, S.SAVING, why="the save under way decides (it rolls back)")

    t[S.NEW, Start] = step(
        P._start, S.CHECKING, why="check the app at the link's origin before any offer exists"
    )
    t[S.CHECKING, AppChecked] = step(
        P._on_app_checked, S.STARTING, why="it is this desktop's build: make the offer and channel"
    )
    t[S.CHECKING, AppCheckFailed] = step(
        P._on_app_check_failed,
        S.FAILED,
        why="other code (or none) there: no offer, no channel, no link; say which origin",
    )
    t[S.STARTING, ChannelCreated] = step(
        P._on_created, S.WAITING, why=("show the QR and follow the channel")
    )
    t[S.STARTING, ChannelCreateFailed] = step(
        P._on_create_failed, S.FAILED, why=("the relay refused or is down: say so")
    )
    for s in (S.REJECTED, S.EXPIRED, S.FAILED):
        t[s, ChannelCreated] = step(
            P._on_created_late, s, why=("late: ended while the channel was made: close it")
        )
    t[S.WAITING, Hello] = step(
        P._on_hello,
        S.CONFIRM,
        S.FAILED,
        why=("a hello that opens, from the device it names: show the codes; else fail"),
    )
    for s in (S.WAITING, S.CONFIRM):
        t[s, Tick] = step(P._on_tick, s, S.EXPIRED, why="expire after the code's expiry")
    t[S.WAITING, ChannelExpired] = step(P._on_channel_end, S.EXPIRED, why=("no phone came in time"))
    t[S.WAITING, ChannelClosed] = step(
        P._on_channel_end, S.EXPIRED, why=("the channel is gone: no phone can come")
    )
    t[S.WAITING, ChannelFailed] = step(
        P._on_channel_failed, S.FAILED, why=("the relay stayed unreachable")
    )
    t[S.CONFIRM, Confirm] = step(
        P._on_confirm, S.SAVING, S.FAILED, why=("make K_P, the record and the accept; save them")
    )
    t[S.SAVING, Saved] = step(P._on_saved, S.DONE, why="paired")
    t[S.SAVING, SaveFailed] = step(
        P._on_save_failed, S.FAILED, why=("everything was rolled back: say why")
    )
    return t


PairingSession.TABLE = _table()
