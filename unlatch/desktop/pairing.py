"""PairingService: pair a phone, end to end, from the desktop's side.

What happens to an attempt, and when, is decided by the sans-IO
:class:`~unlatch.desktop.sessions.pairing.PairingSession`; this module is
its asyncio driver (one :class:`PairingAttempt` per attempt)::

    start()        the app at the link's origin is this desktop's build (appcheck)
                   -> DesktopPairing offer -> relay pairing channel -> QR link
    (background)   follow the channel for the phone's hello (resumable socket)
                   -> verification code shown, state "confirm"
    confirm()      user says the codes match:
                   K_L created -> KEK = phone_slot_kek(K_P, K_L, pairing_id)
                   -> vault phone slot -> record saved -> accept posted
                   -> pairing registered on the relay; K_P forgotten
    reject()       codes differ: nothing is kept, the channel is deleted

Anything that fails during ``confirm`` is rolled back (slot, K_L, record),
so a half-made pairing never lingers. Revocation and renaming of paired
phones live here too, since they undo what pairing made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from unlatch.desktop.appcheck import check_app
from unlatch.desktop.clock import WALL_CLOCK, Clock
from unlatch.desktop.driver import FOLLOW_SLACK, SessionDriver
from unlatch.desktop.errors import PairingFailedError
from unlatch.desktop.identity import DesktopIdentity, check_name
from unlatch.desktop.notifier import Notifier
from unlatch.desktop.sessions.base import Cancel, Command, Event, Restart, SessionError, Start
from unlatch.desktop.sessions.pairing import (
    AppChecked,
    AppCheckFailed,
    ChannelClosed,
    ChannelCreated,
    ChannelCreateFailed,
    CheckApp,
    CloseChannel,
    Confirm,
    CreateChannel,
    FollowChannel,
    Hello,
    PairingSession,
    PairingStage,
    Reject,
    Saved,
    SaveFailed,
    SavePairing,
    ShowView,
)
from unlatch.desktop.store import PairedPhone, PairingStore, local_ref_of, phone_id_of
from unlatch.desktop.vault_port import VaultPort
from unlatch.errors import UnlatchError
from unlatch.protocol import (
    DEFAULT_PAIRING_TTL,
    DesktopPairing,
    PendingPhone,
    app_link,
    phone_slot_kek,
)
from unlatch.protocol.encoding import b64e
from unlatch.relay.client import ChannelMessage, RelayClient
from unlatch.relay.errors import RelayError
from unlatch.vault import KIND_PHONE, VaultLockedError
from unlatch.vault.localkeys import LocalKeyStore

log = logging.getLogger(__name__)


class PairingAttempt(SessionDriver):
    """One pairing attempt as the UI and CLI see it: the session, its driver, its view."""

    session: PairingSession

    def __init__(self, service: PairingService, session: PairingSession) -> None:
        super().__init__(session, service)
        self.id = secrets.token_urlsafe(12)
        self.service = service
        self.phone: PairedPhone | None = None
        self.first_error: UnlatchError | None = None  # why the app or the channel was refused
        self.save_error: BaseException | None = None  # why confirm() failed

    @property
    def app_base(self) -> str:
        """The phone app the QR links to: the one the session checked."""
        return self.session.app_url

    @property
    def desktop(self) -> DesktopPairing:
        assert self.session.desktop is not None
        return self.session.desktop

    @property
    def state(self) -> str:
        return self.session.state.public

    @property
    def message(self) -> str:
        return self.session.message

    @property
    def pending(self) -> PendingPhone | None:
        return self.session.pending

    @property
    def expires_at(self) -> int:
        return self.session.expires_at

    @property
    def link(self) -> str:
        """The app link the pairing QR shows, while the attempt is open.

        Derived, not stored: it carries the one-time secret ``S``, which
        :class:`DesktopPairing` forgets when the attempt ends (then this raises
        :class:`~unlatch.protocol.InvalidState`).
        """
        return app_link(self.app_base, self.desktop.offer_bytes)

    def view(self) -> dict[str, Any]:
        """JSON for the UI (the link is not included: it is only in the QR image)."""
        return {
            "id": self.id,
            "state": self.state,
            "message": self.message,
            "expires_at": self.expires_at,
            "phone_name": self.pending.phone_name if self.pending else None,
            "code": self.pending.verification_code if self.pending else None,
            "phone": self.phone.public_view() if self.phone else None,
        }

    async def execute(self, command: Command) -> None:
        relay = self.service.relay
        if isinstance(command, CheckApp):
            try:
                await check_app(command.app_url)
            except UnlatchError as exc:  # AppMismatchError names the origin; AppBuildError
                self.first_error = exc
                await self.feed(AppCheckFailed(str(exc)))
            else:
                await self.feed(AppChecked(self.clock.now()))
        elif isinstance(command, CreateChannel):
            try:
                await relay.create_pairing_channel(command.channel, command.ttl)
            except UnlatchError as exc:
                self.first_error = exc
                await self.feed(ChannelCreateFailed(command.channel, str(exc)))
            else:
                await self.feed(ChannelCreated(command.channel))
        elif isinstance(command, FollowChannel):
            channel = command.channel
            timeout = self.session.ttl + FOLLOW_SLACK
            self.follow("pairing", channel, timeout, self._read, lambda: ChannelClosed(channel))
        elif isinstance(command, CloseChannel):
            self.unfollow(command.channel)
            with contextlib.suppress(UnlatchError):
                await relay.close_pairing_channel(command.channel)
        elif isinstance(command, SavePairing):
            try:
                self.phone = await self.service.save(command, self.desktop.channel_id)
            except BaseException as exc:
                self.save_error = exc
                message = str(exc) if isinstance(exc, UnlatchError) else "pairing failed"
                await self.feed(SaveFailed(message))
                if not isinstance(exc, Exception):
                    raise
            else:
                await self.feed(Saved(command.label))
        elif isinstance(command, ShowView):
            self.shown()
        else:
            await super().execute(command)

    def _read(self, msg: ChannelMessage) -> Event | None:
        return Hello(msg.data, msg.sender, self.clock.now()) if msg.type == "hello" else None


class PairingService:
    """Pairs phones with this desktop, and revokes or renames them."""

    def __init__(
        self,
        identity: DesktopIdentity,
        store: PairingStore,
        vault: VaultPort,
        relay: RelayClient,
        *,
        local_keys: LocalKeyStore | None = None,
        notifier: Notifier | None = None,
        ttl: int = DEFAULT_PAIRING_TTL,
        clock: Clock = WALL_CLOCK,
        app_url: str = "",
    ) -> None:
        self.identity = identity
        self.app_url = app_url  # empty: the relay serves the app (<relay>/app/)
        self.store = store
        self.vault = vault
        self.relay = relay
        self.local_keys = local_keys or LocalKeyStore()
        self.notifier = notifier or Notifier()
        self.ttl = ttl
        self.clock = clock
        self.sessions: dict[str, PairingAttempt] = {}

    # -------------------------------------------------------------- pairing

    @property
    def app_base(self) -> str:
        return self.app_url or self.relay.base_url + "/app/"

    async def start(self) -> PairingAttempt:
        """Check the app the link opens, make a pairing offer, open its relay channel, wait.

        The check comes first (the session's ``checking`` state): a link to an
        app origin that serves other code than this desktop's build is never
        shown, and no offer or channel is made for it (AppMismatchError names
        the origin). An earlier open attempt is cancelled before the check.
        """
        if not await self.vault.is_unlocked():
            raise VaultLockedError("unlock the vault first: pairing adds a key slot to it")
        for old in list(self.sessions.values()):
            await old.feed(Cancel())
        session = PairingSession(
            self.identity.keypair, self.relay.base_url, ttl=self.ttl, app_url=self.app_base
        )
        attempt = PairingAttempt(self, session)
        await attempt.feed(Start(self.clock.now()))
        if attempt.first_error is not None:
            raise attempt.first_error
        self.sessions = {k: v for k, v in self.sessions.items() if not v.final}
        self.sessions[attempt.id] = attempt
        attempt.launch()
        self.notifier.bump()
        return attempt

    def get(self, session_id: str) -> PairingAttempt:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise PairingFailedError("no such pairing attempt (it ended): start again") from None

    async def wait(self, session_id: str, timeout: float) -> PairingAttempt:
        """Wait until the attempt changes (or ``timeout``); returns it."""
        attempt = self.get(session_id)
        attempt.changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):  # no task of its own, as Notifier.wait_past
                await attempt.changed.wait()
        return attempt

    async def confirm(self, session_id: str, label: str | None = None) -> PairedPhone:
        """The user confirmed matching codes: make the slot, keep the record, tell the phone."""
        attempt = self.get(session_id)
        pending = attempt.pending
        if attempt.session.state is not PairingStage.CONFIRM or pending is None:
            raise PairingFailedError(f"this pairing is {attempt.state}: nothing to confirm")
        label = check_name(label or pending.phone_name)
        now = self.clock.now()
        await attempt.feed(Confirm(label, self.identity.name, self.identity.device_id, now))
        if attempt.save_error is not None:
            raise attempt.save_error
        if attempt.phone is None:  # the protocol refused (e.g. the code expired)
            raise PairingFailedError(attempt.message)
        return attempt.phone

    async def save(self, command: SavePairing, channel_id: bytes) -> PairedPhone:
        """K_L, the vault slot, the record, the accept and the relay registration.

        Everything is rolled back if any step fails (or is cancelled).
        """
        record, share, label = command.record, command.share, command.label
        ref = local_ref_of(record)
        slot_id: str | None = None
        try:
            local = self.local_keys.create(ref)
            kek = phone_slot_kek(share, local, record.pairing_id)
            del share, local
            meta: dict[str, str | int] = {
                "pairing_id": b64e(record.pairing_id),
                "phone_device_id": record.phone_device_id,
            }
            slot_id = await self.vault.add_slot(KIND_PHONE, label, kek, meta)
            del kek
            phone = PairedPhone(record, slot_id, self.relay.base_url, label, int(self.clock.now()))
            self.store.add(phone)
            await self.relay.post_accept(channel_id, command.accept)
            await self.relay.register_pairing(record.keys.routing_id, record.phone_device_id)
        except BaseException:
            await self._rollback(ref, slot_id, record)
            raise
        return phone

    async def _rollback(self, ref: str, slot_id: str | None, record: Any) -> None:
        with contextlib.suppress(UnlatchError):
            self.local_keys.delete(ref)
        if slot_id is not None:
            with contextlib.suppress(UnlatchError):
                await self.vault.remove_slot(slot_id)
        with contextlib.suppress(UnlatchError):
            self.store.remove(phone_id_of(record), orphan_slot=False)

    async def reject(self, session_id: str) -> None:
        """The codes differ (or the user changed their mind): keep nothing."""
        attempt = self.get(session_id)
        try:
            await attempt.feed(Reject())
        except SessionError as exc:
            raise PairingFailedError(str(exc)) from None

    async def cancel(self, session_id: str) -> None:
        """Abandon an attempt (a new one started, or the page closed the dialog)."""
        await self.get(session_id).feed(Cancel())

    async def restart(self) -> None:
        """The desktop stops or changes relay: end every open attempt, close its channel."""
        for attempt in list(self.sessions.values()):
            await attempt.feed(Restart())

    # ------------------------------------------------------- paired phones

    def phones(self) -> list[PairedPhone]:
        return self.store.all()

    async def rename(self, phone_id: str, label: str) -> PairedPhone:
        """Relabel a phone (the pairing record and its vault slot)."""
        label = check_name(label)
        phone = self.store.get(phone_id)
        with contextlib.suppress(VaultLockedError):
            await self.vault.rename_slot(phone.slot_id, label)
        return self.store.rename(phone.id, label)

    async def revoke(self, phone_id: str) -> dict[str, Any]:
        """Unpair: the phone's share becomes useless at once.

        K_L is deleted first (the slot then opens for nobody), then the slot
        is removed (or queued for the next unlock when the vault is locked),
        the record forgotten and the relay told to unlink the pairing. A relay
        that cannot be reached does not stop the local revocation.
        """
        phone = self.store.get(phone_id)
        self.local_keys.delete(phone.local_ref)
        slot_removed = False
        if await self.vault.is_unlocked():
            try:
                await self.vault.remove_slot(phone.slot_id)
                slot_removed = True
            except UnlatchError as exc:
                log.info("slot removal deferred: %s", type(exc).__name__)
        self.store.remove(phone.id, orphan_slot=not slot_removed)
        relay_note = ""
        try:
            await self.relay.delete_pairing(phone.record.keys.routing_id)
        except RelayError as exc:
            relay_note = f"(the relay was not told: {exc})"
        self.notifier.bump()
        return {"revoked": phone.public_view(), "slot_removed": slot_removed, "relay": relay_note}

    async def remove_orphan_slots(self) -> int:
        """Delete slots of phones revoked while the vault was locked (call once unlocked)."""
        orphans = self.store.orphan_slots()
        done: list[str] = []
        for slot_id in orphans:
            try:
                await self.vault.remove_slot(slot_id)
                done.append(slot_id)
            except VaultLockedError:
                break
            except UnlatchError:
                done.append(slot_id)  # already gone
        if done:
            self.store.clear_orphans(done)
        return len(done)
