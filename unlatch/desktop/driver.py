"""SessionDriver: the asyncio half of a desktop session (the sessions are sans-IO).

One driver per session and one task per driver. Everything that happens
reaches the session as an event, through :meth:`feed`:

* the driver's task takes events from its queue: what the channel followers
  read from the relay, and the ticks the session scheduled;
* the API (cancel, revoke, confirm ...) feeds its event directly and awaits
  the commands it causes, so "cancel returned" means "the channels are
  closed".

``feed`` runs the session's handler (synchronous, so atomic in the event
loop) and then carries out its commands in order; a command's result
(channel created, vault unlocked ...) is fed back at once. Because the
session itself models the operations under way (a renewal being created,
the vault being unlocked), an event fed while a command is awaited is
handled correctly without any "is this still the current request?" check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, Protocol

from unlatch.desktop.clock import Clock
from unlatch.desktop.notifier import Notifier
from unlatch.desktop.sessions.base import (
    ChannelExpired,
    ChannelFailed,
    Command,
    Event,
    ScheduleTick,
    Session,
    Tick,
)
from unlatch.errors import UnlatchError
from unlatch.relay import errors as relay_errors
from unlatch.relay.client import ChannelMessage, RelayClient

log = logging.getLogger(__name__)

FOLLOW_SLACK = 5  # seconds a channel is followed past its life (the relay ends it first)
UNEXPECTED = "the relay channel could not be followed (an unexpected fault: see the agent log)"


class Services(Protocol):
    """What a driver needs from its service (read at use: the relay can be switched)."""

    relay: RelayClient
    clock: Clock
    notifier: Notifier


class SessionDriver:
    """Feeds one session its events and carries out its commands (subclasses: the I/O)."""

    def __init__(self, session: Session[Any], services: Services) -> None:
        self.session = session
        self.clock = services.clock
        self.notifier = services.notifier
        self._services = services
        self.changed = asyncio.Event()
        self._events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._followers: dict[bytes, asyncio.Task[None]] = {}
        self._timer: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def final(self) -> bool:
        return self.session.final

    def launch(self) -> None:
        """Start the driver's task (after the session's first event went through)."""
        self._task = asyncio.create_task(self._run())

    def post(self, event: Event) -> None:
        """Queue an event for the driver's task (followers and the timer use this)."""
        self._events.put_nowait(event)

    async def feed(self, event: Event) -> None:
        """Handle one event now and carry out its commands."""
        for command in self.handle(event):
            await self.execute(command)
        if self.session.final:
            self._events.put_nowait(None)  # wake the task so it can end

    def handle(self, event: Event) -> list[Command]:
        """The session's reaction (a hook for measuring it)."""
        return self.session.handle(event)

    async def execute(self, command: Command) -> None:
        """Carry out one command; subclasses handle theirs and defer the rest here."""
        if isinstance(command, ScheduleTick):
            self._schedule(command.at)
        else:
            raise TypeError(f"{type(self).__name__} cannot carry out {command!r}")

    def shown(self) -> None:
        """The session's view changed: wake the page's waiters and the live stream."""
        self.changed.set()
        self.notifier.bump()

    def follow(
        self,
        kind: Literal["unlock", "pairing"],
        channel: bytes,
        timeout: float,
        read: Callable[[ChannelMessage], Event | None],
        gone: Callable[[], Event],
        *,
        messages: AsyncIterator[ChannelMessage] | None = None,
        created: asyncio.Future[dict[str, Any]] | None = None,
    ) -> None:
        """Follow a relay channel: ``read`` turns a message into an event (or None).

        The channel's end becomes ChannelExpired (also when it was followed
        past its life), ``gone()`` when the relay closed it, ChannelFailed when
        the relay stayed unreachable. ``messages``: a follower that also makes
        the channel (:meth:`RelayClient.follow_new_unlock`); ``created`` then
        gets the relay's answer, or the create's refusal as its exception
        (not an event: the command that asked for it says so). A channel
        already followed is not followed twice.
        """
        if channel in self._followers:
            return
        self._followers[channel] = asyncio.create_task(
            self._follow(kind, channel, timeout, read, gone, messages, created)
        )

    async def _follow(
        self,
        kind: Literal["unlock", "pairing"],
        channel: bytes,
        timeout: float,
        read: Callable[[ChannelMessage], Event | None],
        gone: Callable[[], Event],
        messages: AsyncIterator[ChannelMessage] | None,
        created: asyncio.Future[dict[str, Any]] | None,
    ) -> None:
        relay = self._services.relay
        source = messages or relay.channel_messages(kind, channel, timeout=timeout)
        try:
            async for msg in source:
                event = read(msg)
                if event is not None:
                    self.post(event)
            if created is not None and not created.done():
                raise relay_errors.RelayUnavailable("the relay did not make the request in time")
            self.post(ChannelExpired(channel))
        except Exception as exc:  # every fault becomes an event (or the refusal)
            if created is not None and not created.done():
                created.set_exception(exc)  # the channel was never made
            elif isinstance(exc, relay_errors.ChannelExpired):
                self.post(ChannelExpired(channel))
            elif isinstance(exc, relay_errors.ChannelGone):
                self.post(gone())
            elif isinstance(exc, UnlatchError):
                self.post(ChannelFailed(channel, str(exc)))
            else:  # never leave the UI spinning on an unexpected fault
                log.exception("following a %s channel failed", kind)
                self.post(ChannelFailed(channel, UNEXPECTED))
        finally:
            if created is not None and not created.done():  # cancelled while making it
                created.set_exception(relay_errors.RelayUnavailable("the request was not made"))

    def unfollow(self, key: bytes) -> None:
        task = self._followers.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _run(self) -> None:
        try:
            while not self.session.final:
                event = await self._events.get()
                if event is None:
                    continue
                try:
                    await self.feed(event)
                except Exception:  # a bug: keep the session alive for the events to come
                    log.exception("%s failed on %s", type(self.session).__name__, event.NAME)
        finally:
            self._schedule(None)
            for key in list(self._followers):
                self.unfollow(key)

    def _schedule(self, at: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at is not None:
            self._timer = asyncio.create_task(self._tick_at(at))

    async def _tick_at(self, at: float) -> None:
        await self.clock.sleep_until(at)
        self.post(Tick(self.clock.now()))

    async def stopped(self) -> None:
        """Wait for the driver's task to end (tests, shutdown)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
