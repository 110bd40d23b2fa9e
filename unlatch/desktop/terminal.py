"""The CLI's pairing and phone-unlock flows, run in the terminal's own process.

``unlatch pair`` and ``unlatch unlock --phone`` use the same services as the
web UI, with a :class:`~unlatch.desktop.vault_port.SocketVault` (the agent
holds the vault; this process only computes the slot KEK and hands it over
the socket) and their own relay session. Status goes to stderr; the QR is
drawn in the terminal with segno and can also be written to a PNG.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import click
import segno

from unlatch.agent.client import AgentClient
from unlatch.desktop import qr
from unlatch.desktop.errors import DesktopError, UnlockFailedError
from unlatch.desktop.identity import DesktopIdentity
from unlatch.desktop.pairing import PairingService
from unlatch.desktop.settings import DesktopSettings
from unlatch.desktop.store import PairedPhone, PairingStore
from unlatch.desktop.unlock import PhoneUnlockService
from unlatch.desktop.vault_port import SocketVault
from unlatch.relay.client import RelayClient


def _write_png(link: str, path: Path) -> None:
    """Write the QR as a PNG atomically: a reader never sees half an image.

    Scripts (and the tests) wait for the file to appear and then decode it,
    so it is written to a temporary file (0600: the link holds the request's
    secret) in the same directory and renamed into place.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "wb") as fh:
            segno.make(link, error="m").save(fh, kind="png", scale=8, border=4)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DesktopError(f"cannot write the QR image to {path}: {exc.strerror}") from None


def _show_qr(link: str, qr_image: Path | None, show_link: bool) -> None:
    click.echo(qr.terminal(link), err=True)
    if qr_image is not None:
        _write_png(link, qr_image)
        click.echo(f"QR code also written to {qr_image}", err=True)
    if show_link:
        click.echo(link)


async def pair(
    agent: AgentClient,
    settings: DesktopSettings,
    *,
    confirm: Callable[[str, str], bool],
    label: str | None,
    qr_image: Path | None,
    show_link: bool,
) -> PairedPhone:
    """Pair a phone from the terminal; returns the new pairing."""
    identity = DesktopIdentity.load_or_create()
    async with RelayClient(settings.relay_url, identity.relay_key, "desktop") as relay:
        service = PairingService(
            identity, PairingStore(), SocketVault(agent), relay, app_url=settings.app_url_setting
        )
        session = await service.start()
        click.echo("Scan this pairing code with the phone (unlatch app or camera):", err=True)
        _show_qr(session.link, qr_image, show_link)
        deadline = session.expires_at
        while session.state == "waiting":
            await service.wait(session.id, max(0.5, deadline - time.time()))
            if time.time() > deadline + 2:
                break
        if session.state != "confirm" or session.pending is None:
            await service.cancel(session.id)
            raise UnlockFailedError(session.message or "pairing did not complete")
        code = session.pending.verification_code
        pretty = f"{code[:3]} {code[3:]}"
        if not await asyncio.to_thread(confirm, session.pending.phone_name, pretty):
            await service.reject(session.id)
            raise UnlockFailedError("pairing rejected: nothing was saved")
        return await service.confirm(session.id, label)


async def unlock_with_phone(
    agent: AgentClient,
    settings: DesktopSettings,
    *,
    phone_id: str | None,
    qr_image: Path | None,
    show_link: bool,
    number_matching: bool,
) -> None:
    """Request an unlock from a paired phone and wait until the agent is unlocked."""
    identity = DesktopIdentity.load_or_create()
    async with RelayClient(settings.relay_url, identity.relay_key, "desktop") as relay:
        service = PhoneUnlockService(
            PairingStore(),
            SocketVault(agent),
            relay,
            ttl=settings.unlock_ttl,
            renewals=0,
            app_url=settings.app_url_setting,
        )
        attempt = await service.start(phone_id, number_matching=number_matching)
        click.echo(f"Unlock request sent to {attempt.phone.label}.", err=True)
        if attempt.link is None:  # number matching makes no QR: the number is shown instead
            click.echo(f"Pick {attempt.request.number} on the phone.", err=True)
        else:
            click.echo("Scan this code with the phone:", err=True)
            _show_qr(attempt.link, qr_image, show_link)
        last = ""
        while not attempt.final:
            await service.wait(attempt.id, 1.0)
            if attempt.state != last:
                last = attempt.state
                click.echo(f"  {attempt.message}", err=True)
        if attempt.state != "approved":
            raise UnlockFailedError(attempt.message)
