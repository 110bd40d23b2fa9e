"""The relay's channel state is the truth, and the phone hears it (issue 13).

A real relay process; a desktop and a phone paired through the real pairing
channel (fixtures.relay.make_pair). The phone holds its listener WebSocket
(``RelayClient.events``) and must hear, within a second, each thing that
happens to its requests: renewed, cancelled, answered (and acknowledged),
expired, closed by an unpairing, and the pairing's removal. A phone that was
not listening asks ``GET /v1/unlock/{id}/state`` and hears the same. A reply
POST with ``wait`` says whether a desktop still waiting took it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from fixtures.relay import make_pair

from unlatch.relay.client import (
    ListenItem,
    PairingUpdate,
    RelayClient,
    RequestUpdate,
    UnlockNotification,
)
from unlatch.relay.errors import ChannelGone, PairingRejected

pytestmark = pytest.mark.timeout(90)

HEARD_WITHIN = 1.0  # seconds: issue 13's bound for an open phone app


class Ear:
    """The phone's listener: every frame it yields, with the time it came."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[tuple[float, ListenItem]] = asyncio.Queue()
        self.held: list[tuple[float, ListenItem]] = []  # heard, not yet asked for

    async def next(self, kind: type, timeout: float = 10.0) -> tuple[float, ListenItem]:
        """The first frame of ``kind`` heard (in order); others are kept for later."""
        for i, (at, item) in enumerate(self.held):
            if isinstance(item, kind):
                del self.held[i]
                return at, item
        deadline = time.monotonic() + timeout
        while True:
            at, item = await asyncio.wait_for(self.items.get(), deadline - time.monotonic())
            if isinstance(item, kind):
                return at, item
            self.held.append((at, item))

    async def update(self, request_id: bytes, since: float) -> RequestUpdate:
        """The next update of ``request_id``, asserting it came within HEARD_WITHIN."""
        while True:
            at, item = await self.next(RequestUpdate)
            assert isinstance(item, RequestUpdate)
            if item.request_id == request_id:
                assert at - since < HEARD_WITHIN, f"{item.state} heard after {at - since:.2f} s"
                return item


@asynccontextmanager
async def listening(phone: RelayClient) -> AsyncIterator[Ear]:
    ear = Ear()

    async def pump() -> None:
        async for item in phone.events(poll_interval=0.3):
            await ear.items.put((time.monotonic(), item))

    task = asyncio.create_task(pump())
    try:
        yield ear
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _announced(ear: Ear, desktop: RelayClient, routing_id: bytes, **kw: object) -> bytes:
    rid = os.urandom(16)
    await desktop.create_unlock(rid, routing_id, os.urandom(64), **kw)  # type: ignore[arg-type]
    while True:
        _, note = await ear.next(UnlockNotification)
        assert isinstance(note, UnlockNotification)
        if note.request_id == rid:
            return rid


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "polling"])
async def test_lifecycle_phone_hears_renewed_cancelled_answered_expired_closed(
    relay, websocket: bool
) -> None:
    pair = await make_pair(relay.url, prefer_websocket=websocket)
    desktop: RelayClient = pair.desktop  # type: ignore[assignment]
    phone: RelayClient = pair.phone  # type: ignore[assignment]
    try:
        async with listening(phone) as ear:
            # renewed: a newer request of the same desktop replaces the card
            first = await _announced(ear, desktop, pair.routing_id)
            t = time.monotonic()
            second = await _announced(ear, desktop, pair.routing_id)
            if websocket:  # polling learns it from the state query below
                update = await ear.update(first, t)
                assert (update.state, update.replaced_by) == ("renewed", second)
            assert [n.request_id for n in await phone.pending_unlocks()] == [second]
            state = await phone.unlock_state(first)
            assert (state.state, state.replaced_by) == ("renewed", second)

            # cancelled: the desktop closes it unanswered
            t = time.monotonic()
            await desktop.close_unlock(second)
            if websocket:
                assert (await ear.update(second, t)).state == "cancelled"
            assert (await phone.unlock_state(second)).state == "cancelled"

            # answered with no desktop waiting on the open request: "queued", acknowledged later
            third = await _announced(ear, desktop, pair.routing_id)
            t = time.monotonic()
            assert await phone.post_reply(third, b"reply-3", wait=1) == "queued"
            if websocket:
                update = await ear.update(third, t)
                assert (update.state, update.acknowledged) == ("answered", False)
            t = time.monotonic()
            assert await desktop.wait_reply(third, timeout=10) == b"reply-3"  # reads, then acks
            if websocket:
                update = await ear.update(third, t)
                assert (update.state, update.acknowledged) == ("answered", True)
            state = await phone.unlock_state(third)
            assert (state.state, state.acknowledged) == ("answered", True)

            # answered while the desktop waits: "delivered"
            fourth = await _announced(ear, desktop, pair.routing_id)
            waiter = asyncio.create_task(desktop.wait_reply(fourth, timeout=20))
            await asyncio.sleep(0.5)  # the desktop is on the channel
            assert await phone.post_reply(fourth, b"reply-4", wait=5) == "delivered"
            assert await waiter == b"reply-4"

            # expired: the relay's sweeper ends it and tells the phone
            fifth = await _announced(ear, desktop, pair.routing_id, ttl=1)
            t = time.monotonic()
            update = await ear.update(fifth, t + 1.0 + 1.2)  # life 1 s, sweeper every 1 s
            assert update.state == "expired"
            assert (await phone.unlock_state(fifth)).state == "expired"

            # unpaired on the desktop: the open request closes, the pairing is removed
            sixth = await _announced(ear, desktop, pair.routing_id)
            t = time.monotonic()
            await desktop.delete_pairing(pair.routing_id)
            if websocket:
                assert (await ear.update(sixth, t)).state == "closed"
                at, removed = await ear.next(PairingUpdate)
                assert isinstance(removed, PairingUpdate)
                assert (removed.routing_id, removed.state) == (pair.routing_id, "removed")
                assert at - t < HEARD_WITHIN
            assert (await phone.unlock_state(sixth)).state == "closed"
            with pytest.raises(ChannelGone):
                await phone.post_reply(sixth, b"late", wait=1)
    finally:
        await pair.aclose()


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "longpoll"])
async def test_lifecycle_rejected_pairing_tells_the_phone_the_codes_differed(
    relay, websocket: bool
) -> None:
    from unlatch.relay.device_key import DeviceKey

    desktop = RelayClient(relay.url, DeviceKey.generate(), "desktop", prefer_websocket=websocket)
    phone = RelayClient(relay.url, DeviceKey.generate(), "phone", prefer_websocket=websocket)
    try:
        channel_id = os.urandom(16)
        await desktop.create_pairing_channel(channel_id)
        await phone.post_hello(channel_id, os.urandom(100))
        await desktop.wait_pairing_message(channel_id, timeout=10)
        waiter = asyncio.create_task(phone.wait_pairing_message(channel_id, timeout=20))
        await asyncio.sleep(0.3)
        await desktop.close_pairing_channel(channel_id)  # "they differ" on the desktop
        with pytest.raises(PairingRejected):
            await asyncio.wait_for(waiter, 10)
        # a desktop that closes before any hello merely cancelled: not "rejected"
        other = os.urandom(16)
        await desktop.create_pairing_channel(other)
        await desktop.close_pairing_channel(other)
        with pytest.raises(ChannelGone) as gone:
            await phone.post_hello(other, os.urandom(100))
        assert not isinstance(gone.value, PairingRejected)
    finally:
        await desktop.aclose()
        await phone.aclose()
