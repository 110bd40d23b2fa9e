"""Build hook: ship the browser apps inside the ``unlatch`` package.

Everything else about the package is declared in ``pyproject.toml``. This file
only adds what a static declaration cannot: the relay serves the phone PWA
(``web/phone/dist``, a *build* of ``web/phone/src``) under ``/app/`` and the
desktop agent serves ``web/desktop``, both found through
``unlatch.paths.web_dir``, which looks for ``unlatch/_web/<name>`` first. So a
wheel (and anything installed from one) must carry both as ``unlatch/_web``,
or an installed relay answers 503 at ``/app/`` and the desktop UI has no page.

* ``build_py`` (wheels, ``pip install .``) copies ``web/phone/dist`` and
  ``web/desktop`` into the build directory as ``unlatch/_web/phone`` and
  ``unlatch/_web/desktop``. It never writes into the source tree, and it does
  nothing for an editable install: a checkout serves ``web/`` directly, so a
  rebuilt app is served without reinstalling.
* The phone app is rebuilt first (``npm run build``) when its npm packages are
  installed, so a wheel never ships a stale ``dist/``; without them (e.g. from
  an sdist) the ``dist/`` that is there is used, and with neither the build
  fails and says what to run, rather than making a wheel without the app.
* ``sdist`` builds the app the same way first; ``MANIFEST.in`` puts ``web/``
  (sources and ``dist/``) in the archive, so a wheel can be made from it
  without Node.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.errors import SetupError

ROOT = Path(__file__).resolve().parent
PHONE = ROOT / "web" / "phone"
DESKTOP = ROOT / "web" / "desktop"
EXTENSION = ROOT / "web" / "extension"
# Files the built app must have; a dist/ without them is not an app.
PHONE_REQUIRED = (
    "index.html",
    "app.js",
    "sw.js",
    "qr-decoder.js",
    "manifest.webmanifest",
    "app-manifest.json",
    "app-manifest.sig",
)
DESKTOP_REQUIRED = ("index.html", "app.js")
# The browser extension: the native host reads protocol.json and the manifests (its pinned ids).
EXTENSION_REQUIRED = ("manifest.json", "manifest.firefox.json", "protocol.json", "popup.html")
NPM_TIMEOUT = 600


def build_phone_app() -> Path:
    """``web/phone/dist``, rebuilt from source when the npm packages are installed."""
    npm = shutil.which("npm")
    if (PHONE / "node_modules").is_dir() and npm is not None:
        try:
            out = subprocess.run(
                [npm, "run", "--silent", "build"],
                cwd=PHONE,
                capture_output=True,
                text=True,
                timeout=NPM_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise SetupError(f"npm run build in {PHONE} took over {NPM_TIMEOUT} s") from None
        if out.returncode != 0:
            raise SetupError(f"npm run build failed in {PHONE}:\n{out.stdout}\n{out.stderr}")
    dist = PHONE / "dist"
    missing = [f for f in PHONE_REQUIRED if not (dist / f).is_file()]
    if missing:
        raise SetupError(
            f"the phone app is not built ({dist} lacks {', '.join(missing)}): run"
            " `npm ci && npm run build` in web/phone (or `bash scripts/dev.sh setup`) first;"
            " a package without it would answer 503 at /app/"
        )
    return dist


def desktop_ui() -> Path:
    missing = [f for f in DESKTOP_REQUIRED if not (DESKTOP / f).is_file()]
    if missing:
        raise SetupError(f"{DESKTOP} lacks {', '.join(missing)}: the desktop UI cannot be packaged")
    return DESKTOP


def browser_extension() -> Path:
    missing = [f for f in EXTENSION_REQUIRED if not (EXTENSION / f).is_file()]
    if missing:
        lacking = ", ".join(missing)
        raise SetupError(f"{EXTENSION} lacks {lacking}: the extension cannot be packaged")
    return EXTENSION


class BuildPyWithWeb(build_py):
    """``build_py`` that also puts the browser apps in ``unlatch/_web`` of the build."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return  # a checkout serves web/ itself (unlatch.paths.web_dir)
        target = Path(self.build_lib) / "unlatch" / "_web"
        shutil.rmtree(target, ignore_errors=True)
        ignore = shutil.ignore_patterns(".*")
        shutil.copytree(build_phone_app(), target / "phone", ignore=ignore)
        shutil.copytree(desktop_ui(), target / "desktop", ignore=ignore)
        extension_ignore = shutil.ignore_patterns(".*", "node_modules", "test", "package*.json")
        shutil.copytree(browser_extension(), target / "extension", ignore=extension_ignore)


class SdistWithWeb(sdist):
    """``sdist`` that builds the phone app first, so the archive carries a fresh ``dist/``."""

    def run(self) -> None:
        build_phone_app()
        desktop_ui()
        browser_extension()
        super().run()


setup(cmdclass={"build_py": BuildPyWithWeb, "sdist": SdistWithWeb})
