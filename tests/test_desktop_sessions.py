"""The desktop's sans-IO sessions, on a fake clock: every (state, event) pair of both tables.

No relay, no vault, no sleeping: the events carry their time, the protocol
bytes are made by a real phone (the protocol's phone role), and what comes
out is checked. The table tests start every pair of states and event types
from a path that reaches the state, feed the expected, late, duplicate,
forged and out-of-order events of that type, and check that the session
either refuses (only where the table says so) or lands in a state the row
names, with the invariants of a final state holding. The flows in
``tests/vectors/sessions_unlock.json`` are replayed here too.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from fixtures.protocol import NOW, RELAY
from fixtures.sessions import FLOWS, REACH, SAMPLES, START, T0, UnlockHarness, flow_vectors

from unlatch.desktop.sessions import base
from unlatch.desktop.sessions import pairing as ps
from unlatch.desktop.sessions import unlock as us
from unlatch.protocol import (
    KeyPair,
    ModeNotAllowed,
    PairingState,
    PhonePairing,
    UnlockMode,
    UnlockState,
)

VECTORS = Path(__file__).parent / "vectors" / "sessions_unlock.json"
UNLOCK_PAIRS = [(s, e) for s in us.UnlockStage for e in us.EVENTS]


def kinds(result: dict[str, Any]) -> list[str]:
    return [c["command"] for c in result.get("commands", [])]


# ------------------------------------------------------------------- tables


@pytest.mark.parametrize("session", [us.UnlockSession, ps.PairingSession])
def test_session_table_has_exactly_one_row_per_state_and_event(session: Any) -> None:
    """A pair missing from the table would be neither handled nor refused on purpose."""
    pairs = {(s, e) for s in session.STATES for e in session.EVENTS}
    assert set(session.TABLE) == pairs
    for row in session.TABLE.values():
        assert isinstance(row, base.Step | base.Refuse) and row.why


@pytest.mark.parametrize("session", [us.UnlockSession, ps.PairingSession])
def test_session_remote_events_are_never_refused(session: Any) -> None:
    """A relay may send anything at any time: only local misuse may raise."""
    local = {base.Start, us.Renew, us.VaultUnlocked, us.VaultUnlockFailed}
    local |= {ps.Confirm, ps.Saved, ps.SaveFailed, ps.Reject}  # app checks are never refused
    for (state, event), row in session.TABLE.items():
        if event not in local:
            assert isinstance(row, base.Step), (state, event)


def test_unlock_table_has_a_path_and_samples_for_every_pair() -> None:
    assert set(REACH) == set(us.UnlockStage)
    assert set(SAMPLES) == set(us.EVENTS)


def reach(state: us.UnlockStage) -> UnlockHarness:
    setup, steps = REACH[state]
    harness = UnlockHarness(**setup)
    for step in steps:
        assert "refused" not in harness.feed(step), step
    assert harness.session.state is state
    return harness


@pytest.mark.parametrize(
    ("state", "event"), UNLOCK_PAIRS, ids=[f"{s.value}-{e.NAME}" for s, e in UNLOCK_PAIRS]
)
def test_unlock_every_transition(state: us.UnlockStage, event: type[base.Event]) -> None:
    row = us.UnlockSession.TABLE[(state, event)]
    for sample in SAMPLES[event]:
        harness = reach(state)
        session = harness.session
        result = harness.feed(sample)
        if isinstance(row, base.Refuse):
            assert "refused" in result, sample
            assert row.why in result["refused"]
            assert session.state is state
            continue
        assert "refused" not in result, sample
        assert session.state in row.to, sample
        if session.state.final:
            # every channel closed, every request's secrets dropped, no timer left
            assert session.open_requests() == []
            assert all(r.request.state.is_final for r in session._requests.values())
            if not state.final:
                assert {"command": "schedule_tick", "at": None} in result["commands"]
        if state.final:
            # a late event in a final state changes nothing but closing a late channel
            assert set(kinds(result)) <= {"close_channel"}, sample
        if "unlock_vault" in kinds(result):
            assert harness.shares == [harness.paired.share]  # the phone's share, exactly


# ----------------------------------------------------------- unlock: flows


def test_unlock_renews_15_s_before_expiry_a_bounded_number_of_times() -> None:
    """The default life and renewals, on the fake clock: 4 renewals, then expired."""
    harness = UnlockHarness(renewals=4)
    harness.run(START)
    session = harness.session
    expiry = session.request.expires_at - T0
    assert expiry == 120 and session.next_tick() == T0 + 105
    for n in range(2, 6):
        assert kinds(harness.feed({"event": "tick", "at": expiry - 16})) == ["schedule_tick"]
        result = harness.feed({"event": "tick", "at": expiry - 15})
        assert result["commands"] == [{"command": "create_channel", "request": f"r{n}", "ttl": 120}]
        assert result["state"] == "renewing" and session.state.public == "waiting"
        result = harness.feed({"event": "created", "request": f"r{n}"})
        assert result["state"] == "waiting" and session.generation == n
        # the predecessor is closed just after its own expiry, not before
        assert kinds(harness.feed({"event": "tick", "at": expiry})) == ["schedule_tick"]
        assert harness.feed({"event": "tick", "at": expiry + 1})["commands"][0] == {
            "command": "close_channel",
            "request": f"r{n - 1}",
        }
        expiry = session.request.expires_at - T0
    assert session.renewals_left == 0
    assert session.next_tick() == T0 + expiry + 1  # no renewal any more
    result = harness.feed({"event": "tick", "at": expiry + 1})
    assert result["state"] == "expired"
    assert {"command": "close_channel", "request": "r5"} in result["commands"]


def test_unlock_predecessor_stays_answerable_until_it_expires() -> None:
    harness = UnlockHarness()
    harness.run([*START, {"event": "tick", "at": 105}, {"event": "created", "request": "r2"}])
    assert harness.session.open_requests() == [harness.rid("r1"), harness.rid("r2")]
    result = harness.feed({"event": "reply", "request": "r1", "at": 119})
    assert result["state"] == "unlocking"
    assert harness.session.request.request_id == harness.rid("r1")  # it follows r1 now
    result = harness.feed({"event": "unlocked"})
    closed = [c["request"] for c in result["commands"] if c["command"] == "close_channel"]
    assert sorted(closed) == ["r1", "r2"]

    late = UnlockHarness()
    late.run([*START, {"event": "tick", "at": 105}, {"event": "created", "request": "r2"}])
    late.feed({"event": "tick", "at": 121})  # r1 is over: closed
    assert late.feed({"event": "reply", "request": "r1", "at": 122})["commands"] == []
    assert late.session.state is us.UnlockStage.WAITING


def test_unlock_scan_stops_renewals_and_still_expires() -> None:
    harness = UnlockHarness()
    harness.run([*START, {"event": "seen", "request": "r1", "at": 2}])
    assert harness.session.next_tick() == T0 + 121
    assert kinds(harness.feed({"event": "tick", "at": 105})) == ["schedule_tick"]
    assert harness.feed({"event": "tick", "at": 121})["state"] == "expired"


def test_unlock_duplicate_late_and_out_of_order_messages() -> None:
    harness = UnlockHarness()
    harness.run(START)
    assert kinds(harness.feed({"event": "seen", "at": 2})) == ["show_view", "schedule_tick"]
    assert harness.feed({"event": "seen", "at": 2})["commands"] == []  # duplicate
    assert harness.feed({"event": "seen", "request": "r9", "at": 2})["commands"] == []  # not ours
    assert harness.feed({"event": "created", "request": "r1"})["commands"] == []  # duplicate
    assert harness.feed({"event": "reply", "at": 3})["state"] == "unlocking"
    assert harness.feed({"event": "reply", "at": 3})["commands"] == []  # the answer is in
    assert harness.feed({"event": "cancel"})["state"] == "unlocking"  # the unlock decides
    assert harness.feed({"event": "unlocked"})["state"] == "approved"
    assert harness.feed({"event": "reply", "verdict": "deny", "at": 4})["commands"] == []

    early = UnlockHarness()  # a reply before any seen, a seen after the reply
    early.run([*START, {"event": "reply", "verdict": "deny", "at": 3}])
    assert early.session.state is us.UnlockStage.DENIED
    assert early.feed({"event": "seen", "at": 4})["commands"] == []


@pytest.mark.parametrize("state", [s for s in us.UnlockStage if s is not us.UnlockStage.UNLOCKING])
def test_unlock_cancel_revoke_restart_in_each_state(state: us.UnlockStage) -> None:
    expected = {
        "cancel": (us.UnlockStage.CANCELLED, us.MESSAGES["cancelled"]),
        "revoke": (us.UnlockStage.FAILED, us.REVOKED_MESSAGE),
        "restart": (us.UnlockStage.CANCELLED, us.RESTARTED_MESSAGE),
    }
    for kind, (final, message) in expected.items():
        harness = reach(state)
        opened = set(harness.session.open_requests())
        result = harness.feed({"event": kind})
        if state.final:
            assert result == {"state": state.value, "commands": []}
            continue
        assert harness.session.state is final and harness.session.message == message
        closed = {harness.rid(c["request"]) for c in result["commands"] if "request" in c}
        assert closed == opened


def test_unlock_refusals_say_why() -> None:
    harness = UnlockHarness()
    harness.run([*START, {"event": "seen", "at": 2}])
    with pytest.raises(base.SessionError, match="this unlock request is seen: only a QR nobody"):
        harness.session.handle(us.Renew(T0 + 3))
    with pytest.raises(base.SessionError, match="already started"):
        harness.session.handle(base.Start(T0 + 3))


def test_unlock_failures_and_their_messages() -> None:
    forged = UnlockHarness()
    forged.run([*START, {"event": "reply", "verdict": "forged", "at": 3}])
    assert forged.session.message.startswith("a reply was refused")
    assert forged.session.request.state is UnlockState.FAILED  # the request is burnt

    other = UnlockHarness()
    other.run([*START, {"event": "reply", "verdict": "other_request", "at": 3}])
    assert other.session.message == us.WRONG_REQUEST_MESSAGE

    down = UnlockHarness()
    result = down.run([{"event": "start", "at": 0}, {"event": "create_failed", "request": "r1"}])
    assert result[-1]["state"] == "failed" and down.session.message == "cannot reach the relay"

    gone = UnlockHarness()
    gone.run([*START, {"event": "channel_failed"}])
    assert gone.session.state is us.UnlockStage.FAILED


def test_unlock_number_matching_message_and_no_qr() -> None:
    harness = UnlockHarness(mode="number")
    result = harness.run(START)[-1]
    view = next(c for c in result["commands"] if c["command"] == "show_view")
    assert view["message"] == us.MESSAGES["waiting_number"]
    assert harness.session.request.qr_bytes is None and harness.session.request.number


@pytest.mark.parametrize(
    ("wish", "known", "mode", "message"),
    [
        (False, False, UnlockMode.SCAN, "waiting"),
        (False, True, UnlockMode.SCAN, "waiting"),
        (True, False, UnlockMode.SCAN, "scan_only"),
        (True, True, UnlockMode.NUMBER_MATCH, "waiting_number"),
    ],
)
def test_unlock_number_matching_only_when_asked_and_the_phone_allows_it(
    wish: bool, known: bool, mode: UnlockMode, message: str
) -> None:
    """protocol.md 6.8: the setting is a wish; the phone's last answer decides."""
    harness = UnlockHarness(mode="number" if wish else "scan", phone_allows=known)
    assert harness.session.mode is mode
    harness.run(START)
    assert harness.session.request.params.mode is mode
    assert harness.session.message == us.MESSAGES[message]
    assert (harness.session.request.qr_bytes is None) is (mode is UnlockMode.NUMBER_MATCH)
    renewed = harness.run([{"event": "tick", "at": 105}, {"event": "created", "request": "r2"}])
    assert renewed[-1]["state"] == "waiting" and harness.session.message == us.MESSAGES[message]
    assert harness.session.request.params.mode is mode  # a renewal keeps the mode


@pytest.mark.parametrize(
    ("setup", "verdict", "learnt"),
    [
        ({"phone_allows": True, "desktop_knows": False}, "approve", [True]),
        ({"phone_allows": True, "desktop_knows": False}, "deny", [True]),
        ({"mode": "number", "phone_allows": False, "desktop_knows": True}, "deny", [False]),
        ({"mode": "number"}, "wrong_number", []),
        ({"mode": "number", "desktop_knows": True}, "approve", []),
        ({}, "not_me", []),
        ({"phone_allows": True, "desktop_knows": False}, "garbage", []),
        ({"phone_allows": True, "desktop_knows": False}, "forged", []),
    ],
)
def test_unlock_learns_the_policy_each_authenticated_reply_states(
    setup: dict[str, Any], verdict: str, learnt: list[bool]
) -> None:
    """Every reply that opens states the phone's policy: learnt when it is news, once."""
    harness = UnlockHarness(**setup)
    harness.run(START)
    result = harness.feed({"event": "reply", "verdict": verdict, "at": 3})
    learns = [c for c in result["commands"] if c["command"] == "learn_policy"]
    assert [c["allows_number_matching"] for c in learns] == learnt
    if learnt:
        assert harness.session.allows_number_matching is learnt[0]
        assert kinds(result)[0] == "learn_policy"  # recorded before the vault is unlocked


def test_unlock_mode_refused_is_a_denial_that_says_why() -> None:
    harness = UnlockHarness(mode="number", phone_allows=False, desktop_knows=True)
    harness.run(START)
    assert harness.session.mode is UnlockMode.NUMBER_MATCH  # the edited files asked for it
    phone = harness.phones["r1"]
    with pytest.raises(ModeNotAllowed):  # the phone refuses to approve, whatever the desktop says
        phone.approve(now=NOW + 2, choice=phone._number)
    result = harness.feed({"event": "reply", "verdict": "deny", "at": 3})
    assert harness.session.state is us.UnlockStage.MODE_REFUSED
    assert harness.session.state.public == "denied" and "denied" in us.FINAL_STATES
    assert "mode_refused" not in us.FINAL_STATES
    assert harness.session.message == us.MESSAGES["mode_refused"]
    assert {"command": "learn_policy", "allows_number_matching": False} in result["commands"]
    # The next press, with what was learnt, asks for a QR and says why.
    after = UnlockHarness(mode="number", phone_allows=False, desktop_knows=False)
    after.run(START)
    assert after.session.mode is UnlockMode.SCAN
    assert after.session.message == us.MESSAGES["scan_only"]


def test_unlock_refusal_is_not_me_learns_nothing_and_can_never_unlock() -> None:
    harness = UnlockHarness(phone_allows=True, desktop_knows=False)
    harness.run(START)
    result = harness.feed({"event": "refusal", "at": 3})
    assert harness.session.state is us.UnlockStage.NOT_ME
    assert harness.session.message == us.MESSAGES["not_me"]
    assert "learn_policy" not in kinds(result)  # a refusal states no policy
    assert harness.session.allows_number_matching is False
    # No refusal row may lead to unlocking the vault (in unlocking, one is late: ignored).
    for (state, event), row in us.UnlockSession.TABLE.items():
        if event is us.Refusal and isinstance(row, base.Step):
            assert row.to == (state,) or us.UnlockStage.UNLOCKING not in row.to, state
    # Reply bytes fed as a refusal are not opened as a reply: the request fails.
    fed = UnlockHarness()
    fed.run(START)
    result = fed.feed({"event": "refusal", "verdict": "reply", "at": 3})
    assert fed.session.state is us.UnlockStage.FAILED
    assert fed.session.message == us.NOT_A_REFUSAL_MESSAGE
    assert fed.shares == []


def test_unlock_answer_event_tells_refusals_from_replies() -> None:
    harness = UnlockHarness()
    harness.run(START)
    rid = harness.rid("r1")
    refusal = harness.refusers["r1"].refuse(now=NOW + 2)
    reply = harness.phones["r1"].deny(now=NOW + 2)
    assert isinstance(us.answer_event(rid, refusal, NOW), us.Refusal)
    assert isinstance(us.answer_event(rid, reply, NOW), us.Reply)
    assert isinstance(us.answer_event(rid, b"garbage", NOW), us.Reply)  # refused there


# ---------------------------------------------------------------- vectors


def test_unlock_vectors_match_a_fresh_run() -> None:
    """``tests/vectors/sessions_unlock.json`` is what the session does today.

    Regenerate with ``python tests/vectors/generate_sessions.py`` after a
    deliberate change (and say why in the commit).
    """
    assert json.loads(VECTORS.read_text("utf-8"))["flows"] == flow_vectors()


@pytest.mark.parametrize("index", range(len(FLOWS)), ids=[f["name"] for f in FLOWS])
def test_unlock_vectors_replay(index: int) -> None:
    """Replay one flow of the file through the session, step by step."""
    flow = json.loads(VECTORS.read_text("utf-8"))["flows"][index]
    harness = UnlockHarness(**flow["setup"])
    for case in flow["cases"]:
        assert harness.session.state.value == case["state"]
        expected = {k: v for k, v in case.items() if k not in ("state", "event", "next")}
        result = harness.feed(case["event"])
        assert result.pop("state") == case["next"]
        assert result == expected


# ---------------------------------------------------------------- pairing


APP_URL = "https://app.test/app/"


class PairingHarness:
    def __init__(self, ttl: int = 300, app_url: str = APP_URL) -> None:
        self.phone_identity = KeyPair.generate(os.urandom)
        self.session = ps.PairingSession(
            KeyPair.generate(os.urandom), RELAY, ttl=ttl, app_url=app_url
        )
        self.phone: PhonePairing | None = None

    def event(self, kind: str, at: float = 0) -> base.Event:
        now = NOW + at
        if kind == "hello":
            dp = self.session.desktop
            if dp is None or dp.state is not PairingState.WAITING_HELLO:
                return ps.Hello(b"UL\x01\x10late", "phone-1", now)
            made = min(int(now), dp.expires_at)  # a late hello was made in time, then delayed
            self.phone = PhonePairing(
                dp.offer_bytes, self.phone_identity, "Phone", "phone-1", now=made
            )
            return ps.Hello(self.phone.hello_bytes, "phone-1", now)
        dp = self.session.desktop
        ch = dp.channel_id if dp is not None else bytes(16)
        simple: dict[str, base.Event] = {
            "start": base.Start(now),
            "app_ok": ps.AppChecked(now),
            "app_bad": ps.AppCheckFailed(f"refusing to show a pairing link to {APP_URL}: …"),
            "tick": base.Tick(now),
            "created": ps.ChannelCreated(ch),
            "create_failed": ps.ChannelCreateFailed(ch, "cannot reach the relay"),
            "garbage_hello": ps.Hello(b"UL\x01\x10garbage", "phone-1", now),
            "expired": ps.ChannelExpired(ch),
            "closed": ps.ChannelClosed(ch),
            "failed": ps.ChannelFailed(ch, "cannot reach the relay"),
            "confirm": ps.Confirm("My phone", "Desktop", "desk-1", now),
            "saved": ps.Saved("My phone"),
            "save_failed": ps.SaveFailed("the vault is locked"),
            "reject": ps.Reject(),
            "cancel": base.Cancel(),
            "restart": base.Restart(),
        }
        return simple[kind]

    def feed(self, kind: str, at: float = 0) -> list[base.Command]:
        return self.session.handle(self.event(kind, at))


P_START = [("start", 0), ("app_ok", 0), ("created", 0)]
P_REACH: dict[ps.PairingStage, list[tuple[str, float]]] = {
    ps.PairingStage.NEW: [],
    ps.PairingStage.CHECKING: P_START[:1],
    ps.PairingStage.STARTING: P_START[:2],
    ps.PairingStage.WAITING: P_START,
    ps.PairingStage.CONFIRM: [*P_START, ("hello", 1)],
    ps.PairingStage.SAVING: [*P_START, ("hello", 1), ("confirm", 2)],
    ps.PairingStage.DONE: [*P_START, ("hello", 1), ("confirm", 2), ("saved", 3)],
    ps.PairingStage.REJECTED: [*P_START, ("reject", 1)],
    ps.PairingStage.EXPIRED: [*P_START, ("tick", 301)],
    ps.PairingStage.FAILED: [*P_START, ("garbage_hello", 1)],
}
P_SAMPLES: dict[type[base.Event], list[tuple[str, float]]] = {
    base.Start: [("start", 1)],
    ps.AppChecked: [("app_ok", 1)],
    ps.AppCheckFailed: [("app_bad", 1)],
    base.Tick: [("tick", 1), ("tick", 301)],
    ps.ChannelCreated: [("created", 0)],
    ps.ChannelCreateFailed: [("create_failed", 0)],
    ps.Hello: [("hello", 1), ("garbage_hello", 1), ("hello", 400)],
    ps.ChannelExpired: [("expired", 0)],
    ps.ChannelClosed: [("closed", 0)],
    ps.ChannelFailed: [("failed", 0)],
    ps.Confirm: [("confirm", 2), ("confirm", 400)],
    ps.Saved: [("saved", 0)],
    ps.SaveFailed: [("save_failed", 0)],
    ps.Reject: [("reject", 0)],
    base.Cancel: [("cancel", 0)],
    base.Restart: [("restart", 0)],
}
PAIRING_PAIRS = [(s, e) for s in ps.PairingStage for e in ps.EVENTS]


def p_reach(state: ps.PairingStage) -> PairingHarness:
    harness = PairingHarness()
    for kind, at in P_REACH[state]:
        harness.feed(kind, at)
    assert harness.session.state is state
    return harness


@pytest.mark.parametrize(
    ("state", "event"), PAIRING_PAIRS, ids=[f"{s.value}-{e.NAME}" for s, e in PAIRING_PAIRS]
)
def test_pairing_every_transition(state: ps.PairingStage, event: type[base.Event]) -> None:
    assert set(P_REACH) == set(ps.PairingStage) and set(P_SAMPLES) == set(ps.EVENTS)
    row = ps.PairingSession.TABLE[(state, event)]
    for kind, at in P_SAMPLES[event]:
        harness = p_reach(state)
        session = harness.session
        if isinstance(row, base.Refuse):
            with pytest.raises(base.SessionError, match=row.why):
                harness.feed(kind, at)
            assert session.state is state
            continue
        commands = harness.feed(kind, at)
        assert session.state in row.to, (kind, at)
        if session.state.final and session.desktop is not None:
            # S and the offer are forgotten on every way out
            assert session.desktop.state in (PairingState.DONE, PairingState.FAILED)
            assert session.desktop.offer.pairing_secret == b""
        if state.final:
            assert all(isinstance(c, ps.CloseChannel) for c in commands), (kind, commands)


def test_pairing_flow_commands() -> None:
    harness = PairingHarness()
    assert harness.feed("start") == [ps.CheckApp(APP_URL)]
    assert isinstance(harness.feed("app_ok")[0], ps.CreateChannel)
    follow, view, tick = harness.feed("created")
    assert isinstance(follow, ps.FollowChannel) and view == ps.ShowView("waiting", "")
    assert tick == base.ScheduleTick(NOW + 301)
    harness.feed("hello", 1)
    assert harness.session.pending is not None and harness.phone is not None
    assert harness.session.pending.verification_code == harness.phone.verification_code
    assert harness.session.state.public == "confirm"
    save, stop = harness.feed("confirm", 2)
    assert isinstance(save, ps.SavePairing) and save.label == "My phone"
    assert stop == base.ScheduleTick(None)
    assert harness.session.state.public == "confirm"  # the codes stay while saving
    record = harness.phone.receive_accept(save.accept, now=NOW + 3)
    assert record.pairing_id == save.record.pairing_id
    assert harness.feed("cancel") == []  # the save decides
    assert harness.feed("saved")[0] == ps.ShowView("done", "My phone is paired")


def test_pairing_app_check_comes_before_any_offer_or_channel() -> None:
    """No offer (so no secret S), no channel, no link until the app at app_url is checked."""
    refused = PairingHarness()
    assert refused.feed("start") == [ps.CheckApp(APP_URL)]
    assert refused.session.desktop is None and refused.session.state.public == "waiting"
    commands = refused.feed("app_bad")
    assert refused.session.state is ps.PairingStage.FAILED
    assert refused.session.desktop is None
    assert not any(isinstance(c, ps.CreateChannel | ps.CloseChannel) for c in commands)
    assert refused.session.message.startswith(f"refusing to show a pairing link to {APP_URL}")

    cancelled = PairingHarness()  # cancelled while the check runs: its late result makes nothing
    cancelled.feed("start")
    cancelled.feed("cancel")
    assert cancelled.feed("app_ok") == [] and cancelled.session.desktop is None

    default = ps.PairingSession(KeyPair.generate(os.urandom), RELAY, ttl=300)
    assert default.handle(base.Start(NOW)) == [ps.CheckApp(RELAY + "/app/")]


def test_pairing_hello_from_another_device_fails() -> None:
    harness = p_reach(ps.PairingStage.WAITING)
    event = harness.event("hello", 1)
    assert isinstance(event, ps.Hello)
    commands = harness.session.handle(ps.Hello(event.data, "someone-else", event.now))
    assert harness.session.state is ps.PairingStage.FAILED
    assert harness.session.message == ps.SENDER_MESSAGE
    assert isinstance(commands[-1], ps.CloseChannel)


def test_pairing_expires_in_confirm_and_refuses_a_late_confirm() -> None:
    harness = p_reach(ps.PairingStage.CONFIRM)
    harness.feed("tick", 301)
    assert harness.session.state is ps.PairingStage.EXPIRED
    assert harness.session.message == ps.EXPIRED_MESSAGE
    with pytest.raises(base.SessionError, match="this pairing is expired: nothing to confirm"):
        harness.feed("confirm", 302)


def test_docs_state_tables_are_generated_from_the_tables() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "desktop.md").read_text("utf-8")
    assert us.UnlockSession.table_markdown() in docs
    assert ps.PairingSession.table_markdown() in docs
