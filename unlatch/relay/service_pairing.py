"""Pairing: the pairing channel, the linked pairing, listing, deleting, blocking."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from unlatch.relay.apierror import ApiError, forbidden
from unlatch.relay.codec import b64e
from unlatch.relay.frames import (
    channel_topic,
    closed_event,
    request_frame,
)
from unlatch.relay.logs import log, short
from unlatch.relay.models import (
    Channel,
    Device,
    Message,
)
from unlatch.relay.service_base import (
    PAIRING_TYPES,
)
from unlatch.relay.service_channels import ChannelOps
from unlatch.relay.store import PairResult


class PairingOps(ChannelOps):
    """Pairing: the pairing channel, the linked pairing, listing, deleting, blocking."""

    async def create_pairing_channel(
        self, device: Device, channel_id: bytes, ttl: int | None
    ) -> Channel:
        if device.kind != "desktop":
            raise forbidden("only a desktop creates pairing channels")
        life = min(ttl or self.config.pairing_ttl, self.config.pairing_ttl)
        now = time.time()
        ch = Channel(channel_id, "pairing", device.device_id, None, now, now + life)
        result = await self.store.create_channel(ch, self.config.max_pending_pairing)
        self._check_created(result, "pairing")
        self.metrics.channels_created.labels("pairing").inc()
        log(
            "channel created",
            kind="pairing",
            channel=short(channel_id),
            device=short(device.device_id),
        )
        return ch

    async def post_pairing(
        self, device: Device, channel_id: bytes, msg_type: str, data: bytes
    ) -> Message:
        ch = await self._channel(channel_id, "pairing")
        if device.kind != PAIRING_TYPES[msg_type]:
            raise forbidden(f"only a {PAIRING_TYPES[msg_type]} posts '{msg_type}'")
        ended = self._ended(ch, time.time())
        if ended is not None:
            raise ended
        if msg_type == "hello":
            if not await self.store.claim_channel(channel_id, device.device_id):
                raise ApiError(
                    "channel_taken", "another phone already answered this pairing channel"
                )
            ch = replace(ch, peer=device.device_id)
        elif device.device_id != ch.creator:
            raise forbidden("only the desktop that made the channel accepts on it")
        elif ch.peer is None:
            raise ApiError("bad_state", "no phone has said hello on this channel yet")
        return await self._post(device, ch, msg_type, data)

    # pairings --------------------------------------------------------------------------
    async def register_pairing(
        self, device: Device, routing_id: bytes, peer_id: str
    ) -> dict[str, Any]:
        peer = await self.store.get_device(peer_id)
        if peer is None:
            raise ApiError("unknown_device", "the peer device is not registered on this relay")
        if peer.kind == device.kind:
            raise ApiError("bad_request", "a pairing joins a desktop and a phone")
        result = await self.store.register_pairing(
            routing_id, device.device_id, peer_id, device.kind, time.time()
        )
        if result is PairResult.CONFLICT:
            raise ApiError("pairing_conflict", "this routing id is already used by other devices")
        view = await self.store.get_pairing(routing_id, device.device_id)
        log(
            "pairing registered",
            routing=short(routing_id),
            device=short(device.device_id),
            outcome=result.value,
        )
        return {
            "routing_id": b64e(routing_id),
            "state": "linked" if result is PairResult.LINKED else "pending",
            "blocked": bool(view and view.blocked),
        }

    async def list_pairings(self, device: Device) -> list[dict[str, Any]]:
        return [
            {
                "routing_id": b64e(p.routing_id),
                "peer_device_id": p.peer_device_id,
                "state": "linked" if p.linked else "pending",
                "blocked": p.blocked,
                "created_at": p.created_at,
            }
            for p in await self.store.list_pairings(device.device_id)
        ]

    async def delete_pairing(self, device: Device, routing_id: bytes) -> None:
        """Unlink a pairing, and close the unlock requests still open on it.

        Either side may unpair. A request made before the unpairing must not
        carry an answer afterwards: the phone's late reply gets 410 ``closed``
        (it is told the desktop no longer waits) and a waiting desktop wakes
        at once instead of at the request's expiry.
        """
        pairing = await self.store.get_pairing(routing_id, device.device_id)
        if pairing is None or not await self.store.delete_pairing(routing_id, device.device_id):
            raise ApiError("unknown_pairing", "no such pairing for this device")
        phone_id = device.device_id if device.kind == "phone" else pairing.peer_device_id
        closed = await self._close_requests_of(routing_id, phone_id)
        # An open app hears it at once; a closed one finds the pairing missing from
        # GET /v1/pairings at its next start.
        await self.tell_phone(
            phone_id, {"type": "pairing", "routing_id": b64e(routing_id), "state": "removed"}
        )
        log(
            "pairing deleted",
            routing=short(routing_id),
            device=short(device.device_id),
            count=closed,  # the open unlock requests closed with it
        )

    async def _close_requests_of(self, routing_id: bytes, phone_id: str) -> int:
        """Close the open unlock channels of one pairing; returns how many."""
        now = time.time()
        closed = 0
        for ch in await self.store.open_unlock_for_peer(phone_id, now):
            if ch.routing_id == routing_id and await self.store.close_channel(ch.channel_id, now):
                await self.bus.publish(channel_topic(ch.channel_id), closed_event("closed"))
                await self.tell_phone(phone_id, request_frame(ch.channel_id, "closed"))
                closed += 1
        return closed

    async def set_blocked(self, device: Device, routing_id: bytes, blocked: bool) -> dict[str, Any]:
        if device.kind != "phone":
            raise forbidden("only the phone blocks or unblocks a pairing")
        if not await self.store.set_blocked(routing_id, device.device_id, blocked):
            raise ApiError("unknown_pairing", "no such pairing for this device")
        log("pairing blocked" if blocked else "pairing unblocked", routing=short(routing_id))
        return {"routing_id": b64e(routing_id), "blocked": blocked}

    # unlock channels -----------------------------------------------------------------------
