"""A phone listening on ``/v1/listen``, as a sans-IO state machine.

A phone in the foreground hears its unlock requests and their fate: each new
request's notification (``{"type": "unlock", ...}``), a ``request`` frame when
one of them is renewed, answered, cancelled, expired or closed, and a
``pairing`` frame when a pairing is removed. The relay's store is the truth:
a bus event can be lost (Redis restarting, a node killed between its store
write and its publish), so on a ``resync`` event (sent by the node's
reconciler when the store says one of the phone's requests changed) the
pending list is read again, and a request that left it without a frame this
socket saw gets its state frame then. Only a bus that can lose events and has
no reconciler gives the socket a timer for that (every :data:`LISTEN_RECHECK`
seconds).

:class:`PhoneListener` holds that logic, its driver
(:class:`unlatch.relay.socket_driver.ListenerSocket`) the I/O; the events and
commands it shares with the channel sockets are in :mod:`unlatch.relay.waiter`.
Bus events that arrive while the pending list is being read are held and
handled after it, so a request's notification always precedes its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from unlatch.relay.apierror import ApiError
from unlatch.relay.waiter import (
    PING_INTERVAL,
    Admitted,
    BusEvent,
    Failed,
    Frame,
    Gone,
    Opened,
    Send,
    Shutdown,
    WaiterStage,
    answer_ping,
    auth_tick,
    each,
    fail,
    leave,
    shut_down,
    start_auth,
    take_auth,
    tell_and_close,
)
from unlatch.statemachine import (
    Command,
    Event,
    Row,
    ScheduleTick,
    Session,
    Step,
    Tick,
    ignore,
    rows,
    stay,
)

LISTEN_RECHECK = 10.0  # seconds between re-reads on a lossy bus without a reconciler
FORGET_AFTER = 60.0  # an announced request is remembered this long past its expiry
MAX_HELD = 256  # bus events held during a read; beyond, one more read replaces them


@dataclass(frozen=True)
class PendingRead(Event):
    """The phone's open, unanswered requests (their notifications), read from the store."""

    NAME = "pending read"
    notes: tuple[dict[str, Any], ...]
    now: float


@dataclass(frozen=True)
class StatesRead(Event):
    """The state frames of requests that left the pending list (those that could be read)."""

    NAME = "states read"
    frames: tuple[dict[str, Any], ...]
    now: float


@dataclass(frozen=True)
class ReadPending(Command):
    """Read the phone's pending requests (-> :class:`PendingRead`)."""


@dataclass(frozen=True)
class ReadStates(Command):
    """Read where these requests stand (-> :class:`StatesRead`; unknown ones are left out)."""

    request_ids: tuple[str, ...]


L = WaiterStage  # the same life: auth, admitting, reading, waiting, closed


class PhoneListener(Session[WaiterStage]):
    """One phone's ``/v1/listen`` socket."""

    WHAT: ClassVar[str] = "the listener socket"
    STATES = WaiterStage
    __slots__ = (
        "auth_deadline",
        "ended",
        "held",
        "last_check",
        "last_sent",
        "recheck",
        "seen",
        "stale",
    )

    def __init__(self) -> None:
        super().__init__(L.AUTH)
        self.auth_deadline = 0.0
        # request id -> its expiry, for each request announced (kept a minute past expiry, so
        # a late or replayed bus event never announces it twice)
        self.seen: dict[str, float] = {}
        self.ended: set[str] = set()  # announced requests whose end this socket has told
        self.held: list[dict[str, Any]] = []  # bus events that came during a read
        self.stale = False  # read the pending list again after this read
        self.recheck: float | None = None
        self.last_sent = 0.0
        self.last_check = 0.0

    # handlers ----------------------------------------------------------------------------
    def _opened(self, ev: Opened) -> list[Command]:
        return start_auth(self, ev.now)

    def _auth_frame(self, ev: Frame) -> list[Command]:
        return take_auth(self, ev.text)[0]  # a listener resumes nothing: no ``after``

    def _admitted(self, ev: Admitted) -> list[Command]:
        if ev.device.kind != "phone":
            self.state = L.CLOSED
            return tell_and_close(ApiError("forbidden", "only phones listen for unlock requests"))
        self.recheck = LISTEN_RECHECK if ev.recheck is not None else None
        self.last_sent = ev.now
        return [Send({"type": "ready"}), *self._read(ev.now)]

    def _read(self, now: float) -> list[Command]:
        self.state = L.READING
        self.stale = False
        self.last_check = now
        return [ReadPending()]

    def _pending_read(self, ev: PendingRead) -> list[Command]:
        out: list[Command] = []
        current = {note["request_id"]: note for note in ev.notes}
        for rid, note in current.items():
            if rid not in self.seen:
                self.seen[rid] = note["expires_at"]
                out.append(Send(note))
        gone = tuple(r for r in self.seen if r not in current and r not in self.ended)
        self.ended.update(gone)  # they left the pending list without a frame we saw
        if out:
            self.last_sent = ev.now
        if gone:
            return [*out, ReadStates(gone)]
        return out + self._read_over(ev.now)

    def _states_read(self, ev: StatesRead) -> list[Command]:
        if ev.frames:
            self.last_sent = ev.now
        return [Send(f) for f in ev.frames] + self._read_over(ev.now)

    def _read_over(self, now: float) -> list[Command]:
        """The read is done: handle what the bus said meanwhile, then read again or wait."""
        held, self.held = self.held, []
        out: list[Command] = []
        for event in held:
            out += self._deliver(event, now)
        if self.stale:
            return out + self._read(now)
        self.state = L.WAITING
        return [*out, ScheduleTick(self._next_tick())]

    def _next_tick(self) -> float:
        at = self.last_sent + PING_INTERVAL
        if self.recheck is not None:
            at = min(at, self.last_check + self.recheck)
        return at

    def _deliver(self, event: dict[str, Any], now: float) -> list[Command]:
        """One bus event while waiting (a resync is a read: the caller handles it)."""
        kind = event.get("event")
        if kind == "resync":
            self.stale = True
            return []
        if kind == "unlock":
            note = event.get("notification")
            if not isinstance(note, dict) or note.get("request_id") in self.seen:
                return []
            for rid in [r for r, exp in self.seen.items() if exp <= now - FORGET_AFTER]:
                del self.seen[rid]
                self.ended.discard(rid)
            self.seen[note["request_id"]] = note["expires_at"]
            self.last_sent = now
            return [Send(note)]
        if kind == "frame":
            frame = event.get("frame")
            if not isinstance(frame, dict):
                return []
            if frame.get("type") == "request" and frame.get("state") != "open":
                self.ended.add(str(frame.get("request_id", "")))
            self.last_sent = now
            return [Send(frame)]
        return []

    def _event_waiting(self, ev: BusEvent) -> list[Command]:
        out = self._deliver(ev.event, ev.now)
        if self.stale:  # a resync: the bus reconnected or a queue overflowed
            return out + self._read(ev.now)
        return [*out, ScheduleTick(self._next_tick())]

    def _event_reading(self, ev: BusEvent) -> list[Command]:
        if len(self.held) >= MAX_HELD:
            self.held.clear()
            self.stale = True  # the read after this one makes up for what is dropped
        else:
            self.held.append(ev.event)
        return []

    def _tick_waiting(self, ev: Tick) -> list[Command]:
        out: list[Command] = []
        if ev.now - self.last_sent >= PING_INTERVAL:
            out.append(Send({"type": "ping"}))
            self.last_sent = ev.now
        if self.recheck is not None and ev.now - self.last_check >= self.recheck:
            return out + self._read(ev.now)
        return [*out, ScheduleTick(self._next_tick())]

    EVENTS = (
        Opened,
        Frame,
        Admitted,
        PendingRead,
        StatesRead,
        Failed,
        BusEvent,
        Tick,
        Shutdown,
        Gone,
    )
    _LIVE = (L.AUTH, L.ADMITTING, L.READING, L.WAITING)
    _AFTER_AUTH = (L.ADMITTING, L.READING, L.WAITING)
    TABLE: ClassVar[dict[tuple[Any, type[Event]], Row]] = {
        (L.AUTH, Opened): Step(_opened, (L.AUTH,), "start the auth frame's clock"),
        **rows((*_AFTER_AUTH, L.CLOSED), [Opened], stay("opened once; a repeat changes nothing")),
        (L.AUTH, Frame): Step(_auth_frame, (L.ADMITTING, L.CLOSED), "the auth frame"),
        **rows(_AFTER_AUTH, [Frame], each(answer_ping, "answer a ping; other frames are ignored")),
        (L.CLOSED, Frame): Step(ignore, (L.CLOSED,), "closing: frames are ignored"),
        (L.ADMITTING, Admitted): Step(
            _admitted, (L.READING, L.CLOSED), "a phone: ready, then read its pending requests"
        ),
        **rows(
            (L.AUTH, L.READING, L.WAITING, L.CLOSED),
            [Admitted],
            stay("not admitting: a stray result changes nothing"),
        ),
        (L.READING, PendingRead): Step(
            _pending_read,
            (L.READING, L.WAITING),
            "announce new requests; ask how vanished ones ended; then the held events",
        ),
        (L.READING, StatesRead): Step(
            _states_read, (L.READING, L.WAITING), "tell how vanished requests ended"
        ),
        **rows(
            (L.AUTH, L.ADMITTING, L.WAITING, L.CLOSED),
            [PendingRead, StatesRead],
            stay("no read in flight: a stray result changes nothing"),
        ),
        **rows(_LIVE, [Failed], each(fail, "tell the client why, close", (L.CLOSED,))),
        (L.CLOSED, Failed): Step(ignore, (L.CLOSED,), "already closed"),
        (L.WAITING, BusEvent): Step(
            _event_waiting, (L.WAITING, L.READING), "pass a notification or frame on; resync: read"
        ),
        (L.READING, BusEvent): Step(
            _event_reading, (L.READING,), "hold it until the read is done (order kept)"
        ),
        **rows(
            (L.AUTH, L.ADMITTING, L.CLOSED),
            [BusEvent],
            stay("the first read (after subscribing) covers it, or closed"),
        ),
        (L.AUTH, Tick): Step(auth_tick, (L.AUTH, L.CLOSED), "no auth frame in time: close"),
        (L.WAITING, Tick): Step(
            _tick_waiting, (L.WAITING, L.READING), "ping when idle; re-read on a lossy bus's timer"
        ),
        **rows(
            (L.ADMITTING, L.READING, L.CLOSED),
            [Tick],
            stay("an operation is in flight (it schedules the next tick), or closed"),
        ),
        **rows(_LIVE, [Shutdown], each(shut_down, "tell the client, close 1012", (L.CLOSED,))),
        (L.CLOSED, Shutdown): Step(ignore, (L.CLOSED,), "already closed"),
        **rows(_LIVE, [Gone], each(leave, "the client left", (L.CLOSED,))),
        (L.CLOSED, Gone): Step(ignore, (L.CLOSED,), "already closed"),
    }
