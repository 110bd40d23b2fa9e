"""Remembering which requests were already answered, so each is answered once.

The phone keeps one :class:`ReplayGuard` across restarts (the caller stores
:meth:`to_dict`); a QR code re-scanned, or a request replayed by the relay, is
refused even after the app was closed. Entries are dropped once their request
could no longer be accepted anyway (expiry plus clock skew), which bounds the
guard's size by the request rate, and a hard cap bounds it regardless.
"""

from __future__ import annotations

from typing import Any

from unlatch.protocol.constants import CLOCK_SKEW_SECONDS, ID_LEN
from unlatch.protocol.encoding import b64d, b64e
from unlatch.protocol.errors import AlreadyAnswered, MalformedMessage

MAX_ENTRIES = 4096


class ReplayGuard:
    """A bounded set of answered request ids with their expiry times."""

    def __init__(self) -> None:
        self._seen: dict[bytes, int] = {}

    def check(self, request_id: bytes) -> None:
        """Raise :class:`AlreadyAnswered` if ``request_id`` was answered before."""
        if request_id in self._seen:
            raise AlreadyAnswered(
                "this request was already answered on this phone: if the desktop is still"
                " locked, start a new unlock there and scan its new code"
            )

    def remember(self, request_id: bytes, expires_at: int, *, now: int) -> None:
        """Record an answer (call before sending it, so a crash cannot answer twice)."""
        self.prune(now=now)
        if len(self._seen) >= MAX_ENTRIES:
            oldest = min(self._seen, key=self._seen.__getitem__)
            del self._seen[oldest]
        self._seen[request_id] = expires_at

    def prune(self, *, now: int) -> None:
        for rid, exp in list(self._seen.items()):
            if exp + CLOCK_SKEW_SECONDS < now:
                del self._seen[rid]

    def __len__(self) -> int:
        return len(self._seen)

    def to_dict(self) -> dict[str, int]:
        return {b64e(rid): exp for rid, exp in self._seen.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplayGuard:
        """Restore a stored guard; anything but ``{base64url id: expiry}`` is malformed."""
        guard = cls()
        if not isinstance(data, dict) or len(data) > MAX_ENTRIES:
            raise MalformedMessage("replay guard state is not a bounded mapping")
        for key, exp in data.items():
            if not isinstance(key, str):
                raise MalformedMessage("replay guard state holds an invalid entry")
            rid = b64d(key, "request id")
            # bool is an int in Python, but True is not a time (JSON would say 1).
            if len(rid) != ID_LEN or not isinstance(exp, int) or isinstance(exp, bool) or exp < 0:
                raise MalformedMessage("replay guard state holds an invalid entry")
            guard._seen[rid] = exp
        return guard
