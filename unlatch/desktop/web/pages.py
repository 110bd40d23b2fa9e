"""The UI's own error pages (401 without a session, 404), styled like the app.

They are answered where the app's stylesheet cannot be loaded (outside the
secret prefix nothing is served, not even ``static/``), so each page carries
its style inline and its Content-Security-Policy allows exactly that style by
its hash (``style-src 'sha256-...'``): still no script, no other source.
The texts say what to run, with ``UNLATCH_HOME`` when the agent has one
(:func:`reopen_command`), since a bare ``unlatch desktop`` would reach another
agent and vault.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import shlex

from unlatch import paths

# The app's colours and type (web/desktop/app.css), light and dark.
STYLE = (
    ":root{--bg:#f4f5f8;--panel:#fff;--text:#1b1d24;--muted:#555e70;--line:#e3e6ec;"
    "--accent:#4f46e5;--soft:#eef0ff;color-scheme:light dark}"
    "@media (prefers-color-scheme:dark){:root{--bg:#111318;--panel:#1a1d24;--text:#e8eaf0;"
    "--muted:#98a2b3;--line:#2a2f3a;--accent:#a5b4fc;--soft:#232647}}"
    "body{margin:0;min-height:100vh;display:grid;place-content:center;"
    "background:var(--bg);color:var(--text);"
    'font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}'
    "main{background:var(--panel);border:1px solid var(--line);border-radius:12px;"
    "padding:1.6rem 1.8rem;max-width:34rem;margin:1rem}"
    "h1{font-size:1.35rem;margin:0 0 .6rem}"
    ".brand{color:var(--muted);font-weight:650;margin:0 0 1rem}"
    "p{margin:.5rem 0}code{font:.95em ui-monospace,Menlo,monospace;background:var(--soft);"
    "padding:.15em .4em;border-radius:4px;user-select:all}a{color:var(--accent)}"
)
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; base-uri 'none'; form-action 'none'"


def reopen_command() -> str:
    """The command that opens this agent's UI again, as a user types it.

    With ``UNLATCH_HOME`` set (a demo, a second vault), a bare ``unlatch
    desktop`` would reach another agent and vault, so the variable is part of it.
    """
    if os.environ.get("UNLATCH_HOME"):
        return f"UNLATCH_HOME={shlex.quote(str(paths.home()))} unlatch desktop"
    return "unlatch desktop"


def error_page(title: str, text: str, *, link: tuple[str, str] | None = None) -> bytes:
    """A page in the app's style: a title, a sentence, what to run, an optional link."""
    more = ""
    if link is not None:
        more = f'<p><a href="{html.escape(link[0], quote=True)}">{html.escape(link[1])}</a></p>'
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>unlatch: {html.escape(title)}</title><style>{STYLE}</style></head><body><main>"
        f'<p class="brand">unlatch</p><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>'
        f"<p>To open the vault window, run <code>{html.escape(reopen_command())}</code> "
        "in a terminal: it opens a fresh window (the agent starts if it is not running).</p>"
        f"{more}</main></body></html>"
    ).encode()


__all__ = ["CSP", "error_page", "reopen_command"]
