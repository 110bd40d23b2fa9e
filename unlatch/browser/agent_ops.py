"""Agent socket operations for the browser extension's native host.

The host (a separate process the browser starts) reaches the vault only
through the agent. These operations expose the desktop runtime's unlock
session and state to it, the same objects the web UI drives:

* ``browser_state {since?, timeout?}`` - the runtime's snapshot; with
  ``since`` (a notifier version) it first waits, up to ``timeout`` seconds,
  for something to change, so an open popup learns of a lock or an unlock
  made anywhere (CLI, web UI, auto-lock) as it happens;
* ``browser_unlock_phone {phone_id?}`` / ``browser_unlock_cancel`` - start or
  cancel "Request unlock from phone" (one attempt at a time, shared with the
  web UI);
* ``browser_unlock_qr`` - the waiting request's QR code as SVG, for the popup.
"""

from __future__ import annotations

from typing import Any

from unlatch.agent.core import AgentCore
from unlatch.agent.errors import BadRequestError
from unlatch.agent.handlers import HANDLERS
from unlatch.desktop import qr
from unlatch.desktop.agent_ops import ensure_runtime
from unlatch.desktop.errors import DesktopError

MAX_WATCH = 25.0  # seconds a state watch may wait before answering anyway


class NoUnlockRequest(DesktopError):
    code = "no_request"


async def browser_state(core: AgentCore, args: dict[str, Any]) -> Any:
    rt = ensure_runtime(core)
    since, timeout = args.get("since"), args.get("timeout", MAX_WATCH)
    if since is not None:
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise BadRequestError('"since" must be a state version')
        if not isinstance(timeout, int | float) or not 0 <= timeout <= MAX_WATCH:
            raise BadRequestError(f'"timeout" must be 0 to {MAX_WATCH:.0f} seconds')
        await rt.notifier.wait_past(since, float(timeout))
    return await rt.snapshot()


async def browser_unlock_phone(core: AgentCore, args: dict[str, Any]) -> Any:
    rt = ensure_runtime(core)
    phone = args.get("phone_id")
    if phone is not None and (not isinstance(phone, str) or len(phone) > 64):
        raise BadRequestError('"phone_id" must be a phone id')
    attempt = await rt.unlock.start(phone, number_matching=rt.settings.number_matching)
    return attempt.view()


async def browser_unlock_cancel(core: AgentCore, args: dict[str, Any]) -> Any:
    rt = ensure_runtime(core)
    current = rt.unlock.current
    if current is not None and not current.final:
        await rt.unlock.cancel(current.id)
    return {"cancelled": current is not None}


async def browser_unlock_qr(core: AgentCore, args: dict[str, Any]) -> Any:
    rt = ensure_runtime(core)
    attempt = rt.unlock.current
    if attempt is None or attempt.final or attempt.link is None:
        raise NoUnlockRequest("no unlock request with a QR code is waiting")
    return {
        "svg": qr.svg(attempt.link, title="unlatch unlock request"),
        "generation": attempt.generation,
    }


def install() -> None:
    """Register the operations (idempotent)."""
    HANDLERS.setdefault("browser_state", browser_state)
    HANDLERS.setdefault("browser_unlock_phone", browser_unlock_phone)
    HANDLERS.setdefault("browser_unlock_cancel", browser_unlock_cancel)
    HANDLERS.setdefault("browser_unlock_qr", browser_unlock_qr)
