"""``unlatch browser install|uninstall|status``: register the native messaging host.

A browser finds a native messaging host through a JSON manifest in a
per-browser, per-user directory. Its ``path`` must be an absolute executable
with no arguments, so install writes a small launcher (0700, in the unlatch
state directory) that runs this Python with ``-m unlatch.browser.host`` (the
same host as ``unlatch browser host``, without the CLI's start-up cost) and
keeps the ``UNLATCH_HOME`` the command was run with (the extension then opens
the same vault as the CLI). Only the pinned extension may call it: Chromium
browsers read ``allowed_origins``, Firefox ``allowed_extensions``, and the
host checks the caller again itself.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlatch import paths
from unlatch.browser.host import extension_ids
from unlatch.browser.messaging import HOST_NAME
from unlatch.errors import UnlatchError


class BrowserInstallError(UnlatchError):
    """A host manifest could not be written or removed."""


@dataclass(frozen=True)
class Browser:
    name: str
    title: str
    profile: str  # the browser's own user directory (it is "installed" when this exists)
    hosts: str  # where it looks for host manifests
    family: str  # "chromium" or "firefox"


def _browsers() -> list[Browser]:
    home = Path.home()
    if sys.platform == "darwin":
        sup = home / "Library" / "Application Support"
        table = [
            ("chromium", "Chromium", sup / "Chromium", "chromium"),
            ("chrome", "Google Chrome", sup / "Google" / "Chrome", "chromium"),
            ("edge", "Microsoft Edge", sup / "Microsoft Edge", "chromium"),
            ("brave", "Brave", sup / "BraveSoftware" / "Brave-Browser", "chromium"),
        ]
        firefox = (sup / "Mozilla", sup / "Mozilla" / "NativeMessagingHosts")
    else:
        cfg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
        table = [
            ("chromium", "Chromium", cfg / "chromium", "chromium"),
            ("chrome", "Google Chrome", cfg / "google-chrome", "chromium"),
            ("edge", "Microsoft Edge", cfg / "microsoft-edge", "chromium"),
            ("brave", "Brave", cfg / "BraveSoftware" / "Brave-Browser", "chromium"),
        ]
        firefox = (home / ".mozilla", home / ".mozilla" / "native-messaging-hosts")
    out = [Browser(n, t, str(p), str(p / "NativeMessagingHosts"), f) for n, t, p, f in table]
    out.append(Browser("firefox", "Firefox", str(firefox[0]), str(firefox[1]), "firefox"))
    return out


BROWSER_NAMES = ("chromium", "chrome", "edge", "brave", "firefox")


def launcher_path() -> Path:
    return paths.subdir("browser") / "unlatch-browser-host"


def _write_private(path: Path, data: str, mode: int) -> None:
    """Write atomically with ``mode`` from creation (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(data)
    os.replace(tmp, path)


def write_launcher() -> Path:
    path = launcher_path()
    lines = [
        "#!/bin/sh",
        "# Written by `unlatch browser install`: the browser runs this to reach the unlatch agent.",
    ]
    home = os.environ.get("UNLATCH_HOME")
    if home:
        lines.append(f"UNLATCH_HOME={shlex.quote(str(Path(home).resolve()))}; export UNLATCH_HOME")
    # The host module itself, not the CLI: a popup waits for this process to start.
    lines.append(f'exec {shlex.quote(sys.executable)} -m unlatch.browser.host "$@"')
    _write_private(path, "\n".join(lines) + "\n", 0o700)
    return path


def host_manifest(family: str, launcher: Path) -> dict[str, Any]:
    ids = extension_ids()
    manifest: dict[str, Any] = {
        "name": HOST_NAME,
        "description": "unlatch: unlock and fill from the desktop vault",
        "path": str(launcher),
        "type": "stdio",
    }
    if family == "firefox":
        manifest["allowed_extensions"] = [ids["firefox"]]
    else:
        manifest["allowed_origins"] = [f"chrome-extension://{ids['chromium']}/"]
    return manifest


def _targets(browser: str | None, user_data_dir: Path | None) -> list[Browser]:
    if user_data_dir is not None:  # one Chromium profile directory (portable or test browsers)
        d = user_data_dir.resolve()
        return [Browser("profile", str(d), str(d), str(d / "NativeMessagingHosts"), "chromium")]
    found = _browsers()
    if browser is not None:
        return [b for b in found if b.name == browser]
    return [b for b in found if Path(b.profile).is_dir()]


def install(browser: str | None = None, user_data_dir: Path | None = None) -> list[str]:
    """Write the launcher and a host manifest for each browser; return where."""
    targets = _targets(browser, user_data_dir)
    if not targets:
        raise BrowserInstallError(
            "no supported browser profile found (Chromium, Chrome, Edge, Brave, Firefox): "
            "start the browser once, or name it with --browser"
        )
    launcher = write_launcher()
    done: list[str] = []
    for b in targets:
        path = Path(b.hosts) / f"{HOST_NAME}.json"
        try:
            text = json.dumps(host_manifest(b.family, launcher), indent=2) + "\n"
            _write_private(path, text, 0o644)
        except OSError as exc:
            raise BrowserInstallError(f"cannot write {path}: {exc.strerror}") from None
        done.append(f"{b.title}: {path}")
    return done


def uninstall(browser: str | None = None, user_data_dir: Path | None = None) -> list[str]:
    targets = _targets(browser, user_data_dir) if browser or user_data_dir else _browsers()
    removed: list[str] = []
    for b in targets:
        path = Path(b.hosts) / f"{HOST_NAME}.json"
        if path.is_file():
            path.unlink()
            removed.append(f"{b.title}: {path}")
    if browser is None and user_data_dir is None:
        launcher_path().unlink(missing_ok=True)
    return removed


def status(user_data_dir: Path | None = None) -> list[dict[str, Any]]:
    """Each known browser: found, host manifest installed, and whether it points at our host."""
    rows = []
    targets = _targets(None, user_data_dir) if user_data_dir else _browsers()
    launcher = launcher_path()
    for b in targets:
        path = Path(b.hosts) / f"{HOST_NAME}.json"
        state = "not installed"
        if path.is_file():
            try:
                data = json.loads(path.read_text("utf-8"))
                ok = data.get("path") == str(launcher) and launcher.is_file()
                state = "installed" if ok else "installed by another unlatch (other path)"
            except (OSError, ValueError):
                state = "unreadable manifest"
        rows.append(
            {
                "browser": b.name,
                "title": b.title,
                "found": Path(b.profile).is_dir(),
                "manifest": str(path),
                "state": state,
            }
        )
    return rows
