"""The browser apps travel inside the package: a wheel built from a clean copy serves them.

``unlatch.paths.web_dir`` looks for ``unlatch/_web/{phone,desktop}`` in the
installed package; ``setup.py`` puts them there when a wheel is built. This
test builds the wheel the way a packager would, from a copy of the source with
nothing git ignores (no ``web/phone/dist``, no ``unlatch/_web``; only the npm
packages, linked in), offline (``--no-build-isolation``), looks inside it,
installs it into a directory of its own, and then runs a relay and a desktop
agent *from that install*: ``/app/`` and the desktop UI's assets must come
from the installed copy (a marker is written into it to tell).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
from fixtures.relay import free_port
from fixtures.vault import KDF_ARGS, PASSWORD

REPO = Path(__file__).resolve().parents[1]
PHONE_FILES = {
    "index.html",
    "app.js",
    "sw.js",
    "qr-decoder.js",
    "styles.css",
    "manifest.webmanifest",
    "icon.svg",
    "icon-192.png",
    "icon-512.png",
}
MARKER = "installed-copy-marker"
# Offline: no index, no build isolation (the venv's setuptools builds), no dependencies.
PIP = [sys.executable, "-m", "pip"]
OFFLINE = ["-q", "--no-deps", "--no-index"]
UNLATCH = [sys.executable, "-m", "unlatch"]


def _run(
    cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None, input: str | None = None
) -> str:
    out = subprocess.run(
        cmd, cwd=cwd, env=env, input=input, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"{' '.join(cmd)}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def _clean_copy(dest: Path) -> None:
    """The source as a fresh clone would have it (tracked and new files, nothing ignored)."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO)
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    assert not (dest / "web" / "phone" / "dist").exists()
    assert not (dest / "unlatch" / "_web").exists()


def test_pwa_wheel_from_a_clean_copy_carries_and_serves_the_browser_apps(
    phone_app_deps: Path, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _clean_copy(src)
    modules = src / "web" / "phone" / "node_modules"
    modules.symlink_to(phone_app_deps / "node_modules")
    wheels = tmp_path / "wheels"
    try:
        _run(
            [*PIP, "wheel", *OFFLINE, "--no-build-isolation", "-w", str(wheels), str(src)],
            cwd=tmp_path,
        )
    finally:
        modules.unlink()  # no link into the checkout's packages is left for a cleanup to follow
    (wheel,) = wheels.glob("unlatch-*.whl")

    # Inside the wheel: the built PWA (as built from this copy) and the desktop UI as written.
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        phone = {n.removeprefix("unlatch/_web/phone/") for n in names if "/_web/phone/" in n}
        desktop = {n.removeprefix("unlatch/_web/desktop/") for n in names if "/_web/desktop/" in n}
        assert PHONE_FILES <= phone, PHONE_FILES - phone
        built = src / "web" / "phone" / "dist"
        assert phone == {p.name for p in built.iterdir()}
        assert zf.read("unlatch/_web/phone/sw.js") == (built / "sw.js").read_bytes()
        written = {p.name for p in (src / "web" / "desktop").iterdir()}
        assert desktop == written
        assert zf.read("unlatch/_web/desktop/app.js") == (src / "web/desktop/app.js").read_bytes()
        # The browser extension (the native host reads its protocol.json and pinned ids).
        for name in ("protocol.json", "manifest.json", "popup.js", "lib/host.js"):
            wheel_copy = zf.read(f"unlatch/_web/extension/{name}")
            assert wheel_copy == (src / "web" / "extension" / name).read_bytes()
        assert not any("/_web/extension/test/" in n for n in names)
        assert not any(n.startswith(("web/", "build/")) for n in names)

    site = tmp_path / "site"
    _run(
        [*PIP, "install", *OFFLINE, "--target", str(site), str(wheel)],
        cwd=tmp_path,
    )
    web = site / "unlatch" / "_web"
    with (web / "phone" / "index.html").open("a") as fh:
        fh.write(f"<!-- {MARKER} -->\n")
    with (web / "desktop" / "app.js").open("a") as fh:
        fh.write(f"/* {MARKER} */\n")

    # Run from the install: its directory first on the path, and a working directory
    # that is not the checkout (python -m puts the working directory first).
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNLATCH_")}
    env.update(PYTHONPATH=str(site), UNLATCH_HOME=str(run_dir / "home"), PYTHONUNBUFFERED="1")
    where = json.loads(
        _run(
            [
                sys.executable,
                "-c",
                "import json, unlatch.paths as p; print(json.dumps("
                "[p.__file__, str(p.web_dir('phone')), str(p.web_dir('desktop'))]))",
            ],
            cwd=run_dir,
            env=env,
        )
    )
    assert where == [
        str(site / "unlatch" / "paths.py"),
        str(web / "phone"),
        str(web / "desktop"),
    ]

    port = free_port()
    log = (tmp_path / "relay.log").open("wb")
    relay = subprocess.Popen(
        [*UNLATCH, "relay", "--port", str(port), "--db", str(tmp_path / "relay.db")],
        cwd=run_dir,
        env=env,
        stdout=log,
        stderr=log,
    )
    relay_url = f"http://127.0.0.1:{port}"
    agent_env = {**env, "UNLATCH_DESKTOP_RELAY_URL": relay_url}
    try:
        _wait_healthy(relay_url, relay, tmp_path / "relay.log")
        app = httpx.get(relay_url + "/app/", timeout=10)
        assert app.status_code == 200, app.text
        assert MARKER in app.text and '<script src="app.js"' in app.text
        sw = httpx.get(relay_url + "/app/sw.js", timeout=10)
        assert sw.status_code == 200 and sw.content == (web / "phone" / "sw.js").read_bytes()

        # The desktop agent (spawned by the CLI, from the same install) serves its UI.
        _run(
            [*UNLATCH, "init", "--password-stdin", *KDF_ARGS],
            cwd=run_dir,
            env=agent_env,
            input=f"{PASSWORD}\n{PASSWORD}\n",
        )
        info = json.loads(
            _run(
                [*UNLATCH, "desktop", "--no-browser", "--json"],
                cwd=run_dir,
                env=agent_env,
            )
        )
        with httpx.Client(follow_redirects=True, timeout=10) as ui:
            page = ui.get(info["url"])
            assert page.status_code == 200 and "static/app.js" in page.text
            script = ui.get(str(page.url) + "static/app.js")  # under the UI's secret prefix
            assert script.status_code == 200 and MARKER in script.text
    finally:
        subprocess.run(
            [*UNLATCH, "agent", "stop"],
            cwd=run_dir,
            env=agent_env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        relay.terminate()
        try:
            relay.wait(15)
        except subprocess.TimeoutExpired:
            relay.kill()
            relay.wait(5)
        log.close()


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the installed relay exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the installed relay did not become healthy:\n{log.read_text()[-3000:]}")
