"""The OpenAPI 3.1 document of the relay's HTTP API, written by hand.

Hand-written because the request bodies are validated by hand (strict
base64url fields with byte limits) and a generator would describe them less
precisely. Its limits come from :mod:`unlatch.relay.config` (the ones the
routes enforce) and the relay's configuration (lifetimes); every error answer
comes from the registry (``errors.json``): a route lists the codes it can
answer with, and their statuses are looked up there. A test checks that every
HTTP route of the app appears here with its methods, and nothing else does.
"""

from __future__ import annotations

from typing import Any

from unlatch import __version__
from unlatch.protocol.constants import MAX_TTL_SECONDS, VERSION
from unlatch.relay.config import (
    DEFAULT_WAIT,
    MAX_AFTER,
    MAX_PAIRING_MESSAGE,
    MAX_PUSH_PAYLOAD,
    MAX_REPLY,
    MAX_REPLY_WAIT,
    MAX_SEEN,
    MAX_WAIT,
    RelayConfig,
)
from unlatch.relay.errors import CODES
from unlatch.relay.models import CHANNEL_OUTCOMES, REQUEST_STATES

B64 = {"type": "string", "pattern": "^[A-Za-z0-9_-]*$", "description": "base64url, no padding"}
# 16 bytes in canonical base64url: 22 characters, the last one carrying 2 bits (so A, Q, g or w)
ID16 = {
    **B64,
    "minLength": 22,
    "maxLength": 22,
    "pattern": "^[A-Za-z0-9_-]{21}[AQgw]$",
    "description": "16 bytes, canonical base64url (22 characters, the last one A, Q, g or w)",
}
# an uncompressed P-256 point: 0x04 | x | y, 65 bytes, 87 characters starting with "B"
P256_KEY = {
    **B64,
    "minLength": 87,
    "maxLength": 87,
    "pattern": "^B[A-Za-z0-9_-]{85}[AEIMQUYcgkosw048]$",
    "description": "uncompressed P-256 point 0x04 | x | y (65 bytes, canonical base64url)",
}
ERROR = {"$ref": "#/components/schemas/Error"}
AUTH = ("unauthorized",)
# a body that is not JSON, too big, of another type, or that does not arrive in time
BODY = ("bad_request", "too_large", "unsupported_media_type", "request_timeout")


def _b64(max_bytes: int, what: str) -> dict[str, Any]:
    return {
        **B64,
        "minLength": 2,  # never empty: the relay refuses an empty field
        "maxLength": (max_bytes * 4 + 2) // 3,
        "description": f"{what} (1..{max_bytes} bytes)",
    }


def _body(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": props,
                    "required": required,
                    "additionalProperties": False,
                }
            }
        },
    }


def _resp(
    status: str, desc: str, schema: dict[str, Any] | None = None, *codes: str
) -> dict[str, Any]:
    """A success answer plus the error answers for ``codes``, grouped by their registry status."""
    out: dict[str, Any] = {status: {"description": desc}}
    if schema is not None:
        out[status]["content"] = {"application/json": {"schema": schema}}
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        entry = CODES[code]
        assert entry.status is not None, code
        by_status.setdefault(entry.status, []).append(code)
    for st, names in sorted(by_status.items()):
        out[str(st)] = {
            "description": "error: " + ", ".join(names),
            "content": {
                "application/json": {
                    "schema": {
                        "allOf": [ERROR, {"properties": {"error": {"enum": names}}}],
                    }
                }
            },
        }
    return out


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    auth: bool = True,
    body: Any = None,
    params: list[dict[str, Any]] | None = None,
    tag: str = "relay",
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if auth:
        op["security"] = [{"session": []}]
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = body
    return op


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID16}


WAIT_PARAMS = [
    _path("channel_id"),
    {
        "name": "after",
        "in": "query",
        "description": "resume after this message seq (the largest seq already received)",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_AFTER, "default": 0},
    },
    {
        "name": "timeout",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT, "default": DEFAULT_WAIT},
    },
]
OBJ = {"type": "object"}
DATA = {"type": "object", "properties": {"seq": {"type": "integer"}}}
WAIT = {"$ref": "#/components/schemas/WaitResult"}
OK = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
WAIT_CODES = (*AUTH, "bad_request", "forbidden", "unknown_channel")
REPLY_POSTED = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"},
        "delivery": {
            "type": "string",
            "enum": ["delivered", "queued", "undelivered"],
            "description": "only with wait: delivered, the relay handed the reply to a desktop"
            " still waiting (or the desktop closed the request after it arrived); queued, none"
            " took it within wait seconds but the request is open (the reply stays stored"
            " until expiry for a desktop that reconnects); undelivered, the request ended"
            " without a desktop taking it",
        },
    },
}
REQUEST_STATE = {"$ref": "#/components/schemas/RequestState"}


def _post_message(summary: str, tag: str, max_bytes: int, *codes: str) -> dict[str, Any]:
    """A party posts one opaque message to a channel (hello/accept, seen/reply).

    The four message routes differ only in summary, tag, size limit and codes.
    ``data`` is a whole encoded protocol message, "UL" header included
    (docs/protocol.md section 3).
    """
    what = "a whole encoded protocol message, header included"
    return _op(
        summary,
        _resp(
            "202",
            "posted",
            DATA,
            *AUTH,
            *BODY,
            "forbidden",
            "unknown_channel",
            "expired",
            "closed",
            *codes,
        ),
        tag=tag,
        params=[_path("channel_id")],
        body=_body({"data": _b64(max_bytes, what)}, ["data"]),
    )


def info_document(config: RelayConfig) -> dict[str, Any]:
    """GET /v1/info: the rules a client follows on this relay, advertised before it acts.

    A desktop keeps its unlock lifetime within ``limits.unlock_ttl_max`` (the
    relay refuses a longer ``ttl``); docs/relay.md "Limits".
    """
    return {
        "version": __version__,
        "protocol": VERSION,
        "limits": {
            "unlock_ttl_max": config.unlock_ttl,
            "pairing_ttl_max": config.pairing_ttl,
            "pairing_message_bytes": MAX_PAIRING_MESSAGE,
            "push_bytes": MAX_PUSH_PAYLOAD,
            "seen_bytes": MAX_SEEN,
            "reply_bytes": MAX_REPLY,
            "wait_timeout_max": MAX_WAIT,
            "reply_wait_max": MAX_REPLY_WAIT,
            "after_max": MAX_AFTER,
        },
    }


def error_codes_markdown() -> str:
    """The registry as a table, for the document's description."""
    rows = ["| status | error | meaning |", "|---|---|---|"]
    for e in sorted(CODES.values(), key=lambda e: (e.status or 0, e.code)):
        if e.status is not None:
            rows.append(f"| {e.status} | `{e.code}` | {e.meaning} |")
    return "\n".join(rows)


def openapi_document(config: RelayConfig) -> dict[str, Any]:
    """The document served at ``/openapi.json``, with this relay's limits."""
    paths: dict[str, dict[str, Any]] = {
        "/": {
            "get": _op(
                "Redirect to the phone app (/app/)",
                {"307": {"description": "redirect"}},
                auth=False,
                tag="app",
            )
        },
        "/app/{path}": {
            "get": _op(
                "The phone PWA's built files (503 app_unavailable when not built)",
                _resp("200", "a file", None, "not_found", "app_unavailable"),
                auth=False,
                tag="app",
                params=[
                    {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
            )
        },
        "/healthz": {
            "get": _op(
                "Liveness and store check",
                _resp("200", "healthy", OBJ, "store_unavailable"),
                auth=False,
                tag="operations",
            )
        },
        "/metrics": {
            "get": _op(
                "Prometheus metrics (text format)",
                {"200": {"description": "metrics", "content": {"text/plain": {}}}},
                auth=False,
                tag="operations",
            )
        },
        "/openapi.json": {
            "get": _op(
                "This document", _resp("200", "OpenAPI 3.1", OBJ), auth=False, tag="operations"
            )
        },
        "/v1/info": {
            "get": _op(
                "This relay's version and the limits a client must follow (unlock lifetime, ...)",
                _resp("200", "info", {"$ref": "#/components/schemas/Info"}),
                auth=False,
                tag="operations",
            )
        },
        "/v1/auth/challenge": {
            "post": _op(
                "Get a single-use challenge to sign",
                _resp(
                    "200",
                    "challenge",
                    {"$ref": "#/components/schemas/Challenge"},
                    *BODY,
                    "rate_limited",
                ),
                auth=False,
                tag="auth",
            )
        },
        "/v1/auth/session": {
            "post": _op(
                "Register (first use) and open a session by signing the challenge",
                _resp(
                    "200",
                    "session",
                    {"$ref": "#/components/schemas/Session"},
                    *BODY,
                    "bad_challenge",
                    "bad_signature",
                    "forbidden",
                ),
                auth=False,
                tag="auth",
                body=_body(
                    {
                        "public_key": P256_KEY,
                        "kind": {"enum": ["desktop", "phone"]},
                        "challenge": {
                            **B64,
                            "minLength": 43,
                            "maxLength": 43,
                            "description": "32 bytes: the challenge as /v1/auth/challenge gave it",
                        },
                        "signature": {
                            **B64,
                            "minLength": 86,
                            "maxLength": 86,
                            "description": "raw r||s ECDSA P-256/SHA-256 over the auth message"
                            " (docs/relay.md Authentication), 64 bytes",
                        },
                    },
                    ["public_key", "kind", "challenge", "signature"],
                ),
            )
        },
        "/v1/devices/me": {
            "get": _op("This device", _resp("200", "device", OBJ, *AUTH), tag="devices")
        },
        "/v1/devices/me/push": {
            "put": _op(
                "Set the phone's push target (Web Push or UnifiedPush)",
                _resp("200", "stored", OK, *AUTH, *BODY, "forbidden"),
                tag="devices",
                body=_body(
                    {
                        "type": {"enum": ["webpush", "unifiedpush"]},
                        "endpoint": {"type": "string", "maxLength": 2048},
                        "keys": {"type": "object", "properties": {"p256dh": B64, "auth": B64}},
                        "expirationTime": {"type": ["number", "null"]},
                    },
                    ["endpoint"],
                ),
            ),
            "delete": _op(
                "Remove the phone's push target",
                _resp("200", "removed", OK, *AUTH, "forbidden"),
                tag="devices",
            ),
        },
        "/v1/push/vapid-public-key": {
            "get": _op(
                "The relay's VAPID public key (applicationServerKey)",
                _resp("200", "key", OBJ, "push_unavailable"),
                auth=False,
                tag="devices",
            )
        },
        "/v1/pairing": {
            "post": _op(
                "Create a pairing channel (desktop)",
                _resp(
                    "201",
                    "created",
                    OBJ,
                    *AUTH,
                    *BODY,
                    "forbidden",
                    "channel_exists",
                    "too_many_pending",
                    "rate_limited",
                ),
                tag="pairing",
                body=_body(
                    {
                        "channel_id": ID16,
                        "ttl": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": config.pairing_ttl,
                            "description": "seconds; longer is clamped to this relay's"
                            " pairing lifetime (GET /v1/info: limits.pairing_ttl_max)",
                        },
                    },
                    ["channel_id"],
                ),
            )
        },
        "/v1/pairing/{channel_id}": {
            "delete": _op(
                "Close a pairing channel (either party)",
                _resp("200", "closed", OK, *AUTH, "bad_request", "forbidden", "unknown_channel"),
                tag="pairing",
                params=[_path("channel_id")],
            )
        },
        "/v1/pairing/{channel_id}/hello": {
            "post": _post_message(
                "Post the phone's hello (first phone owns the channel)",
                "pairing",
                MAX_PAIRING_MESSAGE,
                "channel_taken",
                "already_posted",
            )
        },
        "/v1/pairing/{channel_id}/accept": {
            "post": _post_message(
                "Post the desktop's accept",
                "pairing",
                MAX_PAIRING_MESSAGE,
                "bad_state",
                "already_posted",
            )
        },
        "/v1/pairing/{channel_id}/wait": {
            "get": _op(
                "Long-poll for the other party's messages",
                _resp("200", "messages", WAIT, *WAIT_CODES),
                tag="pairing",
                params=WAIT_PARAMS,
            )
        },
        "/v1/pairings": {
            "post": _op(
                "Register one side of a pairing",
                _resp("200", "state", OBJ, *AUTH, *BODY, "unknown_device", "pairing_conflict"),
                tag="pairings",
                body=_body(
                    {
                        "routing_id": ID16,
                        "peer_device_id": {
                            **B64,
                            "minLength": 1,
                            "maxLength": 22,
                            "description": "the other device's relay device id",
                        },
                    },
                    ["routing_id", "peer_device_id"],
                ),
            ),
            "get": _op(
                "This device's pairings", _resp("200", "pairings", OBJ, *AUTH), tag="pairings"
            ),
        },
        "/v1/pairings/{routing_id}": {
            "delete": _op(
                "Unpair (removes both sides)",
                _resp("200", "deleted", OK, *AUTH, "bad_request", "unknown_pairing"),
                tag="pairings",
                params=[_path("routing_id")],
            )
        },
        "/v1/pairings/{routing_id}/block": {
            "post": _op(
                '"I did not ask for this": block unlock requests (phone)',
                _resp("200", "blocked", OBJ, *AUTH, *BODY, "forbidden", "unknown_pairing"),
                tag="pairings",
                params=[_path("routing_id")],
            )
        },
        "/v1/pairings/{routing_id}/unblock": {
            "post": _op(
                "Re-confirm: allow unlock requests again (phone)",
                _resp("200", "unblocked", OBJ, *AUTH, *BODY, "forbidden", "unknown_pairing"),
                tag="pairings",
                params=[_path("routing_id")],
            )
        },
        "/v1/unlock": {
            "post": _op(
                "Create an unlock channel and wake the paired phone (desktop)",
                _resp(
                    "201",
                    "created",
                    OBJ,
                    *AUTH,
                    *BODY,
                    "forbidden",
                    "not_paired",
                    "blocked",
                    "channel_exists",
                    "too_many_pending",
                    "rate_limited",
                ),
                tag="unlock",
                body=_body(
                    {
                        "request_id": ID16,
                        "routing_id": ID16,
                        "push": _b64(
                            MAX_PUSH_PAYLOAD,
                            "the whole encoded UnlockPush message, header included",
                        ),
                        "ttl": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": min(config.unlock_ttl, MAX_TTL_SECONDS),
                            "description": "seconds: the request's ttl (the one inside its QR"
                            " code); at most this relay's unlock lifetime (GET /v1/info:"
                            " limits.unlock_ttl_max), longer is refused with bad_request",
                        },
                    },
                    ["request_id", "routing_id", "push"],
                ),
            )
        },
        "/v1/unlock/pending": {
            "get": _op(
                "Open unanswered requests for this phone",
                _resp("200", "requests", OBJ, *AUTH, "forbidden"),
                tag="unlock",
            )
        },
        "/v1/unlock/{channel_id}": {
            "get": _op(
                "The request's notification (paired phone)",
                _resp(
                    "200",
                    "notification",
                    {"$ref": "#/components/schemas/Notification"},
                    *AUTH,
                    "bad_request",
                    "forbidden",
                    "unknown_channel",
                    "expired",
                    "closed",
                ),
                tag="unlock",
                params=[_path("channel_id")],
            ),
            "delete": _op(
                "Acknowledge/cancel: close the channel (desktop)",
                _resp("200", "closed", OK, *AUTH, "bad_request", "forbidden", "unknown_channel"),
                tag="unlock",
                params=[_path("channel_id")],
            ),
        },
        "/v1/unlock/{channel_id}/seen": {
            "post": _post_message(
                "The phone saw the request (once)", "unlock", MAX_SEEN, "already_posted"
            )
        },
        "/v1/unlock/{channel_id}/reply": {
            "post": _op(
                "The phone's reply (once, before expiry); with wait, whether a desktop took it",
                _resp(
                    "202",
                    "posted",
                    REPLY_POSTED,
                    *AUTH,
                    *BODY,
                    "forbidden",
                    "unknown_channel",
                    "expired",
                    "closed",
                    "already_answered",
                ),
                tag="unlock",
                params=[_path("channel_id")],
                body=_body(
                    {
                        "data": _b64(
                            MAX_REPLY, "a whole encoded protocol message, header included"
                        ),
                        "wait": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": MAX_REPLY_WAIT,
                            "default": 0,
                            "description": "seconds to wait to learn whether a desktop still"
                            " waiting took the reply (answer field delivery); 0: do not wait",
                        },
                    },
                    ["data"],
                ),
            )
        },
        "/v1/unlock/{channel_id}/state": {
            "get": _op(
                "Where the request stands, also once closed (paired phone)",
                _resp(
                    "200",
                    "state",
                    REQUEST_STATE,
                    *AUTH,
                    "bad_request",
                    "forbidden",
                    "unknown_channel",
                ),
                tag="unlock",
                params=[_path("channel_id")],
            )
        },
        "/v1/unlock/{channel_id}/wait": {
            "get": _op(
                "Long-poll for seen/reply (desktop)",
                _resp("200", "messages", WAIT, *WAIT_CODES),
                tag="unlock",
                params=WAIT_PARAMS,
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "unlatch relay",
            "version": __version__,
            "description": "Zero-knowledge relay between a desktop and its paired phones. "
            "WebSockets (not describable in OpenAPI): /v1/pairing/{channel_id}/ws, "
            "/v1/unlock/{channel_id}/ws, /v1/listen; see docs/relay.md. "
            "Every error is JSON {error, message}; a method a path does not have answers "
            "405 method_not_allowed with an Allow header listing the methods it has. "
            "Error codes (unlatch/relay/errors.json):\n\n" + error_codes_markdown(),
        },
        "servers": [{"url": config.public_url}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "session": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "token from /v1/auth/session",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"enum": sorted(c for c, e in CODES.items() if e.status)},
                        "message": {"type": "string"},
                        "retry_after": {"type": "integer"},
                        "scope": {"type": "string"},
                    },
                },
                "Info": {
                    "type": "object",
                    "properties": {
                        "version": {"type": "string"},
                        "protocol": {"type": "integer"},
                        "limits": {
                            "type": "object",
                            "properties": {
                                name: {"type": "integer"}
                                for name in info_document(config)["limits"]
                            },
                        },
                    },
                },
                "Challenge": {
                    "type": "object",
                    "properties": {
                        "challenge": B64,
                        "origin": {"type": "string"},
                        "expires_in": {"type": "integer"},
                    },
                },
                "Session": {
                    "type": "object",
                    "properties": {
                        "device_id": {"type": "string"},
                        "kind": {"type": "string"},
                        "token": {"type": "string"},
                        "expires_in": {"type": "integer"},
                    },
                },
                "Message": {
                    "type": "object",
                    "properties": {
                        "seq": {"type": "integer"},
                        "type": {"type": "string"},
                        "data": B64,
                        "sender": {"type": "string"},
                        "at": {"type": "number"},
                    },
                },
                "WaitResult": {
                    "type": "object",
                    "properties": {
                        "messages": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Message"},
                        },
                        "state": {"enum": ["open", "expired", "closed"]},
                        "outcome": {
                            "enum": list(CHANNEL_OUTCOMES),
                            "description": "closed: why (rejected: the desktop refused the"
                            " phone's hello, i.e. its user said the codes differ)",
                        },
                        "expires_at": {"type": ["number", "null"]},
                    },
                },
                "RequestState": {
                    "type": "object",
                    "description": "GET /v1/unlock/{channel_id}/state, and the /v1/listen"
                    " frame of type request",
                    "properties": {
                        "type": {"const": "request"},
                        "request_id": ID16,
                        "state": {"type": "string", "enum": list(REQUEST_STATES)},
                        "acknowledged": {
                            "type": "boolean",
                            "description": "answered: the desktop closed it after the reply",
                        },
                        "replaced_by": {
                            **ID16,
                            "description": "renewed: the newer request's id",
                        },
                    },
                    "required": ["type", "request_id", "state"],
                },
                "PairingState": {
                    "type": "object",
                    "description": "the /v1/listen frame of type pairing",
                    "properties": {
                        "type": {"const": "pairing"},
                        "routing_id": ID16,
                        "state": {"const": "removed"},
                    },
                    "required": ["type", "routing_id", "state"],
                },
                "Notification": {
                    "type": "object",
                    "properties": {
                        "v": {"type": "integer"},
                        "type": {"const": "unlock"},
                        "request_id": ID16,
                        "routing_id": ID16,
                        "push": B64,
                        "created_at": {"type": "number"},
                        "expires_at": {"type": "number"},
                        "requester": {
                            "type": "object",
                            "properties": {
                                "address": {"type": "string"},
                                "user_agent": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    }
