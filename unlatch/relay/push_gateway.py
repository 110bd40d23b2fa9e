"""The relay's use of :mod:`unlatch.push`: wake a phone, forget dead subscriptions.

Pushes run in background tasks so creating an unlock channel never waits on a
push service (the dispatcher retries with backoff inside). A subscription the
push service reports gone is removed with a compare-and-set on its endpoint,
so a phone that re-subscribed meanwhile keeps its new subscription.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from unlatch.push import InvalidPushTarget, PushDispatcher, PushError, PushTarget, VapidKeys
from unlatch.relay.logs import log, short
from unlatch.relay.metrics import RelayMetrics
from unlatch.relay.store import Store


def parse_target(data: object, *, allow_private: bool = False) -> PushTarget:
    """Accept the relay API's ``{"type": ...}`` spelling as well as the push layer's ``kind``.

    ``allow_private`` is the relay's ``push_allow_private`` setting. Raises
    :class:`unlatch.push.InvalidPushTarget` with a message for the client.
    """
    if not isinstance(data, dict):
        raise InvalidPushTarget("push target must be a JSON object")
    obj: dict[str, Any] = dict(data)
    if "type" in obj:
        if "kind" in obj and obj["kind"] != obj["type"]:
            raise InvalidPushTarget("push target has both 'type' and 'kind' and they differ")
        obj["kind"] = obj.pop("type")
    return PushTarget.from_json(obj, allow_private=allow_private)


class PushGateway:
    """Owns the VAPID keys and dispatcher of one relay process."""

    def __init__(
        self,
        vapid_path: Path,
        subject: str,
        store: Store,
        metrics: RelayMetrics,
        *,
        allow_private: bool = False,
    ) -> None:
        self.vapid = VapidKeys.load_or_create(vapid_path)
        # allow_private: the relay's push_allow_private; checked again at send time, so
        # targets stored while it was on are refused once it is turned off
        self.allow_private = allow_private
        self.dispatcher = PushDispatcher(self.vapid, subject, allow_private=allow_private)
        self._store = store
        self._metrics = metrics
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def public_key_b64url(self) -> str:
        return self.vapid.public_key_b64url

    def send_later(self, device_id: str, target: dict[str, Any], payload: bytes, ttl: int) -> None:
        """Start delivering ``payload`` to ``target`` in the background."""
        task = asyncio.create_task(self._send(device_id, target, payload, ttl))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(
        self, device_id: str, target_json: dict[str, Any], payload: bytes, ttl: int
    ) -> None:
        try:
            target = PushTarget.from_json(target_json, allow_private=self.allow_private)
            result = await self.dispatcher.send(target, payload, ttl=max(ttl, 1), urgency="high")
        except PushError as exc:
            self._metrics.pushes.labels("failed").inc()
            log(
                "push refused locally",
                logging.WARNING,
                device=short(device_id),
                error=type(exc).__name__,
            )
            return
        except Exception as exc:  # noqa: BLE001 - a push must never take the relay down
            self._metrics.pushes.labels("failed").inc()
            log("push crashed", logging.ERROR, device=short(device_id), error=type(exc).__name__)
            return
        self._metrics.pushes.labels(result.outcome).inc()
        log(
            "push sent",
            device=short(device_id),
            outcome=result.outcome,
            status=result.status,
            endpoint_host=target.origin,
        )
        if result.outcome == "gone":
            removed = await self._store.set_push_target(
                device_id, None, only_if_endpoint=target.endpoint
            )
            log("push target removed (gone)", device=short(device_id), removed=removed)

    async def wait_idle(self, timeout: float) -> None:
        """Let in-flight pushes finish (used on shutdown and by tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self) -> None:
        await self.wait_idle(2.0)
        for task in list(self._tasks):
            task.cancel()
        await self.dispatcher.aclose()
