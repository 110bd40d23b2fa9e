"""The async Python client of the relay, used by the desktop agent and the Python phone.

It speaks the API of docs/relay.md: signs in with the device's
:class:`~unlatch.relay.device_key.DeviceKey` (a signed challenge bound to the
relay's origin; the session token is kept in memory only), and turns every
refusal into a typed :class:`~unlatch.relay.errors.RelayError`.

Waiting is built to *always* deliver: :meth:`RelayClient.channel_messages`
listens on a WebSocket, and when the socket drops or the relay restarts it
reconnects with ``after=<last seq>`` so a reply posted meanwhile is still
delivered; when WebSockets do not work at all (a proxy that refuses upgrades)
it falls back to long-polling. Payloads are opaque bytes in and out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from unlatch import __version__
from unlatch.relay.auth import auth_message, canonical_origin
from unlatch.relay.codec import CodecError, b64d, b64e, json_loads
from unlatch.relay.device_key import DeviceKey
from unlatch.relay.errors import (
    CODES,
    AlreadyAnswered,
    AlreadyPosted,
    AuthFailed,
    ChannelExpired,
    ChannelGone,
    Forbidden,
    LifetimeTooLong,
    PairingRejected,
    RelayError,
    RelayUnavailable,
    UnknownChannel,
    error_for,
    status_of,
)

DeviceKindT = Literal["desktop", "phone"]
ChannelKindT = Literal["pairing", "unlock"]
LONG_POLL = 25
MAX_FRAME = 64 * 1024


@dataclass(frozen=True)
class ChannelMessage:
    """A message from the other party of a channel (opaque ``data``)."""

    seq: int
    type: str
    data: bytes
    sender: str
    at: float

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ChannelMessage:
        try:
            return cls(
                seq=int(obj["seq"]),
                type=str(obj["type"]),
                data=b64d(obj["data"], max_len=MAX_FRAME),
                sender=str(obj["sender"]),
                at=float(obj["at"]),
            )
        except (KeyError, TypeError, ValueError, CodecError):
            raise RelayError("the relay sent a malformed message", code="protocol") from None


@dataclass(frozen=True)
class UnlockNotification:
    """An unlock request as the phone sees it: the desktop's opaque bytes + relay metadata."""

    request_id: bytes
    routing_id: bytes
    push: bytes
    created_at: float
    expires_at: float
    requester_address: str
    requester_user_agent: str

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> UnlockNotification:
        try:
            requester = obj.get("requester") or {}
            return cls(
                request_id=b64d(obj["request_id"], max_len=16),
                routing_id=b64d(obj["routing_id"], max_len=16),
                push=b64d(obj["push"], max_len=4096),
                created_at=float(obj["created_at"]),
                expires_at=float(obj["expires_at"]),
                requester_address=str(requester.get("address", ""))[:100],
                requester_user_agent=str(requester.get("user_agent", ""))[:200],
            )
        except (KeyError, TypeError, ValueError, AttributeError, CodecError):
            raise RelayError("the relay sent a malformed notification", code="protocol") from None


@dataclass(frozen=True)
class RequestUpdate:
    """Where one of this phone's requests stands, as the relay says (``state``).

    ``open``, ``renewed`` (``replaced_by`` is the newer request), ``answered``
    (``acknowledged``: the desktop closed it after reading the reply),
    ``cancelled``, ``expired`` or ``closed`` (docs/relay.md, listener frames).
    """

    request_id: bytes
    state: str
    acknowledged: bool = False
    replaced_by: bytes | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RequestUpdate:
        try:
            replaced = obj.get("replaced_by")
            return cls(
                request_id=b64d(obj["request_id"], max_len=16),
                state=str(obj["state"])[:20],
                acknowledged=bool(obj.get("acknowledged", False)),
                replaced_by=b64d(replaced, max_len=16) if isinstance(replaced, str) else None,
            )
        except (KeyError, TypeError, ValueError, CodecError):
            raise RelayError("the relay sent a malformed request update", code="protocol") from None


@dataclass(frozen=True)
class PairingUpdate:
    """A pairing of this phone changed on the relay (``state`` "removed": unpaired)."""

    routing_id: bytes
    state: str

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> PairingUpdate:
        try:
            return cls(b64d(obj["routing_id"], max_len=16), str(obj["state"])[:20])
        except (KeyError, TypeError, ValueError, CodecError):
            raise RelayError("the relay sent a malformed pairing update", code="protocol") from None


ListenItem = UnlockNotification | RequestUpdate | PairingUpdate


@dataclass(frozen=True)
class PairingInfo:
    """One of this device's pairings on the relay."""

    routing_id: bytes
    peer_device_id: str
    linked: bool
    blocked: bool
    created_at: float


def _closed(outcome: object) -> ChannelGone:
    """The error for a channel the relay reports closed, naming why when it says."""
    if outcome == "rejected":
        return PairingRejected(CODES["rejected"].message, code="rejected")
    return ChannelGone("the channel was closed", code="closed")


# seconds close_unlock waits for the relay's "closed" frame after sending {"type": "close"}
# on the request's WebSocket, before it falls back to DELETE (which is idempotent)
CLOSE_CONFIRM = 2.0
CLOSE_FRAME = '{"type":"close"}'


@dataclass
class _Following:
    """A channel's WebSocket while a follower reads it; ``ended``: True once it said closed."""

    ws: ClientConnection
    ended: asyncio.Future[bool]


@dataclass
class _Create:
    """An unlock channel still to be created by the first socket that follows it.

    ``attempts``: auth frames that carried it. After a socket dropped before
    ``ready``, the relay may or may not have created the channel: a later
    attempt told ``channel_exists`` (the id is this desktop's fresh random
    one) takes it as created by the earlier one.
    """

    body: dict[str, Any]
    on_created: Callable[[dict[str, Any]], None]
    attempts: int = 0
    done: bool = False

    def created(self, answer: dict[str, Any]) -> None:
        if not self.done:
            self.done = True
            self.on_created(answer)


class _CreateByPost(Exception):
    """The relay does not create on a socket (it predates it): create with ``POST``."""


class _Reconnect(Exception):
    """The socket dropped or the relay is restarting: reconnect and resume."""


class _NoWebSocket(Exception):
    """WebSockets do not work on this path: fall back to long-polling."""


def _error_from(status: int, body: Any, headers: httpx.Headers | None = None) -> RelayError:
    """The typed exception for an error answer; its class comes from the registry (errors.json)."""
    code = "http_error"
    message = f"the relay answered {status}"
    if isinstance(body, dict):
        code = str(body.get("error", code))[:40]
        message = str(body.get("message", message))[:300]
    retry: float | None = None
    if status == 429:
        retry = 1.0
        raw: Any = headers.get("retry-after") if headers is not None else None
        if raw is None and isinstance(body, dict):
            raw = body.get("retry_after")
        with contextlib.suppress(TypeError, ValueError):
            retry = float(raw) if raw is not None else retry
    if status >= 500:
        return RelayUnavailable(message, status=status, code=code)
    return error_for(status, code, message, retry_after=retry)


class RelayClient:
    """One device's connection to one relay.

    ``kind`` is fixed per key ("desktop" or "phone"). Use as an async context
    manager, or call :meth:`aclose`. ``prefer_websocket=False`` forces the
    long-poll path (tests, or networks that block WebSockets). ``ssl_context``
    trusts a private CA (a self-hosted relay with its own certificate).
    ``public_url`` is the deployment's public URL when ``base_url`` reaches one
    node directly (bypassing the load balancer): authentication is signed for
    the public origin, which every node of the deployment accepts.
    """

    def __init__(
        self,
        base_url: str,
        key: DeviceKey,
        kind: DeviceKindT,
        *,
        timeout: float = 10.0,
        user_agent: str | None = None,
        prefer_websocket: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        public_url: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.origin = canonical_origin(public_url or self.base_url)
        self.key = key
        self.kind: DeviceKindT = kind
        self.prefer_websocket = prefer_websocket
        self._timeout = timeout
        self._user_agent = user_agent or f"unlatch-{kind}/{__version__}"
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, read=LONG_POLL + timeout),
            headers={"user-agent": self._user_agent},
            follow_redirects=False,
            verify=ssl_context if ssl_context is not None else True,
        )
        self._ssl = ssl_context
        self._token: str | None = None
        self._info: dict[str, Any] | None = None
        self._login_lock = asyncio.Lock()
        self._following: dict[tuple[str, bytes], _Following] = {}
        ws_base = self.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self._ws_base = ws_base

    @property
    def device_id(self) -> str:
        return self.key.device_id

    async def __aenter__(self) -> RelayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # transport ----------------------------------------------------------------
    async def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        read_timeout: float | None = None,
    ) -> Any:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        timeout = None
        if read_timeout is not None:
            timeout = httpx.Timeout(self._timeout, read=read_timeout)
        try:
            response = await self._http.request(
                method,
                path,
                json=body,
                params=params,
                headers=headers,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise RelayUnavailable(
                f"cannot reach the relay at {self.base_url} ({type(exc).__name__})"
            ) from None
        try:
            data = json_loads(response.content) if response.content else {}
        except ValueError:
            data = None
        if response.status_code >= 400:
            raise _error_from(response.status_code, data, response.headers)
        return data

    async def login(self) -> str:
        """Open a session: sign the relay's challenge with the device key."""
        async with self._login_lock:
            challenge_resp = await self._send("POST", "/v1/auth/challenge", {})
            try:
                challenge = b64d(challenge_resp["challenge"], max_len=64)
            except (KeyError, TypeError, CodecError):
                raise RelayError("the relay sent a malformed challenge", code="protocol") from None
            signature = self.key.sign(auth_message(self.origin, challenge, self.key.public_key_raw))
            session = await self._send(
                "POST",
                "/v1/auth/session",
                {
                    "public_key": b64e(self.key.public_key_raw),
                    "kind": self.kind,
                    "challenge": b64e(challenge),
                    "signature": b64e(signature),
                },
            )
            token = session.get("token") if isinstance(session, dict) else None
            if not isinstance(token, str):
                raise RelayError("the relay sent a malformed session", code="protocol")
            self._token = token
            return token

    async def _token_now(self) -> str:
        return self._token or await self.login()

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        *,
        read_timeout: float | None = None,
    ) -> Any:
        """An authenticated call; signs in (again) when the session is missing or expired."""
        token = await self._token_now()
        try:
            return await self._send(
                method, path, body, params, token=token, read_timeout=read_timeout
            )
        except AuthFailed as exc:
            if exc.code != "unauthorized":
                raise
            self._token = None
            token = await self._token_now()
            return await self._send(
                method, path, body, params, token=token, read_timeout=read_timeout
            )

    async def info(self) -> dict[str, Any]:
        """GET /v1/info: the relay's version and the limits a client follows (cached)."""
        if self._info is None:
            data = await self._send("GET", "/v1/info")
            if not isinstance(data, dict) or not isinstance(data.get("limits"), dict):
                raise RelayError("the relay sent a malformed /v1/info", code="protocol")
            self._info = data
        return self._info

    async def unlock_ttl_max(self) -> int | None:
        """The longest unlock lifetime this relay accepts (None: a relay without /v1/info)."""
        try:
            limit = (await self.info())["limits"].get("unlock_ttl_max")
        except RelayError as exc:
            if exc.code != "not_found":
                raise
            return None
        return limit if isinstance(limit, int) and not isinstance(limit, bool) else None

    # devices ------------------------------------------------------------------------
    async def me(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/v1/devices/me")
        return result

    async def set_push_target(self, target: dict[str, Any] | None) -> None:
        """Register/replace (or with None remove) this phone's push target."""
        if target is None:
            await self.request("DELETE", "/v1/devices/me/push")
        else:
            await self.request("PUT", "/v1/devices/me/push", target)

    async def vapid_public_key(self) -> str:
        data = await self._send("GET", "/v1/push/vapid-public-key")
        return str(data["public_key"])

    # pairing channels -------------------------------------------------------------------
    async def create_pairing_channel(self, channel_id: bytes, ttl: int | None = None) -> float:
        """Create the pairing channel (desktop); returns its expiry time."""
        body: dict[str, Any] = {"channel_id": b64e(channel_id)}
        if ttl is not None:
            body["ttl"] = ttl
        data = await self.request("POST", "/v1/pairing", body)
        return float(data["expires_at"])

    async def post_hello(self, channel_id: bytes, data: bytes) -> None:
        await self.request("POST", f"/v1/pairing/{b64e(channel_id)}/hello", {"data": b64e(data)})

    async def post_accept(self, channel_id: bytes, data: bytes) -> None:
        await self.request("POST", f"/v1/pairing/{b64e(channel_id)}/accept", {"data": b64e(data)})

    async def wait_pairing_message(self, channel_id: bytes, *, timeout: float) -> ChannelMessage:
        """The other side's message (``hello`` for the desktop, ``accept`` for the phone)."""
        async for msg in self.channel_messages("pairing", channel_id, timeout=timeout):
            return msg
        raise ChannelExpired("the pairing channel ended without a message", code="expired")

    async def close_pairing_channel(self, channel_id: bytes) -> None:
        with contextlib.suppress(ChannelGone, ChannelExpired):
            await self.request("DELETE", f"/v1/pairing/{b64e(channel_id)}")

    # pairings -------------------------------------------------------------------------------
    async def register_pairing(self, routing_id: bytes, peer_device_id: str) -> str:
        """Register this side of a pairing; returns "linked" or "pending"."""
        data = await self.request(
            "POST",
            "/v1/pairings",
            {"routing_id": b64e(routing_id), "peer_device_id": peer_device_id},
        )
        return str(data["state"])

    async def list_pairings(self) -> list[PairingInfo]:
        data = await self.request("GET", "/v1/pairings")
        return [
            PairingInfo(
                routing_id=b64d(p["routing_id"], max_len=16),
                peer_device_id=str(p["peer_device_id"]),
                linked=p["state"] == "linked",
                blocked=bool(p["blocked"]),
                created_at=float(p["created_at"]),
            )
            for p in data["pairings"]
        ]

    async def delete_pairing(self, routing_id: bytes) -> None:
        await self.request("DELETE", f"/v1/pairings/{b64e(routing_id)}")

    async def block(self, routing_id: bytes) -> None:
        """ "I did not ask for this": refuse further requests from that desktop (phone)."""
        await self.request("POST", f"/v1/pairings/{b64e(routing_id)}/block", {})

    async def unblock(self, routing_id: bytes) -> None:
        """Re-confirm a blocked desktop (phone)."""
        await self.request("POST", f"/v1/pairings/{b64e(routing_id)}/unblock", {})

    # unlock channels: desktop -----------------------------------------------------------------
    async def create_unlock(
        self, request_id: bytes, routing_id: bytes, push: bytes, ttl: int | None = None
    ) -> dict[str, Any]:
        """Create the unlock channel and wake the phone; returns the relay's answer.

        A ``ttl`` over the relay's advertised unlock lifetime raises
        :class:`LifetimeTooLong` before anything is sent: the message says the
        limit and the setting to change, where the relay's 400 would not.
        (:meth:`follow_new_unlock` creates and follows in one round trip.)
        """
        body = await self._new_unlock(routing_id, push, ttl)
        result: dict[str, Any] = await self.request(
            "POST", "/v1/unlock", {"request_id": b64e(request_id), **body}
        )
        return result

    async def follow_new_unlock(
        self,
        request_id: bytes,
        routing_id: bytes,
        push: bytes,
        ttl: int | None = None,
        *,
        timeout: float,
        on_created: Callable[[dict[str, Any]], None],
    ) -> AsyncIterator[ChannelMessage]:
        """Create the unlock channel and follow it: :meth:`create_unlock`, then
        :meth:`channel_messages`, in one round trip where the relay allows it.

        The request's WebSocket carries the create in its auth frame
        (docs/relay.md, WebSockets): the phone is woken and the desktop is
        waiting once ``ready`` comes, with no ``POST /v1/unlock`` before it.
        ``on_created`` gets the relay's answer (``create_unlock``'s) once, before
        any message. An error raised before it was called is the create's
        refusal (the same typed errors as :meth:`create_unlock`). Without
        WebSockets, or on a relay that does not create on a socket, the create
        is a ``POST`` and following falls back as :meth:`channel_messages` does.
        """
        body = await self._new_unlock(routing_id, push, ttl)
        create = _Create(body, on_created)
        async for msg in self.channel_messages(
            "unlock", request_id, timeout=timeout, create=create
        ):
            yield msg

    async def _new_unlock(self, routing_id: bytes, push: bytes, ttl: int | None) -> dict[str, Any]:
        """A new unlock request's fields but its id; a ``ttl`` over the relay's is refused here."""
        if ttl is not None:
            limit = await self.unlock_ttl_max()
            if limit is not None and ttl > limit:
                raise LifetimeTooLong(
                    f"this desktop's unlock requests live {ttl} s, but the relay at"
                    f" {self.base_url} keeps them at most {limit} s: set unlock_ttl to"
                    f" {limit} or less (unlatch desktop --unlock-ttl {limit},"
                    " or [desktop] unlock_ttl in the config file)",
                    limit=limit,
                )
        body: dict[str, Any] = {"routing_id": b64e(routing_id), "push": b64e(push)}
        if ttl is not None:
            body["ttl"] = ttl
        return body

    async def wait_reply(
        self,
        request_id: bytes,
        *,
        timeout: float,
        on_seen: Callable[[bytes], Awaitable[None] | None] | None = None,
        acknowledge: bool = True,
    ) -> bytes:
        """Wait for the phone's reply (``on_seen`` gets a ``seen``), then close the channel."""
        async for msg in self.channel_messages("unlock", request_id, timeout=timeout):
            if msg.type == "seen" and on_seen is not None:
                result = on_seen(msg.data)
                if asyncio.iscoroutine(result):
                    await result
            elif msg.type == "reply":
                if acknowledge:
                    await self.close_unlock(request_id)
                return msg.data
        raise ChannelExpired("the unlock request expired without a reply", code="expired")

    async def close_unlock(self, request_id: bytes) -> None:
        """Acknowledge/cancel: the relay closes the channel.

        When this client follows the request on its WebSocket (the reply came
        there), the acknowledgement goes on that socket (``{"type": "close"}``)
        and the relay's ``closed`` frame confirms it: no HTTP request, one
        less per unlock (issue 15). Otherwise, or without a confirmation
        within :data:`CLOSE_CONFIRM` seconds, ``DELETE`` (closing twice is harmless).
        """
        live = self._following.get(("unlock", request_id))
        if live is not None and not live.ended.done():
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                await live.ws.send(CLOSE_FRAME)
                async with asyncio.timeout(CLOSE_CONFIRM):
                    if await asyncio.shield(live.ended):
                        return
        with contextlib.suppress(ChannelGone, ChannelExpired):
            await self.request("DELETE", f"/v1/unlock/{b64e(request_id)}")

    # unlock channels: phone --------------------------------------
    async def get_unlock(self, request_id: bytes) -> UnlockNotification:
        return UnlockNotification.from_json(
            await self.request("GET", f"/v1/unlock/{b64e(request_id)}")
        )

    async def pending_unlocks(self) -> list[UnlockNotification]:
        data = await self.request("GET", "/v1/unlock/pending")
        return [UnlockNotification.from_json(n) for n in data["requests"]]

    async def post_seen(self, request_id: bytes, data: bytes) -> None:
        await self._post_once(f"/v1/unlock/{b64e(request_id)}/seen", data)

    async def post_reply(self, request_id: bytes, data: bytes, *, wait: int = 0) -> str | None:
        """Post the reply; with ``wait`` (1-10 s), learn whether a desktop took it.

        Returns the relay's ``delivery`` ("delivered": handed to a desktop
        still waiting; "queued": none took it in time but the request is still open;
        "undelivered": the request ended without a desktop taking it), or None without
        ``wait`` or when a retry found the reply already posted.
        """
        extra = {"wait": wait} if wait else {}
        path = f"/v1/unlock/{b64e(request_id)}/reply"
        answer = await self._post_once(path, data, extra, read_timeout=wait + self._timeout)
        delivery = answer.get("delivery") if answer else None
        return delivery if isinstance(delivery, str) else None

    async def unlock_state(self, request_id: bytes) -> RequestUpdate:
        """Where a request stands now (also a closed one, for 15 minutes)."""
        return RequestUpdate.from_json(
            await self.request("GET", f"/v1/unlock/{b64e(request_id)}/state")
        )

    async def _post_once(
        self,
        path: str,
        data: bytes,
        extra: dict[str, Any] | None = None,
        read_timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """Post with retries on a lost connection; the relay's answer.

        Only this phone may post on the channel, so "already posted" after a
        retry means an earlier attempt did land: that counts as success (None).
        """
        for attempt in range(3):
            try:
                answer = await self.request(
                    "POST", path, {"data": b64e(data), **(extra or {})}, read_timeout=read_timeout
                )
                return answer if isinstance(answer, dict) else None
            except RelayUnavailable:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.3 * (attempt + 1))
            except AlreadyPosted:
                if attempt == 0:
                    raise
                return None
        return None

    # waiting -----------------------------------------------------
    async def channel_messages(
        self,
        kind: ChannelKindT,
        channel_id: bytes,
        *,
        timeout: float,
        after: int = 0,
        create: _Create | None = None,
    ) -> AsyncIterator[ChannelMessage]:
        """Yield the other party's messages until the channel ends or ``timeout`` passes.

        Reconnects and resumes after drops and relay restarts; falls back to
        long-polling when WebSockets fail. Raises :class:`ChannelExpired` /
        :class:`ChannelGone` when the channel ends, :class:`RelayUnavailable`
        if the relay stays unreachable until the deadline. ``create``: the
        unlock channel is made first (:meth:`follow_new_unlock`).
        """
        deadline = time.monotonic() + timeout
        use_ws = self.prefer_websocket
        ws_failures = 0
        backoff = 0.2
        last_error: RelayError | None = None
        while time.monotonic() < deadline:
            try:
                if create is not None and not create.done and not use_ws:
                    await self._create_by_post(channel_id, create)
                if use_ws:
                    source = self._ws_channel(kind, channel_id, after, deadline, create)
                else:
                    source = self._poll_channel(kind, channel_id, after, deadline)
                async for msg in source:
                    after = msg.seq
                    backoff = 0.2
                    yield msg
                return  # deadline reached inside the source
            except _NoWebSocket:
                ws_failures += 1
                if ws_failures >= 2:
                    use_ws = False
            except _CreateByPost:
                assert create is not None
                await self._create_by_post(channel_id, create)
                continue  # and follow on a socket at once
            except _Reconnect:
                pass
            except RelayUnavailable as exc:
                if create is not None and not create.done:
                    raise  # the request was never made: say so now, not at the deadline
                last_error = exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            await asyncio.sleep(min(backoff, remaining) * (0.75 + random.random() / 2))
            backoff = min(backoff * 2, 3.0)
        if last_error is not None:
            raise last_error

    async def _poll_channel(
        self, kind: ChannelKindT, channel_id: bytes, after: int, deadline: float
    ) -> AsyncIterator[ChannelMessage]:
        path = f"/v1/{kind}/{b64e(channel_id)}/wait"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            wait = int(min(LONG_POLL, max(remaining, 0)))
            data = await self.request(
                "GET",
                path,
                params={"after": after, "timeout": wait},
                read_timeout=wait + self._timeout,
            )
            for raw in data.get("messages", []):
                msg = ChannelMessage.from_json(raw)
                after = msg.seq
                yield msg
            state = data.get("state")
            if state == "expired":
                raise ChannelExpired("the channel has expired", code="expired")
            if state == "closed":
                raise _closed(data.get("outcome"))

    async def _ws_connect(self, path: str) -> ClientConnection:
        try:
            return await connect(
                self._ws_base + path,
                open_timeout=self._timeout,
                max_size=MAX_FRAME,
                user_agent_header=self._user_agent,
                ping_interval=20,
                ping_timeout=20,
                compression=None,
                ssl=self._ssl if self._ws_base.startswith("wss://") else None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status >= 500:
                raise _Reconnect from None
            raise _NoWebSocket from None
        except InvalidHandshake:
            raise _NoWebSocket from None
        except (OSError, TimeoutError):
            raise RelayUnavailable(f"cannot reach the relay at {self.base_url}") from None

    async def _ws_open(
        self, path: str, hello: dict[str, Any]
    ) -> tuple[ClientConnection, dict[str, Any]]:
        """Connect and authenticate (the socket and its ``ready``); re-login once if the
        session expired."""
        for attempt in range(2):
            ws = await self._ws_connect(path)
            try:
                await ws.send(
                    json.dumps({"type": "auth", "token": await self._token_now(), **hello})
                )
                async with asyncio.timeout(self._timeout):
                    raw = await ws.recv()
                parsed = json_loads(raw)
            except (ConnectionClosed, TimeoutError, ValueError):
                await ws.close()
                raise _Reconnect from None
            # anything but an object is not a frame of ours: handled below as "reconnect"
            first: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
            if first.get("type") == "ready":
                return ws, first
            await ws.close()
            if first.get("type") == "error":
                # the frame names a registry code; its status (and class) come from there
                err = _error_from(status_of(str(first.get("error"))), first)
                if isinstance(err, AuthFailed) and attempt == 0:
                    self._token = None
                    continue
                raise err
            raise _Reconnect
        raise AuthFailed("the relay refused this device's session", code="unauthorized")

    async def _create_by_post(self, request_id: bytes, create: _Create) -> None:
        """Make the unlock channel with ``POST /v1/unlock`` (no socket, or an older relay)."""
        body = {"request_id": b64e(request_id), **create.body}
        create.created(await self.request("POST", "/v1/unlock", body))

    async def _ws_create(self, path: str, create: _Create) -> ClientConnection:
        """Open an unlock socket whose auth frame creates the channel; ``create.created``."""
        create.attempts += 1
        try:
            ws, ready = await self._ws_open(path, {"after": 0, "create": create.body})
        except UnknownChannel:
            # a relay that predates creating on a socket ignored "create" and found no channel
            raise _CreateByPost from None
        except RelayError as exc:
            if exc.code != "channel_exists" or create.attempts == 1:
                raise
            # an earlier attempt's socket dropped after the relay made the channel (the id is
            # this request's fresh random one): it is ours; follow it
            ws, ready = await self._ws_open(path, {"after": 0})
        created = ready.get("created")
        create.created(created if isinstance(created, dict) else {})
        return ws

    async def _ws_channel(
        self,
        kind: ChannelKindT,
        channel_id: bytes,
        after: int,
        deadline: float,
        create: _Create | None = None,
    ) -> AsyncIterator[ChannelMessage]:
        path = f"/v1/{kind}/{b64e(channel_id)}/ws"
        if create is None or create.done:
            ws, _ = await self._ws_open(path, {"after": after})
        else:
            ws = await self._ws_create(path, create)
        live = _Following(ws, asyncio.get_running_loop().create_future())
        self._following[(kind, channel_id)] = live
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    # (asyncio.timeout, not wait_for: no task and no extra loop steps
                    # per frame between the reply's arrival and the desktop acting on it)
                    async with asyncio.timeout(remaining):
                        raw = await ws.recv()
                except TimeoutError:
                    return
                except ConnectionClosed:
                    raise _Reconnect from None
                try:
                    frame = json_loads(raw)
                except ValueError:
                    continue
                ftype = frame.get("type") if isinstance(frame, dict) else None
                if ftype == "message":
                    yield ChannelMessage.from_json({**frame, "type": frame.get("kind")})
                elif ftype == "expired":
                    raise ChannelExpired("the channel has expired", code="expired")
                elif ftype == "closed":
                    if not live.ended.done():
                        live.ended.set_result(True)  # confirms a close sent on this socket
                    raise _closed(frame.get("outcome"))
                elif ftype == "shutdown":
                    raise _Reconnect
                elif ftype == "ping":
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send('{"type":"pong"}')
        finally:
            if self._following.get((kind, channel_id)) is live:
                del self._following[(kind, channel_id)]
            if not live.ended.done():
                live.ended.set_result(False)
            with contextlib.suppress(Exception):
                await ws.close()

    async def listen(self, *, poll_interval: float = 3.0) -> AsyncIterator[UnlockNotification]:
        """Yield unlock requests for this phone as they arrive, forever (cancel to stop).

        Uses the ``/v1/listen`` WebSocket, reconnecting after drops and relay
        restarts; falls back to polling ``/v1/unlock/pending`` when WebSockets
        fail. Each request is yielded once. :meth:`events` also yields what
        happens to them.
        """
        async for item in self.events(poll_interval=poll_interval):
            if isinstance(item, UnlockNotification):
                yield item

    async def events(self, *, poll_interval: float = 3.0) -> AsyncIterator[ListenItem]:
        """Requests, and their fate: :class:`UnlockNotification`, :class:`RequestUpdate`
        (renewed, answered, cancelled, expired, closed) and :class:`PairingUpdate`
        (a pairing removed), forever (cancel to stop).

        Polling fallback: a request that leaves the pending list is looked up
        (``GET /v1/unlock/{id}/state``) and its update yielded.
        """
        seen: dict[bytes, float] = {}
        use_ws = self.prefer_websocket
        ws_failures = 0
        backoff = 0.2

        def fresh(note: UnlockNotification) -> bool:
            now = time.time()
            for rid in [r for r, exp in seen.items() if exp < now - 60]:
                del seen[rid]
            if note.request_id in seen:
                return False
            seen[note.request_id] = note.expires_at
            return True

        while True:
            try:
                if use_ws:
                    ws, _ = await self._ws_open("/v1/listen", {})
                    try:
                        async for raw in ws:
                            frame = json_loads(raw)
                            ftype = frame.get("type") if isinstance(frame, dict) else None
                            if ftype == "unlock":
                                note = UnlockNotification.from_json(frame)
                                if fresh(note):
                                    backoff = 0.2
                                    yield note
                            elif ftype == "request":
                                yield RequestUpdate.from_json(frame)
                            elif ftype == "pairing":
                                yield PairingUpdate.from_json(frame)
                            elif ftype == "ping":
                                await ws.send('{"type":"pong"}')
                    except (ConnectionClosed, ValueError):
                        pass
                    finally:
                        with contextlib.suppress(Exception):
                            await ws.close()
                else:
                    current = await self.pending_unlocks()
                    for note in current:
                        if fresh(note):
                            yield note
                    ids = {n.request_id for n in current}
                    for rid in [r for r in seen if r not in ids and seen[r] > 0]:
                        seen[rid] = 0.0  # reported once; dropped by fresh() later
                        with contextlib.suppress(UnknownChannel, Forbidden):
                            yield await self.unlock_state(rid)
                    await asyncio.sleep(poll_interval)
                    continue
            except _NoWebSocket:
                ws_failures += 1
                if ws_failures >= 2:
                    use_ws = False
                continue
            except (_Reconnect, RelayUnavailable):
                pass
            await asyncio.sleep(backoff * (0.75 + random.random() / 2))
            backoff = min(backoff * 2, 3.0)


__all__ = [
    "AlreadyAnswered",
    "ChannelMessage",
    "ListenItem",
    "PairingInfo",
    "PairingUpdate",
    "RelayClient",
    "RequestUpdate",
    "UnlockNotification",
]
