"""PhoneUnlockService: "Request unlock from phone", from the desktop's side.

One :class:`UnlockAttempt` per button press. It owns one or more protocol
requests (:class:`~unlatch.protocol.DesktopUnlock`): the first, and a fresh
one made ~15 s before the current one expires while the phone has not yet
scanned (the QR on screen is renewed; a bounded number of times). Each
request has its own waiter task that follows the relay's unlock channel:

* WebSocket, resumed with ``after`` = last seq when it drops, long-poll as
  fallback (:meth:`RelayClient.channel_messages`), so a reply that reached the relay
  while the desktop was reconnecting is still delivered;
* ``seen`` -> state "seen" ("phone has scanned");
* ``reply`` -> Approved: KEK = phone_slot_kek(K_P, K_L, pairing_id) unlocks
  the vault slot; Denied: "denied" / "not_me" / "wrong_number".

Number matching is the phone's to allow, per pairing (docs/protocol.md 6.8):
the desktop's setting is a wish, used only with a phone whose last
authenticated reply said it allows it; every reply updates what the desktop
knows. A phone that does not allow it refuses such a request whatever this
desktop's files say.

A renewed request's predecessor keeps its waiter until it expires, so a
phone that scanned the old QR just before the swap still gets through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from unlatch.desktop.errors import NotPairedError, UnlockFailedError
from unlatch.desktop.notifier import Notifier
from unlatch.desktop.store import PairedPhone, PairingStore
from unlatch.desktop.vault_port import VaultPort
from unlatch.errors import UnlatchError
from unlatch.protocol import (
    Approved,
    DesktopUnlock,
    ProtocolError,
    UnlockMode,
    UnlockPolicy,
    WrongRequest,
    app_link,
    phone_slot_kek,
)
from unlatch.relay.client import RelayClient
from unlatch.relay.errors import ChannelExpired, ChannelGone
from unlatch.vault.localkeys import LocalKeyNotFoundError, LocalKeyStore

log = logging.getLogger(__name__)

RENEW_BEFORE = 15  # seconds before expiry at which the QR is renewed (at most ttl/4)
DEFAULT_RENEWALS = 4  # ~10 minutes of QR on screen at the default 2-minute life
REVOKED_MESSAGE = "this phone was revoked on this desktop: its request was withdrawn"
FINAL_STATES = ("approved", "denied", "not_me", "wrong_number", "expired", "failed", "cancelled")

MESSAGES = {
    "waiting": "Scan the QR code with your phone",
    "waiting_number": "Pick the number shown here on your phone",
    "seen": "Your phone has scanned the code: approve on the phone",
    "approved": "Approved: the vault is unlocked",
    "denied": "The phone denied the request",
    "not_me": "Your phone says it did not ask for this: requests from this desktop are "
    "blocked until the phone re-confirms.",
    "wrong_number": "The wrong number was picked on the phone: nothing was released",
    "scan_only": "Scan the QR code with your phone (number matching is on here, but this phone "
    "allows this desktop scanning only: allow approving from the notification on the phone, "
    "under its paired desktops; this desktop learns it from the phone's next answer)",
    "mode_refused": "The phone refused approve-from-notification: it allows this desktop "
    "scanning only. Unlock again to scan a QR code, or allow it on the phone.",
    "expired": "The request expired",
    "cancelled": "Request cancelled",
}


@dataclass
class Timing:
    """Where the time of the last reply went (seconds), for bench/bench_e2e.py."""

    reply_received_at: float = 0.0
    hpke_open: float = 0.0
    slot_unwrap: float = 0.0
    agent_unlock: float = 0.0
    unlocked_at: float = 0.0


@dataclass
class UnlockAttempt:
    """What the user started by pressing the button; what the page shows."""

    id: str
    phone: PairedPhone
    mode: UnlockMode
    request: DesktopUnlock
    app_base: str  # the relay's phone app, where the QR's link points
    state: str = "waiting"
    message: str = MESSAGES["waiting"]
    renewals_left: int = DEFAULT_RENEWALS
    generation: int = 1
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    timing: Timing = field(default_factory=Timing)
    notified: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

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
        self.current: UnlockAttempt | None = None

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
        """Create a request for one phone, notify it through the relay, start waiting."""
        phone = self.choose_phone(phone_id)
        if self.current is not None and not self.current.final:
            await self.cancel(self.current.id)
        # The setting is a wish: number matching only where the phone said it allows it.
        allowed = number_matching and phone.allows_number_matching
        mode = UnlockMode.NUMBER_MATCH if allowed else UnlockMode.SCAN
        request, notified = await self._new_request(phone, mode)
        waiting = "waiting_number" if allowed else "scan_only" if number_matching else "waiting"
        attempt = UnlockAttempt(
            secrets.token_urlsafe(12),
            phone,
            mode,
            request,
            self.app_url or self.relay.base_url + "/app/",
            message=MESSAGES[waiting],
            renewals_left=self.renewals,
            notified=notified,
        )
        self.current = attempt
        attempt.tasks.append(asyncio.create_task(self._wait(attempt, request)))
        attempt.tasks.append(asyncio.create_task(self._renewer(attempt)))
        self.notifier.bump()
        return attempt

    async def _new_request(
        self, phone: PairedPhone, mode: UnlockMode
    ) -> tuple[DesktopUnlock, dict[str, Any]]:
        request = DesktopUnlock(phone.record, now=int(time.time()), ttl=self.ttl, mode=mode)
        created = await self.relay.create_unlock(
            request.request_id, phone.record.keys.routing_id, request.push_bytes, self.ttl
        )
        notified = created.get("notified") if isinstance(created.get("notified"), dict) else {}
        return request, dict(notified or {})

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
            await asyncio.wait_for(attempt.changed.wait(), timeout)
        return attempt

    async def cancel(self, attempt_id: str) -> None:
        """Stop waiting and close the relay channel (the phone's late answer gets 'closed')."""
        attempt = self.get(attempt_id)
        self._set(attempt, "cancelled")
        for task in attempt.tasks:
            task.cancel()
        attempt.request.cancel()
        with contextlib.suppress(UnlatchError):
            await self.relay.close_unlock(attempt.request.request_id)

    async def phone_revoked(self, phone_id: str) -> bool:
        """A phone was revoked: end its pending request now, as "failed", and close it.

        Its share can no longer open anything (its local key is gone), so
        waiting for its answer would only end in an error later, or at
        expiry. The relay channel is closed too: the phone's late answer gets
        "no such request" instead of going to a desktop that no longer listens.
        True when a request was ended.
        """
        attempt = self.current
        if attempt is None or attempt.final or attempt.phone.id != phone_id:
            return False
        self._set(attempt, "failed", REVOKED_MESSAGE)
        for task in attempt.tasks:
            if task is not asyncio.current_task():
                task.cancel()
        attempt.request.cancel()
        with contextlib.suppress(UnlatchError):
            await self.relay.close_unlock(attempt.request.request_id)
        return True

    def _set(self, attempt: UnlockAttempt, state: str, message: str | None = None) -> None:
        if attempt.final:
            return
        attempt.state = state
        attempt.message = message or MESSAGES.get(state, state)
        attempt.changed.set()
        self.notifier.bump()

    # ------------------------------------------------------------- waiting

    async def _renewer(self, attempt: UnlockAttempt) -> None:
        """Renew the QR while nobody scanned; end the attempt as expired at its request's expiry.

        The waiters only follow relay channels (a channel that expires ends
        quietly), so this loop is what turns "nothing more can happen" into
        "expired": also after a scan that was never answered, where the
        scanned request is no longer renewed but must still end.
        """
        try:
            while not attempt.final:
                request = attempt.request
                lead = min(RENEW_BEFORE, self.ttl // 4)  # short test lives renew early too
                renewable = attempt.renewals_left > 0 and lead >= 1 and attempt.state != "seen"
                if renewable:
                    await self._sleep_until(attempt, request.expires_at - lead)
                    if attempt.final or attempt.state == "seen" or attempt.request is not request:
                        continue  # answered, scanned (expiry below) or switched: look again
                    try:
                        new, notified = await self._new_request(attempt.phone, attempt.mode)
                    except UnlatchError as exc:
                        log.info("QR renewal failed: %s", type(exc).__name__)
                        attempt.renewals_left = 0
                        continue
                    attempt.renewals_left -= 1
                    attempt.request, attempt.notified = new, notified
                    attempt.generation += 1
                    attempt.tasks.append(asyncio.create_task(self._wait(attempt, new)))
                    attempt.changed.set()
                    self.notifier.bump()
                    continue
                # check_expiry compares whole seconds (now > expires_at): wake just after.
                await self._sleep_until(attempt, request.expires_at + 1.05)
                if attempt.final or attempt.request is not request:
                    continue  # the phone scanned an older QR: follow that one's expiry
                if request.check_expiry(now=int(time.time())):
                    self._set(attempt, "expired")
                    with contextlib.suppress(UnlatchError):
                        await self.relay.close_unlock(request.request_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("QR renewal loop failed")

    @staticmethod
    async def _sleep_until(attempt: UnlockAttempt, when: float) -> None:
        """Sleep until ``when`` (wall clock), waking early once the attempt moves on.

        "Moves on": it ended, was scanned, or follows another request. Checked
        every second at most, so a scan of an older QR (which makes that older,
        earlier-expiring request the current one) is noticed in time.
        """
        request, state = attempt.request, attempt.state
        while not attempt.final and attempt.request is request and attempt.state == state:
            left = when - time.time()
            if left <= 0:
                return
            await asyncio.sleep(min(1.0, left))

    async def _wait(self, attempt: UnlockAttempt, request: DesktopUnlock) -> None:
        """Follow one request's relay channel until it ends or is answered."""
        try:
            async with asyncio.timeout(max(1.0, request.expires_at - time.time() + 2)):
                async for msg in self.relay.channel_messages(
                    "unlock", request.request_id, timeout=request.expires_at - time.time() + 2
                ):
                    if attempt.final:
                        return
                    if msg.type == "seen":
                        self._on_seen(attempt, request, msg.data)
                    elif msg.type == "reply":
                        await self._on_reply(attempt, request, msg.data)
                        return
        except ChannelGone:
            # The relay closes a pairing's requests when it is unpaired; if this
            # phone is no longer ours, that is why: say so now, not at expiry.
            if attempt.request is request and not attempt.final and not self._still_paired(attempt):
                self._set(attempt, "failed", REVOKED_MESSAGE)
                request.cancel()
                for task in attempt.tasks:
                    if task is not asyncio.current_task():
                        task.cancel()
            return
        except (TimeoutError, ChannelExpired):
            return  # expiry is reported by the renewer (it knows if a newer QR exists)
        except asyncio.CancelledError:
            raise
        except UnlatchError as exc:
            if attempt.request is request:
                self._set(attempt, "failed", str(exc))
        except Exception:
            log.exception("unlock wait failed")
            if attempt.request is request:
                self._set(attempt, "failed", "the unlock failed unexpectedly (see the agent log)")

    def _still_paired(self, attempt: UnlockAttempt) -> bool:
        try:
            self.store.get(attempt.phone.id)
        except UnlatchError:
            return False
        return True

    def _on_seen(self, attempt: UnlockAttempt, request: DesktopUnlock, data: bytes) -> None:
        try:
            request.receive_seen(data, now=int(time.time()))
        except ProtocolError as exc:
            log.info("ignored a scan notice: %s", exc.code if hasattr(exc, "code") else exc)
            return
        if attempt.request is not request:  # the phone scanned the previous QR: follow it
            attempt.request = request
            attempt.generation += 1
        self._set(attempt, "seen")
        attempt.changed.set()

    async def _on_reply(self, attempt: UnlockAttempt, request: DesktopUnlock, data: bytes) -> None:
        timing = attempt.timing
        timing.reply_received_at = time.perf_counter()
        try:
            outcome = request.receive_reply(data, now=int(time.time()))
        except WrongRequest:
            # The relay takes one reply per channel, so a reply naming another
            # request means none for this one can follow: say so now, not at expiry.
            if attempt.request is request:
                self._set(attempt, "failed", "the relay delivered a reply for another request")
            return
        except ProtocolError as exc:
            self._set(attempt, "failed", f"a reply was refused: {exc}")
            return
        timing.hpke_open = time.perf_counter() - timing.reply_received_at
        if outcome.policy is not None:  # a refusal from the notification states no policy
            self._learn_policy(attempt, outcome.policy)
        if not isinstance(outcome, Approved):
            with contextlib.suppress(UnlatchError):
                await self.relay.close_unlock(request.request_id)  # acknowledge
            state = (
                "not_me" if outcome.not_me else "wrong_number" if outcome.wrong_number else "denied"
            )
            refused_mode = (
                state == "denied"
                and attempt.mode is UnlockMode.NUMBER_MATCH
                and outcome.policy is UnlockPolicy.SCAN_ONLY
            )
            self._set(attempt, state, MESSAGES["mode_refused"] if refused_mode else None)
            return
        attempt.request = request
        try:
            await self.unlock_with_share(attempt.phone, outcome.phone_share, timing)
        except UnlatchError as exc:
            self._set(attempt, "failed", str(exc))
            return
        finally:  # acknowledge after unlocking: the user should not wait for it
            with contextlib.suppress(UnlatchError):
                await self.relay.close_unlock(request.request_id)
        self._set(attempt, "approved")
        for other in attempt.tasks:
            if other is not asyncio.current_task():
                other.cancel()

    def _learn_policy(self, attempt: UnlockAttempt, policy: UnlockPolicy) -> None:
        """Remember the policy the phone's authenticated reply stated, for the next request."""
        allows = policy is UnlockPolicy.NUMBER_MATCHING
        if allows == attempt.phone.allows_number_matching:
            return
        try:
            updated = self.store.learn_policy(attempt.phone.id, allows)
        except UnlatchError as exc:  # a damaged file: the unlock itself goes on
            log.info("could not record the phone's unlock policy: %s", type(exc).__name__)
            return
        if updated is not None:
            attempt.phone = updated

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
