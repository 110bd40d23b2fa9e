"""Device sign-in: challenges, sessions (cached, bounded), push targets."""

from __future__ import annotations

import secrets
import time
from dataclasses import replace
from typing import Any

from unlatch.relay import auth
from unlatch.relay.apierror import ApiError, forbidden, unauthorized
from unlatch.relay.codec import b64e
from unlatch.relay.logs import log, short
from unlatch.relay.models import (
    Device,
    DeviceKind,
)
from unlatch.relay.service_base import (
    SESSION_CACHE_SIZE,
    SESSION_CACHE_TTL,
    ServiceBase,
)


class AuthOps(ServiceBase):
    """Device sign-in: challenges, sessions (cached, bounded), push targets."""

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
