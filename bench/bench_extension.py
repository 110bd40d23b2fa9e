"""Browser extension, end to end in real Chromium: popup opened -> logins shown, Fill -> filled.

The real pieces: Debian Chromium with the unpacked extension (web/extension),
the native host installed by ``unlatch browser install --user-data-dir``
(a new host process per popup, as the browser starts one per connection),
the agent with an unlocked vault, a login page on 127.0.0.1.

Measured N times each (after one warm-up):

* **popup -> logins**: the popup page is opened for the tab (its pop-out form,
  the same code) until its first login row is shown: page load, host process
  start, agent connection, ``state`` and ``logins``;
* **fill -> filled**: *Fill* clicked until the page's password field holds the
  value: frame probe, ``fill`` through the host (one item's secret), injection.

Baselines side by side: the popup page alone (``domContentLoaded``: what
any extension page costs), and Playwright filling the two fields itself (the
floor of putting values into the page).

    python bench/bench_extension.py [--n 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fixtures.desktop import CHROMIUM, clean_env  # noqa: E402
from fixtures.vault import KDF_ARGS, PASSWORD  # noqa: E402
from test_extension_e2e import EXT_ID, Browser, Pages, extension_chromium_args  # noqa: E402


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(name: str, values: list[float], base: list[float] | None = None) -> str:
    p50, p99 = statistics.median(values), pct(values, 99)
    ratio = f"   {p50 / statistics.median(base):5.1f}x baseline p50" if base else ""
    return f"  {name:34s} p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms{ratio}"


def cli(home: Path, *args: str, stdin: str | None = None) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "unlatch", *args],
        env=clean_env(home),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if out.returncode != 0:
        raise SystemExit(f"unlatch {' '.join(args)} failed: {out.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="runs of each measurement")
    n = parser.parse_args().n
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        home = base / "home"
        home.mkdir()
        pages = Pages(base / "site")
        cli(home, "init", "--password-stdin", *KDF_ARGS, stdin=f"{PASSWORD}\n{PASSWORD}\n")
        cli(home, "add", "Bench", "--username", "ada", "--url", f"{pages.url}/", stdin="pw-1\n")
        cli(home, "browser", "install", "--user-data-dir", str(base / "profile"))
        page_url = f"{pages.url}/login.html"
        try:
            with sync_playwright() as p:
                context = p.chromium.launch_persistent_context(
                    str(base / "profile"),
                    executable_path=CHROMIUM,
                    headless=False,
                    env=clean_env(home),
                    args=extension_chromium_args(),
                )
                browser = Browser(context)
                browser.page.goto(page_url)
                popup = browser.open_popup_for(page_url)
                tab_id = popup.url.split("tab=")[1]
                popup_url = f"chrome-extension://{EXT_ID}/popup.html?tab={tab_id}"
                opened: list[float] = []
                page_only: list[float] = []
                for i in range(n + 1):
                    start = time.perf_counter()
                    popup.goto(popup_url)
                    popup.wait_for_selector("#logins li")
                    elapsed = time.perf_counter() - start
                    dcl = popup.evaluate(
                        "(() => { const t = performance.getEntriesByType('navigation')[0];"
                        " return t.domContentLoadedEventEnd - t.startTime; })()"
                    )
                    if i:
                        opened.append(elapsed)
                        page_only.append(dcl / 1000)
                filled: list[float] = []
                direct: list[float] = []
                fill = popup.get_by_role("button", name="Fill Bench")
                value = "el => el.value"
                clear = "for (const e of document.querySelectorAll('input')) e.value = ''"
                for i in range(n + 1):
                    browser.page.evaluate(clear)
                    start = time.perf_counter()
                    fill.click()
                    while browser.page.eval_on_selector("#pass", value) != "pw-1":
                        pass
                    if i:
                        filled.append(time.perf_counter() - start)
                    browser.page.evaluate(clear)
                    start = time.perf_counter()
                    browser.page.fill("#user", "ada")
                    browser.page.fill("#pass", "pw-1")
                    if i:
                        direct.append(time.perf_counter() - start)
                context.close()
        finally:
            pages.close()
            cli(home, "agent", "stop")
    print(
        f"browser extension, {n} runs each (real Chromium, host process per popup); "
        f"machine load {os.getloadavg()[0]:.1f}"
    )
    print(line("popup page alone (baseline)", page_only))
    print(line("popup opened -> logins shown", opened, page_only))
    print(line("Playwright fills 2 fields (baseline)", direct))
    print(line("Fill clicked -> fields filled", filled, direct))


if __name__ == "__main__":
    main()
