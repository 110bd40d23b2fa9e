"""An unlock request as the phone shows it to its user.

A relay notification carries the desktop's opaque push bytes plus what only
the relay knows (the requester's network address and user agent; untrusted
text, so control characters are replaced before it reaches a terminal). The push is
decrypted with the pairing's push key (:meth:`PhoneUnlock.open_push`), which
also proves a paired desktop made it: the relay can neither read nor forge one.
The correct number of a number-matching request is deliberately *not* part of
this view: the user must read it on the desktop's screen.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from unlatch.phone.state import Pairing, printable
from unlatch.protocol import UnlockMode
from unlatch.protocol.encoding import b64e
from unlatch.protocol.messages import RequestParams
from unlatch.protocol.unlock import MODE_NOT_ALLOWED
from unlatch.relay.client import UnlockNotification


@dataclass(frozen=True)
class RequestView:
    """Who asks, when, from where, and how to answer."""

    request_id: str  # base64url, as used by `approve --request`
    desktop: str  # the user's name for the desktop
    desktop_id: str  # short pairing id
    created_at: int
    expires_at: int
    mode: str  # "scan" | "number_match"
    choices: tuple[int, ...] = ()
    requester_address: str = ""
    requester_user_agent: str = ""
    blocked: bool = False
    refused: str = ""  # why this phone will not approve it (a mode its pairing did not allow)

    @classmethod
    def build(
        cls,
        pairing: Pairing,
        params: RequestParams,
        choices: tuple[int, ...] = (),
        note: UnlockNotification | None = None,
    ) -> RequestView:
        number_match = params.mode is UnlockMode.NUMBER_MATCH
        refused = number_match and not pairing.record.allow_number_matching
        return cls(
            request_id=b64e(params.request_id),
            desktop=pairing.label,
            desktop_id=pairing.short_id,
            created_at=params.created_at,
            expires_at=params.expires_at,
            mode="number_match" if number_match else "scan",
            choices=() if refused else tuple(choices),  # nothing to tap blindly
            requester_address=printable(note.requester_address, 100) if note else "",
            requester_user_agent=printable(note.requester_user_agent) if note else "",
            blocked=pairing.blocked,
            refused=MODE_NOT_ALLOWED if refused else "",
        )

    def with_requester(self, note: UnlockNotification) -> RequestView:
        return replace(
            self,
            requester_address=printable(note.requester_address, 100),
            requester_user_agent=printable(note.requester_user_agent),
        )

    def remaining(self, now: int) -> int:
        return max(0, self.expires_at - now)

    def to_json(self, now: int) -> dict[str, Any]:
        return {
            "type": "unlock",
            "request_id": self.request_id,
            "desktop": self.desktop,
            "desktop_id": self.desktop_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "remaining": self.remaining(now),
            "mode": self.mode,
            "choices": list(self.choices),
            "refused": self.refused or None,
            "requester": {
                "address": self.requester_address,
                "user_agent": self.requester_user_agent,
            },
        }

    def describe(self, now: int) -> list[str]:
        """Lines for a terminal: who, when, from where, what to do."""
        when = datetime.fromtimestamp(self.created_at, UTC).astimezone().strftime("%H:%M:%S")
        lines = [f"Unlock request from “{self.desktop}” at {when} ({self.remaining(now)} s left)"]
        origin = self.requester_address or "unknown address"
        if self.requester_user_agent:
            origin += f", {self.requester_user_agent}"
        lines.append(f"  requested from: {origin} (as seen by the relay)")
        if self.refused:
            lines.append(f"  REFUSED: {self.refused}")
            lines.append(f"  unlatch phone deny --request {self.request_id} [--not-me]")
            lines.append(f"  unlatch phone unpair {self.desktop_id}")
        elif self.mode == "number_match":
            picks = " / ".join(str(c) for c in self.choices)
            lines.append(f"  number matching: pick the number the desktop shows: {picks}")
            lines.append(f"  unlatch phone approve --request {self.request_id} --number N")
        else:
            lines.append("  scan the QR code on the desktop:")
            lines.append("  unlatch phone approve LINK   (or --qr-image SCREENSHOT.png)")
            lines.append("  did not ask for it? refuse, and block that desktop:")
            lines.append(f"  unlatch phone deny --request {self.request_id} --not-me")
        return lines
