"""The agent socket operation added by the desktop: ``desktop_ui``.

The agent's socket server dispatches on :data:`unlatch.agent.handlers.HANDLERS`;
:func:`install` adds it (called by ``unlatch agent start --foreground``, the
command every agent process runs, and by :mod:`unlatch.cli.desktop_commands`):

* ``desktop_ui {port?, relay?, unlock_ttl?, renewals?, launch?}`` - build the
  :class:`~unlatch.desktop.runtime.DesktopRuntime` around the agent's core
  and start the web UI if it is not running, so the UI lives in the agent
  process, next to the vault key. Answers ``address`` (the UI's address,
  no secret) and a fresh single-use launch link: ``url`` (``launch: "url"``,
  the default, for printing) or ``launch_file``, the path of a 0600 file that
  leads to it (``launch: "file"``, for a browser's command line, which
  every local user can read; see :mod:`unlatch.desktop.web.launch`).
* ``desktop_phone_revoked {phone_id}`` - sent by ``unlatch devices revoke``
  (another process): the UI's pending unlock request for that phone ends
  now, as failed, and its relay channel is closed; the page is refreshed.
"""

from __future__ import annotations

import weakref
from typing import Any

from unlatch.agent.core import AgentCore
from unlatch.agent.errors import BadRequestError
from unlatch.agent.handlers import HANDLERS
from unlatch.desktop import passkey_routes
from unlatch.desktop.runtime import DesktopRuntime
from unlatch.desktop.settings import check_relay_url
from unlatch.desktop.unlock import DEFAULT_RENEWALS
from unlatch.desktop.web.pages import reopen_command

_RUNTIMES: weakref.WeakKeyDictionary[AgentCore, DesktopRuntime] = weakref.WeakKeyDictionary()


def _int(args: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise BadRequestError(f'"{name}" must be a number from {low} to {high}')
    return value


def runtime_for(core: AgentCore) -> DesktopRuntime | None:
    """The runtime of this agent, if the UI or the browser extension started one."""
    return _RUNTIMES.get(core)


def ensure_runtime(
    core: AgentCore,
    *,
    relay: str | None = None,
    ttl: int | None = None,
    renewals: int | None = None,
) -> DesktopRuntime:
    """This agent's one :class:`DesktopRuntime`, made on first use (its web UI not started).

    The web UI and the browser extension are two surfaces over the same
    runtime: one unlock attempt, one pairing, one notifier for both.
    """
    rt = _RUNTIMES.get(core)
    if rt is None:
        rt = DesktopRuntime(
            core,
            relay_url=relay,
            unlock_ttl=ttl,
            renewals=DEFAULT_RENEWALS if renewals is None else renewals,
        )
        _RUNTIMES[core] = rt
    return rt


async def desktop_ui(core: AgentCore, args: dict[str, Any]) -> Any:
    port = _int(args, "port", 0, 65535)  # None: the configured or default port
    ttl = _int(args, "unlock_ttl", 5, 600)
    renewals = _int(args, "renewals", 0, 100)
    relay = args.get("relay")
    if relay is not None and not isinstance(relay, str):
        raise BadRequestError('"relay" must be a URL')
    launch = args.get("launch", "url")
    if launch not in ("url", "file"):
        raise BadRequestError('"launch" must be "url" or "file"')
    rt = _RUNTIMES.get(core)
    note = ""
    already = rt is not None and rt.running
    if rt is None:
        rt = ensure_runtime(core, relay=relay, ttl=ttl, renewals=renewals)
    else:  # made by an earlier `unlatch desktop`, or by the browser extension's host
        note = _ignored(rt, port, relay, ttl, renewals)
    if not rt.running:
        await rt.start_web(port)
        note = rt.port_note
    status = await core.status()
    answer: dict[str, Any] = {
        "address": rt.security.address,
        "port": rt.port,
        "relay_url": rt.settings.relay_url,
        "note": note,
        "already_running": already,
        "agent_pid": status["pid"],
        "vault_path": status["vault_path"],
        "vault_exists": status["vault_exists"],
        "unlocked": status["unlocked"],
        "reopen": reopen_command(),
    }
    if launch == "file":
        answer["launch_file"] = str(rt.new_launch_file())
    else:
        answer["url"] = rt.security.new_launch_url()
    return answer


async def desktop_phone_revoked(core: AgentCore, args: dict[str, Any]) -> Any:
    phone_id = args.get("phone_id")
    if not isinstance(phone_id, str) or not 0 < len(phone_id) <= 64:
        raise BadRequestError('"phone_id" must be a phone id')
    rt = _RUNTIMES.get(core)
    if rt is None:
        return {"withdrawn": False}
    withdrawn = await rt.unlock.phone_revoked(phone_id)
    rt.notifier.bump()  # the phone list changed on disk: the page shows it now
    return {"withdrawn": withdrawn}


def _ignored(
    rt: DesktopRuntime,
    port: int | None,
    relay: str | None,
    ttl: int | None,
    renewals: int | None,
) -> str:
    """Say which options cannot apply: the UI already runs with its own (a silent
    mismatch would leave the user wondering why the relay or the QR life did not change)."""
    notes: list[str] = []
    if port and rt.running and port != rt.port:
        notes.append(f"it is on port {rt.port} (--port ignored)")
    if relay is not None and check_relay_url(relay) != rt.settings.relay_url:
        notes.append(f"it uses the relay {rt.settings.relay_url} (--relay ignored)")
    if ttl is not None and ttl != rt.unlock.ttl:
        notes.append(f"its unlock requests live {rt.unlock.ttl} s (--unlock-ttl ignored)")
    if renewals is not None and renewals != rt.unlock.renewals:
        renewed = rt.unlock.renewals
        notes.append(f"it renews the QR {renewed} times (--qr-renewals ignored)")
    if not notes:
        return ""
    return (
        "note: the desktop UI is already running: "
        + "; ".join(notes)
        + ". Stop the agent (`unlatch agent stop`) to change this."
    )


def install() -> None:
    """Register the operations (idempotent)."""
    HANDLERS.setdefault("desktop_ui", desktop_ui)
    HANDLERS.setdefault("desktop_phone_revoked", desktop_phone_revoked)
    passkey_routes.install()
