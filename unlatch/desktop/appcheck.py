"""Before a pairing link is shown: is the phone app at the link's origin this desktop's build?

Why: the pairing link opens the phone app at ``app_url``, and whoever serves
that app runs code next to K_P and every pairing key. The relay (or any app
origin) is not trusted, so the desktop fetches every file its own build lists
(``app-manifest.json`` of :func:`unlatch.paths.web_dir` ``("phone")``, written
by web/phone/build.mjs) from the link's origin, plus the page the link itself
opens, and compares their SHA-256 with its own copy. Any difference refuses
the link with :class:`AppMismatchError`, which names the origin.

What this cannot see: a server that serves this desktop the genuine files and
a phone other ones (it can tell them apart by address or user agent). That is
what the installed app's pinned code is for (web/phone/src/sw.js); both
limits are in docs/security.md section 1.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx

from unlatch import paths
from unlatch.desktop.errors import AppBuildError, AppMismatchError

MANIFEST_FILE = "app-manifest.json"  # web/phone/src/lib/integrity.js MANIFEST_FILE
MAX_MANIFEST_BYTES = 16 * 1024  # integrity.js MAX_MANIFEST_BYTES
MAX_FILE_BYTES = 4 * 1024 * 1024  # sw.js MAX_FILE_BYTES: no file of the app is near this
TIMEOUT = 10.0


@dataclass(frozen=True)
class AppBuild:
    """This desktop's own build of the phone app: file name -> SHA-256 (hex), and its version."""

    version: str
    build: str
    files: dict[str, str]


def own_build(directory: Path | None = None) -> AppBuild:
    """Read and check the desktop's own copy of the app (its manifest against its files)."""
    directory = directory or paths.web_dir("phone")
    path = directory / MANIFEST_FILE
    try:
        raw = path.read_bytes()[: MAX_MANIFEST_BYTES + 1]
    except OSError:
        raise AppBuildError(
            f"this desktop has no build of the phone app to compare with ({path} is missing):"
            " build it (npm run build in web/phone) or reinstall unlatch"
        ) from None
    try:
        if len(raw) > MAX_MANIFEST_BYTES:
            raise ValueError("too large")
        data = json.loads(raw)
        files = data["files"]
        if not isinstance(files, dict) or not files:
            raise ValueError("no files")
        checked = {str(k): str(v) for k, v in files.items()}
        version, build = str(data["version"]), str(data["build"])
    except (ValueError, KeyError, TypeError):
        raise AppBuildError(f"{path} is not a phone app manifest: rebuild the app") from None
    for name, digest in checked.items():
        if "/" in name or name.startswith(".") or not (directory / name).is_file():
            raise AppBuildError(f"{path} lists {name!r}, which the build does not have")
        if not hmac.compare_digest(_sha256(_read(directory / name)), digest):
            raise AppBuildError(f"{directory / name} does not match {path}: rebuild the app")
    checked[MANIFEST_FILE] = _sha256(raw)
    return AppBuild(version, build, checked)


def _read(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(MAX_FILE_BYTES + 1)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def app_origin(app_url: str) -> str:
    parts = urlsplit(app_url)
    return f"{parts.scheme}://{parts.netloc}"


async def check_app(
    app_url: str,
    *,
    build: AppBuild | None = None,
    verify: bool | str = True,
    timeout: float = TIMEOUT,
) -> AppBuild:
    """Refuse (:class:`AppMismatchError`) unless ``app_url`` serves exactly this desktop's build.

    ``app_url`` is the link's base (``https://app.example/app/``): each file is
    fetched at ``app_url + name``, and the page at ``app_url`` itself must be
    ``index.html``. Redirects are not followed (a redirect is a mismatch: the
    phone would follow it somewhere else).
    """
    build = build or own_build()
    origin = app_origin(app_url)
    wanted = {"": build.files["index.html"], **build.files} if "index.html" in build.files else {}
    if not wanted:
        raise AppBuildError("this desktop's phone app build has no index.html")
    differ: list[str] = []
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, verify=verify, trust_env=False
    ) as http:
        for name, digest in wanted.items():
            url = urljoin(app_url, name)
            try:
                async with http.stream("GET", url, headers={"cache-control": "no-cache"}) as resp:
                    if resp.status_code != 200:
                        differ.append(f"{name or app_url} (HTTP {resp.status_code})")
                        continue
                    body = b""
                    async for chunk in resp.aiter_bytes():
                        body += chunk
                        if len(body) > MAX_FILE_BYTES:
                            break
            except httpx.HTTPError as exc:
                raise AppMismatchError(
                    origin, f"the phone app there could not be fetched ({type(exc).__name__})"
                ) from None
            if not hmac.compare_digest(_sha256(body), digest):
                differ.append(name or app_url)
    if differ:
        shown = ", ".join(differ[:5]) + (f" and {len(differ) - 5} more" if len(differ) > 5 else "")
        raise AppMismatchError(
            origin,
            f"its phone app differs from this desktop's build {build.version}"
            f" ({build.build}): {shown}",
        )
    return build
