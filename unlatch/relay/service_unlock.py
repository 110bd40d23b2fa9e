"""Unlock requests: creating one (and its push), the phone's view, replies and delivery."""

from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

from unlatch.relay.apierror import ApiError, forbidden, unknown_channel
from unlatch.relay.codec import b64e
from unlatch.relay.frames import (
    channel_topic,
    device_topic,
    notification_json,
    push_view,
    request_frame,
)
from unlatch.relay.logs import log, short
from unlatch.relay.models import (
    REQUEST_STATES,
    Channel,
    Device,
    Message,
)
from unlatch.relay.service_base import (
    MAX_USER_AGENT,
    WAIT_RECHECK,
)
from unlatch.relay.service_channels import ChannelOps
from unlatch.relay.store import AddResult
from unlatch.relay.validate import NewUnlock


class Created(NamedTuple):
    """A new unlock channel, and the relay's answer to its desktop (201 body, or ``ready``'s
    ``created``)."""

    channel: Channel
    answer: dict[str, Any]


class UnlockOps(ChannelOps):
    """Unlock requests: creating one (and its push), the phone's view, replies and delivery."""

    async def create_unlock(
        self,
        device: Device,
        request_id: bytes,
        fields: NewUnlock,
        requester_ip: str,
        user_agent: str,
    ) -> Created:
        """Create the unlock channel and wake the phone (``POST /v1/unlock``, or an unlock
        socket's ``create``): the channel, and the answer the desktop is given."""
        routing_id, push, ttl = fields.routing_id, fields.push, fields.ttl
        if device.kind != "desktop":
            raise forbidden("only a desktop creates unlock requests")
        # One read for the checks below and the phone's push target (read before the
        # channel exists rather than after: either way, what the phone had registered).
        context = await self.store.unlock_context(routing_id, device.device_id, request_id)
        pairing = context.pairing
        if pairing is None or not pairing.linked:
            raise ApiError("not_paired", "this routing id is not a linked pairing of this desktop")
        if pairing.blocked:
            raise ApiError(
                "blocked",
                'the phone blocked requests from this desktop ("I did not ask for this");'
                " it must re-confirm on the phone",
            )
        phone_id = pairing.peer_device_id
        if context.request_taken:  # before the rate limits: a client's retry costs no token
            raise ApiError(
                "channel_exists",
                "a channel with this id already exists; use a fresh random id",
            )
        await self.rate_check(
            [
                ("pairing", "unlock_pairing", b64e(routing_id)),
                ("device", "unlock_device", device.device_id),
                ("ip", "unlock_ip", requester_ip),
                ("push", "push", phone_id),
            ]
        )
        life = min(ttl or self.config.unlock_ttl, self.config.unlock_ttl)
        now = time.time()
        meta = {"requester": {"address": requester_ip, "user_agent": user_agent[:MAX_USER_AGENT]}}
        ch = Channel(
            request_id,
            "unlock",
            device.device_id,
            phone_id,
            now,
            now + life,
            routing_id=routing_id,
            push=push,
            meta=meta,
        )
        result, previous = await self.store.create_unlock(ch, self.config.max_pending_unlock)
        self._check_created(result, "unlock")
        self.metrics.child(self.metrics.channels_created, "unlock").inc()
        # The desktop's previous request of this pairing is now renewed by this one. Only
        # that one is announced: older ones were announced when it was made (announcing
        # every earlier request again cost frames quadratic in a desktop's requests).
        if previous is not None:
            frame = request_frame(previous, "renewed", replaced_by=request_id)
            await self.tell_phone(phone_id, frame)
        note = notification_json(ch)
        listeners = await self.bus.publish(
            device_topic(phone_id), {"event": "unlock", "notification": note}
        )
        self.metrics.notifications.inc(listeners)
        pushed = "none"
        phone = context.phone
        if self.push is not None and phone is not None and phone.push_target:
            payload = json.dumps(push_view(note, phone.push_target), separators=(",", ":")).encode()
            self.push.send_later(phone_id, phone.push_target, payload, int(life))
            pushed = "queued"
        log(
            "channel created",
            kind="unlock",
            channel=short(request_id),
            device=short(device.device_id),
            listeners=listeners,
            push=pushed,
        )
        answer = {
            "request_id": b64e(request_id),
            "expires_at": ch.expires_at,
            "notified": {"listeners": listeners, "push": pushed},
        }
        return Created(ch, answer)

    async def _phone_channel(self, device: Device, request_id: bytes) -> Channel:
        ch = await self._channel(request_id, "unlock")
        if device.device_id != ch.peer:
            raise forbidden("only the paired phone may see or answer this request")
        return ch

    async def get_unlock(self, device: Device, request_id: bytes) -> dict[str, Any]:
        ch = await self._phone_channel(device, request_id)
        ended = self._ended(ch, time.time())
        if ended is not None:
            raise ended
        return notification_json(ch)

    async def pending_unlock(self, device: Device) -> list[dict[str, Any]]:
        """The phone's open, unanswered requests, without those a newer one replaced."""
        if device.kind != "phone":
            raise forbidden("only phones list pending unlock requests")
        live = await self.store.open_unlock_for_peer(device.device_id, time.time())
        return [notification_json(c) for c in live if _newer_of(c, live) is None]

    async def unlock_state(self, device: Device, request_id: bytes) -> dict[str, Any]:
        """Where one of the phone's requests stands (also for a closed one's tombstone)."""
        ch = await self._phone_channel(device, request_id)
        now = time.time()
        outcome = self.outcome_of(ch)
        if outcome is not None:
            state = outcome if outcome in REQUEST_STATES else "closed"
            return request_frame(request_id, state, acknowledged=True)
        if self.state_of(ch, now) == "expired":
            return request_frame(request_id, "expired")
        if any(m.type == "reply" for m in await self.store.messages_after(request_id, 0)):
            return request_frame(request_id, "answered")
        live = await self.store.open_unlock_for_peer(device.device_id, now)
        newer = _newer_of(ch, live)
        if newer is not None:
            return request_frame(request_id, "renewed", replaced_by=newer.channel_id)
        return request_frame(request_id, "open")

    async def post_unlock(
        self, device: Device, request_id: bytes, msg_type: str, data: bytes
    ) -> Message:
        """The phone's ``seen`` or ``reply``: one store call, the channel read only if refused.

        The store checks, under the channel's lock, what the read used to
        establish first (an unlock channel, this phone its peer, still open); a
        refusal re-reads the channel to answer as those checks did, in their
        order: unknown (404), not this phone's (403), ended (410), duplicate (409).
        """
        now = time.time()
        result, msg = await self.store.add_message(
            request_id, msg_type, device.device_id, data, now, kind="unlock", from_peer=True
        )
        if msg is None:
            if result is AddResult.DUPLICATE:  # the guard passed: ours, open, already posted
                raise self._duplicate(msg_type)
            ch = await self._phone_channel(device, request_id)
            raise self._ended(ch, time.time()) or unknown_channel()
        await self._announce(msg)
        if msg_type == "reply":  # the phone's other open copies drop the card
            await self.tell_phone(device.device_id, request_frame(request_id, "answered"))
        return msg

    async def post_reply_and_wait(
        self, device: Device, request_id: bytes, data: bytes, wait: float
    ) -> tuple[Message, str]:
        """Post the reply, then wait up to ``wait`` s to learn whether a desktop took it.

        ``delivered``: the relay handed the reply to a desktop waiting on the
        channel (WebSocket or long-poll, on any node), or the desktop closed
        the request after it arrived. ``queued``: no desktop took it in time
        but the request is still open (the desktop may be reconnecting): the
        reply stays stored until expiry, a desktop that reconnects still gets
        it, and the phone hears ``answered`` with ``acknowledged`` then.
        ``undelivered``: the request ended without a desktop taking it
        (cancelled, closed or expired meanwhile). Subscribed before posting,
        so a fast desktop's hand-over is not missed.
        """
        async with self.bus.subscribe(channel_topic(request_id)) as sub:
            msg = await self.post_unlock(device, request_id, "reply", data)
            deadline = time.monotonic() + wait
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    ch = await self.store.get_channel(request_id)
                    if ch is not None and self.state_of(ch, time.time()) == "open":
                        return msg, "queued"
                    return msg, "undelivered"
                event = await sub.get(min(remaining, WAIT_RECHECK))
                if event and event.get("event") == "handed" and event.get("seq") == msg.seq:
                    return msg, "delivered"
                if event is None or event.get("event") == "ended":
                    ch = await self.store.get_channel(request_id)
                    if self.outcome_of(ch) == "answered":
                        return msg, "delivered"
                    if ch is None or self.state_of(ch, time.time()) != "open":
                        return msg, "undelivered"


def _newer_of(ch: Channel, live: list[Channel]) -> Channel | None:
    """A later open request of the same desktop and pairing: ``ch`` was renewed by it."""
    newer = [
        c
        for c in live
        if c.creator == ch.creator
        and c.routing_id == ch.routing_id
        and c.channel_id != ch.channel_id
        and c.created_at > ch.created_at
    ]
    return max(newer, key=lambda c: c.created_at) if newer else None
