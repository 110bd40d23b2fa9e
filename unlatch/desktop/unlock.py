"""PhoneUnlockService: "Request unlock from phone", from the desktop's side.

What happens to a request, and when, is decided by the sans-IO
:class:`~unlatch.desktop.sessions.unlock.UnlockSession` (one per button
press: QR renewals, the predecessor that stays answerable, expiry, replies,
cancel, revocation). This module is its asyncio driver, and nothing more:

* one :class:`UnlockAttempt` (a :class:`~unlatch.desktop.driver.SessionDriver`)
  per press, with one task;
* a follower per open relay channel: :meth:`RelayClient.channel_messages`
  (WebSocket resumed with ``after`` = last seq when it drops, long-poll as
  fallback), whose messages and end become the session's events;
* the commands: create/close channels, unlock the vault with the phone's
  share (KEK = phone_slot_kek(K_P, K_L, pairing_id)), record the unlock
  policy a reply stated (:meth:`PairingStore.learn_policy`), show the view, tick.

Number matching is the phone's to allow, per pairing (docs/protocol.md 6.8):
the desktop's setting is a wish, used only with a phone whose last
authenticated reply said it allows it; every reply updates what the desktop
knows. A phone that does not allow it refuses such a request whatever this
desktop's files say. The session decides all of it; :meth:`PhoneUnlockService.start`
only hands it the setting and the phone's recorded policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from unlatch.desktop.clock import WALL_CLOCK, Clock
from unlatch.desktop.driver import FOLLOW_SLACK, SessionDriver
from unlatch.desktop.errors import NotPairedError, UnlockFailedError
from unlatch.desktop.notifier import Notifier
from unlatch.desktop.sessions.base import Cancel, Command, Event, Restart, SessionError, Start
from unlatch.desktop.sessions.unlock import (
    DEFAULT_RENEWALS,
    FINAL_STATES,
    MESSAGES,
    RENEW_BEFORE,
    REVOKED_MESSAGE,
    ChannelClosed,
    ChannelCreated,
    ChannelCreateFailed,
    CloseChannel,
    CreateChannel,
    FollowChannel,
    LearnPolicy,
    Refusal,
    Renew,
    Reply,
    Revoke,
    Seen,
    ShowView,
    UnlockSession,
    UnlockStage,
    UnlockVault,
    VaultUnlocked,
    VaultUnlockFailed,
    answer_event,
)
from unlatch.desktop.store import PairedPhone, PairingStore
from unlatch.desktop.vault_port import VaultPort
from unlatch.errors import UnlatchError
from unlatch.protocol import DesktopUnlock, UnlockMode, app_link, phone_slot_kek
from unlatch.relay.client import ChannelMessage, RelayClient
from unlatch.vault.localkeys import LocalKeyNotFoundError, LocalKeyStore

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RENEWALS",
    "FINAL_STATES",
    "MESSAGES",
    "RENEW_BEFORE",
    "REVOKED_MESSAGE",
    "PhoneUnlockService",
    "Timing",
    "UnlockAttempt",
]

UNEXPECTED = "the unlock failed unexpectedly (see the agent log)"  # the vault unlock's


@dataclass
class Timing:
    """Where the time of the last reply went (seconds), for bench/bench_e2e.py."""

    reply_received_at: float = 0.0  # the follower read the relay's frame
    handled_at: float = 0.0  # the session's task took it from its queue
    hpke_open: float = 0.0
    slot_unwrap: float = 0.0
    agent_unlock: float = 0.0
    unlocked_at: float = 0.0


class UnlockAttempt(SessionDriver):
    """What the user started by pressing the button: the session, its driver, its view."""

    session: UnlockSession

    def __init__(
        self, service: PhoneUnlockService, phone: PairedPhone, session: UnlockSession
    ) -> None:
        super().__init__(session, service)
        self.id = secrets.token_urlsafe(12)
        self.service = service
        self.phone = phone
        self.app_base = service.app_base  # the phone app the QR links to
        self.timing = Timing()
        self.first_error: UnlatchError | None = None  # why the first channel was not made

    # ----------------------------------------------------------- the view

    @property
    def mode(self) -> UnlockMode:
        return self.session.mode

    @property
    def state(self) -> str:
        return self.session.state.public

    @property
    def message(self) -> str:
        return self.session.message

    @property
    def request(self) -> DesktopUnlock:
        return self.session.request

    @property
    def generation(self) -> int:
        return self.session.generation

    @property
    def notified(self) -> dict[str, Any]:
        return self.session.notified

    @property
    def link(self) -> str | None:
        """The app link the current request's QR shows.

        None with number matching (no QR is made) and once the request is over:
        derived, not stored, so no copy of the QR secret outlives the request.
        """
        qr_bytes = self.request.qr_bytes
        return None if qr_bytes is None else app_link(self.app_base, qr_bytes)

    def view(self) -> dict[str, Any]:
        """JSON for the page: no link, no secret (the QR image carries those)."""
        return {
            "id": self.id,
            "state": self.state,
            "message": self.message,
            "phone": {"id": self.phone.id, "label": self.phone.label},
            "mode": "number" if self.mode is UnlockMode.NUMBER_MATCH else "scan",
            "number": self.request.number,
            "expires_at": self.request.expires_at,
            "generation": self.generation,
            "notified": self.notified,
        }

    # ------------------------------------------------------ the commands

    def handle(self, event: Event) -> list[Command]:
        if not isinstance(event, Reply | Refusal):
            return super().handle(event)
        t0 = self.timing.handled_at = time.perf_counter()
        try:
            return super().handle(event)
        finally:
            self.timing.hpke_open = time.perf_counter() - t0

    async def execute(self, command: Command) -> None:
        relay = self.service.relay
        if isinstance(command, CreateChannel):
            # made and followed in one round trip: the request's socket creates it
            channel = command.channel
            made: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            messages = relay.follow_new_unlock(
                channel,
                command.routing_id,
                command.push,
                command.ttl,
                timeout=self.session.ttl + FOLLOW_SLACK,
                on_created=made.set_result,
            )
            self._follow_request(channel, messages, made)
            try:
                created = await made
            except UnlatchError as exc:
                if self.session.state is UnlockStage.STARTING:
                    self.first_error = exc
                else:
                    log.info("QR renewal failed: %s", type(exc).__name__)
                self._followers.pop(channel, None)
                await self.feed(ChannelCreateFailed(command.channel, str(exc)))
                return
            notified = created.get("notified")
            await self.feed(
                ChannelCreated(
                    command.channel, dict(notified) if isinstance(notified, dict) else {}
                )
            )
        elif isinstance(command, FollowChannel):  # (already followed when the socket made it)
            self._follow_request(command.channel)
        elif isinstance(command, CloseChannel):
            try:  # while it is followed: the close goes on the follower's socket
                await relay.close_unlock(command.channel)
            except UnlatchError:
                pass  # it ends at its expiry anyway; the phone's answer finds nobody
            self.unfollow(command.channel)
        elif isinstance(command, UnlockVault):
            try:
                await self.service.unlock_with_share(self.phone, command.share, self.timing)
            except UnlatchError as exc:
                await self.feed(VaultUnlockFailed(str(exc)))
            except Exception:
                log.exception("unlock with the phone's share failed")
                await self.feed(VaultUnlockFailed(UNEXPECTED))
            else:
                await self.feed(VaultUnlocked())
        elif isinstance(command, LearnPolicy):
            self._learn_policy(command.allows_number_matching)
        elif isinstance(command, ShowView):
            self.shown()
        else:
            await super().execute(command)

    def _follow_request(
        self,
        channel: bytes,
        messages: AsyncIterator[ChannelMessage] | None = None,
        created: asyncio.Future[dict[str, Any]] | None = None,
    ) -> None:
        """Follow one of this attempt's requests on the relay (``messages``: while making it)."""
        self.follow(
            "unlock",
            channel,
            self.session.ttl + FOLLOW_SLACK,
            lambda msg: self._read(msg, channel),
            lambda: self._gone(channel),
            messages=messages,
            created=created,
        )

    def _learn_policy(self, allows: bool) -> None:
        """Remember the policy the phone's authenticated reply stated, for the next request."""
        try:
            updated = self.service.store.learn_policy(self.phone.id, allows)
        except UnlatchError as exc:  # a damaged file: the unlock itself goes on
            log.info("could not record the phone's unlock policy: %s", type(exc).__name__)
            return
        if updated is not None:  # None: revoked meanwhile
            self.phone = updated

    def _read(self, msg: ChannelMessage, channel: bytes) -> Event | None:
        if msg.type == "seen":
            return Seen(channel, msg.data, self.clock.now())
        if msg.type == "reply":  # an UnlockReply, or an UnlockRefusal made from the push
            self.timing.reply_received_at = time.perf_counter()
            return answer_event(channel, msg.data, self.clock.now())
        return None

    def _gone(self, channel: bytes) -> Event:
        """The relay closes a pairing's requests when it is unpaired; if this phone is
        no longer ours, that is why: say so now, not at expiry."""
        return ChannelClosed(channel) if self.service.still_paired(self.phone) else Revoke()


class PhoneUnlockService:
    """Sends unlock requests to paired phones and unlocks the vault on approval."""

    def __init__(
        self,
        store: PairingStore,
        vault: VaultPort,
        relay: RelayClient,
        *,
        local_keys: LocalKeyStore | None = None,
        notifier: Notifier | None = None,
        ttl: int = 120,
        renewals: int = DEFAULT_RENEWALS,
        clock: Clock = WALL_CLOCK,
        app_url: str = "",
    ) -> None:
        self.app_url = app_url  # where unlock links point; empty: the relay's /app/
        self.store = store
        self.vault = vault
        self.relay = relay
        self.local_keys = local_keys or LocalKeyStore()
        self.notifier = notifier or Notifier()
        self.ttl = ttl
        self.renewals = renewals
        self.clock = clock
        self.current: UnlockAttempt | None = None

    @property
    def app_base(self) -> str:
        return self.app_url or self.relay.base_url + "/app/"

    def choose_phone(self, phone_id: str | None) -> PairedPhone:
        """The named phone, or the only one; clear errors otherwise."""
        if phone_id:
            return self.store.get(phone_id)
        phones = self.store.all()
        if not phones:
            raise NotPairedError()
        if len(phones) > 1:
            names = ", ".join(p.label for p in phones)
            raise UnlockFailedError(f"several phones are paired ({names}): choose one")
        return phones[0]

    async def start(
        self, phone_id: str | None = None, *, number_matching: bool = False
    ) -> UnlockAttempt:
        """Create a request for one phone, notify it through the relay, start waiting.

        ``number_matching`` is the setting, a wish: the session asks for it only
        if the phone's last answer said it allows it (``PairedPhone.allows_number_matching``).
        Raises the relay's error (down, blocked, rate limited) when the first
        request cannot be made; the previous attempt is cancelled either way.
        """
        phone = self.choose_phone(phone_id)
        if self.current is not None:
            await self.cancel(self.current.id)
        session = UnlockSession(
            phone.record,
            ttl=self.ttl,
            number_matching=number_matching,
            allows_number_matching=phone.allows_number_matching,
            renewals=self.renewals,
        )
        attempt = UnlockAttempt(self, phone, session)
        await attempt.feed(Start(self.clock.now()))
        if attempt.first_error is not None:
            raise attempt.first_error
        self.current = attempt
        attempt.launch()
        self.notifier.bump()
        return attempt

    def get(self, attempt_id: str) -> UnlockAttempt:
        attempt = self.current
        if attempt is None or not secrets.compare_digest(attempt.id, attempt_id):
            raise UnlockFailedError("no such unlock request (it was replaced): start again")
        return attempt

    async def wait(self, attempt_id: str, timeout: float) -> UnlockAttempt:
        """Wait until the attempt changes (or ``timeout``); returns it."""
        attempt = self.get(attempt_id)
        attempt.changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # no task of its own, as Notifier.wait_past
                await attempt.changed.wait()
        return attempt

    async def cancel(self, attempt_id: str) -> None:
        """Stop waiting and close the relay channels (the phone's late answer gets 'closed')."""
        await self.get(attempt_id).feed(Cancel())

    async def renew(self, attempt_id: str) -> UnlockAttempt:
        """Show a fresh QR now (only while nobody scanned)."""
        attempt = self.get(attempt_id)
        try:
            await attempt.feed(Renew(self.clock.now()))
        except SessionError as exc:
            raise UnlockFailedError(str(exc)) from None
        return attempt

    async def restart(self) -> None:
        """The desktop stops or changes relay: end the attempt and close its channels."""
        if self.current is not None:
            await self.current.feed(Restart())

    async def phone_revoked(self, phone_id: str) -> bool:
        """A phone was revoked: end its pending request now, as "failed", and close it.

        Its share can no longer open anything (its local key is gone), so
        waiting for its answer would only end in an error later, or at
        expiry. The relay channels are closed too: the phone's late answer gets
        "no such request" instead of going to a desktop that no longer listens.
        True when a request was ended.
        """
        attempt = self.current
        if attempt is None or attempt.final or attempt.phone.id != phone_id:
            return False
        await attempt.feed(Revoke())
        return attempt.session.state is UnlockStage.FAILED

    def still_paired(self, phone: PairedPhone) -> bool:
        try:
            self.store.get(phone.id)
        except UnlatchError:
            return False
        return True

    async def unlock_with_share(self, phone: PairedPhone, share: bytes, timing: Timing) -> None:
        """K_P from the phone + K_L from this desktop -> KEK -> the phone's vault slot."""
        t0 = time.perf_counter()
        try:
            local = self.local_keys.get(phone.local_ref)
        except LocalKeyNotFoundError:
            raise UnlockFailedError(
                "this phone was revoked on this desktop (its local key is gone): pair it again"
            ) from None
        kek = phone_slot_kek(share, local, phone.record.pairing_id)
        timing.slot_unwrap = time.perf_counter() - t0
        t1 = time.perf_counter()
        try:
            await self.vault.unlock_with_slot(phone.slot_id, kek)
        except UnlatchError as exc:
            raise UnlockFailedError(f"the phone's answer did not open the vault: {exc}") from None
        timing.agent_unlock = time.perf_counter() - t1
        timing.unlocked_at = time.perf_counter()
