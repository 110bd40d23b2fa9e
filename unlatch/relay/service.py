"""The relay's rules, independent of HTTP: who may post what, when, and how often.

Routes (:mod:`unlatch.relay.app`) parse and bound the input, then call one
method here; this module talks only to the :class:`~unlatch.relay.store.Store`,
the :class:`~unlatch.relay.bus.Bus` and the
:class:`~unlatch.relay.ratelimit.RateLimiter` interfaces, so the same rules hold
on SQLite and in-process, or on PostgreSQL and Redis across many nodes.
Refusals are :class:`~unlatch.relay.apierror.ApiError` with stable codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from unlatch.relay import auth
from unlatch.relay.apierror import ApiError, forbidden, unauthorized, unknown_channel
from unlatch.relay.bus import Bus
from unlatch.relay.codec import b64e
from unlatch.relay.config import RelayConfig
from unlatch.relay.errors import RelayConfigError
from unlatch.relay.logs import log, short
from unlatch.relay.metrics import RelayMetrics
from unlatch.relay.models import Channel, ChannelKind, ChannelState, Device, DeviceKind, Message
from unlatch.relay.push_gateway import PushGateway
from unlatch.relay.ratelimit import RateLimiter
from unlatch.relay.store import AddResult, CreateResult, PairResult, Store

DELIVERY_GRACE = 60.0  # seconds a channel's messages outlive its expiry for a reconnecting waiter
MAX_USER_AGENT = 200
SESSION_CACHE_SIZE = 10_000
SESSION_CACHE_TTL = 30.0  # never beyond a session's own expiry: see authenticate()
VAPID_SETTING = "vapid_public_key"  # store setting: the deployment's VAPID public key

# which message types each side of a channel may post
PAIRING_TYPES = {"hello": "phone", "accept": "desktop"}
UNLOCK_TYPES = {"seen": "phone", "reply": "phone"}


def channel_topic(channel_id: bytes) -> str:
    return "channel:" + b64e(channel_id)


def device_topic(device_id: str) -> str:
    return "device:" + device_id


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


class RelayService:
    """One relay node's logic; shared by all requests of the process."""

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
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
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
        return len(expired)

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
                429,
                "rate_limited",
                f"too many requests ({denied.scope} limit); retry in a moment",
                retry_after=denied.retry_after,
                scope=denied.scope,
            )

    async def issue_challenge(self, ip: str) -> dict[str, Any]:
        await self.rate_check([("ip", "auth_ip", ip)])
        challenge = secrets.token_bytes(auth.CHALLENGE_LEN)
        await self.store.put_challenge(challenge, time.time() + self.config.challenge_ttl)
        return {
            "challenge": b64e(challenge),
            "origin": self.config.origin,
            "expires_in": self.config.challenge_ttl,
        }

    async def open_session(
        self, public_key: bytes, kind: DeviceKind, challenge: bytes, signature: bytes
    ) -> dict[str, Any]:
        try:
            auth.load_public_key(public_key)
        except ValueError:
            raise ApiError(400, "bad_request", "public_key is not a P-256 public key") from None
        message = auth.auth_message(self.config.origin, challenge, public_key)
        # Consume the challenge before checking the signature: a challenge is then
        # single use even when every attempt on it carries a bad signature.
        if not await self.store.take_challenge(challenge, time.time()):
            raise ApiError(
                401, "bad_challenge", "unknown, used or expired challenge; ask for a new one"
            )
        if not auth.verify_signature(public_key, message, signature):
            raise ApiError(
                401,
                "bad_signature",
                f"signature does not verify for origin {self.config.origin}",
            )
        now = time.time()
        device_id = auth.device_id_for(public_key)
        device = await self.store.register_device(device_id, public_key, kind, now)
        if device.kind != kind:
            raise forbidden(f"this key is registered as a {device.kind}, not a {kind}")
        token = secrets.token_urlsafe(32)
        await self.store.put_session(
            auth.token_hash(token), device_id, now + self.config.session_ttl
        )
        log("session opened", device=short(device_id), kind=kind)
        return {
            "device_id": device_id,
            "kind": kind,
            "token": token,
            "expires_in": self.config.session_ttl,
        }

    async def authenticate(self, token: str | None) -> Device:
        """The device of a live session token.

        Sessions are never revoked before they expire and a device's id and
        kind never change, so a short in-process cache of (token hash ->
        device) saves two store reads on every request; its only effect is
        that a session may be honoured up to ``SESSION_CACHE_TTL`` seconds past
        its expiry on a node that cached it. Fields that do change (the push
        target) are always read from the store.
        """
        if not token or len(token) > 256:
            raise unauthorized()
        digest = auth.token_hash(token)
        now = time.time()
        cached = self._sessions.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        device_id = await self.store.get_session(digest, now)
        if device_id is None:
            raise unauthorized()
        device = await self.store.get_device(device_id)
        if device is None:
            raise unauthorized()
        if len(self._sessions) >= SESSION_CACHE_SIZE:
            self._sessions.clear()
        self._sessions[digest] = (replace(device, push_target=None), now + SESSION_CACHE_TTL)
        return device

    async def set_push_target(self, device: Device, target: dict[str, Any] | None) -> None:
        if device.kind != "phone":
            raise forbidden("only phones register a push target")
        await self.store.set_push_target(device.device_id, target)
        log("push target set" if target else "push target removed", device=short(device.device_id))

    # channels (both kinds) -----------------------------------------------------------
    async def _channel(self, channel_id: bytes, kind: ChannelKind) -> Channel:
        ch = await self.store.get_channel(channel_id)
        if ch is None or ch.kind != kind:
            raise unknown_channel()
        return ch

    @staticmethod
    def _ended(ch: Channel, now: float) -> ApiError | None:
        if ch.state is ChannelState.CLOSED:
            return ApiError(410, "closed", "the channel was closed")
        if ch.state is ChannelState.EXPIRED or now >= ch.expires_at:
            return ApiError(410, "expired", "the channel has expired; start a new one")
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
                raise ApiError(409, "already_answered", "this unlock request already has a reply")
            raise ApiError(
                409, "already_posted", f"'{msg_type}' was already posted on this channel"
            )
        if result is AddResult.NOT_OPEN or msg is None:
            fresh = await self.store.get_channel(ch.channel_id)
            raise (self._ended(fresh, time.time()) if fresh else None) or unknown_channel()
        self.metrics.messages_relayed.labels(msg_type).inc()
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

    @staticmethod
    def state_of(ch: Channel | None, now: float) -> str:
        if ch is None or ch.state is ChannelState.CLOSED:
            return "closed"
        if ch.state is ChannelState.EXPIRED or now >= ch.expires_at:
            return "expired"
        return "open"

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
        ch = await self._channel(channel_id, kind)
        if not self._is_party(ch, device):
            raise forbidden("this device is not a party of the channel")
        if kind == "unlock" and device.device_id != ch.creator:
            raise forbidden("only the desktop that made the request closes it")
        if await self.store.close_channel(channel_id, time.time()):
            await self.bus.publish(channel_topic(channel_id), {"event": "ended"})
            log("channel closed", kind=kind, channel=short(channel_id))

    # pairing channels ----------------------------------------------------------------
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

    def _check_created(self, result: CreateResult, kind: str) -> None:
        if result is CreateResult.EXISTS:
            raise ApiError(
                409,
                "channel_exists",
                "a channel with this id already exists; use a fresh random id",
            )
        if result is CreateResult.TOO_MANY:
            self.metrics.rate_limited.labels("pending").inc()
            raise ApiError(
                429,
                "too_many_pending",
                f"too many open {kind} channels for this device;"
                " close some or wait for them to expire",
                retry_after=10,
                scope="pending",
            )

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
                    409, "channel_taken", "another phone already answered this pairing channel"
                )
            ch = replace(ch, peer=device.device_id)
        elif device.device_id != ch.creator:
            raise forbidden("only the desktop that made the channel accepts on it")
        elif ch.peer is None:
            raise ApiError(409, "bad_state", "no phone has said hello on this channel yet")
        return await self._post(device, ch, msg_type, data)

    # pairings --------------------------------------------------------------------------
    async def register_pairing(
        self, device: Device, routing_id: bytes, peer_id: str
    ) -> dict[str, Any]:
        peer = await self.store.get_device(peer_id)
        if peer is None:
            raise ApiError(404, "unknown_device", "the peer device is not registered on this relay")
        if peer.kind == device.kind:
            raise ApiError(400, "bad_request", "a pairing joins a desktop and a phone")
        result = await self.store.register_pairing(
            routing_id, device.device_id, peer_id, device.kind, time.time()
        )
        if result is PairResult.CONFLICT:
            raise ApiError(
                409, "pairing_conflict", "this routing id is already used by other devices"
            )
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
            raise ApiError(404, "unknown_pairing", "no such pairing for this device")
        phone_id = device.device_id if device.kind == "phone" else pairing.peer_device_id
        closed = await self._close_requests_of(routing_id, phone_id)
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
                await self.bus.publish(channel_topic(ch.channel_id), {"event": "ended"})
                closed += 1
        return closed

    async def set_blocked(self, device: Device, routing_id: bytes, blocked: bool) -> dict[str, Any]:
        if device.kind != "phone":
            raise forbidden("only the phone blocks or unblocks a pairing")
        if not await self.store.set_blocked(routing_id, device.device_id, blocked):
            raise ApiError(404, "unknown_pairing", "no such pairing for this device")
        log("pairing blocked" if blocked else "pairing unblocked", routing=short(routing_id))
        return {"routing_id": b64e(routing_id), "blocked": blocked}

    # unlock channels -----------------------------------------------------------------------
    async def create_unlock(
        self,
        device: Device,
        request_id: bytes,
        routing_id: bytes,
        push: bytes,
        ttl: int | None,
        requester_ip: str,
        user_agent: str,
    ) -> dict[str, Any]:
        if device.kind != "desktop":
            raise forbidden("only a desktop creates unlock requests")
        pairing = await self.store.get_pairing(routing_id, device.device_id)
        if pairing is None or not pairing.linked:
            raise ApiError(
                403, "not_paired", "this routing id is not a linked pairing of this desktop"
            )
        if pairing.blocked:
            raise ApiError(
                403,
                "blocked",
                'the phone blocked requests from this desktop ("I did not ask for this");'
                " it must re-confirm on the phone",
            )
        phone_id = pairing.peer_device_id
        existing = await self.store.get_channel(request_id)
        if existing is not None:
            raise ApiError(
                409,
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
        self._check_created(
            await self.store.create_channel(ch, self.config.max_pending_unlock), "unlock"
        )
        self.metrics.channels_created.labels("unlock").inc()
        note = notification_json(ch)
        listeners = await self.bus.publish(
            device_topic(phone_id), {"event": "unlock", "notification": note}
        )
        self.metrics.notifications.inc(listeners)
        pushed = "none"
        phone = await self.store.get_device(phone_id)
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
        return {
            "request_id": b64e(request_id),
            "expires_at": ch.expires_at,
            "notified": {"listeners": listeners, "push": pushed},
        }

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
        if device.kind != "phone":
            raise forbidden("only phones list pending unlock requests")
        return [
            notification_json(c)
            for c in await self.store.open_unlock_for_peer(device.device_id, time.time())
        ]

    async def post_unlock(
        self, device: Device, request_id: bytes, msg_type: str, data: bytes
    ) -> Message:
        ch = await self._phone_channel(device, request_id)
        return await self._post(device, ch, msg_type, data)
