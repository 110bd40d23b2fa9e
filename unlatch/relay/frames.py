"""What the relay says on its bus and to its listeners: topics, frames, JSON views.

Shared by the service (:mod:`unlatch.relay.service`) and the WebSocket routes
(:mod:`unlatch.relay.ws`), so a frame's shape is written once.
"""

from __future__ import annotations

from typing import Any

from unlatch.relay.codec import CodecError, b64d, b64e
from unlatch.relay.models import (
    CHANNEL_OUTCOMES,
    Channel,
    Message,
)


def channel_topic(channel_id: bytes) -> str:
    return "channel:" + b64e(channel_id)


def device_topic(device_id: str) -> str:
    return "device:" + device_id


def request_frame(
    request_id: bytes, state: str, *, acknowledged: bool = False, replaced_by: bytes | None = None
) -> dict[str, Any]:
    """The listener frame (and state answer) telling a phone where a request stands."""
    frame: dict[str, Any] = {"type": "request", "request_id": b64e(request_id), "state": state}
    if state == "answered":
        frame["acknowledged"] = acknowledged
    if replaced_by is not None:
        frame["replaced_by"] = b64e(replaced_by)
    return frame


def message_json(msg: Message) -> dict[str, Any]:
    """A message as delivered to a waiting party."""
    return {
        "seq": msg.seq,
        "type": msg.type,
        "data": b64e(msg.data),
        "sender": msg.sender,
        "at": msg.created_at,
    }


def closed_event(outcome: str) -> dict[str, Any]:
    """The bus event of a channel just closed, with its outcome.

    Closing deletes the channel's messages in the same transaction, so a
    waiter's store read after a close finds nothing to send but the outcome:
    with the outcome in the event it says ``closed`` without that read (one
    store read less per unlock). An ``ended`` event without it (an expiry, or
    a node from before) still makes waiters read the store.
    """
    return {"event": "ended", "state": "closed", "outcome": outcome}


def outcome_of_event(event: dict[str, Any]) -> str | None:
    """The outcome a :func:`closed_event` carries, or None (another event, or none said)."""
    if event.get("event") != "ended" or event.get("state") != "closed":
        return None
    outcome = event.get("outcome")
    return outcome if isinstance(outcome, str) and outcome in CHANNEL_OUTCOMES else None


MAX_EVENT_MESSAGE = 16 * 1024  # bytes of a message carried on the bus (the largest is 4 KiB)


def message_event(msg: Message) -> dict[str, Any]:
    """The bus event announcing a stored message, carrying it (the opaque bytes, as stored).

    A waiter next in line (``seq`` follows what it sent) forwards it without
    reading the store back: one store read less per delivery, and no wait for
    one on the path from a phone's reply to the desktop (issue 15). A waiter
    that is not next in line, or an event without the message, reads the store
    as before: the store stays the truth.
    """
    return {
        "event": "message",
        "seq": msg.seq,
        "message": {
            "type": msg.type,
            "sender": msg.sender,
            "data": b64e(msg.data),
            "at": msg.created_at,
        },
    }


def message_of_event(channel_id: bytes, event: dict[str, Any]) -> Message | None:
    """The message a ``message`` event carries, or None (none carried, or malformed)."""
    body, seq = event.get("message"), event.get("seq")
    if not isinstance(body, dict) or isinstance(seq, bool) or not isinstance(seq, int):
        return None
    kind, sender, data, at = body.get("type"), body.get("sender"), body.get("data"), body.get("at")
    if not (isinstance(kind, str) and isinstance(sender, str) and isinstance(data, str)):
        return None
    if isinstance(at, bool) or not isinstance(at, (int, float)):
        return None
    try:
        raw = b64d(data, max_len=MAX_EVENT_MESSAGE)
    except CodecError:
        return None
    return Message(channel_id, seq, kind, sender, raw, float(at))


def notification_json(ch: Channel) -> dict[str, Any]:
    """The unlock notification: the desktop's opaque bytes plus what the relay knows."""
    return {
        "v": 1,
        "type": "unlock",
        "request_id": b64e(ch.channel_id),
        "routing_id": b64e(ch.routing_id or b""),
        "push": b64e(ch.push or b""),
        "created_at": ch.created_at,
        "expires_at": ch.expires_at,
        "requester": ch.meta.get("requester", {}),
    }


PLAIN_PUSH_FIELDS = ("v", "type", "request_id", "push")


def push_view(note: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    """What a push service may carry of a notification.

    An encrypted target (Web Push, UnifiedPush in webpush mode; RFC 8291)
    gets the whole notification: only the phone can read it. A plain
    UnifiedPush distributor reads what it forwards, so it gets only what the
    phone needs to act and the protocol already makes opaque: the desktop's
    sealed ``push`` bytes (which carry the request's own id, mode and expiry,
    readable only by the paired phone) and the random ``request_id`` to fetch
    the rest with. No ``routing_id`` (it would let the distributor link every
    request of one pairing), no requester address or user agent, no
    timestamps: the phone reads those over its own authenticated connection
    (``GET /v1/unlock/{id}``).
    """
    if "keys" in target:  # stored as PushTarget.to_json(): keys only when encrypted
        return note
    return {k: note[k] for k in PLAIN_PUSH_FIELDS if k in note}
