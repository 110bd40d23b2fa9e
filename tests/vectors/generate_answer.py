"""Write sessions_answer.json: the phone's AnswerSession flows, replayed by Python and node.

Run from the repository root: ``python tests/vectors/generate_answer.py``.
Each case is a list of steps (an event with ``now``) and, after each, the
session's state and the commands it returned. The table's rows are listed
too, so a row added in one language and not the other fails both tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unlatch.phone.session import TABLE, AnswerSession

OUT = Path(__file__).with_name("sessions_answer.json")
T0 = 1_800_000_000
EXP = T0 + 120

CASES: dict[str, list[dict[str, Any]]] = {
    "scan, approve, delivered": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "answer", "now": T0 + 5, "verdict": "approve"},
        {"type": "reply", "now": T0 + 6, "outcome": "delivered"},
    ],
    "desktop restarted: approve is not delivered, never 'Approved'": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "answer", "now": T0 + 5, "verdict": "approve"},
        {"type": "reply", "now": T0 + 10, "outcome": "undelivered"},
        {"type": "channel", "now": T0 + 11, "state": "answered", "acknowledged": False},
    ],
    "queued while the desktop reconnects, then it takes the answer": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "answer", "now": T0 + 5, "verdict": "approve"},
        {"type": "reply", "now": T0 + 10, "outcome": "queued"},
        {"type": "channel", "now": T0 + 20, "state": "answered", "acknowledged": True},
    ],
    "undelivered, then the desktop came back and acknowledged": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "answer", "now": T0 + 5, "verdict": "approve"},
        {"type": "reply", "now": T0 + 10, "outcome": "undelivered"},
        {"type": "channel", "now": T0 + 20, "state": "answered", "acknowledged": True},
    ],
    "card cancelled on the desktop is forgotten": [
        {"type": "notice", "now": T0, "expires_at": EXP},
        {"type": "notice", "now": T0 + 1, "expires_at": EXP},
        {"type": "channel", "now": T0 + 2, "state": "cancelled"},
        {"type": "channel", "now": T0 + 3, "state": "expired"},
    ],
    "card renewed by a newer request is forgotten": [
        {"type": "notice", "now": T0, "expires_at": EXP},
        {"type": "channel", "now": T0 + 100, "state": "renewed"},
    ],
    "approve screen: the desktop cancelled": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "channel", "now": T0 + 4, "state": "cancelled"},
        {"type": "answer", "now": T0 + 5, "verdict": "approve"},
    ],
    "approve screen: a renewed request stays answerable until the attempt ends": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "channel", "now": T0 + 4, "state": "renewed"},
        {"type": "channel", "now": T0 + 9, "state": "closed"},
    ],
    "approve screen: answered in another copy of the app": [
        {"type": "notice", "now": T0, "expires_at": EXP},
        {"type": "open", "now": T0 + 1, "expires_at": EXP},
        {"type": "channel", "now": T0 + 2, "state": "answered", "acknowledged": False},
    ],
    "expiry on the fake clock": [
        {"type": "notice", "now": T0, "expires_at": EXP},
        {"type": "tick", "now": EXP - 1},
        {"type": "tick", "now": EXP},
    ],
    "approve screen expires": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "tick", "now": EXP},
        {"type": "answer", "now": EXP + 1, "verdict": "approve"},
    ],
    "a stale QR scanned after its expiry": [
        {"type": "open", "now": EXP + 30, "expires_at": EXP},
    ],
    "revoked while the card is listed": [
        {"type": "notice", "now": T0, "expires_at": EXP},
        {"type": "revoke", "now": T0 + 3},
    ],
    "revoked on the approve screen": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "revoke", "now": T0 + 3},
        {"type": "answer", "now": T0 + 4, "verdict": "approve"},
    ],
    "deny, the desktop already closed": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "answer", "now": T0 + 5, "verdict": "deny"},
        {"type": "reply", "now": T0 + 6, "outcome": "closed"},
    ],
    "network failure, send again, delivered": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "answer", "now": T0 + 5, "verdict": "deny"},
        {"type": "reply", "now": T0 + 6, "outcome": "failed"},
        {"type": "channel", "now": T0 + 7, "state": "renewed"},
        {"type": "retry", "now": T0 + 8},
        {"type": "reply", "now": T0 + 9, "outcome": "delivered"},
    ],
    "failed, then cancelled before the retry": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "answer", "now": T0 + 5, "verdict": "approve"},
        {"type": "reply", "now": T0 + 6, "outcome": "failed"},
        {"type": "channel", "now": T0 + 7, "state": "cancelled"},
        {"type": "retry", "now": T0 + 8},
    ],
    "refused from the card (I did not ask for this)": [
        {"type": "notice", "now": T0, "expires_at": EXP},
        {"type": "answer", "now": T0 + 1, "verdict": "approve"},
        {"type": "answer", "now": T0 + 2, "verdict": "not_me"},
        {"type": "reply", "now": T0 + 3, "outcome": "delivered"},
    ],
    "number matching: wrong number": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "answer", "now": T0 + 5, "verdict": "wrong_number"},
        {"type": "reply", "now": T0 + 6, "outcome": "delivered"},
    ],
    "app restart asks the relay, which says expired": [
        {"type": "notice", "now": T0, "expires_at": EXP},
        {"type": "restart", "now": T0 + 50},
        {"type": "channel", "now": T0 + 51, "state": "expired"},
    ],
    "late and duplicate messages after the end change nothing": [
        {"type": "open", "now": T0, "expires_at": EXP},
        {"type": "answer", "now": T0 + 5, "verdict": "approve"},
        {"type": "reply", "now": T0 + 6, "outcome": "delivered"},
        {"type": "reply", "now": T0 + 7, "outcome": "undelivered"},
        {"type": "channel", "now": T0 + 8, "state": "cancelled"},
        {"type": "revoke", "now": T0 + 9},
        {"type": "tick", "now": EXP + 5},
    ],
}


def run(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    session = AnswerSession("request")
    steps = []
    for event in events:
        commands = session.handle(event)
        steps.append({"event": event, "state": session.state.value, "commands": commands})
    return steps


def main() -> None:
    vectors = {
        "description": "AnswerSession: unlatch/phone/session.py, web/phone/src/lib/session.js",
        "table": sorted([state.value, event] for state, event in TABLE),
        "cases": [{"name": name, "steps": run(events)} for name, events in CASES.items()],
    }
    OUT.write_text(json.dumps(vectors, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
