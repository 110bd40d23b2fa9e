"""Channels: who may post what, waiting for messages, closing, and their state."""

from __future__ import annotations

import asyncio
import time

from unlatch.relay.apierror import ApiError, forbidden, unknown_channel
from unlatch.relay.frames import (
    channel_topic,
    closed_event,
    message_event,
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
from unlatch.relay.store import AddResult, CloseResult, CreateResult


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

    @staticmethod
    def _duplicate(msg_type: str) -> ApiError:
        if msg_type == "reply":
            return ApiError("already_answered", "this unlock request already has a reply")
        return ApiError("already_posted", f"'{msg_type}' was already posted on this channel")

    async def _post(self, device: Device, ch: Channel, msg_type: str, data: bytes) -> Message:
        now = time.time()
        ended = self._ended(ch, now)
        if ended is not None:
            raise ended
        result, msg = await self.store.add_message(
            ch.channel_id, msg_type, device.device_id, data, now
        )
        if result is AddResult.DUPLICATE:
            raise self._duplicate(msg_type)
        if msg is None:
            fresh = await self.store.get_channel(ch.channel_id)
            raise (self._ended(fresh, time.time()) if fresh else None) or unknown_channel()
        await self._announce(msg)
        return msg

    async def _announce(self, msg: Message) -> None:
        """A message was added: count it, wake the channel's waiters on every node, log."""
        self.metrics.child(self.metrics.messages_relayed, msg.type).inc()
        await self.bus.publish(channel_topic(msg.channel_id), message_event(msg))
        log("message posted", kind=msg.type, channel=short(msg.channel_id), size=len(msg.data))

    async def channel_for_waiter(
        self, device: Device, channel_id: bytes, kind: ChannelKind
    ) -> Channel:
        """The channel if ``device`` may wait on it (a party), else a 4xx."""
        return self.check_waiter(device, await self.store.get_channel(channel_id), kind)

    def check_waiter(self, device: Device, ch: Channel | None, kind: ChannelKind) -> Channel:
        """``ch`` if ``device`` may wait on it, else the 4xx a waiter gets (no store call)."""
        if ch is None or ch.kind != kind:
            raise unknown_channel()
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
        """Close a channel for a party (the desktop, for an unlock request): one store call.

        The store checks the closer and works out the outcome under the
        channel's lock (:meth:`Store.close_as`). Closing the newest request of a
        desktop's attempt also closes its renewed predecessors. A renewed
        request stays open while its successor is, so a phone that scanned the
        old QR just before the swap still gets through. Once the successor is
        answered or cancelled the attempt is over: an older QR must neither come
        back as the phone's pending card nor carry an answer.
        """
        now = time.time()
        closing = await self.store.close_as(channel_id, device.device_id, kind, now)
        if closing.result is CloseResult.UNKNOWN:
            raise unknown_channel()
        if closing.result is CloseResult.NOT_PARTY:
            raise forbidden("this device is not a party of the channel")
        if closing.result is CloseResult.NOT_CREATOR:
            raise forbidden("only the desktop that made the request closes it")
        if closing.result is not CloseResult.CLOSED:
            return  # already ended: nothing to announce
        outcome, peer = closing.outcome or "closed", closing.peer
        await self.bus.publish(channel_topic(channel_id), closed_event(outcome))
        log("channel closed", kind=kind, channel=short(channel_id), outcome=outcome)
        if kind == "unlock" and peer:
            expired = outcome == "cancelled" and now >= closing.expires_at
            frame = request_frame(channel_id, "expired" if expired else outcome, acknowledged=True)
            await self.tell_phone(peer, frame)
            renewed = closing.renewed_outcome or "closed"
            for older_id in closing.older:
                await self.bus.publish(channel_topic(older_id), closed_event(renewed))
                await self.tell_phone(peer, request_frame(older_id, renewed))

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
