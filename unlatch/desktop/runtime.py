"""DesktopRuntime: the desktop services and the web UI, inside the agent process.

The agent (:mod:`unlatch.agent.server`) owns the :class:`AgentCore`; the
first ``desktop_ui`` request on its socket (sent by ``unlatch desktop``)
builds a :class:`DesktopRuntime` around that core and starts uvicorn on
127.0.0.1 and ::1 (one port, both or none) in the same event loop. Vault
operations from the page therefore go through the same core (same lock,
same idle timer) as the CLI's.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

from unlatch.agent import heap
from unlatch.agent.core import AgentCore
from unlatch.desktop.errors import PortTaken
from unlatch.desktop.identity import DesktopIdentity
from unlatch.desktop.notifier import Notifier
from unlatch.desktop.pairing import PairingService
from unlatch.desktop.settings import (
    DEFAULT_UI_PORT,
    ENV_UI_PORT,
    DesktopSettings,
    check_relay_url,
)
from unlatch.desktop.store import PairingStore
from unlatch.desktop.unlock import DEFAULT_RENEWALS, PhoneUnlockService
from unlatch.desktop.vault_port import CoreVault
from unlatch.desktop.web import listen
from unlatch.desktop.web.pages import reopen_command
from unlatch.desktop.web.security import LAUNCH_SECRET_LIFE, UISecurity
from unlatch.relay.client import RelayClient

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the agent: the agent owns SIGTERM/SIGINT, not the web server."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DesktopRuntime:
    """Everything the local web UI needs, bound to one :class:`AgentCore`."""

    def __init__(
        self,
        core: AgentCore,
        *,
        relay_url: str | None = None,
        unlock_ttl: int | None = None,
        renewals: int = DEFAULT_RENEWALS,
    ) -> None:
        self.core = core
        self.settings = DesktopSettings.load(relay_url, unlock_ttl)
        self.identity = DesktopIdentity.load_or_create()
        self.store = PairingStore()
        self.vault = CoreVault(core)
        self.notifier = Notifier()
        self.security = UISecurity()
        self.relay = RelayClient(self.settings.relay_url, self.identity.relay_key, "desktop")
        self.pairing = PairingService(
            self.identity,
            self.store,
            self.vault,
            self.relay,
            notifier=self.notifier,
            app_url=self.settings.app_url_setting,
        )
        self.unlock = PhoneUnlockService(
            self.store,
            self.vault,
            self.relay,
            notifier=self.notifier,
            ttl=self.settings.unlock_ttl,
            renewals=renewals,
            app_url=self.settings.app_url_setting,
        )
        self.port_note = ""  # why the UI is not on its usual port, if it is not
        self._server: uvicorn.Server | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._bg: set[asyncio.Task[Any]] = set()
        core.add_listener(self._on_core_event)

    def _on_core_event(self, event: str) -> None:
        self.notifier.bump()
        if event == "unlocked":
            task = asyncio.get_running_loop().create_task(self.pairing.remove_orphan_slots())
            self._bg.add(task)
            task.add_done_callback(self._bg.discard)

    async def snapshot(self) -> dict[str, Any]:
        """Everything a surface shows (web UI page, browser extension popup): no secret."""
        status = await self.core.status(slots=False)
        attempt = self.unlock.current
        session = next(iter(self.pairing.sessions.values()), None)
        return {
            "desktop": {"name": self.identity.name, "device_id": self.identity.device_id},
            "vault": {
                "exists": status["vault_exists"],
                "path": status["vault_path"],
                "reopen": reopen_command(),
                "unlocked": status["unlocked"],
                "items": status["items"],
                "locks_in": status["locks_in_seconds"],
                "idle_lock": status["idle_lock_seconds"],
                "error": status["error"],
            },
            "unlock": attempt.view() if attempt else None,
            "pairing": session.view() if session else None,
            "phones": [p.public_view() for p in self.store.all()],
            "settings": {
                **self.settings.public_view(),
                "idle_lock_seconds": self.core.idle_lock_seconds,
                "idle_lock_fixed_by": self.core.idle_lock_fixed_by,
            },
            "version": self.notifier.version,
            "now": time.time(),
        }

    async def set_relay_url(self, url: str) -> None:
        """Switch relays (settings page); pairings made on another relay stay listed."""
        url = check_relay_url(url)
        self.settings.relay_url = url
        self.settings.save()
        # Open attempts live on the old relay: end them there (their channels closed).
        await self.unlock.restart()
        await self.pairing.restart()
        old = self.relay
        self.relay = RelayClient(url, self.identity.relay_key, "desktop")
        self.pairing.relay = self.relay
        self.unlock.relay = self.relay
        await old.aclose()
        self.notifier.bump()

    # ----------------------------------------------------------------- web

    @property
    def port(self) -> int:
        return self.security.port

    @property
    def running(self) -> bool:
        return self._serve_task is not None and not self._serve_task.done()

    async def start_web(self, port: int | None = None) -> None:
        """Listen on 127.0.0.1:``port`` *and* [::1]:``port`` (0: a free one) and serve the UI.

        Both loopback addresses or none: ``localhost`` reaches either, and a
        port held on one by another user would hand it the launch link
        (:mod:`unlatch.desktop.web.listen`). A port given (an option, the
        configuration) is held or nothing; ``None`` is :data:`DEFAULT_UI_PORT`,
        which gives way to a free port when taken (:attr:`port_note` says so).
        """
        from unlatch.desktop.web.app import create_app

        if port is not None:
            socks = listen.bind_loopback(port)
        else:
            try:
                socks = listen.bind_loopback(DEFAULT_UI_PORT)
            except PortTaken:
                socks = listen.bind_loopback(0)
                self.port_note = (
                    f"note: the UI's usual port {DEFAULT_UI_PORT} is taken (by another "
                    f"program, or an unlatch agent of another UNLATCH_HOME): it is on port "
                    f"{socks[0].getsockname()[1]} this time. Set {ENV_UI_PORT} or "
                    "[desktop] ui_port to choose one."
                )
        self.security.port = int(socks[0].getsockname()[1])
        atexit.register(self.security.close)  # no launch file outlives the agent
        try:
            config = uvicorn.Config(
                create_app(self),
                log_config=None,
                access_log=False,
                server_header=False,
                lifespan="off",
                timeout_graceful_shutdown=1,
                ws="none",
            )
        except BaseException:
            for sock in socks:
                sock.close()
            raise
        server = _EmbeddedServer(config)
        self._server = server
        self._serve_task = asyncio.create_task(server.serve(sockets=socks))
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.01)
        bound = " and ".join(f"http://{listen.where(*s.getsockname()[:2])}/" for s in socks)
        log.info("desktop UI on %s", bound)
        heap.settle()  # the UI's libraries and app live as long as the agent (see heap.py)

    def new_launch_file(self) -> Path:
        """A launch file for a browser (see :mod:`unlatch.desktop.web.launch`).

        Deleted when redeemed; a timer deletes it when its secret expires.
        """
        path = self.security.new_launch_file()
        asyncio.get_running_loop().call_later(LAUNCH_SECRET_LIFE + 1, self.security.purge)
        return path

    async def stop(self) -> None:
        """Stop the web server and the attempts, closing their relay channels (agent shutdown)."""
        self.security.close()
        with contextlib.suppress(Exception):
            await self.unlock.restart()
        with contextlib.suppress(Exception):
            await self.pairing.restart()
        if self._server is not None:
            self._server.should_exit = True
        if self._serve_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._serve_task, 3)
        await self.relay.aclose()
