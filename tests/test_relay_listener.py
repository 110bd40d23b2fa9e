"""The phone's ``/v1/listen`` socket as a sans-IO machine, on a fake clock: every pair.

(unlatch/relay/listener.py; the real socket is tested against a running relay
in tests/test_relay_lifecycle.py and tests/test_relay_abuse.py.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from unlatch.relay import listener as li
from unlatch.relay import waiter as w
from unlatch.relay.apierror import ApiError
from unlatch.relay.models import Device
from unlatch.statemachine import ScheduleTick, Step, Tick

T0 = 1_800_000_000.0
S = w.WaiterStage
PHONE = Device(device_id="p1", public_key=b"k" * 32, kind="phone", created_at=T0)
DESKTOP = Device(device_id="d1", public_key=b"k" * 32, kind="desktop", created_at=T0)
AUTH = json.dumps({"type": "auth", "token": "tok"})


def note(rid: str, expires: float = T0 + 120) -> dict[str, Any]:
    return {"type": "unlock", "request_id": rid, "expires_at": expires}


def state_frame(rid: str, state: str) -> dict[str, Any]:
    return {"type": "request", "request_id": rid, "state": state}


def sends(commands: list[Any]) -> list[dict[str, Any]]:
    return [c.frame for c in commands if isinstance(c, w.Send)]


def to_auth() -> li.PhoneListener:
    m = li.PhoneListener()
    m.handle(w.Opened(T0))
    return m


def to_admitting() -> li.PhoneListener:
    m = to_auth()
    m.handle(w.Frame(AUTH, T0 + 1))
    return m


def to_reading() -> li.PhoneListener:
    m = to_admitting()
    m.handle(w.Admitted(PHONE, None, T0 + 1))
    return m


def to_waiting() -> li.PhoneListener:
    m = to_reading()
    m.handle(li.PendingRead((note("r1"),), T0 + 1))
    return m


def to_closed() -> li.PhoneListener:
    m = to_waiting()
    m.handle(w.Gone())
    return m


REACH: dict[w.WaiterStage, Callable[[], li.PhoneListener]] = {
    S.AUTH: to_auth,
    S.ADMITTING: to_admitting,
    S.READING: to_reading,
    S.WAITING: to_waiting,
    S.CLOSED: to_closed,
}
SAMPLES: dict[type[Any], list[Any]] = {
    w.Opened: [w.Opened(T0 + 2)],
    w.Frame: [w.Frame(AUTH, T0 + 2), w.Frame('{"type":"ping"}', T0 + 2), w.Frame(None, T0 + 2)],
    w.Admitted: [w.Admitted(PHONE, None, T0 + 2), w.Admitted(DESKTOP, 5.0, T0 + 2)],
    li.PendingRead: [li.PendingRead((), T0 + 2), li.PendingRead((note("r2"),), T0 + 2)],
    li.StatesRead: [
        li.StatesRead((), T0 + 2),
        li.StatesRead((state_frame("r1", "answered"),), T0 + 2),
    ],
    w.Failed: [w.Failed(ApiError("unauthorized"))],
    w.BusEvent: [
        w.BusEvent({"event": "unlock", "notification": note("r3")}, T0 + 2),
        w.BusEvent({"event": "frame", "frame": state_frame("r1", "cancelled")}, T0 + 2),
        w.BusEvent({"event": "resync"}, T0 + 2),
        w.BusEvent({"event": "something new"}, T0 + 2),
    ],
    Tick: [Tick(T0 + 2), Tick(T0 + 11), Tick(T0 + 30)],
    w.Shutdown: [w.Shutdown()],
    w.Gone: [w.Gone()],
}


def test_table_has_exactly_one_row_per_state_and_event_and_refuses_nothing() -> None:
    pairs = {(s, e) for s in S for e in li.PhoneListener.EVENTS}
    assert set(li.PhoneListener.TABLE) == pairs
    assert set(SAMPLES) == set(li.PhoneListener.EVENTS) and set(REACH) == set(S)
    assert all(isinstance(r, Step) and r.why for r in li.PhoneListener.TABLE.values())


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in S for e in li.PhoneListener.EVENTS],
    ids=lambda x: getattr(x, "value", None) or getattr(x, "NAME", str(x)),
)
def test_every_pair_lands_where_its_row_says(state: w.WaiterStage, event: type[Any]) -> None:
    for sample in SAMPLES[event]:
        m = REACH[state]()
        commands = m.handle(sample)  # Session.handle checks the row's target states
        if state is S.CLOSED:
            assert commands == []


def test_ready_then_pending_requests_then_live_ones() -> None:
    m = to_admitting()
    out = m.handle(w.Admitted(PHONE, None, T0 + 1))
    assert sends(out) == [{"type": "ready"}] and out[-1] == li.ReadPending()
    out = m.handle(li.PendingRead((note("r1"), note("r2")), T0 + 1.1))
    assert sends(out) == [note("r1"), note("r2")]
    assert m.state is S.WAITING
    # idle: only the keep-alive ping is scheduled (a lossless bus needs no re-read)
    assert [c.at for c in out if isinstance(c, ScheduleTick)] == [T0 + 1.1 + w.PING_INTERVAL]
    out = m.handle(w.BusEvent({"event": "unlock", "notification": note("r3")}, T0 + 2))
    assert sends(out) == [note("r3")]
    # a duplicate (a replayed or late event) is not announced twice
    assert (
        sends(m.handle(w.BusEvent({"event": "unlock", "notification": note("r3")}, T0 + 3))) == []
    )
    out = m.handle(w.BusEvent({"event": "frame", "frame": state_frame("r3", "answered")}, T0 + 4))
    assert sends(out) == [state_frame("r3", "answered")]


def test_events_during_a_read_wait_for_it_so_a_notification_precedes_its_end() -> None:
    m = to_reading()
    # r1 is answered while the pending list (still holding r1) is being read
    assert (
        m.handle(w.BusEvent({"event": "frame", "frame": state_frame("r1", "answered")}, T0 + 2))
        == []
    )
    out = m.handle(li.PendingRead((note("r1"),), T0 + 2.1))
    assert sends(out) == [note("r1"), state_frame("r1", "answered")]


def test_a_request_that_left_the_list_unseen_gets_its_state_read_and_told() -> None:
    m = to_waiting()  # r1 announced
    out = m.handle(w.BusEvent({"event": "resync"}, T0 + 5))
    assert out[-1] == li.ReadPending() and m.state is S.READING
    out = m.handle(li.PendingRead((), T0 + 5.1))
    assert out == [li.ReadStates(("r1",))]
    out = m.handle(li.StatesRead((state_frame("r1", "expired"),), T0 + 5.2))
    assert sends(out) == [state_frame("r1", "expired")] and m.state is S.WAITING
    # told once: the next read does not ask again
    m.handle(w.BusEvent({"event": "resync"}, T0 + 6))
    assert m.handle(li.PendingRead((), T0 + 6.1))[-1] != li.ReadStates(("r1",))


def test_a_request_ended_by_a_frame_is_not_asked_about_again() -> None:
    m = to_waiting()
    m.handle(w.BusEvent({"event": "frame", "frame": state_frame("r1", "cancelled")}, T0 + 2))
    m.handle(w.BusEvent({"event": "resync"}, T0 + 3))
    out = m.handle(li.PendingRead((), T0 + 3.1))
    assert not any(isinstance(c, li.ReadStates) for c in out) and m.state is S.WAITING


def test_a_lossy_bus_rereads_every_ten_seconds() -> None:
    m = to_admitting()
    m.handle(w.Admitted(PHONE, 5.0, T0 + 1))
    out = m.handle(li.PendingRead((), T0 + 1))
    assert [c.at for c in out if isinstance(c, ScheduleTick)] == [T0 + 1 + li.LISTEN_RECHECK]
    assert m.handle(Tick(T0 + 1 + li.LISTEN_RECHECK)) == [li.ReadPending()]


def test_a_flood_of_events_during_a_read_is_bounded() -> None:
    m = to_reading()
    for i in range(li.MAX_HELD + 10):
        m.handle(w.BusEvent({"event": "unlock", "notification": note(f"x{i}")}, T0 + 2))
    assert len(m.held) <= li.MAX_HELD
    out = m.handle(li.PendingRead((), T0 + 3))
    assert out[-1] == li.ReadPending()  # what was dropped is read from the store instead


def test_a_desktop_may_not_listen() -> None:
    m = to_admitting()
    out = m.handle(w.Admitted(DESKTOP, None, T0 + 1))
    assert sends(out)[0]["error"] == "forbidden" and m.final


def test_requests_are_forgotten_a_minute_after_expiry() -> None:
    m = to_reading()
    m.handle(li.PendingRead((note("old", expires=T0 + 10),), T0 + 1))
    m.handle(
        w.BusEvent({"event": "unlock", "notification": note("new")}, T0 + 10 + li.FORGET_AFTER)
    )
    assert "old" not in m.seen and "new" in m.seen
