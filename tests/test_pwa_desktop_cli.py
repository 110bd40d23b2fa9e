"""The phone app with the REAL desktop: ``unlatch pair`` and ``unlatch unlock --phone``.

The desktop here is the project's own CLI and agent with a real vault (see
tests/fixtures/desktop.py); the phone is the built PWA in headless Chromium,
whose fake camera is shown the PNG QR codes the CLI writes (``--qr-image``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.desktop import Desktop, clean_env, wait_for
from fixtures.pwa import Phone, write_png_y4m

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_pwa_with_the_real_desktop_cli_pairs_and_unlocks_the_vault(
    pwa_phone: Phone, desktop_env: Callable[..., Desktop], tmp_path: Path
) -> None:
    """``unlatch pair`` and ``unlatch unlock --phone`` (agent, vault) against the PWA's camera."""
    ph = pwa_phone
    page = ph.page
    desktop = desktop_env(ph.relay.url)
    pair_png = tmp_path / "pair.png"
    pairing = desktop_cli(desktop, "pair", "--qr-image", str(pair_png), "--name", "PWA phone")
    wait_for(lambda: png_complete(pair_png), timeout=90, what="the desktop's pairing QR code")
    write_png_y4m(ph.camera, pair_png)
    await page.click("a.tab[href='#/scan']")
    await ph.expect("#pair-start")
    await page.click("#pair-start")
    await ph.expect("#verification-code")
    code = await page.get_attribute("#verification-code", "data-code")
    assert code is not None
    _out, err = await asyncio.to_thread(pairing.communicate, "y\n", timeout=60)
    assert pairing.returncode == 0, err
    assert f"{code[:3]} {code[3:]}" in err  # the desktop showed the same code
    await ph.expect("#pair-save")
    await page.click("#pair-save")
    await ph.expect("#pair-finish")
    await page.click("#pair-finish")
    devices = json.loads(desktop.run("devices", "--json").stdout)
    assert [d["label"] for d in devices] == ["PWA phone"]

    assert desktop.run("lock").returncode == 0
    assert desktop.status()["unlocked"] is False
    unlock_png = tmp_path / "unlock.png"
    unlocking = desktop_cli(desktop, "unlock", "--phone", "--qr-image", str(unlock_png))
    wait_for(lambda: png_complete(unlock_png), timeout=90, what="the desktop's unlock QR code")
    write_png_y4m(ph.camera, unlock_png)
    await ph.expect(".request a")  # the relay woke the open app
    await page.click(".request a")
    await ph.expect("#approve")
    await page.click("#approve")
    out, err = await asyncio.to_thread(unlocking.communicate, timeout=60)
    assert unlocking.returncode == 0, err
    assert "vault unlocked" in out
    assert desktop.status()["unlocked"] is True


def png_complete(path: Path) -> bool:
    """``path`` is a whole, decodable PNG (the CLI may still be writing it when it appears)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, SyntaxError, ValueError):  # missing, truncated, or not a PNG yet
        return False
    return True


def desktop_cli(desktop: Desktop, *args: str) -> subprocess.Popen[str]:
    """Run ``unlatch ARGS`` as the desktop (its home, its relay), interactively."""
    return subprocess.Popen(
        [sys.executable, "-m", "unlatch", *args],
        env=clean_env(desktop.home, UNLATCH_DESKTOP_RELAY_URL=desktop.relay_url),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
