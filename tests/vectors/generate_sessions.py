"""Regenerate the desktop session vectors and state tables: see ``main``.

``sessions_unlock.json`` holds flows of the desktop UnlockSession: for each
step, the state before, the event (symbolic: requests named r1, r2 ... in
the order the session makes them, times in seconds after the start) and
what the session did (the state after and its commands, or the refusal).
The flows are ``tests/fixtures/sessions.py``'s; ``tests/test_desktop_sessions.py``
checks that the file equals a fresh run and replays it step by step, so a
JavaScript session can be checked against the same file. The state tables in
docs/desktop.md are written from the sessions' transition tables too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))  # tests/: for fixtures.*

from fixtures.sessions import TTL, flow_vectors  # noqa: E402

from unlatch.desktop.sessions.pairing import PairingSession  # noqa: E402
from unlatch.desktop.sessions.unlock import (  # noqa: E402
    DEFAULT_RENEWALS,
    RENEW_BEFORE,
    UnlockSession,
)

DOCS = HERE.parent.parent / "docs" / "desktop.md"


def write_tables() -> None:
    """Put each session's generated table between its markers in docs/desktop.md."""
    text = DOCS.read_text("utf-8")
    for session in (UnlockSession, PairingSession):
        start = f"<!-- generated: {session.__name__}.table_markdown() -->\n"
        head, rest = text.split(start, 1)
        _, tail = rest.split("<!-- end -->", 1)
        text = head + start + session.table_markdown() + "<!-- end -->" + tail
    DOCS.write_text(text, encoding="utf-8")
    print(f"wrote the state tables in {DOCS}")


def main() -> None:
    """``python tests/vectors/generate_sessions.py``: the JSON and the docs tables."""
    doc = {
        "about": "desktop UnlockSession flows: (state, event) -> (state, commands); "
        "see tests/vectors/generate_sessions.py",
        "defaults": {"ttl": TTL, "renewals": DEFAULT_RENEWALS, "renew_before": RENEW_BEFORE},
        "flows": flow_vectors(),
    }
    path = HERE / "sessions_unlock.json"
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    write_tables()


if __name__ == "__main__":
    main()
