"""Structured JSON logs that never carry payloads, tokens or secrets.

Call sites pass only fields from a known-safe vocabulary (event names,
shortened ids, sizes, statuses); :func:`log` drops any other field name, so a
careless ``data=`` or ``token=`` can never reach the log by accident.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from unlatch.relay.codec import b64e

LOGGER = logging.getLogger("unlatch.relay")

SAFE_FIELDS = frozenset(
    {
        "route",
        "method",
        "status",
        "ms",
        "client",
        "device",
        "kind",
        "channel",
        "routing",
        "size",
        "outcome",
        "scope",
        "retry_after",
        "count",
        "host",
        "port",
        "public_url",
        "db",
        "bus",
        "reason",
        "endpoint_host",
        "listeners",
        "push",
        "error",
        "websockets",
        "removed",
        "version",
        "tls",
        "trusted_proxies",
        "proxy_header",
        "wanted",
        "max_connections",
        "nofile",
    }
)


def short(value: str | bytes | None) -> str | None:
    """A shortened id for logs: enough to correlate lines, useless to anyone else."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return b64e(value[:6])  # 6 bytes are the 8 first characters of the whole id's text
    return value[:8]


# compact JSON, anything else as its str(); made once (json.dumps with options builds one per call)
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event and the safe fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type only: messages and tracebacks could quote input.
            entry["exception"] = record.exc_info[0].__name__
        return _encode(entry)


class _DropConnectionChatter(logging.Filter):
    """uvicorn logs each WebSocket's full path (with channel ids) at INFO: drop those lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "uvicorn.error" or record.levelno > logging.INFO:
            return True
        text = str(record.msg)
        return not (text.startswith(("connection ", '%s - "WebSocket')) or "WebSocket /" in text)


def setup_logging(level: str = "info") -> None:
    """Send the relay's and uvicorn's logs as JSON lines to stderr.

    The records skip what the JSON lines never show (the calling function's
    file and line, which ``logging`` finds by walking the stack, the thread
    and process names): the logging HOWTO's "Optimization" switches, for the
    lines of every request.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(_DropConnectionChatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


def log(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with only whitelisted fields."""
    if not LOGGER.isEnabledFor(level):
        return
    safe = {k: v for k, v in fields.items() if k in SAFE_FIELDS and v is not None}
    LOGGER.log(level, event, extra={"fields": safe})
