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
from unlatch.relay.models import (
    REQUEST_STATES,
    Channel,
    ChannelKind,
    ChannelState,
    Device,
    DeviceKind,
    Message,
)
from unlatch.relay.push_gateway import PushGateway
from unlatch.relay.ratelimit import RateLimiter
from unlatch.relay.store import AddResult, CreateResult, PairResult, Store

DELIVERY_GRACE = 60.0  # seconds a channel's messages outlive its expiry for a reconnecting waiter
WAIT_RECHECK = 5.0  # waiters re-read the store at least this often (a lost bus event costs this)
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
            raise ApiError("bad_request", "public_key is not a P-256 public key") from None
        message = auth.auth_message(self.config.origin, challenge, public_key)
        # Consume the challenge before checking the signature: a challenge is then
        # single use even when every attempt on it carries a bad signature.
        if not await self.store.take_challenge(challenge, time.time()):
            raise ApiError("bad_challenge", "unknown, used or expired challenge; ask for a new one")
        if not auth.verify_signature(public_key, message, signature):
            raise ApiError(
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
        ch = await self.store.get_channel(channel_id)
        if ch is None:
            return [], None
        msgs = await self.store.messages_after(channel_id, after)
        return [m for m in msgs if m.sender != device.device_id], ch

    @staticmethod
    def state_of(ch: Channel | None, now: float) -> str:
        if ch is None or ch.state is ChannelState.CLOSED:
            return "closed"
        if ch.state is ChannelState.EXPIRED or now >= ch.expires_at:
            return "expired"
        return "open"

    @staticmethod
    def outcome_of(ch: Channel | None) -> str | None:
        """Why a closed channel closed (stored on its tombstone), else None."""
        if ch is None or ch.state is not ChannelState.CLOSED:
            return None
        outcome = ch.meta.get("outcome")
        return outcome if isinstance(outcome, str) else "closed"

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
                get = asyncio.ensure_future(sub.get(min(remaining, WAIT_RECHECK)))
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
        now = time.time()
        posted = {m.type for m in await self.store.messages_after(channel_id, 0)}
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
                await self.bus.publish(channel_topic(ch.channel_id), {"event": "ended"})
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
            raise ApiError("not_paired", "this routing id is not a linked pairing of this desktop")
        if pairing.blocked:
            raise ApiError(
                "blocked",
                'the phone blocked requests from this desktop ("I did not ask for this");'
                " it must re-confirm on the phone",
            )
        phone_id = pairing.peer_device_id
        existing = await self.store.get_channel(request_id)
        if existing is not None:
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
        self._check_created(
            await self.store.create_channel(ch, self.config.max_pending_unlock), "unlock"
        )
        self.metrics.channels_created.labels("unlock").inc()
        for older in await self.store.open_unlock_for_peer(phone_id, now):
            if older.creator == device.device_id and older.routing_id == routing_id:
                if older.channel_id != request_id:
                    frame = request_frame(older.channel_id, "renewed", replaced_by=request_id)
                    await self.tell_phone(phone_id, frame)
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
        ch = await self._phone_channel(device, request_id)
        msg = await self._post(device, ch, msg_type, data)
        if msg_type == "reply":  # the phone's other open copies drop the card
            await self.tell_phone(device.device_id, request_frame(request_id, "answered"))
        return msg

    async def post_reply_and_wait(
        self, device: Device, request_id: bytes, data: bytes, wait: float
    ) -> tuple[Message, str]:
        """Post the reply, then wait up to ``wait`` s to learn whether a desktop took it.

        ``delivered``: the relay handed the reply to a desktop waiting on the
        channel (WebSocket or long-poll, on any node), or the desktop closed
        the request after it arrived. ``undelivered``: no desktop took it in
        time (it restarted, or stopped waiting); the reply stays stored until
        expiry, so a desktop that reconnects still gets it, and the phone
        hears ``answered`` with ``acknowledged`` then. Subscribed before
        posting, so a fast desktop's hand-over is not missed.
        """
        async with self.bus.subscribe(channel_topic(request_id)) as sub:
            msg = await self.post_unlock(device, request_id, "reply", data)
            deadline = time.monotonic() + wait
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
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
