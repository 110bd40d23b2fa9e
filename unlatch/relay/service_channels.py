"""Channels: who may post what, waiting for messages, closing, and their state."""

from __future__ import annotations

import asyncio
import time

from unlatch.relay.apierror import ApiError, forbidden, unknown_channel
from unlatch.relay.frames import (
    channel_topic,
    request_frame,
)
from unlatch.relay.logs import log, short
from unlatch.relay.models import (
    Channel,
    ChannelKind,
    ChannelState,
    Device,
    Message,
    channel_outcome,
    channel_state,
)
from unlatch.relay.service_base import (
    ServiceBase,
)
from unlatch.relay.store import AddResult, CreateResult


class ChannelOps(ServiceBase):
    """Channels: who may post what, waiting for messages, closing, and their state."""

    async def _channel(self, channel_id: bytes, kind: ChannelKind) -> Channel:
        return self._known(await self.store.get_channel(channel_id), kind)

    @staticmethod
    def _known(ch: Channel | None, kind: ChannelKind) -> Channel:
        if ch is None or ch.kind != kind:
            raise unknown_channel()
        return ch

    @staticmethod
    def _ended(ch: Channel, now: float) -> ApiError | None:
        if ch.state is ChannelState.CLOSED:
            return ApiError("closed", "the channel was closed")
        if ch.state is ChannelState.EXPIRED or now >= ch.expires_at:
            return ApiError("expired", "the channel has expired; start a new one")
        return None

    @staticmethod
    def _is_party(ch: Channel, device: Device) -> bool:
        return device.device_id in (ch.creator, ch.peer)

    async def _post(self, device: Device, ch: Channel, msg_type: str, data: bytes) -> Message:
        now = time.time()
        ended = self._ended(ch, now)
        if ended is not None:
            raise ended
        result, msg = await self.store.add_message(
            ch.channel_id, msg_type, device.device_id, data, now
        )
        if result is AddResult.DUPLICATE:
            if msg_type == "reply":
                raise ApiError("already_answered", "this unlock request already has a reply")
            raise ApiError("already_posted", f"'{msg_type}' was already posted on this channel")
        if result is AddResult.NOT_OPEN or msg is None:
            fresh = await self.store.get_channel(ch.channel_id)
            raise (self._ended(fresh, time.time()) if fresh else None) or unknown_channel()
        self.metrics.child(self.metrics.messages_relayed, msg_type).inc()
        await self.bus.publish(channel_topic(ch.channel_id), {"event": "message", "seq": msg.seq})
        log("message posted", kind=msg_type, channel=short(ch.channel_id), size=len(data))
        return msg

    async def channel_for_waiter(
        self, device: Device, channel_id: bytes, kind: ChannelKind
    ) -> Channel:
        """The channel if ``device`` may wait on it (a party), else a 4xx."""
        ch = await self._channel(channel_id, kind)
        if not self._is_party(ch, device):
            raise forbidden("this device is not a party of the channel")
        if kind == "unlock" and device.device_id != ch.creator:
            raise forbidden("only the desktop that made the request waits for its answer")
        return ch

    async def next_messages(
        self, device: Device, channel_id: bytes, after: int
    ) -> tuple[list[Message], Channel | None]:
        """Messages from the other party after ``after`` and the channel's current record."""
        ch, msgs = await self.store.channel_with_messages(channel_id, after)
        return [m for m in msgs if m.sender != device.device_id], ch

    # what a waiter is told about a channel (one definition, in models)
    state_of = staticmethod(channel_state)
    outcome_of = staticmethod(channel_outcome)

    async def handed_over(self, channel_id: bytes, msgs: list[Message]) -> None:
        """A waiting party was just given these messages: tell a reply's poster.

        The phone's reply POST (with ``wait``) listens for this, so it can say
        whether the reply reached a desktop that is still waiting.
        """
        for m in msgs:
            if m.type == "reply":
                await self.bus.publish(channel_topic(channel_id), {"event": "handed", "seq": m.seq})

    async def wait(
        self, device: Device, channel_id: bytes, kind: ChannelKind, after: int, timeout: float
    ) -> tuple[list[Message], Channel | None]:
        """Long-poll: the other party's messages after ``after``, waiting up to ``timeout``."""
        await self.channel_for_waiter(device, channel_id, kind)
        deadline = time.monotonic() + timeout
        async with self.bus.subscribe(channel_topic(channel_id)) as sub:
            while True:
                msgs, ch = await self.next_messages(device, channel_id, after)
                now = time.time()
                if msgs or ch is None or self.state_of(ch, now) != "open":
                    if msgs:
                        self.metrics.messages_delivered.labels("longpoll").inc(len(msgs))
                        await self.handed_over(channel_id, msgs)
                    return msgs, ch
                remaining = min(deadline - time.monotonic(), ch.expires_at - now)
                if remaining <= 0 or self.shutting_down.is_set():
                    return [], ch
                # wake on a bus event, on shutdown (answer at once), or to re-check the store
                # (only on a bus that can lose an event: sub.recheck)
                get = asyncio.ensure_future(sub.get(min(remaining, sub.recheck or remaining)))
                stop = asyncio.ensure_future(self.shutting_down.wait())
                await asyncio.wait({get, stop}, return_when=asyncio.FIRST_COMPLETED)
                for task in (get, stop):
                    if not task.done():
                        task.cancel()

    async def close_channel(self, device: Device, channel_id: bytes, kind: ChannelKind) -> None:
        # the channel and what was posted on it, in one store call (one round trip)
        found, msgs = await self.store.channel_with_messages(channel_id, 0)
        ch = self._known(found, kind)
        if not self._is_party(ch, device):
            raise forbidden("this device is not a party of the channel")
        if kind == "unlock" and device.device_id != ch.creator:
            raise forbidden("only the desktop that made the request closes it")
        now = time.time()
        posted = {m.type for m in msgs}
        if kind == "unlock":
            outcome = "answered" if "reply" in posted else "cancelled"
        else:  # the desktop closing after the phone's hello, with no accept: it refused
            refused = device.device_id == ch.creator and "hello" in posted
            outcome = "rejected" if refused and "accept" not in posted else "closed"
        if await self.store.close_channel(channel_id, now, outcome):
            await self.bus.publish(channel_topic(channel_id), {"event": "ended"})
            log("channel closed", kind=kind, channel=short(channel_id), outcome=outcome)
            if kind == "unlock" and ch.peer:
                state = "expired" if outcome == "cancelled" and now >= ch.expires_at else outcome
                frame = request_frame(channel_id, state, acknowledged=True)
                await self.tell_phone(ch.peer, frame)
                await self._close_renewed(ch, "cancelled" if outcome == "cancelled" else "closed")

    async def _close_renewed(self, ch: Channel, outcome: str) -> None:
        """The newest request of a desktop's attempt ended: its renewed predecessors end too.

        A renewed request stays open while its successor is, so a phone that
        scanned the old QR just before the swap still gets through. Once the
        successor is answered or cancelled the attempt is over: an older QR
        must neither come back as the phone's pending card nor carry an answer.
        """
        assert ch.peer is not None
        now = time.time()
        for older in await self.store.open_unlock_for_peer(ch.peer, now):
            if (
                older.creator == ch.creator
                and older.routing_id == ch.routing_id
                and older.created_at < ch.created_at
                and await self.store.close_channel(older.channel_id, now, outcome)
            ):
                await self.bus.publish(channel_topic(older.channel_id), {"event": "ended"})
                await self.tell_phone(ch.peer, request_frame(older.channel_id, outcome))

    # pairing channels ----------------------------------------------------------------

    def _check_created(self, result: CreateResult, kind: str) -> None:
        if result is CreateResult.EXISTS:
            raise ApiError(
                "channel_exists",
                "a channel with this id already exists; use a fresh random id",
            )
        if result is CreateResult.TOO_MANY:
            self.metrics.rate_limited.labels("pending").inc()
            raise ApiError(
                "too_many_pending",
                f"too many open {kind} channels for this device;"
                " close some or wait for them to expire",
                retry_after=10,
                scope="pending",
            )
