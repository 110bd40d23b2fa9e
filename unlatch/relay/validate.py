"""Bounded parsing of request bodies, fields, path ids and query parameters.

Every limit is checked before work is done (sizes before decoding, lengths
before parsing), and every failure is an :class:`~unlatch.relay.apierror.ApiError`
that becomes a 4xx JSON answer: nothing a client sends can reach a 5xx.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from unlatch.relay.apierror import ApiError, bad_request, too_large
from unlatch.relay.codec import CodecError, b64d, json_loads
from unlatch.relay.config import MAX_PUSH_PAYLOAD

MAX_BODY = 16 * 1024
BODY_TIMEOUT = 10.0
ID_LEN = 16


async def read_json(
    request: Request, *, max_body: int = MAX_BODY, timeout: float = BODY_TIMEOUT
) -> dict[str, Any]:
    """The request's JSON object; ``{}`` for an empty body.

    The whole body must arrive within ``timeout`` seconds: a client that sends
    its headers and then trickles (or stops sending) the body would otherwise
    hold a connection and a task for ever. It gets a 408 and the connection
    is closed.
    """
    length = request.headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise bad_request("invalid Content-Length")
        if int(length) > max_body:
            raise too_large(f"request body over {max_body} bytes")
    receive = request.receive  # the ASGI messages, read here without Request.stream()'s generator
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise bad_request("client went away while sending the body")
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > max_body:
                        raise too_large(f"request body over {max_body} bytes")
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    break
    except TimeoutError:
        raise ApiError(
            "request_timeout",
            f"the request body did not arrive within {timeout:g} s",
            close_connection=True,
        ) from None
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not body.strip():
        return {}
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        raise ApiError("unsupported_media_type", "send the body as application/json")
    try:
        obj = json_loads(body)
    except ValueError:  # includes UnicodeDecodeError and nesting too deep
        raise bad_request("body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise bad_request("body must be a JSON object")
    return obj


class Fields:
    """Typed access to a JSON object's fields; unknown fields are refused."""

    def __init__(self, obj: dict[str, Any], allowed: set[str]) -> None:
        unknown = [k for k in obj if k not in allowed]
        if unknown:
            names = ", ".join(sorted(str(k)[:30] for k in unknown)[:5])
            raise bad_request(f"unknown field(s): {names}")
        self.obj = obj

    def b64(self, name: str, *, exact: int | None = None, max_len: int | None = None) -> bytes:
        value = self.obj.get(name)
        if value is None:
            raise bad_request(f"missing field '{name}'")
        if not isinstance(value, str):
            raise bad_request(f"'{name}' must be a base64url string")
        limit = exact if exact is not None else max_len
        try:
            raw = b64d(value, max_len=limit)
        except CodecError as exc:
            if limit is not None and len(value) > (limit * 4 + 2) // 3:
                if exact is None:
                    raise too_large(f"'{name}' is over {limit} bytes") from None
                raise bad_request(f"'{name}' must be {exact} bytes") from None
            raise bad_request(f"'{name}': {exc}") from None
        if exact is not None and len(raw) != exact:
            raise bad_request(f"'{name}' must be {exact} bytes, not {len(raw)}")
        if not raw:
            raise bad_request(f"'{name}' must not be empty")
        return raw

    def choice(self, name: str, choices: tuple[str, ...]) -> str:
        value = self.obj.get(name)
        if value not in choices:
            raise bad_request(f"'{name}' must be one of: {', '.join(choices)}")
        return str(value)

    def text(self, name: str, *, max_len: int) -> str:
        value = self.obj.get(name)
        if not isinstance(value, str) or not value:
            raise bad_request(f"'{name}' must be a non-empty string")
        if len(value) > max_len:
            raise bad_request(f"'{name}' is too long")
        return value

    def opt_int(self, name: str, lo: int, hi: int) -> int | None:
        value = self.obj.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise bad_request(f"'{name}' must be an integer between {lo} and {hi}")
        return value


def path_id(request: Request, name: str) -> bytes:
    """A 16-byte id from the URL path."""
    value = request.path_params.get(name, "")
    try:
        raw = b64d(value, max_len=ID_LEN)
    except CodecError:
        raise bad_request(f"{name} must be 16 bytes of base64url") from None
    if len(raw) != ID_LEN:
        raise bad_request(f"{name} must be 16 bytes of base64url")
    return raw


def query_int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter in ``[lo, hi]``, or a 400.

    ``str.isdigit`` alone accepts digits ``int()`` refuses (superscripts such
    as ``\u00b2``): only ASCII digits pass.
    """
    value = request.query_params.get(name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit()) or len(value) > 12 or not lo <= int(value) <= hi:
        raise bad_request(f"query parameter '{name}' must be an integer between {lo} and {hi}")
    return int(value)


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class NewUnlock:
    """A new unlock request's fields: ``POST /v1/unlock``'s body, or an unlock socket's ``create``.

    ``request_id`` is None in a socket's ``create``: the socket's path names it.
    """

    request_id: bytes | None
    routing_id: bytes
    push: bytes
    ttl: int | None


def new_unlock(obj: dict[str, Any], unlock_ttl: int, *, with_id: bool) -> NewUnlock:
    """Check a new unlock request's fields (one place for both ways of creating one).

    ``with_id``: the body names the request (``POST /v1/unlock``); a socket's
    ``create`` does not (its path does), and a ``request_id`` there is refused.
    """
    f = Fields(
        obj,
        {"request_id", "routing_id", "push", "ttl"} if with_id else {"routing_id", "push", "ttl"},
    )
    request_id = f.b64("request_id", exact=16) if with_id else None
    routing_id = f.b64("routing_id", exact=16)
    push = f.b64("push", max_len=MAX_PUSH_PAYLOAD)
    ttl = f.opt_int("ttl", 1, 600)
    if ttl is not None and ttl > unlock_ttl:
        raise bad_request(
            f"'ttl' {ttl} s is over this relay's unlock lifetime of {unlock_ttl} s"
            f" (GET /v1/info: limits.unlock_ttl_max); set the desktop's unlock_ttl to"
            f" {unlock_ttl} or less"
        )
    return NewUnlock(request_id, routing_id, push, ttl)
