"""UnlockSession: one "Request unlock from phone" press, as a sans-IO state machine.

One session per button press. It owns one or more protocol requests
(:class:`~unlatch.protocol.DesktopUnlock`, one relay channel each): the
first, and a fresh one made ``lead`` seconds before the current one expires
while the phone has not scanned (the QR on screen is renewed, a bounded
number of times). A renewed request's predecessor stays answerable until it
expires: a phone that scanned the old QR just before the swap still gets
through, and the session then follows that request.

Everything the old asyncio code did with string states, identity checks
("is this still the current request?") and one task per request is here as
one table over :class:`UnlockStage`. The driver (``unlatch/desktop/unlock.py``)
feeds what happened (ticks, relay messages, channel ends, the results of
its own commands, the user's cancel) and carries out the commands.

Rules that hold in every row:

* A relay message names its request; one that is not an open request of
  this session is ignored (it is late, or not ours).
* Entering a final state cancels every open protocol request (dropping its
  secrets) and closes every open channel, so the relay's state (closed)
  is what the phone hears.
* The vault unlock, once started, decides the outcome: cancel, revoke and
  restart wait for it (a vault cannot be "un-unlocked").

Number matching is the phone's to allow, per pairing (docs/protocol.md 6.8).
The session is made with the desktop's setting (a wish) and what the phone's
last authenticated answer said; it asks for number matching only when both
do, and otherwise shows the QR saying why (``scan_only``). Every reply states
the phone's policy: when it differs from what the desktop knew, the session
says so with a :class:`LearnPolicy` command. A plain denial of a
number-matching request by a phone that allows scanning only ends
``mode_refused`` (shown as "denied", with the reason). An
:class:`UnlockRefusal` ("I did not ask for this", made from the notification
without the QR) is its own event, :class:`Refusal`: it carries no share and
states no policy, so its rows can only end the request (``not_me``, or
``failed`` when it does not authenticate) and nothing is learnt from it.
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
from unlatch.protocol import (
    Approved,
    DesktopUnlock,
    MessageType,
    ProtocolError,
    UnlockMode,
    UnlockPolicy,
    WrongRequest,
)
from unlatch.protocol.encoding import peek_type
from unlatch.protocol.primitives import Random
from unlatch.protocol.records import DesktopPairingRecord

RENEW_BEFORE = 15  # seconds before expiry at which the QR is renewed (at most ttl/4)
DEFAULT_RENEWALS = 4  # ~10 minutes of QR on screen at the default 2-minute life
EXPIRY_GRACE = 1  # the protocol expires a request when int(now) > expires_at
REVOKED_MESSAGE = "this phone was revoked on this desktop: its request was withdrawn"
RESTARTED_MESSAGE = "the desktop stopped waiting for this request (it restarted or changed relay)"
WRONG_REQUEST_MESSAGE = "the relay delivered a reply for another request"
NOT_A_REFUSAL_MESSAGE = "a refusal was refused: it is not an UnlockRefusal"

MESSAGES = {
    "waiting": "Scan the QR code with your phone",
    "waiting_number": "Pick the number shown here on your phone",
    "seen": "Your phone has scanned the code: approve on the phone",
    "unlocking": "Approved on the phone: unlocking the vault",
    "approved": "Approved: the vault is unlocked",
    "denied": "The phone denied the request",
    "not_me": "Your phone says it did not ask for this: requests from this desktop are "
    "blocked until the phone re-confirms.",
    "wrong_number": "The wrong number was picked on the phone: nothing was released",
    "scan_only": "Scan the QR code with your phone (number matching is on here, but this phone "
    "allows this desktop scanning only: allow approving from the notification on the phone, "
    "under its paired desktops; this desktop learns it from the phone's next answer)",
    "mode_refused": "The phone refused approve-from-notification: it allows this desktop "
    "scanning only. Unlock again to scan a QR code, or allow it on the phone.",
    "expired": "The request expired",
    "cancelled": "Request cancelled",
}


class UnlockStage(Stage):
    """Where an unlock session is. ``public`` is the state the UI and API show."""

    NEW = "new"  # made, nothing sent yet
    STARTING = "starting"  # the first request's channel is being created
    WAITING = "waiting"  # QR (or number) shown, nothing back yet
    RENEWING = "renewing"  # as WAITING, and a renewed request's channel is being created
    SEEN = "seen"  # the phone scanned: no more renewals
    UNLOCKING = "unlocking"  # approved: the vault is being unlocked with the phone's share
    APPROVED = "approved"
    DENIED = "denied"
    NOT_ME = "not_me"
    WRONG_NUMBER = "wrong_number"
    MODE_REFUSED = "mode_refused"  # a number-matching request denied by a scan-only phone
    EXPIRED = "expired"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in FINAL

    @property
    def public(self) -> str:
        return _PUBLIC.get(self, self.value)


FINAL = frozenset(
    {
        UnlockStage.APPROVED,
        UnlockStage.DENIED,
        UnlockStage.NOT_ME,
        UnlockStage.WRONG_NUMBER,
        UnlockStage.MODE_REFUSED,
        UnlockStage.EXPIRED,
        UnlockStage.FAILED,
        UnlockStage.CANCELLED,
    }
)
_PUBLIC = {
    UnlockStage.NEW: "waiting",
    UnlockStage.STARTING: "waiting",
    UnlockStage.RENEWING: "waiting",
    UnlockStage.MODE_REFUSED: "denied",  # the message says why
}
FINAL_STATES = tuple(dict.fromkeys(s.public for s in UnlockStage if s.final))
LIVE = (UnlockStage.WAITING, UnlockStage.RENEWING, UnlockStage.SEEN)

# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class Seen(Event):
    """A ``seen`` message arrived on a request's channel (not yet checked)."""

    NAME = "seen"
    channel: bytes
    data: bytes
    now: float


@dataclass(frozen=True)
class Reply(Event):
    """A ``reply`` message arrived on a request's channel (not yet opened)."""

    NAME = "reply"
    channel: bytes
    data: bytes
    now: float


@dataclass(frozen=True)
class Refusal(Event):
    """An ``UnlockRefusal`` arrived as a request's answer ("I did not ask for this").

    The phone makes it from the notification, without the QR secret; the
    relay carries it as the channel's reply. :func:`answer_event` tells it
    from an :class:`UnlockReply`.
    """

    NAME = "refusal"
    channel: bytes
    data: bytes
    now: float


def answer_event(channel: bytes, data: bytes, now: float) -> Reply | Refusal:
    """The event for a ``reply`` message of the relay: a refusal, or (anything else) a reply.

    Only the header is looked at; bytes that are not a message go to
    :class:`Reply`, whose handler refuses them (and burns the request).
    """
    try:
        refusal = peek_type(data) is MessageType.UNLOCK_REFUSAL
    except ProtocolError:
        refusal = False
    return Refusal(channel, data, now) if refusal else Reply(channel, data, now)


@dataclass(frozen=True)
class VaultUnlocked(Event):
    """The :class:`UnlockVault` command succeeded."""

    NAME = "vault unlocked"


@dataclass(frozen=True)
class VaultUnlockFailed(Event):
    """The :class:`UnlockVault` command failed (``message`` says why)."""

    NAME = "vault unlock failed"
    message: str


@dataclass(frozen=True)
class Revoke(Event):
    """This session's phone was revoked (here, or elsewhere: the relay closed its channels)."""

    NAME = "revoke"


@dataclass(frozen=True)
class Renew(Event):
    """Renew the QR now, whatever the schedule (not counted against the renewals)."""

    NAME = "renew"
    now: float


EVENTS: tuple[type[Event], ...] = (
    Start,
    Tick,
    ChannelCreated,
    ChannelCreateFailed,
    Seen,
    Reply,
    Refusal,
    ChannelExpired,
    ChannelClosed,
    ChannelFailed,
    VaultUnlocked,
    VaultUnlockFailed,
    Cancel,
    Revoke,
    Restart,
    Renew,
)

# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class CreateChannel(Command):
    """Create the request's relay channel (answer with ChannelCreated/-CreateFailed)."""

    channel: bytes
    routing_id: bytes
    push: bytes
    ttl: int


@dataclass(frozen=True)
class UnlockVault(Command):
    """Unlock the vault with the phone's share (answer with VaultUnlocked/-UnlockFailed)."""

    share: bytes = field(repr=False)


@dataclass(frozen=True)
class LearnPolicy(Command):
    """Record what the phone's authenticated reply said of its policy, for the next request.

    Only a wish's filter: the phone refuses what it did not allow, whatever
    is recorded. Nothing is fed back (a store that cannot be written does not
    stop the unlock).
    """

    allows_number_matching: bool


@dataclass(frozen=True)
class ShowView(Command):
    """What the page shows changed: state, message, QR generation, expiry."""

    state: str
    message: str
    generation: int
    expires_at: int


# ----------------------------------------------------------------- session


@dataclass
class _Request:
    request: DesktopUnlock
    generation: int
    open: bool = False  # its channel exists on the relay and is followed


class UnlockSession(Session[UnlockStage]):
    """One unlock attempt for one paired phone (see the module docstring)."""

    STATES = UnlockStage
    EVENTS = EVENTS
    WHAT = "this unlock request"
    TABLE: ClassVar[dict[tuple[Any, type[Event]], Row]]

    def __init__(
        self,
        pairing: DesktopPairingRecord,
        *,
        ttl: int,
        number_matching: bool = False,
        allows_number_matching: bool = False,
        renewals: int = DEFAULT_RENEWALS,
        rng: Random | None = None,
    ) -> None:
        """``number_matching``: the desktop's setting (a wish); ``allows_number_matching``:
        what the phone's last authenticated answer said (PairedPhone). Both must
        hold for a number-matching request."""
        super().__init__(UnlockStage.NEW)
        self.pairing = pairing
        self.ttl = ttl
        self.wished_number_matching = number_matching
        self.allows_number_matching = allows_number_matching
        allowed = number_matching and allows_number_matching
        self.mode = UnlockMode.NUMBER_MATCH if allowed else UnlockMode.SCAN
        self.renewals_left = renewals
        self.lead = min(RENEW_BEFORE, ttl // 4)  # short lives renew early too
        self._rng = rng
        self._requests: dict[bytes, _Request] = {}
        self._current: _Request | None = None
        self._pending: _Request | None = None  # a renewal whose channel is being made
        self.generation = 0
        self.notified: dict[str, Any] = {}
        self.message = ""

    # ---------------------------------------------------------- read side

    @property
    def request(self) -> DesktopUnlock:
        """The request whose QR (or number) is on screen, or was last."""
        current = self._current or self._pending
        assert current is not None, "the session has not started"
        return current.request

    def open_requests(self) -> list[bytes]:
        """Ids of the requests whose channels are open (for tests and the driver)."""
        return [rid for rid, r in self._requests.items() if r.open]

    def next_tick(self) -> float | None:
        """When the next Tick is due: a renewal, or just after an open request's expiry."""
        if self.state not in LIVE or self._current is None:
            return None
        times = [r.request.expires_at + EXPIRY_GRACE for r in self._requests.values() if r.open]
        times.append(self._current.request.expires_at + EXPIRY_GRACE)
        if self._renewable():
            times.append(self._current.request.expires_at - self.lead)
        return float(min(times))

    def _renewable(self) -> bool:
        return self.state is UnlockStage.WAITING and self.renewals_left > 0 and self.lead >= 1

    # ---------------------------------------------------------- helpers

    def _new_request(self, now: float) -> tuple[_Request, CreateChannel]:
        kwargs: dict[str, Any] = {} if self._rng is None else {"rng": self._rng}
        request = DesktopUnlock(self.pairing, now=int(now), ttl=self.ttl, mode=self.mode, **kwargs)
        tracked = _Request(request, 0)
        self._requests[request.request_id] = tracked
        create = CreateChannel(
            request.request_id, self.pairing.keys.routing_id, request.push_bytes, self.ttl
        )
        return tracked, create

    def _view(self) -> list[Command]:
        shown = self._current or self._pending
        expires_at = shown.request.expires_at if shown is not None else 0
        return [
            ShowView(self.state.public, self.message, self.generation, expires_at),
            ScheduleTick(self.next_tick()),
        ]

    def _go(self, stage: UnlockStage, message: str | None = None) -> None:
        self.state = stage
        if message is not None:
            self.message = message
        elif stage is UnlockStage.WAITING:
            self.message = MESSAGES[self._waiting_message()]
        else:
            self.message = MESSAGES.get(stage.value) or MESSAGES.get(stage.public, stage.public)

    def _waiting_message(self) -> str:
        if self.mode is UnlockMode.NUMBER_MATCH:
            return "waiting_number"
        return "scan_only" if self.wished_number_matching else "waiting"

    def _learn(self, policy: UnlockPolicy | None) -> list[Command]:
        """What an authenticated reply said of the phone's policy, if it is news (None: nothing)."""
        if policy is None:
            return []
        allows = policy is UnlockPolicy.NUMBER_MATCHING
        if allows == self.allows_number_matching:
            return []
        self.allows_number_matching = allows
        return [LearnPolicy(allows)]

    def _end(self, stage: UnlockStage, message: str | None = None) -> list[Command]:
        """Enter a final state: every request cancelled, every open channel closed."""
        self._go(stage, message)
        closes: list[Command] = []
        for rid, tracked in self._requests.items():
            tracked.request.cancel()  # no-op for one that already ended (answered, expired)
            if tracked.open:
                tracked.open = False
                closes.append(CloseChannel(rid))
        if self._pending is not None:
            self._pending.request.cancel()  # its channel is closed when its creation returns
        return [*self._view(), *closes]

    def _open(self, request_id: bytes) -> _Request | None:
        tracked = self._requests.get(request_id)
        return tracked if tracked is not None and tracked.open else None

    def _follow(self, tracked: _Request) -> None:
        """Make ``tracked`` the request on screen (a scan of an older QR follows it)."""
        if tracked is not self._current:
            self._current = tracked
            self.generation += 1
            tracked.generation = self.generation

    # ---------------------------------------------------------- handlers

    def _start(self, event: Start) -> list[Command]:
        tracked, create = self._new_request(event.now)
        self._pending = tracked
        self._go(UnlockStage.STARTING, "")
        return [create]

    def _renew(self, now: float) -> list[Command]:
        tracked, create = self._new_request(now)
        self._pending = tracked
        self._go(UnlockStage.RENEWING, self.message)
        return [create]

    def _on_renew(self, event: Renew) -> list[Command]:
        return self._renew(event.now)

    def _on_tick(self, event: Tick) -> list[Command]:
        commands: list[Command] = []
        now = int(event.now)
        for rid, tracked in self._requests.items():
            if (
                tracked.open
                and tracked is not self._current
                and tracked.request.check_expiry(now=now)
            ):
                tracked.open = False  # a predecessor's life is over
                commands.append(CloseChannel(rid))
        assert self._current is not None
        if self._current.request.check_expiry(now=now):
            return [*commands, *self._end(UnlockStage.EXPIRED)]
        if self._renewable() and event.now >= self._current.request.expires_at - self.lead:
            self.renewals_left -= 1
            return [*commands, *self._renew(event.now)]
        return [*commands, ScheduleTick(self.next_tick())]

    def _on_created(self, event: ChannelCreated) -> list[Command]:
        pending = self._pending
        if pending is None or pending.request.request_id != event.channel:
            return []  # not a creation this session waits for
        self._pending = None
        pending.open = True
        self.notified = dict(event.notified)
        self._follow(pending)
        self._go(UnlockStage.WAITING)
        return [FollowChannel(event.channel), *self._view()]

    def _on_created_late(self, event: ChannelCreated) -> list[Command]:
        """A renewal's channel was made after the session moved on: nobody needs it."""
        pending = self._pending
        if pending is None or pending.request.request_id != event.channel:
            return []
        self._pending = None
        pending.request.cancel()
        return [CloseChannel(event.channel)]

    def _on_create_failed(self, event: ChannelCreateFailed) -> list[Command]:
        pending = self._pending
        if pending is None or pending.request.request_id != event.channel:
            return []
        self._pending = None
        pending.request.cancel()
        del self._requests[event.channel]
        if self.state is UnlockStage.STARTING:
            return self._end(UnlockStage.FAILED, event.message)
        self.renewals_left = 0  # the QR on screen stays valid until it expires
        self._go(UnlockStage.WAITING, self.message)
        return [ScheduleTick(self.next_tick())]

    def _on_create_failed_late(self, event: ChannelCreateFailed) -> list[Command]:
        if self._pending is not None and self._pending.request.request_id == event.channel:
            self._pending = None
        return []

    def _on_seen(self, event: Seen) -> list[Command]:
        tracked = self._open(event.channel)
        if tracked is None:
            return []
        try:
            tracked.request.receive_seen(event.data, now=int(event.now))
        except ProtocolError:
            return []  # forged or garbled: a scan notice is only a status, ignore it
        before = (self.state, self.generation)
        self._follow(tracked)
        self._go(UnlockStage.SEEN)
        if (self.state, self.generation) == before:
            return []  # a duplicate
        return self._view()

    def _on_reply(self, event: Reply) -> list[Command]:
        tracked = self._open(event.channel)
        if tracked is None:
            return []
        try:
            outcome = tracked.request.receive_reply(event.data, now=int(event.now))
        except WrongRequest:
            # The relay takes one reply per channel, so a reply naming another
            # request means none for this one can follow.
            if tracked is self._current:
                return self._end(UnlockStage.FAILED, WRONG_REQUEST_MESSAGE)
            tracked.open = False
            tracked.request.cancel()
            return [CloseChannel(event.channel), ScheduleTick(self.next_tick())]
        except ProtocolError as exc:  # a reply that fails authentication burns the request
            return self._end(UnlockStage.FAILED, f"a reply was refused: {exc}")
        self._follow(tracked)
        learnt = self._learn(outcome.policy)
        if isinstance(outcome, Approved):
            self._go(UnlockStage.UNLOCKING)
            return [*learnt, UnlockVault(outcome.phone_share), *self._view()]
        if outcome.not_me:
            stage = UnlockStage.NOT_ME
        elif outcome.wrong_number:
            stage = UnlockStage.WRONG_NUMBER
        elif self.mode is UnlockMode.NUMBER_MATCH and outcome.policy is UnlockPolicy.SCAN_ONLY:
            stage = UnlockStage.MODE_REFUSED  # its policy changed, or this desktop's files were
        else:
            stage = UnlockStage.DENIED
        return [*learnt, *self._end(stage)]

    def _on_refusal(self, event: Refusal) -> list[Command]:
        """ "I did not ask for this" from the notification: it can only end the request."""
        if isinstance(answer_event(event.channel, event.data, event.now), Reply):
            # fed as a refusal but not one: never let it be opened as a reply here
            if self._open(event.channel) is None:
                return []
            return self._end(UnlockStage.FAILED, NOT_A_REFUSAL_MESSAGE)
        commands = self._on_reply(Reply(event.channel, event.data, event.now))
        assert self.state is not UnlockStage.UNLOCKING, "a refusal carries no share"
        return commands

    def _on_channel_end(self, event: ChannelExpired | ChannelClosed) -> list[Command]:
        """Nothing more will come on that channel; the ticks decide about expiry."""
        tracked = self._open(event.channel)
        if tracked is not None:
            tracked.open = False
        return []

    def _on_channel_failed(self, event: ChannelFailed) -> list[Command]:
        tracked = self._open(event.channel)
        if tracked is None:
            return []
        tracked.open = False
        if tracked is self._current:
            return self._end(UnlockStage.FAILED, event.message)
        return []

    def _on_unlocked(self, event: VaultUnlocked) -> list[Command]:
        return self._end(UnlockStage.APPROVED)  # closing acknowledges the reply

    def _on_unlock_failed(self, event: VaultUnlockFailed) -> list[Command]:
        return self._end(UnlockStage.FAILED, event.message)

    def _on_cancel(self, event: Event) -> list[Command]:
        return self._end(UnlockStage.CANCELLED)

    def _on_revoke(self, event: Event) -> list[Command]:
        return self._end(UnlockStage.FAILED, REVOKED_MESSAGE)

    def _on_restart(self, event: Event) -> list[Command]:
        return self._end(UnlockStage.CANCELLED, RESTARTED_MESSAGE)


def _table() -> dict[tuple[Any, type[Event]], Row]:
    S, U = UnlockStage, UnlockSession
    every = tuple(S)
    finals = tuple(s for s in S if s.final)
    remote = (Seen, Reply, Refusal, ChannelExpired, ChannelClosed, ChannelFailed)

    def step(handler: Callable[..., list[Command]], *to: UnlockStage, why: str) -> Row:
        return Step(handler, to, why)

    t: dict[tuple[Any, type[Event]], Row] = {}
    # Defaults first, then the rows that matter override them.
    t |= rows(every, (Start,), lambda s: Refuse("it has already started"))
    t |= rows(every, (Tick,), stay("nothing is timed in this state"))
    t |= rows(
        every,
        (ChannelCreated,),
        lambda s: step(
            U._on_created_late,
            s,
            why=("late: a renewal made after the session moved on is closed at once"),
        ),
    )
    t |= rows(
        every,
        (ChannelCreateFailed,),
        lambda s: step(U._on_create_failed_late, s, why=("late: nothing was made")),
    )
    t |= rows(every, remote, stay("late, duplicate or not ours: ignored"))
    t |= rows(
        every, (VaultUnlocked, VaultUnlockFailed), lambda s: Refuse("no vault unlock was started")
    )
    t |= rows(every, (Renew,), lambda s: Refuse("only a QR nobody scanned can be renewed"))
    t |= rows(finals, (Cancel, Revoke, Restart), stay("already over"))

    t[S.NEW, Start] = step(U._start, S.STARTING, why="make the first request and its channel")
    t[S.NEW, ChannelCreated] = step(ignore, S.NEW, why="not ours: nothing was asked yet")
    t[S.NEW, ChannelCreateFailed] = step(ignore, S.NEW, why="not ours: nothing was asked yet")
    for s in (S.NEW, S.STARTING):
        t[s, Cancel] = step(U._on_cancel, S.CANCELLED, why="the user gave up")
        t[s, Revoke] = step(U._on_revoke, S.FAILED, why="the phone was revoked")
        t[s, Restart] = step(U._on_restart, S.CANCELLED, why="the desktop restarts")
    t[S.STARTING, ChannelCreated] = step(
        U._on_created, S.STARTING, S.WAITING, why=("show the QR (or number) and follow the channel")
    )
    t[S.STARTING, ChannelCreateFailed] = step(
        U._on_create_failed, S.STARTING, S.FAILED, why=("the relay refused or is down: say so")
    )

    t[S.WAITING, Tick] = step(
        U._on_tick,
        S.WAITING,
        S.RENEWING,
        S.EXPIRED,
        why=("renew the QR `lead` s before expiry while renewals are left; expire after expiry"),
    )
    t[S.WAITING, Renew] = step(U._on_renew, S.RENEWING, why="a fresh QR now")
    t[S.RENEWING, Renew] = step(ignore, S.RENEWING, why="a renewal is already under way")
    for s in (S.RENEWING, S.SEEN):
        t[s, Tick] = step(U._on_tick, s, S.EXPIRED, why="expire after the request's expiry")
    t[S.RENEWING, ChannelCreated] = step(
        U._on_created,
        S.RENEWING,
        S.WAITING,
        why=("show the new QR; the old request stays answerable until it expires"),
    )
    t[S.RENEWING, ChannelCreateFailed] = step(
        U._on_create_failed,
        S.RENEWING,
        S.WAITING,
        why=("keep the QR on screen until it expires; no more renewals"),
    )
    for s in LIVE:
        t[s, Seen] = step(
            U._on_seen,
            s,
            S.SEEN,
            why=("a valid scan notice: say so, follow that request, stop renewing"),
        )
        t[s, Reply] = step(
            U._on_reply,
            s,
            S.UNLOCKING,
            S.DENIED,
            S.NOT_ME,
            S.WRONG_NUMBER,
            S.MODE_REFUSED,
            S.FAILED,
            why=(
                "open the reply and learn the policy it states: approved -> unlock the vault; "
                "denied -> say how (a number-matching request denied by a scan-only phone: "
                "mode_refused); refused -> the request is burnt"
            ),
        )
        t[s, Refusal] = step(
            U._on_refusal,
            s,
            S.NOT_ME,
            S.FAILED,
            why=(
                "I did not ask for this, from the notification: checked under the seen-MAC key, "
                "it ends the request (no share, no policy: nothing learnt); refused -> burnt"
            ),
        )
        t[s, ChannelExpired] = step(U._on_channel_end, s, why="stop following it; ticks expire")
        t[s, ChannelClosed] = step(U._on_channel_end, s, why="stop following it; ticks expire")
        t[s, ChannelFailed] = step(
            U._on_channel_failed,
            s,
            S.FAILED,
            why=("the relay stayed unreachable: the current request fails"),
        )
        t[s, Cancel] = step(U._on_cancel, S.CANCELLED, why="the user gave up: close every channel")
        t[s, Revoke] = step(U._on_revoke, S.FAILED, why="the phone was revoked: withdraw now")
        t[s, Restart] = step(U._on_restart, S.CANCELLED, why="the desktop restarts")
    t[S.UNLOCKING, VaultUnlocked] = step(
        U._on_unlocked, S.APPROVED, why=("done: close (acknowledge) every channel")
    )
    t[S.UNLOCKING, VaultUnlockFailed] = step(
        U._on_unlock_failed, S.FAILED, why=("say why the share did not open the vault")
    )
    t |= rows((S.UNLOCKING,), (Cancel, Revoke, Restart), stay("the vault unlock under way decides"))
    t |= rows((S.UNLOCKING,), remote, stay("late: the answer is in"))
    return t


UnlockSession.TABLE = _table()
