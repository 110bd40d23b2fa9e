"""The relay service's shared state and plumbing: one node's store, bus, limiter and
metrics, its lifecycle (start, stop, the sweeper), rate checks and telling a phone.

The operations are split by concern over this base: ``service_auth`` (device
sign-in), ``service_channels`` (posting and waiting on channels),
``service_pairing`` and ``service_unlock``; :class:`~unlatch.relay.service.RelayService`
joins them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from unlatch.relay.apierror import ApiError
from unlatch.relay.bus import Bus
from unlatch.relay.config import RelayConfig
from unlatch.relay.errors import RelayConfigError
from unlatch.relay.frames import (
    channel_topic,
    device_topic,
    request_frame,
)
from unlatch.relay.logs import log
from unlatch.relay.metrics import RelayMetrics
from unlatch.relay.models import (
    Device,
)
from unlatch.relay.push_gateway import PushGateway
from unlatch.relay.ratelimit import RateLimiter
from unlatch.relay.reconcile import Reconciler
from unlatch.relay.store import Store

DELIVERY_GRACE = 60.0  # seconds a channel's messages outlive its expiry for a reconnecting waiter
# a reply POST with "wait" re-reads the channel this often while it waits to learn whether a
# desktop took the reply (the "handed" event it waits for is not a store change)
WAIT_RECHECK = 5.0
MAX_USER_AGENT = 200
SESSION_CACHE_SIZE = 10_000
SESSION_CACHE_TTL = 30.0  # never beyond a session's own expiry: see authenticate()
VAPID_SETTING = "vapid_public_key"  # store setting: the deployment's VAPID public key

# which message types each side of a channel may post
PAIRING_TYPES = {"hello": "phone", "accept": "desktop"}
UNLOCK_TYPES = {"seen": "phone", "reply": "phone"}


class ServiceBase:
    """A node's store, bus, limiter and metrics, and what every operation shares."""

    def __init__(
        self,
        config: RelayConfig,
        store: Store,
        bus: Bus,
        limiter: RateLimiter,
        metrics: RelayMetrics,
    ) -> None:
        self.config = config
        self.store = store
        self.bus = bus
        self.limiter = limiter
        self.metrics = metrics
        self.push: PushGateway | None = None
        self._sweeper: asyncio.Task[None] | None = None
        # on a bus that can lose an event (Redis): wakes waiters of changed channels
        self.reconciler: Reconciler | None = None
        self._reconciling: asyncio.Task[None] | None = None
        self._sessions: dict[bytes, tuple[Device, float]] = {}
        self.shutting_down = asyncio.Event()

    # lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        await self.store.open()
        await self.bus.start()
        if self.config.push_enabled:
            self.push = PushGateway(
                Path(self.config.vapid_key),
                self.config.push_subject,
                self.store,
                self.metrics,
                allow_private=self.config.push_allow_private,
            )
            await self._check_vapid_record(self.push.public_key_b64url)
        if self.bus.lossy:
            # before the node serves: its starting point precedes every waiter's first read
            self.reconciler = Reconciler(self.store, self.bus, self.metrics)
            await self.reconciler.start()
            self.bus.reconciled()
            self._reconciling = asyncio.create_task(self.reconciler.run(self.config.sweep_interval))
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def _check_vapid_record(self, ours: str) -> None:
        """Refuse to start with a VAPID key other than the deployment's.

        Browsers bind a Web Push subscription to the key it was made with, and
        push services refuse pushes signed with another one. Nodes sharing a
        store but not a key file would each lose the pushes of phones that
        subscribed through another node, silently; a single relay whose key
        file was lost would lose them all. The first node records its public
        key in the store; any node with a different key stops here with the fix.
        """
        replace = self.config.vapid_key_replace
        recorded = await self.store.record_setting(VAPID_SETTING, ours, replace=replace)
        if recorded != ours:
            raise RelayConfigError(
                f"this relay's VAPID key ({ours[:12]}...) is not the one recorded in its store"
                f" ({recorded[:12]}...), which phones subscribed to Web Push with: pushes signed"
                " with this key would be refused. Give every node the same key file"
                " (vapid_key, UNLATCH_RELAY_VAPID_KEY); after a deliberate key change, start one"
                " node once with --vapid-key-replace (phones must then re-enable notifications)"
            )
        if replace:
            log("VAPID key recorded for the deployment (replace)", logging.WARNING)

    async def stop(self) -> None:
        self.shutting_down.set()
        for task in (self._sweeper, self._reconciling):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.push is not None:
            await self.push.close()
        await self.bus.close()
        await self.limiter.close()
        await self.store.close()

    async def _sweep_loop(self) -> None:
        last_purge = 0.0
        while True:
            try:
                await self.sweep()
                now = time.time()
                if now - last_purge > 30:
                    removed = await self.store.purge(now, now - self.config.tombstone_ttl)
                    last_purge = now
                    if removed:
                        log("purged", logging.DEBUG, removed=removed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the sweeper must outlive a bad tick
                log("sweeper error", logging.ERROR, error=type(exc).__name__)
            await asyncio.sleep(self.config.sweep_interval)

    async def sweep(self) -> int:
        """Expire channels past their life and tell their waiters."""
        expired = await self.store.expire_channels(time.time(), DELIVERY_GRACE)
        for cid in expired:
            self.metrics.channels_expired.inc()
            await self.bus.publish(channel_topic(cid), {"event": "ended"})
            ch = await self.store.get_channel(cid)
            if ch is not None and ch.kind == "unlock" and ch.peer:
                await self.tell_phone(ch.peer, request_frame(cid, "expired"))
        return len(expired)

    async def tell_phone(self, phone_id: str, frame: dict[str, Any]) -> int:
        """Send a frame to the phone's open listeners (``/v1/listen``), on any node."""
        return await self.bus.publish(device_topic(phone_id), {"event": "frame", "frame": frame})

    # authentication --------------------------------------------------------------
    async def rate_check(self, checks: list[tuple[str, str, str]]) -> None:
        """Take a token from each ``(scope, rule name, key)`` bucket or raise 429."""
        denied = await self.limiter.acquire(
            [(scope, f"{rule}:{key}", self.config.rules[rule]) for scope, rule, key in checks]
        )
        if denied is not None:
            self.metrics.rate_limited.labels(denied.scope).inc()
            log(
                "rate limited",
                logging.INFO,
                scope=denied.scope,
                retry_after=round(denied.retry_after, 1),
            )
            raise ApiError(
                "rate_limited",
                f"too many requests ({denied.scope} limit); retry in a moment",
                retry_after=denied.retry_after,
                scope=denied.scope,
            )
