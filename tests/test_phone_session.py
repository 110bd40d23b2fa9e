"""The phone's AnswerSession: its one table, on a fake clock (``now`` in every event).

The JSON vectors (tests/vectors/sessions_answer.json) are replayed here and
by the node test (web/phone/test/session.test.js), so the PWA and the Python
client follow a request the same way. The exhaustive search below checks the
rule the session exists for over every short sequence of events: the phone
never says "Approved" unless the relay said a waiting desktop took the reply.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from unlatch.phone.session import (
    FINAL,
    TABLE,
    TEXTS,
    AnswerSession,
    AnswerState,
    SessionError,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "sessions_answer.json").read_text())
T0, EXP = 1_800_000_000, 1_800_000_120


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_lifecycle_session_vectors_replay(case: dict[str, Any]) -> None:
    session = AnswerSession("request")
    for step in case["steps"]:
        assert session.handle(step["event"]) == step["commands"], step["event"]
        assert session.state.value == step["state"]


def test_lifecycle_session_table_is_the_vectors_table() -> None:
    assert sorted([s.value, e] for s, e in TABLE) == VECTORS["table"]


# One event of each kind and outcome, at a time inside the request's life.
EVENTS: list[dict[str, Any]] = [
    {"type": "notice", "now": T0, "expires_at": EXP},
    {"type": "open", "now": T0, "expires_at": EXP},
    *({"type": "answer", "now": T0 + 1, "verdict": v} for v in ("approve", "deny", "not_me")),
    *(
        {"type": "reply", "now": T0 + 2, "outcome": o}
        for o in ("delivered", "undelivered", "closed", "expired", "answered", "failed")
    ),
    {"type": "retry", "now": T0 + 3},
    *(
        {"type": "channel", "now": T0 + 4, "state": s}
        for s in ("renewed", "answered", "cancelled", "expired", "closed", "open")
    ),
    {"type": "channel", "now": T0 + 4, "state": "answered", "acknowledged": True},
    {"type": "revoke", "now": T0 + 5},
    {"type": "restart", "now": T0 + 6},
    {"type": "tick", "now": T0 + 7},
    {"type": "tick", "now": EXP},
]


def test_lifecycle_session_says_approved_only_after_a_waiting_desktop_took_it() -> None:
    """Every sequence of 4 events: "Approved" only after delivered/acknowledged."""
    for seq in itertools.product(EVENTS, repeat=4):
        session = AnswerSession("request")
        confirmed = False
        for event in seq:
            before = session.state
            commands = session.handle(event)
            took_it = (before is AnswerState.SENDING and event.get("outcome") == "delivered") or (
                before is AnswerState.UNDELIVERED and event.get("acknowledged")
            )
            confirmed = confirmed or took_it
            for c in commands:
                if c["type"] == "show" and c["view"].get("title") == "Approved":
                    assert took_it and session.verdict == "approve", seq


def test_lifecycle_session_final_states_stay_final() -> None:
    for state in FINAL:
        for event in EVENTS:
            session = AnswerSession("r", EXP, state=state)
            assert session.handle(event) == []
            assert session.state is state


def test_lifecycle_session_every_row_moves_or_shows_and_messages_say_what_next() -> None:
    """Each message names a next step (or that there is none); each row is reachable."""
    for key, (title, message, _kind) in TEXTS.items():
        assert title and message.endswith("."), key
        assert any(
            w in message
            for w in (
                "start a new",
                "Start a new",
                "request again",
                "Request again",
                "Scan",
                "Send again",
                "unblock",
                "Forget",
                "Nothing more to do",
            )
        ), key
    reached = set()
    for seq in itertools.product(EVENTS, repeat=4):
        session = AnswerSession("request")
        for event in seq:
            if (session.state, event["type"]) in TABLE:
                reached.add((session.state, event["type"]))
            session.handle(event)
    assert reached == set(TABLE)


def test_lifecycle_session_refuses_malformed_events() -> None:
    session = AnswerSession("r")
    session.handle({"type": "open", "now": T0, "expires_at": EXP})
    with pytest.raises(SessionError):
        session.handle({"now": T0})
    with pytest.raises(SessionError):
        session.handle({"type": "answer", "now": T0, "verdict": "maybe"})
    assert session.state is AnswerState.OPEN
