"""What the relay says on its bus and to its listeners: topics, frames, JSON views.

Shared by the service (:mod:`unlatch.relay.service`) and the WebSocket routes
(:mod:`unlatch.relay.ws`), so a frame's shape is written once.
"""

from __future__ import annotations

from typing import Any

from unlatch.relay.codec import b64e
from unlatch.relay.models import (
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
