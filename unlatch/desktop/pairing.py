"""PairingService: pair a phone, end to end, from the desktop's side.

One :class:`PairingSession` per attempt::

    start()        the app at the link's origin is this desktop's build (appcheck)
                   -> DesktopPairing offer -> relay pairing channel -> QR link
    (background)   wait for the phone's hello on the channel (resumable socket)
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
import time
from dataclasses import dataclass, field
from typing import Any

from unlatch.desktop.appcheck import check_app
from unlatch.desktop.errors import PairingFailedError
from unlatch.desktop.identity import DesktopIdentity, check_name
from unlatch.desktop.notifier import Notifier
from unlatch.desktop.store import PairedPhone, PairingStore, local_ref_of, phone_id_of
from unlatch.desktop.vault_port import VaultPort
from unlatch.errors import UnlatchError
from unlatch.protocol import (
    DEFAULT_PAIRING_TTL,
    DesktopPairing,
    PendingPhone,
    ProtocolError,
    app_link,
    phone_slot_kek,
)
from unlatch.protocol.encoding import b64e
from unlatch.relay.client import RelayClient
from unlatch.relay.errors import ChannelExpired, ChannelGone, RelayError
from unlatch.vault import KIND_PHONE, VaultLockedError
from unlatch.vault.localkeys import LocalKeyStore

log = logging.getLogger(__name__)


@dataclass
class PairingSession:
    """One pairing attempt as the UI and CLI see it."""

    id: str
    desktop: DesktopPairing
    app_base: str  # the phone app's URL, where the QR's link points (checked by appcheck)
    state: str = "waiting"  # waiting | confirm | done | rejected | expired | failed
    message: str = ""
    pending: PendingPhone | None = None
    phone: PairedPhone | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def expires_at(self) -> int:
        return self.desktop.expires_at

    @property
    def final(self) -> bool:
        return self.state in ("done", "rejected", "expired", "failed")

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
        self.sessions: dict[str, PairingSession] = {}

    def _changed(self, session: PairingSession) -> None:
        session.changed.set()
        self.notifier.bump()

    # -------------------------------------------------------------- pairing

    @property
    def app_base(self) -> str:
        return self.app_url or self.relay.base_url + "/app/"

    async def start(self) -> PairingSession:
        """Check the app the link opens, make a pairing offer, open its relay channel, wait.

        The check comes first: a link to an app origin that serves other code
        than this desktop's build is never shown (AppMismatchError names it).
        """
        if not await self.vault.is_unlocked():
            raise VaultLockedError("unlock the vault first: pairing adds a key slot to it")
        app_base = self.app_base
        await check_app(app_base)
        for old in list(self.sessions.values()):
            if not old.final:
                await self.cancel(old.id)
        dp = DesktopPairing(
            self.identity.keypair, self.relay.base_url, now=int(time.time()), ttl=self.ttl
        )
        await self.relay.create_pairing_channel(dp.channel_id, self.ttl)
        session = PairingSession(secrets.token_urlsafe(12), dp, app_base)
        self.sessions = {k: v for k, v in self.sessions.items() if not v.final}
        self.sessions[session.id] = session
        session.task = asyncio.create_task(self._wait_hello(session))
        self.notifier.bump()
        return session

    def get(self, session_id: str) -> PairingSession:
        try:
            return self.sessions[session_id]
        except KeyError:
            raise PairingFailedError("no such pairing attempt (it ended): start again") from None

    async def _wait_hello(self, session: PairingSession) -> None:
        dp = session.desktop
        try:
            async with asyncio.timeout(max(1.0, dp.expires_at - time.time())):
                async for msg in self.relay.channel_messages(
                    "pairing", dp.channel_id, timeout=dp.expires_at - time.time()
                ):
                    if msg.type != "hello":
                        continue
                    pending = dp.receive_hello(msg.data, now=int(time.time()))
                    if msg.sender and msg.sender != pending.phone_device_id:
                        raise PairingFailedError(
                            "the phone's relay identity does not match its hello"
                        )
                    session.pending = pending
                    session.state = "confirm"
                    session.message = "compare the codes on both screens"
                    self._changed(session)
                    return
        except (TimeoutError, ChannelExpired, ChannelGone):
            dp.reject()  # forget S and the offer: nothing can come any more
            self._end(session, "expired", "the pairing code expired: start again")
        except (ProtocolError, UnlatchError) as exc:
            dp.reject()
            self._end(session, "failed", str(exc))
        except asyncio.CancelledError:
            raise
        except Exception:  # never leave the UI spinning on an unexpected fault
            log.exception("pairing wait failed")
            self._end(session, "failed", "pairing failed unexpectedly (see the agent log)")

    def _end(self, session: PairingSession, state: str, message: str) -> None:
        if not session.final:
            session.state, session.message = state, message
            self._changed(session)

    async def wait(self, session_id: str, timeout: float) -> PairingSession:
        """Wait until the session changes (or ``timeout``); returns it."""
        session = self.get(session_id)
        session.changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.changed.wait(), timeout)
        return session

    async def confirm(self, session_id: str, label: str | None = None) -> PairedPhone:
        """The user confirmed matching codes: make the slot, keep the record, tell the phone."""
        session = self.get(session_id)
        if session.state != "confirm" or session.pending is None:
            raise PairingFailedError(f"this pairing is {session.state}: nothing to confirm")
        label = check_name(label or session.pending.phone_name)
        dp = session.desktop
        try:
            accept, record, share = dp.confirm(
                self.identity.name, self.identity.device_id, now=int(time.time())
            )
        except ProtocolError as exc:
            self._end(session, "failed", str(exc))
            raise
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
            phone = PairedPhone(record, slot_id, self.relay.base_url, label, int(time.time()))
            self.store.add(phone)
            await self.relay.post_accept(dp.channel_id, accept)
            await self.relay.register_pairing(record.keys.routing_id, record.phone_device_id)
        except BaseException as exc:
            await self._rollback(ref, slot_id, record)
            message = str(exc) if isinstance(exc, UnlatchError) else "pairing failed"
            self._end(session, "failed", message)
            raise
        session.phone = phone
        session.state, session.message = "done", f"{label} is paired"
        self._changed(session)
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
        session = self.get(session_id)
        session.desktop.reject()
        self._end(session, "rejected", "pairing cancelled: nothing was saved")
        await self._close_channel(session)

    async def cancel(self, session_id: str) -> None:
        """Abandon an attempt (a new one started, or the page closed the dialog)."""
        session = self.get(session_id)
        if session.task is not None:
            session.task.cancel()
        if not session.final:
            session.desktop.reject()
            self._end(session, "rejected", "pairing cancelled")
        await self._close_channel(session)

    async def _close_channel(self, session: PairingSession) -> None:
        with contextlib.suppress(UnlatchError):
            await self.relay.close_pairing_channel(session.desktop.channel_id)

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
