"""Native messaging framing and the host's versioned message protocol (docs/browser.md).

The browser starts the host and talks to it over stdio: each message is a
32-bit length in native byte order (little-endian on every platform we run
on) followed by that many bytes of UTF-8 JSON. The protocol's constants
(host name, version, limits) are written once, in ``web/extension/protocol.json``,
which the extension imports too.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any, BinaryIO

from unlatch import paths, safejson
from unlatch.errors import UnlatchError

_PROTOCOL = json.loads((paths.web_dir("extension") / "protocol.json").read_text("utf-8"))
PROTOCOL_VERSION: int = _PROTOCOL["version"]
MAX_MESSAGE: int = _PROTOCOL["max_message"]  # bytes, either way (Chromium's cap host -> browser)
MAX_DEPTH: int = _PROTOCOL["max_depth"]  # JSON nesting of a request
HOST_NAME: str = _PROTOCOL["host_name"]  # the native messaging host's registered name
_HEADER = struct.Struct("<I")
_DISCARD_CHUNK = 64 * 1024


class MessageError(UnlatchError):
    """A message the host cannot take; ``code`` is the reply's error code."""

    code = "bad_message"


class TooLarge(MessageError):
    code = "too_large"


class BadJson(MessageError):
    code = "bad_json"


class UnsupportedVersion(MessageError):
    code = "unsupported_version"


class UnknownOperation(MessageError):
    code = "unknown_op"


class ForbiddenOrigin(MessageError):
    code = "forbidden_origin"


class EndOfInput(Exception):
    """The browser closed the pipe: the host's work is done."""


@dataclass(frozen=True)
class Request:
    id: int
    op: str
    args: dict[str, Any]


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    data = stream.read(n)
    if data is None or len(data) < n:
        raise EndOfInput
    return data


def read_frame(stream: BinaryIO) -> bytes:
    """The next message's bytes; an oversized one is read past (not kept) and refused.

    Reading past it keeps the stream in step, so the host answers with an
    error and goes on serving the next message.
    """
    (length,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    if length > MAX_MESSAGE:
        left = length
        while left:
            left -= len(_read_exactly(stream, min(left, _DISCARD_CHUNK)))
        raise TooLarge(f"message of {length} bytes is over the {MAX_MESSAGE}-byte limit")
    return _read_exactly(stream, length)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def parse_request(frame: bytes) -> Request:
    """Check one request: ``{"v": 1, "id": int, "op": str, "args": {...}}``."""
    if frame.count(b"[") + frame.count(b"{") > 10_000:
        raise BadJson("request nests or lists too much")
    try:
        data = safejson.loads(frame.decode("utf-8"))  # the one bounded parser: all ValueError
    except ValueError:
        raise BadJson("request is not valid UTF-8 JSON") from None
    if not isinstance(data, dict):
        raise MessageError("request must be a JSON object")
    if _depth(data) > MAX_DEPTH:
        raise BadJson(f"request nests deeper than {MAX_DEPTH} levels")
    version = data.get("v")
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersion(
            f"protocol version {version!r} is not supported (this host speaks {PROTOCOL_VERSION})"
        )
    rid, op, args = data.get("id"), data.get("op"), data.get("args", {})
    if not isinstance(rid, int) or isinstance(rid, bool) or not 0 <= rid < 2**53:
        raise MessageError('"id" must be a non-negative integer')
    if not isinstance(op, str) or not 0 < len(op) <= 64:
        raise MessageError('"op" must be an operation name')
    if not isinstance(args, dict):
        raise MessageError('"args" must be an object')
    return Request(rid, op, args)


def request_id(frame: bytes) -> int | None:
    """The id of a request that failed to parse, when it can be read (to answer it)."""
    try:
        data = safejson.loads(frame.decode("utf-8"))
    except ValueError:
        return None
    rid = data.get("id") if isinstance(data, dict) else None
    return rid if isinstance(rid, int) and not isinstance(rid, bool) else None


def encode(message: dict[str, Any]) -> bytes:
    """One framed message; a reply over the limit becomes a ``too_large`` error."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(body) > MAX_MESSAGE:
        small = error_reply(message.get("id"), TooLarge("the reply is over the size limit"))
        body = json.dumps(small, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def ok_reply(rid: int, result: Any) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "id": rid, "ok": True, "result": result}


def error_reply(rid: int | None, exc: BaseException) -> dict[str, Any]:
    code = getattr(exc, "code", None)
    if not isinstance(code, str):
        code = "error"
    return {
        "v": PROTOCOL_VERSION,
        "id": rid,
        "ok": False,
        "error": {"code": code, "message": str(exc)[:2000]},
    }
