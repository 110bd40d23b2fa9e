"""The one exception routes raise to answer a client with a 4xx JSON error.

Every refusal in the relay becomes ``{"error": code, "message": text}``; the
code's HTTP status, WebSocket close code and default message come from the
registry (``errors.json``, :data:`unlatch.relay.errors.CODES`), never from the
raising site, so clients (the Python client's typed errors, the PWA) switch
on ``error`` and show ``message``. Messages never quote client input.
"""

from __future__ import annotations

import math

from unlatch.relay.errors import CODES


class ApiError(Exception):
    """An expected refusal: a registry code, an optional specific message, extra JSON fields.

    A code the registry does not hold raises ``KeyError`` at once, so it
    cannot reach a client.
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        retry_after: float | None = None,
        close_connection: bool = False,
        **extra: object,
    ) -> None:
        entry = CODES[code]
        if entry.status is None:
            raise ValueError(f"{code} is a client-side code; the relay never sends it")
        message = message or entry.message
        super().__init__(message)
        self.status: int = entry.status
        self.ws_close: int = entry.ws_close or CODES["bad_request"].ws_close or 4400
        self.code = code
        self.message = message
        self.retry_after = retry_after
        # the request was not read to its end: the connection cannot carry another one
        self.close_connection = close_connection
        self.extra = extra

    def body(self) -> dict[str, object]:
        data: dict[str, object] = {"error": self.code, "message": self.message}
        if self.retry_after is not None:
            data["retry_after"] = self.retry_after_seconds
        data.update(self.extra)
        return data

    @property
    def retry_after_seconds(self) -> int:
        """Whole seconds for the Retry-After header (at least 1)."""
        return max(1, math.ceil(self.retry_after or 0))

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.retry_after is not None:
            out["Retry-After"] = str(self.retry_after_seconds)
        if self.close_connection:
            out["Connection"] = "close"
        return out


def bad_request(message: str) -> ApiError:
    return ApiError("bad_request", message)


def too_large(message: str) -> ApiError:
    return ApiError("too_large", message)


def unauthorized(
    message: str = "authenticate first (missing, unknown or expired session)",
) -> ApiError:
    return ApiError("unauthorized", message)


def forbidden(message: str) -> ApiError:
    return ApiError("forbidden", message)


def unknown_channel() -> ApiError:
    return ApiError("unknown_channel", "no such channel on this relay")
