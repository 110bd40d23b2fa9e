"""The relay's channel socket as a sans-IO machine, on a fake clock: every (state, event) pair.

No relay, no socket, no sleeping (unlatch/relay/waiter.py): events carry
their time, commands come out and are checked. The real socket (its driver,
unlatch/relay/socket_driver.py) is tested end to end against a running
relay in tests/test_relay_flows.py and tests/test_relay_abuse.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from unlatch.relay import waiter as w
from unlatch.relay.apierror import ApiError
from unlatch.relay.config import MAX_AFTER
from unlatch.relay.errors import CODES
from unlatch.relay.frames import closed_event, message_event
from unlatch.relay.models import Channel, ChannelState, Device, Message
from unlatch.statemachine import ScheduleTick, Step, Tick

T0 = 1_800_000_000.0
CID = bytes(range(16))
DESKTOP = Device(device_id="d1", public_key=b"k" * 32, kind="desktop", created_at=T0)
S = w.WaiterStage
AUTH = json.dumps({"type": "auth", "token": "tok", "after": 0})


def channel(
    state: ChannelState = ChannelState.OPEN, *, expires: float = T0 + 120, **meta: Any
) -> Channel:
    return Channel(
        channel_id=CID,
        kind="unlock",
        creator="d1",
        peer="p1",
        state=state,
        expires_at=expires,
        created_at=T0,
        meta=dict(meta),
    )


def message(seq: int, kind: str = "reply") -> Message:
    return Message(channel_id=CID, seq=seq, type=kind, data=b"x" * seq, sender="p1", created_at=T0)


def sends(commands: list[Any]) -> list[dict[str, Any]]:
    return [c.frame for c in commands if isinstance(c, w.Send)]


def closes(commands: list[Any]) -> list[tuple[int, str]]:
    return [(c.code, c.reason) for c in commands if isinstance(c, w.Close)]


def ticks(commands: list[Any]) -> list[float | None]:
    return [c.at for c in commands if isinstance(c, ScheduleTick)]


# how to reach each state from a new socket
def to_auth() -> w.ChannelWaiter:
    m = w.ChannelWaiter(CID, "unlock")
    m.handle(w.Opened(T0))
    return m


def to_admitting() -> w.ChannelWaiter:
    m = to_auth()
    m.handle(w.Frame(AUTH, T0 + 1))
    return m


def to_reading() -> w.ChannelWaiter:
    m = to_admitting()
    m.handle(w.Admitted(DESKTOP, None, T0 + 1))
    return m


def to_waiting() -> w.ChannelWaiter:
    m = to_reading()
    m.handle(w.ReadDone((), channel(), T0 + 1))
    return m


def to_closed() -> w.ChannelWaiter:
    m = to_waiting()
    m.handle(w.Gone())
    return m


REACH: dict[w.WaiterStage, Callable[[], w.ChannelWaiter]] = {
    S.AUTH: to_auth,
    S.ADMITTING: to_admitting,
    S.READING: to_reading,
    S.WAITING: to_waiting,
    S.CLOSED: to_closed,
}
SAMPLES: dict[type[Any], list[Any]] = {
    w.Opened: [w.Opened(T0 + 2)],
    w.Frame: [
        w.Frame(AUTH, T0 + 2),
        w.Frame('{"type":"ping"}', T0 + 2),
        w.Frame(None, T0 + 2),
        w.Frame("garbage", T0 + 2),
    ],
    w.Admitted: [w.Admitted(DESKTOP, None, T0 + 2), w.Admitted(DESKTOP, 5.0, T0 + 2)],
    w.ReadDone: [
        w.ReadDone((), channel(), T0 + 2),
        w.ReadDone((message(1),), channel(), T0 + 2),
        w.ReadDone((message(1),), channel(ChannelState.CLOSED, outcome="answered"), T0 + 2),
        w.ReadDone((), None, T0 + 2),
        w.ReadDone((), channel(expires=T0 + 1), T0 + 2),
    ],
    w.Failed: [w.Failed(ApiError("forbidden")), w.Failed(ApiError("store_unavailable"))],
    w.BusEvent: [
        w.BusEvent({"event": "message", "seq": 1}, T0 + 2),
        w.BusEvent({"event": "handed", "seq": 1}, T0 + 2),
        w.BusEvent({"event": "resync"}, T0 + 2),
    ],
    Tick: [Tick(T0 + 2), Tick(T0 + 11), Tick(T0 + 30), Tick(T0 + 500)],
    w.Shutdown: [w.Shutdown()],
    w.Gone: [w.Gone()],
}


def test_table_has_exactly_one_row_per_state_and_event() -> None:
    pairs = {(s, e) for s in S for e in w.ChannelWaiter.EVENTS}
    assert set(w.ChannelWaiter.TABLE) == pairs
    assert set(SAMPLES) == set(w.ChannelWaiter.EVENTS)
    assert set(REACH) == set(S)


def test_nothing_is_refused() -> None:
    """Every event comes from outside (a client, the bus, the store): handled or ignored."""
    for row in w.ChannelWaiter.TABLE.values():
        assert isinstance(row, Step) and row.why


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in S for e in w.ChannelWaiter.EVENTS],
    ids=lambda x: getattr(x, "value", None) or getattr(x, "NAME", str(x)),
)
def test_every_pair_lands_where_its_row_says(state: w.WaiterStage, event: type[Any]) -> None:
    for sample in SAMPLES[event]:
        m = REACH[state]()
        assert m.state is state
        commands = m.handle(sample)  # Session.handle asserts the row's target states
        if m.state is S.CLOSED and state is not S.CLOSED:
            # every way into CLOSED stops the clock, and a close follows any frame it sends
            assert closes(commands) or isinstance(sample, w.Gone)
        if state is S.CLOSED:
            assert commands == []


def test_a_whole_exchange() -> None:
    m = w.ChannelWaiter(CID, "unlock")
    assert ticks(m.handle(w.Opened(T0))) == [T0 + w.AUTH_TIMEOUT]
    out = m.handle(w.Frame(json.dumps({"type": "auth", "token": "tok", "after": 3}), T0 + 0.1))
    assert [type(c) for c in out] == [ScheduleTick, w.Admit] and out[1] == w.Admit("tok")
    assert m.handle(w.Admitted(DESKTOP, None, T0 + 0.2)) == [w.Read(3)]
    out = m.handle(w.ReadDone((), channel(), T0 + 0.3))
    assert sends(out) == [{"type": "ready", "state": "open", "expires_at": T0 + 120}]
    # idle: the next tick is the keep-alive ping, nothing earlier (no polling)
    assert ticks(out) == [T0 + 0.3 + w.PING_INTERVAL]
    assert m.state is S.WAITING
    assert m.handle(w.BusEvent({"event": "message", "seq": 4}, T0 + 1)) == [w.Read(3)]
    out = m.handle(w.ReadDone((message(4),), channel(), T0 + 1.1))
    assert sends(out) == [w.message_frame(message(4))]
    assert w.HandOver((message(4),)) in out and m.after == 4
    # the desktop closes the request after reading it: the socket hears it and ends
    assert m.handle(w.BusEvent({"event": "ended"}, T0 + 2)) == [w.Read(4)]
    out = m.handle(w.ReadDone((), channel(ChannelState.CLOSED, outcome="answered"), T0 + 2.1))
    assert sends(out) == [{"type": "closed", "outcome": "answered"}]
    assert closes(out) == [(CODES["closed"].ws_close, "closed")]
    assert m.final


def test_ready_then_messages_already_waiting_then_expired() -> None:
    m = to_reading()
    out = m.handle(w.ReadDone((message(1), message(2)), channel(expires=T0), T0 + 2))
    frames = sends(out)
    assert [f["type"] for f in frames] == ["ready", "message", "message", "expired"]
    assert frames[0]["state"] == "expired"
    assert closes(out) == [(CODES["expired"].ws_close, "expired")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "first frame must be a small JSON auth message"),
        ("", "first frame must be a small JSON auth message"),
        ("x" * (w.MAX_CLIENT_FRAME + 1), "first frame must be a small JSON auth message"),
        ("{nope", "first frame is not JSON"),
        ("[" * 5000, "first frame must be a small JSON auth message"),
        ('{"type":"ping"}', 'first frame must be {"type": "auth", "token": ...}'),
        ('{"type":"auth","after":true}', "'after' must be a non-negative integer"),
        ('{"type":"auth","after":-1}', "'after' must be a non-negative integer"),
        ('{"type":"auth","after":1.5}', "'after' must be a non-negative integer"),
        (
            json.dumps({"type": "auth", "after": MAX_AFTER + 1}),
            "'after' must be a non-negative integer",
        ),
    ],
)
def test_a_bad_first_frame_is_answered_and_closed(text: str | None, message: str) -> None:
    m = to_auth()
    out = m.handle(w.Frame(text, T0 + 1))
    assert sends(out) == [{"type": "error", "error": "bad_request", "message": message}]
    assert closes(out) == [(CODES["bad_request"].ws_close, "bad_request")]
    assert m.final


def test_a_token_that_is_not_text_is_passed_on_as_none() -> None:
    m = to_auth()
    out = m.handle(w.Frame('{"type":"auth","token":7}', T0 + 1))
    assert w.Admit(None) in out


def test_no_auth_frame_in_time() -> None:
    m = to_auth()
    assert ticks(m.handle(Tick(T0 + 5))) == [T0 + w.AUTH_TIMEOUT]  # early: wait on
    out = m.handle(Tick(T0 + w.AUTH_TIMEOUT))
    assert sends(out)[0]["error"] == "unauthorized"
    assert closes(out) == [(CODES["unauthorized"].ws_close, "unauthorized")]


def test_a_malformed_channel_id_is_refused_when_the_socket_opens() -> None:
    m = w.ChannelWaiter(None, "pairing")
    out = m.handle(w.Opened(T0))
    assert sends(out)[0] == {
        "type": "error",
        "error": "bad_request",
        "message": "channel id must be 16 bytes of base64url",
    }
    assert m.final


def test_an_event_during_a_read_means_one_more_read() -> None:
    m = to_waiting()
    m.handle(w.BusEvent({"event": "message", "seq": 1}, T0 + 3))
    assert m.state is S.READING
    assert m.handle(w.BusEvent({"event": "message", "seq": 2}, T0 + 3.1)) == []
    out = m.handle(w.ReadDone((message(1),), channel(), T0 + 3.2))
    assert out[-1] == w.Read(1) and m.state is S.READING
    out = m.handle(w.ReadDone((message(2),), channel(), T0 + 3.3))
    assert m.state is S.WAITING and not any(isinstance(c, w.Read) for c in out)


def test_a_delivery_report_does_not_cost_a_read() -> None:
    """``handed`` is the waiter's own report to a reply's poster: nothing new to read."""
    m = to_waiting()
    assert m.handle(w.BusEvent({"event": "handed", "seq": 1}, T0 + 3)) == []
    m.handle(w.BusEvent({"event": "message", "seq": 1}, T0 + 3))
    m.handle(w.BusEvent({"event": "handed", "seq": 1}, T0 + 3.1))
    out = m.handle(w.ReadDone((), channel(), T0 + 3.2))
    assert m.state is S.WAITING and not any(isinstance(c, w.Read) for c in out)


def test_idle_pings_and_the_expiry_read() -> None:
    m = to_waiting()  # last frame (ready) at T0 + 1, channel expires at T0 + 120
    out = m.handle(Tick(T0 + 1 + w.PING_INTERVAL))
    assert sends(out) == [{"type": "ping"}]
    assert ticks(out) == [T0 + 1 + 2 * w.PING_INTERVAL]
    m.handle(Tick(T0 + 1 + 4 * w.PING_INTERVAL))  # 101
    out = m.handle(Tick(T0 + 120 + w.EXPIRY_SLACK))
    assert out[-1] == w.Read(0)
    out = m.handle(w.ReadDone((), channel(expires=T0 + 120), T0 + 120.1))
    assert sends(out) == [{"type": "expired"}] and m.final


def test_a_lossy_bus_rereads_on_its_timer_and_a_lossless_one_never() -> None:
    lossy = to_admitting()
    lossy.handle(w.Admitted(DESKTOP, 5.0, T0 + 1))
    out = lossy.handle(w.ReadDone((), channel(), T0 + 1))
    assert ticks(out) == [T0 + 6]
    assert lossy.handle(Tick(T0 + 6)) == [w.Read(0)]
    lossless = to_waiting()
    assert ticks(lossless.handle(Tick(T0 + 6))) == [T0 + 1 + w.PING_INTERVAL]


@pytest.mark.parametrize("state", [S.AUTH, S.ADMITTING, S.READING, S.WAITING])
def test_shutdown_tells_the_client_to_reconnect(state: w.WaiterStage) -> None:
    m = REACH[state]()
    out = m.handle(w.Shutdown())
    assert sends(out) == [w.SHUTDOWN_FRAME]
    assert closes(out) == [(w.CLOSE_RESTART, "service restart")]
    assert ticks(out) == [None]
    assert m.handle(w.Shutdown()) == []


@pytest.mark.parametrize("state", [S.ADMITTING, S.READING, S.WAITING])
def test_pings_are_answered_and_other_frames_ignored(state: w.WaiterStage) -> None:
    m = REACH[state]()
    assert sends(m.handle(w.Frame('{"type":"ping"}', T0 + 2))) == [{"type": "pong"}]
    assert m.handle(w.Frame('{"type":"pingx"}', T0 + 2)) == []
    assert m.handle(w.Frame('{"type": "auth", "token": "other"}', T0 + 2)) == []
    assert m.handle(w.Frame(None, T0 + 2)) == []
    assert m.state is state


@pytest.mark.parametrize(
    "code", ["unauthorized", "forbidden", "unknown_channel", "store_unavailable"]
)
def test_a_refused_operation_is_told_with_the_registry_close_code(code: str) -> None:
    m = to_admitting()
    err = ApiError(code)
    out = m.handle(w.Failed(err))
    assert sends(out) == [{"type": "error", "error": code, "message": err.message}]
    assert closes(out) == [(err.ws_close, code)] and err.ws_close == CODES[code].ws_close


def test_docs_hold_the_generated_table() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "relay.md").read_text(encoding="utf-8")
    assert w.ChannelWaiter.table_markdown() in docs


def test_a_close_frame_ends_the_channel_once() -> None:
    """``{"type": "close"}`` after ready acknowledges on the socket (no DELETE request)."""
    m = to_waiting()
    assert m.handle(w.Frame('{"type": "close"}', T0 + 2)) == [w.EndChannel()]
    assert m.handle(w.Frame('{"type": "close"}', T0 + 2.1)) == []  # asked once
    assert m.state is S.WAITING
    # the relay's close publishes "ended": the next read finds the tombstone
    assert m.handle(w.BusEvent({"event": "ended"}, T0 + 2.2)) == [w.Read(0)]
    out = m.handle(w.ReadDone((), channel(ChannelState.CLOSED, outcome="answered"), T0 + 2.3))
    assert sends(out) == [{"type": "closed", "outcome": "answered"}] and m.final


def test_a_close_frame_before_ready_is_ignored() -> None:
    m = to_admitting()
    assert m.handle(w.Frame('{"type": "close"}', T0 + 2)) == []
    m = to_reading()
    assert m.handle(w.Frame('{"type": "close"}', T0 + 2)) == [w.EndChannel()]


def test_the_next_message_on_the_bus_is_forwarded_without_a_store_read() -> None:
    from unlatch.relay.frames import message_event

    m = to_waiting()  # after = 0
    out = m.handle(w.BusEvent(message_event(message(1)), T0 + 3))
    assert sends(out) == [w.message_frame(message(1))]
    assert w.HandOver((message(1),)) in out and m.after == 1 and m.state is S.WAITING
    assert not any(isinstance(c, w.Read) for c in out)
    # not next in line (one was missed): the store decides
    assert m.handle(w.BusEvent(message_event(message(3)), T0 + 4)) == [w.Read(1)]


def test_a_carried_message_that_is_ours_or_malformed_means_a_read() -> None:
    from unlatch.relay.frames import message_event

    own = Message(channel_id=CID, seq=1, type="accept", data=b"a", sender="d1", created_at=T0)
    m = to_waiting()
    assert m.handle(w.BusEvent(message_event(own), T0 + 3)) == [w.Read(0)]
    for bad in (
        {"event": "message", "seq": 1, "message": {"type": "reply", "sender": "p1", "data": "!"}},
        {"event": "message", "seq": True, "message": {}},
        {"event": "message", "seq": 1, "message": "x"},
    ):
        m = to_waiting()
        assert m.handle(w.BusEvent(bad, T0 + 3)) == [w.Read(0)], bad


def test_admission_with_its_first_read_and_an_event_during_it() -> None:
    """The socket's admission subscribes, then reads once (party check and first read in
    one store call): an event that came meanwhile means one more read."""
    m = to_admitting()
    assert m.handle(w.BusEvent({"event": "message", "seq": 1}, T0 + 1)) == []
    first = w.ReadDone((), channel(), T0 + 1.1)
    out = m.handle(w.Admitted(DESKTOP, None, T0 + 1.1, first=first))
    assert sends(out)[0]["type"] == "ready" and out[-1] == w.Read(0)
    m = to_admitting()
    out = m.handle(w.Admitted(DESKTOP, None, T0 + 1.1, first=first))
    assert m.state is S.WAITING and not any(isinstance(c, w.Read) for c in out)


# an unlock socket that creates its channel ------------------------------------------------
CREATE = {"routing_id": "cm91dGluZw", "push": "cHVzaA"}


def test_an_unlock_socket_creating_its_channel_needs_no_read() -> None:
    """The auth frame's create goes to the driver with the token; admission brings the
    channel just made (open, nothing posted) and the answer, which ``ready`` carries once."""
    m = to_auth()
    out = m.handle(w.Frame(json.dumps({"type": "auth", "token": "tok", "create": CREATE}), T0))
    assert out == [ScheduleTick(None), w.Admit("tok", CREATE)]
    answer = {"request_id": "x", "expires_at": T0 + 120, "notified": {"listeners": 1}}
    first = w.ReadDone((), channel(), T0 + 0.1)
    out = m.handle(w.Admitted(DESKTOP, None, T0 + 0.1, first=first, created=answer))
    assert not any(isinstance(c, w.Read) for c in out)
    assert sends(out) == [
        {"type": "ready", "state": "open", "expires_at": T0 + 120, "created": answer}
    ]
    assert m.state is S.WAITING and m.created is None  # said once, not kept while idle
    # a message posted meanwhile is forwarded as for any waiter
    out = m.handle(w.BusEvent(message_event(message(1)), T0 + 1))
    assert [f["type"] for f in sends(out)] == ["message"]


def test_an_event_during_a_create_causes_one_read_after_ready() -> None:
    m = to_auth()
    m.handle(w.Frame(json.dumps({"type": "auth", "token": "tok", "create": CREATE}), T0))
    assert m.handle(w.BusEvent({"event": "resync"}, T0 + 0.05)) == []  # admitting: noted
    first = w.ReadDone((), channel(), T0 + 0.1)
    out = m.handle(w.Admitted(DESKTOP, None, T0 + 0.1, first=first, created={}))
    assert sends(out)[0]["type"] == "ready" and out[-1] == w.Read(0)


@pytest.mark.parametrize(
    ("kind", "hello", "says"),
    [
        ("pairing", {"create": CREATE}, "only an unlock socket creates its channel"),
        ("unlock", {"create": "x"}, "'create' must be an object"),
        ("unlock", {"create": [1]}, "'create' must be an object"),
        ("unlock", {"create": CREATE, "after": 1}, "a socket that creates its channel has no"),
    ],
)
def test_a_create_where_none_can_be_is_refused(kind: str, hello: dict[str, Any], says: str) -> None:
    m = w.ChannelWaiter(CID, kind)  # type: ignore[arg-type]
    m.handle(w.Opened(T0))
    out = m.handle(w.Frame(json.dumps({"type": "auth", "token": "tok", **hello}), T0 + 1))
    [frame] = sends(out)
    assert frame["error"] == "bad_request" and frame["message"].startswith(says)
    assert closes(out) == [(CODES["bad_request"].ws_close, "bad_request")] and m.final


def test_a_refusal_frame_carries_what_the_http_answer_would() -> None:
    """rate limits: retry_after and scope, as in the 429's body."""
    m = to_admitting()
    err = ApiError("rate_limited", retry_after=2.5, scope="pairing")
    out = m.handle(w.Failed(err))
    assert sends(out) == [{"type": "error", **err.body()}]
    assert sends(out)[0]["retry_after"] == 3 and sends(out)[0]["scope"] == "pairing"


def test_a_close_announced_with_its_outcome_needs_no_read() -> None:
    """Closing deletes the channel's messages, so the outcome in the event is all a read
    would find: ``closed`` goes out at once. A bare ``ended`` (an expiry, an older node)
    or an outcome that is not one still reads the store."""
    m = to_waiting()
    out = m.handle(w.BusEvent(closed_event("answered"), T0 + 3))
    assert not any(isinstance(c, w.Read) for c in out)
    assert sends(out) == [{"type": "closed", "outcome": "answered"}]
    assert closes(out) == [(CODES["closed"].ws_close, "closed")] and m.final
    for event in ({"event": "ended"}, {**closed_event("x"), "outcome": "made up"}):
        m = to_waiting()
        assert m.handle(w.BusEvent(event, T0 + 3)) == [w.Read(0)]
