"""A desktop (or phone) waiting on a channel's WebSocket, as a sans-IO state machine.

``/v1/pairing/{id}/ws`` and ``/v1/unlock/{id}/ws``: the client's first frame
authenticates it (and on an unlock socket may create the channel, as
``POST /v1/unlock`` would: one round trip and one store read fewer per
unlock), the relay answers ``ready`` with the channel's state, sends
every message after the client's ``after`` and then each new one as the bus
announces it, and ends with the channel's final state (``closed``,
``expired``) and a close code from the error registry.

:class:`ChannelWaiter` holds all of that logic and none of the I/O: it is fed
events (a client frame, a bus event, a tick, the result of a store read, all
with ``now``) and returns commands (send a frame, close, read the store,
admit the client, wake me at T). Its driver, :mod:`unlatch.relay.socket`,
owns the socket and carries the commands out. Why a machine rather than a
coroutine per socket: an idle waiter is then a few small objects and one
timer, with no task and no coroutine frames (issue 15: 10,000 waiting
devices), and every transition is tested on a fake clock
(tests/test_relay_waiter.py). The one table is :attr:`ChannelWaiter.TABLE`;
docs/relay.md's waiter table is generated from it.

Ordering argument (nothing is missed): the driver subscribes to the
channel's bus topic *before* the first store read (the :class:`Admit`
command does both in that order), so a message stored after that read is
announced by an event, and an event that arrives while a read is in flight
marks the waiter stale so another read follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from unlatch.relay.apierror import ApiError
from unlatch.relay.codec import b64e, json_loads
from unlatch.relay.config import MAX_AFTER
from unlatch.relay.frames import message_of_event, outcome_of_event
from unlatch.relay.models import (
    Channel,
    ChannelKind,
    Device,
    Message,
    channel_outcome,
    channel_state,
)
from unlatch.statemachine import (
    Command,
    Event,
    Row,
    ScheduleTick,
    Session,
    Stage,
    Step,
    Tick,
    ignore,
    rows,
    stay,
)

AUTH_TIMEOUT = 10.0  # seconds for the first (auth) frame after the handshake
PING_INTERVAL = 25.0  # an application-level {"type": "ping"} after this long without a frame
MAX_CLIENT_FRAME = 2048  # characters of a client's JSON frame that the relay reads
CLOSE_RESTART = 1012  # WebSocket close code: the relay is restarting (RFC 6455 "service restart")
EXPIRY_SLACK = 0.05  # read the store this long after the expiry, so the store agrees it expired

SHUTDOWN_FRAME: dict[str, Any] = {
    "type": "shutdown",
    "reconnect": True,
    "message": "the relay is restarting; reconnect and resume",
}


class WaiterStage(Stage):
    """Where a channel socket is in its life."""

    AUTH = "auth"  # accepted; the first frame must be {"type": "auth", ...}
    ADMITTING = "admitting"  # token, party and channel being checked; subscribing
    READING = "reading"  # a store read is in flight
    WAITING = "waiting"  # idle: a bus event, a tick or a client frame moves it
    CLOSED = "closed"  # the socket is closed or closing: nothing more happens

    @property
    def final(self) -> bool:
        return self is WaiterStage.CLOSED


# events --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened(Event):
    """The WebSocket handshake is done (the auth frame's clock starts)."""

    NAME = "opened"
    now: float


@dataclass(frozen=True)
class Frame(Event):
    """A complete message from the client: ``text``, or None for a binary message."""

    NAME = "frame"
    text: str | None
    now: float


@dataclass(frozen=True)
class ReadDone(Event):
    """A store read finished: the other party's messages after ``after``, the channel."""

    NAME = "read done"
    messages: tuple[Message, ...]
    channel: Channel | None
    now: float


@dataclass(frozen=True)
class Admitted(Event):
    """The token is live, the device may wait here, and the bus subscription is made.

    ``recheck``: seconds between store re-reads when the bus can lose an event
    (None: it cannot, so no timer). ``created``: the relay's answer when the
    socket created its unlock channel (``ready`` carries it).
    """

    NAME = "admitted"
    device: Device
    recheck: float | None
    now: float
    first: ReadDone | None = None  # the first read, when admission already made it
    created: dict[str, Any] | None = None


@dataclass(frozen=True)
class Failed(Event):
    """An operation was refused (bad token, not a party, store unavailable...)."""

    NAME = "failed"
    error: ApiError


@dataclass(frozen=True)
class BusEvent(Event):
    """The channel's bus topic announced something (a message, its end, a resync)."""

    NAME = "bus event"
    event: dict[str, Any]
    now: float


@dataclass(frozen=True)
class Shutdown(Event):
    """The relay is stopping: tell the client to reconnect elsewhere or later."""

    NAME = "shutdown"


@dataclass(frozen=True)
class Gone(Event):
    """The client left (close frame, reset, stalled and aborted)."""

    NAME = "gone"


# commands --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Send(Command):
    """Send one JSON text frame."""

    frame: dict[str, Any]


@dataclass(frozen=True)
class Close(Command):
    """Close the WebSocket with ``code`` and ``reason`` (after the frames before it)."""

    code: int
    reason: str


@dataclass(frozen=True)
class Admit(Command):
    """Check the token and that its device may wait on this channel; subscribe to its topic.

    With ``create`` (the auth frame's ``create`` object, not yet validated):
    subscribe, then create the unlock channel as ``POST /v1/unlock`` would,
    with these fields; the channel's first read is then known (open, no
    messages) and is not made. Answered with :class:`Admitted` or :class:`Failed`.
    """

    token: str | None
    create: dict[str, Any] | None = None


@dataclass(frozen=True)
class Read(Command):
    """Read the channel and the other party's messages after ``after`` (-> :class:`ReadDone`)."""

    after: int


@dataclass(frozen=True)
class EndChannel(Command):
    """Close the channel for the waiting party (``{"type": "close"}``, as ``DELETE`` does).

    Answered with nothing (the channel's end comes back as a bus event and a
    read) or :class:`Failed`.
    """


@dataclass(frozen=True)
class HandOver(Command):
    """These messages were just sent to the waiting party (count them, tell a reply's poster)."""

    messages: tuple[Message, ...]


def tell_and_close(err: ApiError) -> list[Command]:
    """An ``error`` frame saying why, then the close code of that error (the registry's).

    The frame is the HTTP answer's body (``error``, ``message``, and what the
    refusal adds: a rate limit's ``retry_after`` and ``scope``).
    """
    return [ScheduleTick(None), Send({"type": "error", **err.body()}), _close(err)]


def _close(err: ApiError) -> Close:
    return Close(err.ws_close, err.code)


def goodbye() -> list[Command]:
    """What every socket is told when the relay stops: reconnect and resume."""
    return [ScheduleTick(None), Send(SHUTDOWN_FRAME), Close(CLOSE_RESTART, "service restart")]


# the first steps every socket shares (``session`` has ``state`` and ``auth_deadline``)
def start_auth(session: Any, now: float) -> list[Command]:
    """The handshake is done: the auth frame must come within AUTH_TIMEOUT."""
    session.auth_deadline = now + AUTH_TIMEOUT
    return [ScheduleTick(session.auth_deadline)]


@dataclass(frozen=True)
class Hello:
    """A client's auth frame: token, ``after``, ``create`` (an unlock socket makes its channel)."""

    token: str | None
    after: int = 0
    create: dict[str, Any] | None = None


def take_auth(
    session: Any, text: str | None, *, may_create: bool = False
) -> tuple[list[Command], Hello]:
    """The first frame: admit its token (ADMITTING), or say what is wrong (CLOSED).

    ``may_create``: the socket may create its channel (an unlock socket);
    elsewhere a ``create`` field is refused.
    """
    try:
        hello = parse_auth(text)
        if hello.create is not None and not may_create:
            raise ApiError("bad_request", "only an unlock socket creates its channel")
    except ApiError as err:
        session.state = WaiterStage.CLOSED
        return tell_and_close(err), Hello(None)
    session.state = WaiterStage.ADMITTING
    return [ScheduleTick(None), Admit(hello.token, hello.create)], hello


def wait_for_auth(session: Any, now: float) -> list[Command]:
    """A tick before the auth frame: wait on, or close at the deadline."""
    if now < session.auth_deadline:
        return [ScheduleTick(session.auth_deadline)]
    session.state = WaiterStage.CLOSED
    return tell_and_close(ApiError("unauthorized", 'send {"type": "auth", ...} first'))


def message_frame(m: Message) -> dict[str, Any]:
    """The ``message`` frame of one stored message (docs/protocol.md, "channel frames")."""
    return {
        "type": "message",
        "seq": m.seq,
        "kind": m.type,
        "data": b64e(m.data),
        "sender": m.sender,
        "at": m.created_at,
    }


def parse_auth(text: str | None) -> Hello:
    """A client's first frame: token, ``after``, ``create`` (:class:`ApiError`: what is wrong).

    ``create`` is only checked to be an object with ``after`` 0 (a channel
    being created has nothing to resume); its fields are the create route's,
    checked by the driver as that route checks them.
    """
    if not text or len(text) > MAX_CLIENT_FRAME:
        raise ApiError("bad_request", "first frame must be a small JSON auth message")
    try:
        hello = json_loads(text)
    except ValueError:
        raise ApiError("bad_request", "first frame is not JSON") from None
    if not isinstance(hello, dict) or hello.get("type") != "auth":
        raise ApiError("bad_request", 'first frame must be {"type": "auth", "token": ...}')
    after = hello.get("after", 0)
    if isinstance(after, bool) or not isinstance(after, int) or not 0 <= after <= MAX_AFTER:
        raise ApiError("bad_request", "'after' must be a non-negative integer")
    create = hello.get("create")
    if create is not None:
        if not isinstance(create, dict):
            raise ApiError("bad_request", "'create' must be an object")
        if after != 0:
            raise ApiError("bad_request", "a socket that creates its channel has no 'after'")
    token = hello.get("token")
    return Hello(token if isinstance(token, str) else None, after, create)


def frame_type(text: str | None, wanted: str) -> bool:
    """Whether a client's frame is ``{"type": wanted, ...}`` (a cheap look before parsing)."""
    if not text or len(text) > MAX_CLIENT_FRAME or f'"{wanted}"' not in text:
        return False
    try:
        frame = json_loads(text)
    except ValueError:
        return False
    return isinstance(frame, dict) and frame.get("type") == wanted


def is_ping(text: str | None) -> bool:
    """A client's application-level ``{"type": "ping"}`` (answered with a pong)."""
    return frame_type(text, "ping")


# handlers every socket machine shares (rows of both tables point at them)
def answer_ping(session: Any, ev: Frame) -> list[Command]:
    """A client's ``{"type": "ping"}`` is answered; other frames are ignored."""
    return [Send({"type": "pong"})] if is_ping(ev.text) else []


def auth_tick(session: Any, ev: Tick) -> list[Command]:
    return wait_for_auth(session, ev.now)


def fail(session: Any, ev: Failed) -> list[Command]:
    session.state = WaiterStage.CLOSED
    return tell_and_close(ev.error)


def shut_down(session: Any, ev: Shutdown) -> list[Command]:
    session.state = WaiterStage.CLOSED
    return goodbye()


def leave(session: Any, ev: Gone) -> list[Command]:
    session.state = WaiterStage.CLOSED
    return [ScheduleTick(None)]


W = WaiterStage


def each(handler: Any, why: str, to: tuple[WaiterStage, ...] | None = None) -> Any:
    """Rows of one handler for several states (leading to ``to``, or staying put)."""
    return lambda s: Step(handler, to or (s,), why)


class ChannelWaiter(Session[WaiterStage]):
    """One waiting socket: auth, admission, then reads on each bus event until the channel ends.

    ``channel_id`` is None when the URL's id was not 16 bytes of base64url:
    the socket is then refused as soon as it opens.
    """

    WHAT: ClassVar[str] = "the channel socket"
    STATES = WaiterStage
    __slots__ = (
        "after",
        "auth_deadline",
        "channel_id",
        "close_asked",
        "created",
        "device_id",
        "expires_at",
        "kind",
        "last_read",
        "last_sent",
        "ready_sent",
        "recheck",
        "stale",
    )

    def __init__(self, channel_id: bytes | None, kind: ChannelKind) -> None:
        super().__init__(WaiterStage.AUTH)
        self.channel_id = channel_id
        self.kind = kind
        self.after = 0
        self.auth_deadline = 0.0
        self.expires_at = 0.0
        self.last_sent = 0.0  # when a frame last went out (for the idle ping)
        self.last_read = 0.0  # when the store was last read (for ``recheck``)
        self.recheck: float | None = None
        self.ready_sent = False
        self.stale = False  # an event came while a read was in flight: read again
        self.close_asked = False  # the client sent {"type": "close"}
        self.device_id = ""  # the waiting device (its own messages are not sent back)
        self.created: dict[str, Any] | None = None  # the create answer, for ``ready``

    # handlers ----------------------------------------------------------------------------
    def _opened(self, ev: Opened) -> list[Command]:
        if self.channel_id is None:
            self.state = W.CLOSED
            return tell_and_close(
                ApiError("bad_request", "channel id must be 16 bytes of base64url")
            )
        return start_auth(self, ev.now)

    def _auth_frame(self, ev: Frame) -> list[Command]:
        out, hello = take_auth(self, ev.text, may_create=self.kind == "unlock")
        self.after = hello.after
        return out

    def _client_frame(self, ev: Frame) -> list[Command]:
        """After ``ready``: a ping is answered; ``close`` ends the channel (once)."""
        if frame_type(ev.text, "close"):
            if self.close_asked:
                return []
            self.close_asked = True
            return [EndChannel()]
        return answer_ping(self, ev)

    def _admitted(self, ev: Admitted) -> list[Command]:
        self.recheck = ev.recheck
        self.device_id = ev.device.device_id
        self.created = ev.created
        if ev.first is not None:  # admission read the channel (after subscribing): use it
            self.state = W.READING
            self.last_read = ev.now
            return self._read_done(ev.first)
        return self._read(ev.now)

    def _read(self, now: float) -> list[Command]:
        self.state = W.READING
        self.stale = False
        self.last_read = now
        return [Read(self.after)]

    def _read_done(self, ev: ReadDone) -> list[Command]:
        now, ch = ev.now, ev.channel
        out: list[Command] = []
        state = channel_state(ch, now)
        if not self.ready_sent:
            self.ready_sent = True
            ready: dict[str, Any] = {
                "type": "ready",
                "state": state,
                "expires_at": ch.expires_at if ch else None,
            }
            if self.created is not None:  # said once, then not kept (idle memory)
                ready["created"], self.created = self.created, None
            out.append(Send(ready))
        if ev.messages:
            out += [Send(message_frame(m)) for m in ev.messages]
            self.after = ev.messages[-1].seq
            out.append(HandOver(ev.messages))
        if out:
            self.last_sent = now
        if state != "open":
            return out + self._end(state, channel_outcome(ch))
        assert ch is not None  # an open channel has a record
        self.expires_at = ch.expires_at
        if self.stale:
            return out + self._read(now)
        self.state = W.WAITING
        out.append(ScheduleTick(self._next_tick()))
        return out

    def _end(self, state: str, outcome: str | None) -> list[Command]:
        """The channel ended (``expired`` or ``closed``): say so, with why, and close 4410."""
        self.state = W.CLOSED
        frame = {"type": state, **({"outcome": outcome} if outcome else {})}
        return [Send(frame), _close(ApiError(state))]

    def _next_tick(self) -> float:
        at = min(self.last_sent + PING_INTERVAL, self.expires_at + EXPIRY_SLACK)
        if self.recheck is not None:
            at = min(at, self.last_read + self.recheck)
        return at

    def _event_waiting(self, ev: BusEvent) -> list[Command]:
        kind = ev.event.get("event")
        if kind == "handed":  # a waiter's own delivery report: nothing new
            return []
        outcome = outcome_of_event(ev.event)
        if outcome is not None:  # closed, with its messages deleted: a read finds only this
            return [ScheduleTick(None), *self._end("closed", outcome)]
        if kind == "message" and self.channel_id is not None:
            msg = message_of_event(self.channel_id, ev.event)
            if msg is not None and msg.seq == self.after + 1 and msg.sender != self.device_id:
                # next in line and from the other party: forward it, no store read
                self.after = msg.seq
                self.last_sent = ev.now
                return [Send(message_frame(msg)), HandOver((msg,)), ScheduleTick(self._next_tick())]
        return self._read(ev.now)

    def _event_reading(self, ev: BusEvent) -> list[Command]:
        if ev.event.get("event") != "handed":
            self.stale = True
        return []

    def _tick_waiting(self, ev: Tick) -> list[Command]:
        now = ev.now
        out: list[Command] = []
        if now - self.last_sent >= PING_INTERVAL:
            out.append(Send({"type": "ping"}))
            self.last_sent = now
        due = now >= self.expires_at or (
            self.recheck is not None and now - self.last_read >= self.recheck
        )
        if due:  # at expiry (to say so), or the timer of a lossy bus without a reconciler
            return out + self._read(now)
        return [*out, ScheduleTick(self._next_tick())]

    EVENTS = (Opened, Frame, Admitted, ReadDone, Failed, BusEvent, Tick, Shutdown, Gone)
    _LIVE = (W.AUTH, W.ADMITTING, W.READING, W.WAITING)
    _AFTER_AUTH = (W.ADMITTING, W.READING, W.WAITING)
    TABLE: ClassVar[dict[tuple[Any, type[Event]], Row]] = {
        # the handshake
        (W.AUTH, Opened): Step(_opened, (W.AUTH, W.CLOSED), "start the auth frame's clock"),
        **rows((*_AFTER_AUTH, W.CLOSED), [Opened], stay("opened once; a repeat changes nothing")),
        # client frames
        (W.AUTH, Frame): Step(_auth_frame, (W.ADMITTING, W.CLOSED), "the auth frame"),
        (W.ADMITTING, Frame): Step(
            answer_ping, (W.ADMITTING,), "answer a ping; other frames wait for ready: ignored"
        ),
        **rows(
            (W.READING, W.WAITING),
            [Frame],
            each(_client_frame, "answer a ping; close: end the channel; others are ignored"),
        ),
        (W.CLOSED, Frame): Step(ignore, (W.CLOSED,), "closing: frames are ignored"),
        # admission
        (W.ADMITTING, Admitted): Step(
            _admitted,
            (W.READING, W.WAITING, W.CLOSED),
            "admitted: the first read (or its result, made with the admission)",
        ),
        **rows(
            (W.AUTH, W.READING, W.WAITING, W.CLOSED),
            [Admitted],
            stay("not admitting: a stray result changes nothing"),
        ),
        # store reads
        (W.READING, ReadDone): Step(
            _read_done,
            (W.READING, W.WAITING, W.CLOSED),
            "send ready (once) and the new messages; end with the channel, else wait",
        ),
        **rows(
            (W.AUTH, W.ADMITTING, W.WAITING, W.CLOSED),
            [ReadDone],
            stay("no read in flight: a stray result changes nothing"),
        ),
        # refusals and failures of an operation
        **rows(
            _LIVE,
            [Failed],
            each(fail, "tell the client why, close", (W.CLOSED,)),
        ),
        (W.CLOSED, Failed): Step(ignore, (W.CLOSED,), "already closed"),
        # the bus
        (W.WAITING, BusEvent): Step(
            _event_waiting,
            (W.WAITING, W.READING, W.CLOSED),
            "the next message from the other party: forward it; closed with its outcome:"
            " say so, close; anything else: read the store",
        ),
        **rows(
            (W.ADMITTING, W.READING),
            [BusEvent],
            each(_event_reading, "a read is (or may be) in flight: read again after it"),
        ),
        **rows(
            (W.AUTH, W.CLOSED), [BusEvent], stay("not subscribed yet, or closed: nothing to do")
        ),
        # time
        (W.AUTH, Tick): Step(auth_tick, (W.AUTH, W.CLOSED), "no auth frame in time: close"),
        (W.WAITING, Tick): Step(
            _tick_waiting, (W.WAITING, W.READING), "ping when idle; read at expiry or recheck"
        ),
        **rows(
            (W.ADMITTING, W.READING, W.CLOSED),
            [Tick],
            stay("an operation is in flight (it schedules the next tick), or closed"),
        ),
        # the relay stopping, the client leaving
        **rows(_LIVE, [Shutdown], each(shut_down, "tell the client, close 1012", (W.CLOSED,))),
        (W.CLOSED, Shutdown): Step(ignore, (W.CLOSED,), "already closed"),
        **rows(_LIVE, [Gone], each(leave, "the client left", (W.CLOSED,))),
        (W.CLOSED, Gone): Step(ignore, (W.CLOSED,), "already closed"),
    }
