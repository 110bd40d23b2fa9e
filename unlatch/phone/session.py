"""AnswerSession: one unlock request's life on the phone, as a sans-IO state machine.

The phone app (``web/phone/src/lib/session.js``, the same design line for
line) and the Python phone client (:mod:`unlatch.phone.client`) both follow a
request with it, so they show the same thing at the same moment. It never
reads a clock, sleeps or touches the network: a driver feeds it events with
``now`` and carries out the commands it returns. Shared vectors
(``tests/vectors/sessions_answer.json``) are replayed by the Python and the
node tests.

Events: ``notice`` (a push or listener notification: a card), ``open`` (a
scanned QR or a tapped card: the approve screen), ``answer`` (the user's
verdict), ``reply`` (what posting the reply gave: ``delivered``,
``queued``, ``undelivered``, ``closed``, ``expired``, ``answered``, ``failed``),
``retry``, ``channel`` (the relay's word on the request: ``renewed``,
``answered``, ``cancelled``, ``expired``, ``closed``), ``revoke`` (the
pairing was removed), ``restart`` (the app started again) and ``tick``.

Commands: ``show`` (a view: screen, title, message, kind), ``post_reply``,
``forget`` (drop the card) and ``query`` (ask the relay where the request
stands). Every message says what to do next; ``{desktop}`` is the desktop's
name, filled in by the surface.

The rule this machine exists for: "Approved" is shown only after the relay
said a desktop still waiting took the reply (``delivered``), or the desktop
acknowledged it later (``answered`` with ``acknowledged``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class AnswerState(StrEnum):
    NEW = "new"  # nothing known yet
    LISTED = "listed"  # a card on the home screen
    OPEN = "open"  # the approve screen, waiting for the user
    SENDING = "sending"  # the reply is being posted
    RETRY = "retry"  # posting failed (network, relay trouble): "Send again"
    UNDELIVERED = "undelivered"  # posted, but no desktop was waiting for it
    DONE = "done"  # a waiting desktop took the answer (final)
    ENDED = "ended"  # the request ended unanswered, or the pairing went (final)
    FORGOTTEN = "forgotten"  # a card that ended before it was opened: dropped (final)


FINAL = frozenset({AnswerState.DONE, AnswerState.ENDED, AnswerState.FORGOTTEN})

VERDICTS = ("approve", "deny", "not_me", "wrong_number")

# (title, message, kind) for each outcome; "{desktop}" is filled in by the surface.
TEXTS: dict[str, tuple[str, str, str]] = {
    "done.approve": (
        "Approved",
        "{desktop} received your approval and is unlocking. Nothing more to do.",
        "ok",
    ),
    "done.deny": (
        "Denied",
        "{desktop} was told no and nothing was released. Nothing more to do.",
        "neutral",
    ),
    "done.not_me": (
        "{desktop} is blocked",
        "The request was refused and {desktop} cannot send new requests until you unblock"
        " it under Desktops.",
        "bad",
    ),
    "done.wrong_number": (
        "Wrong number",
        "That was not the number on the desktop, so nothing was released. If it was you,"
        " start a new unlock on the desktop.",
        "bad",
    ),
    "queued": (
        "Sent, not picked up yet",
        "{desktop} has not taken your answer yet (it may be reconnecting). The relay keeps"
        " it until the request expires and {desktop} gets it when it is back; this screen"
        " says so then. If {desktop} does not unlock, request again on the desktop.",
        "warning",
    ),
    "undelivered": (
        "Not delivered",
        "{desktop} is no longer waiting for this answer (it cancelled or restarted):"
        " request again on the desktop, then answer the new request.",
        "warning",
    ),
    "retry": (
        "Not sent yet",
        'The relay could not be reached. Your answer is kept: "Send again" sends exactly'
        " the same answer.",
        "warning",
    ),
    "ended.cancelled": (
        "Cancelled on the desktop",
        "{desktop} cancelled this request; nothing was sent. To unlock, start a new"
        " request on the desktop.",
        "warning",
    ),
    "ended.renewed": (
        "A new code is on the desktop",
        "{desktop} replaced this request with a new QR code; nothing was sent. Scan the"
        " code the desktop shows now.",
        "warning",
    ),
    "ended.expired": (
        "Expired",
        "This request timed out before it was answered. Start a new unlock on the desktop.",
        "warning",
    ),
    "ended.closed": (
        "The desktop stopped waiting",
        "{desktop} no longer waits for this request; nothing was sent. Request again on"
        " the desktop.",
        "warning",
    ),
    "ended.answered": (
        "Already answered",
        "This request was already answered on this phone. Nothing more to do; if the"
        " desktop did not unlock, start a new unlock there.",
        "neutral",
    ),
    "ended.revoked": (
        "Desktop removed",
        "{desktop} removed this phone, so it can no longer unlock it. Forget it under"
        " Desktops, or pair again from the desktop.",
        "bad",
    ),
}

ENDINGS = ("cancelled", "renewed", "expired", "closed", "answered", "revoked")


def view_text(view: dict[str, Any] | None, desktop: str) -> str:
    """A view as one line for a terminal ("Title: message"), ``desktop`` filled in."""
    if not view or "title" not in view:
        return ""
    return f"{view['title']}: {view['message']}".replace("{desktop}", desktop)


def ended_text(state: str, desktop: str) -> str:
    """What the phone says when the relay reports a request ended (``state``)."""
    title, message, _ = TEXTS.get(f"ended.{state}", TEXTS["ended.closed"])
    return f"{title}: {message}".replace("{desktop}", desktop)


class SessionError(ValueError):
    """An event the session cannot take (malformed, or a verdict it does not know)."""


@dataclass
class AnswerSession:
    """One request on the phone; feed :meth:`handle` events, carry out its commands."""

    request_id: str
    expires_at: float = 0.0
    state: AnswerState = AnswerState.NEW
    verdict: str | None = None
    ending: str | None = None
    view: dict[str, Any] | None = field(default=None, repr=False)

    # -------------------------------------------------------------- driving
    def handle(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Apply one event; returns the commands (possibly none)."""
        kind = event.get("type")
        if not isinstance(kind, str):
            raise SessionError("an event needs a type")
        step = TABLE.get((self.state, kind))
        if step is None:
            return []  # nothing to do in this state (late, duplicate or out of order)
        return step(self, event)

    # -------------------------------------------------------------- views
    def _show(self, screen: str, text: str | None = None) -> dict[str, Any]:
        view: dict[str, Any] = {"screen": screen}
        if text is not None:
            title, message, kind = TEXTS[text]
            view.update(title=title, message=message, kind=kind, text=text)
        self.view = view
        return {"type": "show", "view": view}

    def _end(self, why: str) -> list[dict[str, Any]]:
        self.state, self.ending = AnswerState.ENDED, why
        return [self._show("ended", f"ended.{why}")]

    def _forget(self, why: str) -> list[dict[str, Any]]:
        self.state, self.ending = AnswerState.FORGOTTEN, why
        self.view = None
        return [{"type": "forget"}]

    def _done(self) -> list[dict[str, Any]]:
        self.state = AnswerState.DONE
        return [self._show("result", f"done.{self.verdict}")]

    # -------------------------------------------------------------- steps
    def _notice(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.expires_at = float(event.get("expires_at", self.expires_at))
        if event["now"] >= self.expires_at:
            return self._forget("expired")
        self.state = AnswerState.LISTED
        return [self._show("card")]

    def _open(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.expires_at = float(event.get("expires_at", self.expires_at))
        if event["now"] >= self.expires_at:
            return self._end("expired")
        self.state = AnswerState.OPEN
        return [self._show("approve")]

    def _answer(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        verdict = event.get("verdict")
        if verdict not in VERDICTS:
            raise SessionError(f"unknown verdict {verdict!r}")
        if self.state is AnswerState.LISTED and verdict != "not_me":
            return []  # from a card only "I did not ask for this" (a scan-mode push has no QR)
        if event["now"] >= self.expires_at:
            return self._end("expired")
        self.verdict, self.state = verdict, AnswerState.SENDING
        return [self._show("sending"), {"type": "post_reply"}]

    def _retry(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        self.state = AnswerState.SENDING
        return [self._show("sending"), {"type": "post_reply"}]

    def _reply(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        outcome = event.get("outcome")
        if outcome == "delivered":
            return self._done()
        if outcome in ("undelivered", "queued"):  # queued: the request is still open
            self.state = AnswerState.UNDELIVERED
            return [self._show("result", outcome)]
        if outcome in ("closed", "expired", "answered"):
            return self._end(outcome)
        self.state = AnswerState.RETRY  # "failed": the same bytes may be sent again
        return [self._show("retry", "retry")]

    def _channel_before_open(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        state = event.get("state")
        return self._forget(state) if state in ENDINGS else []

    def _channel_open(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        # A renewed request stays answerable: the user scanned it (the desktop renews only
        # QR codes nobody scanned, and follows an older one that gets answered). When the
        # desktop's attempt ends, the relay closes it too, and that ends it here.
        state = event.get("state")
        return self._end(state) if state in ENDINGS and state != "renewed" else []

    def _channel_retry(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        # a renewed request stays answerable (its channel is open); the others are over
        state = event.get("state")
        if state in ("cancelled", "expired", "closed"):
            return self._end(state)
        return []

    def _channel_undelivered(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        # a desktop that came back and read the reply acknowledges it: now it is true
        if event.get("state") == "answered" and event.get("acknowledged"):
            return self._done()
        return []

    def _revoke_listed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return self._forget("revoked")

    def _revoke(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return self._end("revoked")

    def _tick_listed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return self._forget("expired") if event["now"] >= self.expires_at else []

    def _tick_open(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return self._end("expired") if event["now"] >= self.expires_at else []

    def _restart(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"type": "query"}]


Step = Callable[[AnswerSession, dict[str, Any]], list[dict[str, Any]]]
S = AnswerState
A = AnswerSession

# The one transition table: (state, event type) -> step. A pair not listed is ignored.
TABLE: dict[tuple[AnswerState, str], Step] = {
    (S.NEW, "notice"): A._notice,
    (S.NEW, "open"): A._open,
    (S.NEW, "channel"): A._channel_before_open,
    (S.LISTED, "notice"): lambda s, e: [],  # a duplicate (push and listener both told)
    (S.LISTED, "open"): A._open,
    (S.LISTED, "answer"): A._answer,
    (S.LISTED, "channel"): A._channel_before_open,
    (S.LISTED, "revoke"): A._revoke_listed,
    (S.LISTED, "tick"): A._tick_listed,
    (S.LISTED, "restart"): A._restart,
    (S.OPEN, "answer"): A._answer,
    (S.OPEN, "channel"): A._channel_open,
    (S.OPEN, "revoke"): A._revoke,
    (S.OPEN, "tick"): A._tick_open,
    (S.OPEN, "restart"): A._restart,
    (S.SENDING, "reply"): A._reply,
    (S.SENDING, "revoke"): A._revoke,
    (S.RETRY, "retry"): A._retry,
    (S.RETRY, "channel"): A._channel_retry,
    (S.RETRY, "revoke"): A._revoke,
    (S.RETRY, "tick"): A._tick_open,
    (S.RETRY, "restart"): A._restart,
    (S.UNDELIVERED, "channel"): A._channel_undelivered,
    (S.UNDELIVERED, "restart"): A._restart,
}
