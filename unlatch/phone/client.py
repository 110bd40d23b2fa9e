"""The Python phone: pair with desktops, hear their unlock requests, answer them.

:class:`PhoneClient` is what ``unlatch phone ...`` wraps, and what tests and
scripts drive in-process. It does the I/O around the sans-IO protocol
(:mod:`unlatch.protocol`) with the relay's client
(:class:`~unlatch.relay.client.RelayClient`), and keeps its state sealed on
disk (:mod:`unlatch.phone.store`).

Order of checks when answering a QR code, so that nothing leaks by accident:

1. the QR is verified against the paired desktops (a QR from anyone else is
   refused *before* any network traffic: the phishing case);
2. the persisted replay guard refuses a request answered before;
3. only then is the relay contacted (``seen``, requester details), the user
   asked, the answer recorded in the guard, and the reply posted.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlatch import paths
from unlatch.phone.errors import (
    PairingRefused,
    PairingTimeout,
    PhoneError,
    RequestClosed,
    UnknownDesktop,
    UserDeclined,
)
from unlatch.phone.requests import RequestView
from unlatch.phone.session import AnswerSession, AnswerState, ended_text, view_text
from unlatch.phone.state import MAX_NAME_CHARS, Pairing, PhoneState, clean_name, printable
from unlatch.phone.store import PhoneStore, PinSource
from unlatch.protocol import (
    PairingState,
    PhonePairing,
    PhoneUnlock,
    ProtocolError,
    UnlockMode,
)
from unlatch.protocol.encoding import b64d, b64e
from unlatch.relay.client import PairingUpdate, RelayClient, RequestUpdate, UnlockNotification
from unlatch.relay.errors import (
    AlreadyAnswered,
    ChannelExpired,
    ChannelGone,
    NotPaired,
    PairingRejected,
    RelayError,
    RelayUnavailable,
    UnknownChannel,
)

HOME_ENV = "UNLATCH_PHONE_HOME"
DEFAULT_PAIR_TIMEOUT = 600.0
REPLY_WAIT = 5  # seconds the relay may take to say whether a waiting desktop took the reply

Confirm = Callable[[RequestView], bool | Awaitable[bool]]


def default_home() -> Path:
    """``$UNLATCH_PHONE_HOME``, else the ``phone`` directory under ``$UNLATCH_HOME``."""
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else paths.subdir("phone")


def default_phone_name() -> str:
    return clean_name(f"unlatch phone on {socket.gethostname()}", "phone name")


async def _ask(confirm: Confirm | None, view: RequestView) -> bool:
    if confirm is None:
        return True
    result = confirm(view)
    if inspect.isawaitable(result):
        result = await result
    return bool(result)


@dataclass(frozen=True)
class Answer:
    """What the phone sent for one request."""

    verdict: str  # "approved" | "denied" | "not_me" | "wrong_number"
    request: RequestView
    blocked: bool = False  # "not me" also blocked the desktop on the relay
    # "delivered": a waiting desktop took it; "queued": the request is open but its desktop
    # has not taken it yet (reconnecting): it gets it when back, until the request expires
    delivery: str = "delivered"

    @property
    def approved(self) -> bool:
        return self.verdict == "approved"

    def to_json(self, now: int) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "blocked": self.blocked,
            "delivery": self.delivery,
            **self.request.to_json(now),
        }


@dataclass(frozen=True)
class RequestEnded:
    """What happened to a request this phone heard of (the relay's word), and what to do."""

    request_id: str
    desktop: str
    state: str  # renewed | answered | cancelled | expired | closed
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "ended",
            "request_id": self.request_id,
            "desktop": self.desktop,
            "state": self.state,
            "message": self.message,
        }


@dataclass(frozen=True)
class DesktopRemoved:
    """The relay said a desktop removed this phone: its pairing is marked removed."""

    desktop: str
    desktop_id: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "removed",
            "desktop": self.desktop,
            "id": self.desktop_id,
            "message": self.message,
        }


@dataclass(frozen=True)
class PairResult:
    """A finished pairing: the stored desktop and its state on the relay."""

    pairing: Pairing
    relay_state: str  # "linked" (the desktop registered too) or "pending"
    push_registered: bool = False


@dataclass(frozen=True)
class Ignored:
    """A relay notification that no paired desktop made (or that is stale): not shown."""

    request_id: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "ignored", "request_id": self.request_id, "reason": self.reason}


class PairingAttempt:
    """A hello posted on the desktop's pairing channel, waiting for the user to confirm.

    Show :attr:`verification_code` to the user (it must match the desktop's),
    then ``await`` :meth:`finish`.
    """

    def __init__(
        self,
        client: PhoneClient,
        relay: RelayClient,
        pairing: PhonePairing,
        label: str | None,
        push_endpoint: str | None,
        allow_number_matching: bool = False,
    ) -> None:
        self._client = client
        self._relay = relay
        self._pairing = pairing
        self._label = label
        self._push_endpoint = push_endpoint
        self._allow_number_matching = allow_number_matching
        self.verification_code: str = pairing.verification_code
        self.relay_url: str = pairing.relay_url
        self.expires_at: int = pairing.offer.expires_at

    @property
    def display_code(self) -> str:
        """The code as people read it: ``123 456``."""
        c = self.verification_code
        return f"{c[:3]} {c[3:]}" if len(c) == 6 else c

    async def finish(self, timeout: float = DEFAULT_PAIR_TIMEOUT) -> PairResult:
        """Wait for the desktop's accept, store the pairing, register it on the relay."""
        relay, pp = self._relay, self._pairing
        try:
            wait = max(1.0, min(timeout, self.expires_at - time.time() + 5))
            try:
                msg = await relay.wait_pairing_message(pp.channel_id, timeout=wait)
            except PairingRejected:
                raise PairingRefused(
                    "the desktop refused the pairing: its user said the codes differ."
                    " Nothing was saved. Start pairing again on the desktop, scan its new code"
                    " and compare the six digits (if they differed, another phone may have"
                    " scanned the code)"
                ) from None
            except (ChannelExpired, ChannelGone):
                raise PairingTimeout(
                    "the desktop did not confirm the pairing (cancelled or expired)"
                ) from None
            if msg.type != "accept":
                raise PhoneError(f"the relay delivered an unexpected {msg.type!r} message")
            record = pp.receive_accept(msg.data, now=int(time.time()))
            # The pairing's unlock policy is this phone user's choice (protocol.md 6.8).
            record = dataclasses.replace(record, allow_number_matching=self._allow_number_matching)
            if msg.sender != record.desktop_device_id:
                raise PhoneError(
                    "the desktop's relay identity does not match the one in its accept "
                    "message: pairing refused"
                )
            label = self._label or printable(record.desktop_name, MAX_NAME_CHARS) or "desktop"
            pairing = Pairing(
                record=record,
                label=clean_name(label, "desktop name"),
                paired_at=int(time.time()),
            )
            # Keep the share before anything else can fail: it cannot be fetched again.
            with self._client.store.transaction() as state:
                state.add(pairing)
            try:
                relay_state = await relay.register_pairing(record.keys.routing_id, msg.sender)
            except RelayError as exc:
                raise PhoneError(
                    f"paired with “{pairing.label}”, but the relay did not register the "
                    f"pairing ({exc}): run `unlatch phone sync` when it is reachable"
                ) from None
            with contextlib.suppress(RelayError):
                await relay.close_pairing_channel(pp.channel_id)
            pushed = False
            if self._push_endpoint:
                await self._client._set_push_on(relay, self._push_endpoint)
                pushed = True
            return PairResult(pairing, relay_state, pushed)
        except BaseException:
            if pp.state is not PairingState.DONE:
                pp.fail()
                with contextlib.suppress(RelayError):
                    await relay.close_pairing_channel(pp.channel_id)
            raise
        finally:
            await relay.aclose()

    async def cancel(self) -> None:
        self._pairing.fail()
        with contextlib.suppress(RelayError):
            await self._relay.close_pairing_channel(self._pairing.channel_id)
        await self._relay.aclose()


class PhoneClient:
    """One phone, its state in ``home`` (see :func:`default_home`).

    ``pin`` is asked only when the state is PIN-protected. ``prefer_websocket``
    is handed to the relay client (False forces long-polling).
    """

    def __init__(
        self,
        home: Path | None = None,
        *,
        pin: PinSource | None = None,
        prefer_websocket: bool = True,
        relay_timeout: float = 10.0,
    ) -> None:
        self.home = home or default_home()
        self.store = PhoneStore(self.home, pin)
        self._prefer_ws = prefer_websocket
        self._relay_timeout = relay_timeout

    # -- state ------------------------------------------------------------

    def init(self, name: str | None = None) -> tuple[PhoneState, bool]:
        """Make the phone's identities and storage key (no-op if it exists)."""
        return self.store.init(name or default_phone_name())

    def state(self) -> PhoneState:
        return self.store.load()

    @property
    def device_id(self) -> str:
        """This phone's id on relays."""
        return self.store.device_key().device_id

    def relay_client(self, url: str) -> RelayClient:
        """A relay client signed in (lazily) as this phone; close it after use."""
        return RelayClient(
            url,
            self.store.device_key(),
            "phone",
            timeout=self._relay_timeout,
            prefer_websocket=self._prefer_ws,
        )

    def list_pairings(self) -> list[dict[str, Any]]:
        return [p.summary() for p in self.state().pairings]

    def rename(self, desktop: str, new_name: str) -> dict[str, Any]:
        new_name = clean_name(new_name, "desktop name")
        with self.store.transaction() as state:
            pairing = state.find(desktop)
            if any(
                p is not pairing and p.label.casefold() == new_name.casefold()
                for p in state.pairings
            ):
                raise PhoneError(f"another desktop is already called {new_name!r}")
            pairing.label = new_name
            return pairing.summary()

    def set_number_matching(self, desktop: str, allowed: bool) -> dict[str, Any]:
        """Allow (or stop allowing) a desktop to be approved from the notification.

        The pairing's unlock policy lives here, on the phone, and only this
        call changes it: a desktop can ask for number matching, but this
        phone refuses it unless its user allowed it for that desktop. The
        desktop learns the new policy from this phone's next answer.
        """
        with self.store.transaction() as state:
            pairing = state.find(desktop)
            pairing.record = dataclasses.replace(pairing.record, allow_number_matching=allowed)
            return pairing.summary()

    def set_pin(self, new_pin: str | None) -> None:
        """Protect the state with a PIN (Argon2id), change it, or (``None``) remove it."""
        self.store.set_pin(new_pin)

    # -- pairing ----------------------------------------------------------

    async def start_pairing(
        self,
        link: str,
        *,
        name: str | None = None,
        phone_name: str | None = None,
        push_endpoint: str | None = None,
        allow_number_matching: bool = False,
    ) -> PairingAttempt:
        """Parse the desktop's pairing QR and post this phone's hello.

        ``name`` overrides what this phone calls the desktop; ``phone_name``
        is what the desktop will call this phone (default: the phone's name).
        ``allow_number_matching`` is the pairing's unlock policy (default:
        scan only; :meth:`set_number_matching` changes it later).
        """
        state, _ = self.init(phone_name)
        device_key = self.store.device_key()
        pp = PhonePairing(
            link,
            state.identity,
            clean_name(phone_name or state.name, "phone name"),
            device_key.device_id,
            now=int(time.time()),
        )
        relay = self.relay_client(pp.relay_url)
        try:
            await relay.post_hello(pp.channel_id, pp.hello_bytes)
        except BaseException:
            pp.fail()
            await relay.aclose()
            raise
        return PairingAttempt(self, relay, pp, name, push_endpoint, allow_number_matching)

    async def pair(
        self,
        link: str,
        *,
        name: str | None = None,
        phone_name: str | None = None,
        on_code: Callable[[PairingAttempt], None] | None = None,
        timeout: float = DEFAULT_PAIR_TIMEOUT,
        push_endpoint: str | None = None,
        allow_number_matching: bool = False,
    ) -> PairResult:
        """Pair with the desktop whose pairing link (QR text) is ``link``."""
        attempt = await self.start_pairing(
            link,
            name=name,
            phone_name=phone_name,
            push_endpoint=push_endpoint,
            allow_number_matching=allow_number_matching,
        )
        if on_code is not None:
            on_code(attempt)
        return await attempt.finish(timeout)

    async def _set_push_on(self, relay: RelayClient, endpoint: str | None) -> None:
        target = None if endpoint is None else {"type": "unifiedpush", "endpoint": endpoint}
        await relay.set_push_target(target)
        with self.store.transaction() as state:
            state.push = None if endpoint is None else {"type": "unifiedpush", "endpoint": endpoint}

    async def set_push(self, endpoint: str | None) -> int:
        """Register (or remove) a UnifiedPush/ntfy endpoint on every relay; the count."""
        relays = sorted({p.record.relay_url for p in self.state().pairings})
        if not relays:
            raise PhoneError("pair with a desktop first: push targets live on its relay")
        for url in relays:
            async with self.relay_client(url) as relay:
                await self._set_push_on(relay, endpoint)
        return len(relays)

    async def unpair(self, desktop: str, *, force: bool = False) -> dict[str, Any]:
        """Delete the pairing on the relay (both sides' entries) and the local record.

        With ``force`` the local record goes even when the relay cannot be reached.
        """
        pairing = self.state().find(desktop)
        try:
            async with self.relay_client(pairing.record.relay_url) as relay:
                await relay.delete_pairing(pairing.routing_id)
        except NotPaired:
            pass  # already gone on the relay (the desktop revoked it first)
        except RelayUnavailable:
            if not force:
                raise
        with self.store.transaction() as state:
            current = state.by_pairing_id(pairing.record.pairing_id)
            if current is not None:
                state.remove(current)
        return pairing.summary()

    async def unblock(self, desktop: str) -> dict[str, Any]:
        """Re-confirm a desktop blocked by "I did not ask for this"."""
        pairing = self.state().find(desktop)
        async with self.relay_client(pairing.record.relay_url) as relay:
            await relay.unblock(pairing.routing_id)
        with self.store.transaction() as state:
            current = state.find(pairing.short_id)
            current.blocked = False
            return current.summary()

    async def sync(self) -> list[dict[str, Any]]:
        """Register every local pairing on its relay again (idempotent), then report states.

        Repairs a pairing whose registration failed (relay down at the time),
        and restores a "not me" block the relay lost.
        """
        state = self.state()
        for url in sorted({p.record.relay_url for p in state.pairings}):
            async with self.relay_client(url) as relay:
                for p in state.pairings:
                    if p.record.relay_url == url:
                        await relay.register_pairing(p.routing_id, p.record.desktop_device_id)
                        if p.blocked:
                            await relay.block(p.routing_id)
        return await self.relay_pairings()

    async def relay_pairings(self) -> list[dict[str, Any]]:
        """Each local pairing with its state on its relay (linked/pending/blocked/missing)."""
        state = self.state()
        out: list[dict[str, Any]] = []
        for url in sorted({p.record.relay_url for p in state.pairings}):
            async with self.relay_client(url) as relay:
                known = {info.routing_id: info for info in await relay.list_pairings()}
            for p in state.pairings:
                if p.record.relay_url != url:
                    continue
                info = known.get(p.routing_id)
                relay_state = (
                    "missing" if info is None else ("linked" if info.linked else "pending")
                )
                out.append(
                    {
                        **p.summary(),
                        "relay_state": relay_state,
                        "relay_blocked": bool(info and info.blocked),
                    }
                )
        return out

    # -- requests ---------------------------------------------------------

    def view_notification(
        self, note: UnlockNotification, state: PhoneState | None = None
    ) -> RequestView | Ignored:
        """Decrypt a relay notification into what the user sees."""
        state = state or self.state()
        rid = b64e(note.request_id)
        try:
            pushed = PhoneUnlock.open_push(note.push, state.records, now=int(time.time()))
        except ProtocolError as exc:
            return Ignored(rid, str(exc))
        pairing = state.by_pairing_id(pushed.pairing.pairing_id)
        if pairing is None:  # pragma: no cover - open_push found it among these records
            return Ignored(rid, "unknown pairing")
        if pushed.params.request_id != note.request_id:
            return Ignored(rid, "the relay's request id does not match the desktop's")
        return RequestView.build(pairing, pushed.params, pushed.choices, note)

    async def listen(
        self,
    ) -> AsyncIterator[RequestView | Ignored | RequestEnded | DesktopRemoved]:
        """Yield every unlock request for this phone, and their fate, forever (cancel to stop).

        Holds one relay listener per relay used by the paired desktops;
        reconnection and the polling fallback are the relay client's. Requests
        this phone already answered are skipped. A request yielded before is
        followed by an :class:`AnswerSession`: when the relay says it was
        renewed, answered, cancelled, expired or closed, a :class:`RequestEnded`
        says so and what to do; a desktop that removed this phone is marked
        removed (``list`` shows it) and a :class:`DesktopRemoved` yielded.
        """
        relays = sorted({p.record.relay_url for p in self.state().pairings})
        if not relays:
            raise PhoneError("no paired desktop: pair one first (`unlatch phone pair LINK`)")
        queue: asyncio.Queue[UnlockNotification | RequestUpdate | PairingUpdate | BaseException]
        queue = asyncio.Queue()
        sessions: dict[bytes, tuple[AnswerSession, str]] = {}

        async def pump(url: str) -> None:
            try:
                async with self.relay_client(url) as relay:
                    async for note in relay.events():
                        await queue.put(note)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                await queue.put(exc)

        tasks = [asyncio.create_task(pump(url)) for url in relays]
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, PairingUpdate):
                    removed = self._mark_removed(item.routing_id)
                    if removed is not None:
                        yield removed
                    continue
                if isinstance(item, RequestUpdate):
                    known = sessions.get(item.request_id)
                    if known is None:
                        continue
                    session, desktop = known
                    event = {"type": "channel", "now": time.time(), "state": item.state}
                    session.handle({**event, "acknowledged": item.acknowledged})
                    if session.state in (AnswerState.FORGOTTEN, AnswerState.ENDED):
                        del sessions[item.request_id]
                        yield RequestEnded(
                            b64e(item.request_id),
                            desktop,
                            item.state,
                            ended_text(item.state, f"“{desktop}”"),
                        )
                    continue
                state = self.state()  # re-read: pairings and answers may have changed
                try:
                    state.replay.check(item.request_id)
                except ProtocolError:
                    continue
                view = self.view_notification(item, state)
                if isinstance(view, RequestView):
                    session = AnswerSession(b64e(item.request_id))
                    session.handle(
                        {"type": "notice", "now": time.time(), "expires_at": item.expires_at}
                    )
                    sessions[item.request_id] = (session, view.desktop)
                yield view
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _mark_removed(self, routing_id: bytes) -> DesktopRemoved | None:
        """The relay said a pairing was removed: mark it (`list` shows it; forget with unpair)."""
        with self.store.transaction() as state:
            pairing = next((p for p in state.pairings if p.routing_id == routing_id), None)
            if pairing is None or pairing.removed:
                return None
            pairing.removed = True
            return DesktopRemoved(
                pairing.label,
                pairing.short_id,
                f"“{pairing.label}” removed this phone, so it can no longer unlock it: forget it"
                f" with `unlatch phone unpair {pairing.short_id}`, or pair again from the desktop.",
            )

    def verify(self, link: str) -> PhoneUnlock:
        """Check a scanned unlock QR against the paired desktops; nothing is sent.

        Raises :class:`~unlatch.protocol.UnknownPairing` for a QR not made by a
        paired desktop, :class:`~unlatch.protocol.RequestExpired` when stale,
        :class:`~unlatch.protocol.AlreadyAnswered` when this phone answered it.
        """
        state = self.state()
        pu = PhoneUnlock.from_qr(link, state.records, state.identity, now=int(time.time()))
        state.replay.check(pu.request_id)
        return pu

    async def approve(self, link: str, *, confirm: Confirm | None = None) -> Answer:
        """Answer a scanned QR; ``confirm(view)`` is asked first (False sends a denial)."""
        pu = self.verify(link)
        return await self._answer(pu, confirm=confirm, verdict="approve")

    async def deny(self, link: str, *, not_me: bool = False) -> Answer:
        """Refuse a scanned QR; ``not_me`` also blocks the desktop on the relay."""
        pu = self.verify(link)
        return await self._answer(pu, verdict="not_me" if not_me else "deny")

    async def _fetch_pushed(
        self, request_id: str, *, refuse: bool = False
    ) -> tuple[PhoneUnlock, UnlockNotification]:
        """A request by id, from the relay (the link of a notification).

        Number matching: the push has all it takes to answer. Scan mode: only
        with ``refuse`` ("I did not ask for this" before scanning), for the
        push has no QR secret and the request can only be refused.
        """
        try:
            rid = b64d(request_id.strip(), "request id")
        except ProtocolError:
            raise PhoneError("a request id is the base64url text `listen` printed") from None
        if len(rid) != 16:
            raise PhoneError("a request id is 16 bytes (22 base64url characters)")
        state = self.state()
        state.replay.check(rid)
        last: RelayError | None = None
        for url in sorted({p.record.relay_url for p in state.pairings}):
            async with self.relay_client(url) as relay:
                try:
                    note = await relay.get_unlock(rid)
                except (UnknownChannel, NotPaired, RelayUnavailable) as exc:
                    last = exc
                    continue
            pushed = PhoneUnlock.open_push(note.push, state.records, now=int(time.time()))
            if pushed.params.request_id != rid:
                raise PhoneError("the relay returned a different request than asked")
            if refuse:
                return PhoneUnlock.for_refusal(pushed, state.identity), note
            if pushed.params.mode is not UnlockMode.NUMBER_MATCH:
                raise PhoneError(
                    "this request must be answered by scanning the QR code on the desktop "
                    "(or refused with --not-me: I did not ask for this)"
                )
            return PhoneUnlock.from_push(pushed, state.identity), note
        if last is not None:
            raise last
        raise UnknownDesktop("no paired desktop: nothing to answer")

    async def approve_request(
        self, request_id: str, number: int, *, confirm: Confirm | None = None
    ) -> Answer:
        """Answer a number-matching request from its notification with the number picked."""
        pu, note = await self._fetch_pushed(request_id)
        return await self._answer(pu, confirm=confirm, verdict="approve", choice=number, note=note)

    async def deny_request(
        self, request_id: str, *, not_me: bool = False, confirm: Confirm | None = None
    ) -> Answer:
        """Refuse a request from its notification.

        A number-matching request can be denied or refused ("not me"); a
        scan-mode one, before its QR is scanned, only refused with ``not_me``:
        the phone sends an :class:`~unlatch.protocol.messages.UnlockRefusal`
        (the desktop says the phone did not ask for it) and blocks the desktop
        on the relay. ``confirm(view)`` is asked first; False sends nothing.
        """
        pu, note = await self._fetch_pushed(request_id, refuse=not_me)
        return await self._answer(
            pu, verdict="not_me" if not_me else "deny", note=note, confirm=confirm
        )

    async def _answer(
        self,
        pu: PhoneUnlock,
        *,
        verdict: str,
        confirm: Confirm | None = None,
        choice: int | None = None,
        note: UnlockNotification | None = None,
    ) -> Answer:
        """Ask, answer once, post, and report what the relay says became of it.

        The request's life is an :class:`AnswerSession` (the PWA's too): the
        answer counts as given only when the relay says a desktop still
        waiting took it ("delivered"); otherwise :class:`RequestClosed` says
        what happened and what to do.
        """
        pairing = self.state().by_pairing_id(pu.pairing.pairing_id)
        if pairing is None:
            raise UnknownDesktop("this desktop was unpaired meanwhile")
        if verdict == "approve":
            pu.check_mode()  # a mode this pairing did not allow: refused before anything is sent
        view = RequestView.build(pairing, pu.params, pu.choices, note)
        if choice is not None and choice not in pu.choices:
            raise PhoneError(f"pick one of the numbers offered: {', '.join(map(str, pu.choices))}")
        desktop = f"“{pairing.label}”"
        session = AnswerSession(b64e(pu.request_id))
        session.handle({"type": "open", "now": time.time(), "expires_at": pu.params.expires_at})
        if pairing.removed:  # the relay said so before: nothing to send
            session.handle({"type": "revoke", "now": time.time()})
            raise RequestClosed(view_text(session.view, desktop))
        async with self.relay_client(pairing.record.relay_url) as relay:
            if note is None:  # scanned QR: tell the desktop, learn who asks
                try:
                    await relay.post_seen(pu.request_id, pu.seen())
                except (ChannelGone, UnknownChannel, ChannelExpired, AlreadyAnswered) as exc:
                    await self._hear_state(relay, session, pairing, pu.request_id, exc)
                    raise RequestClosed(view_text(session.view, desktop)) from None
                with contextlib.suppress(RelayError):
                    view = view.with_requester(await relay.get_unlock(pu.request_id))
            if verdict == "approve" and not await _ask(confirm, view):
                verdict = "deny"
            elif verdict == "not_me" and not await _ask(confirm, view):
                raise UserDeclined("nothing was sent: the request is still open")
            now = int(time.time())
            if verdict == "approve":
                reply = pu.approve(now=now, choice=choice)
                result = "approved" if pu.approved_share_sent else "wrong_number"
            elif not pu.can_reply:  # from a scan-mode notification, before any scan
                reply = pu.refuse(now=now)
                result = "not_me"
            else:
                reply = pu.deny(now=now, not_me=verdict == "not_me")
                result = "not_me" if verdict == "not_me" else "denied"
            session_verdict = {"approved": "approve", "denied": "deny"}.get(result, result)
            session.handle({"type": "answer", "now": now, "verdict": session_verdict})
            # Remember before sending: a crash may lose an answer, never send two.
            with self.store.transaction() as state:
                state.replay.check(pu.request_id)  # another process may have answered meanwhile
                state.replay.remember(pu.request_id, pu.params.expires_at, now=now)
            try:
                delivery = await relay.post_reply(pu.request_id, reply, wait=REPLY_WAIT)
                if delivery is None:  # a retry found it posted: did the desktop read it?
                    heard = await relay.unlock_state(pu.request_id)
                    if heard.acknowledged:
                        delivery = "delivered"
                    else:
                        delivery = "queued" if heard.state == "open" else "undelivered"
                outcome = delivery
            except (ChannelGone, UnknownChannel):
                outcome = "closed"
            except ChannelExpired:
                outcome = "expired"
            session.handle({"type": "reply", "now": time.time(), "outcome": outcome})
            blocked = False
            if result == "not_me":  # blocked even when the answer came too late
                await relay.block(pairing.routing_id)
                with self.store.transaction() as state:
                    current = state.by_pairing_id(pairing.record.pairing_id)
                    if current is not None:
                        current.blocked = True
                blocked = True
            if outcome == "queued":  # not a failure, not yet a success: say which
                return Answer(result, view, blocked, delivery="queued")
            if session.state is not AnswerState.DONE:
                also = f" ({desktop} is blocked on the relay all the same)" if blocked else ""
                raise RequestClosed(view_text(session.view, desktop) + also)
        return Answer(result, view, blocked)

    async def _hear_state(
        self,
        relay: RelayClient,
        session: AnswerSession,
        pairing: Pairing,
        request_id: bytes,
        exc: RelayError,
    ) -> None:
        """The request ended before this phone answered: ask the relay why, tell the session.

        "closed" with the pairing gone from the relay is a removal (the
        desktop revoked this phone): the pairing is marked removed.
        """
        state = "expired" if isinstance(exc, ChannelExpired) else "closed"
        if isinstance(exc, AlreadyAnswered):
            state = "answered"
        with contextlib.suppress(RelayError):
            state = (await relay.unlock_state(request_id)).state
        if state == "closed":
            with contextlib.suppress(RelayError):
                if pairing.routing_id not in {p.routing_id for p in await relay.list_pairings()}:
                    self._mark_removed(pairing.routing_id)
                    session.handle({"type": "revoke", "now": time.time()})
                    return
        session.handle({"type": "channel", "now": time.time(), "state": state})
        if session.state is AnswerState.OPEN:  # "open" after a refusal: say it is over
            session.handle({"type": "channel", "now": time.time(), "state": "closed"})
