"""The OpenAPI 3.1 document of the relay's HTTP API, written by hand.

Hand-written because the request bodies are validated by hand (strict
base64url fields with byte limits) and a generator would describe them less
precisely. A test checks that every HTTP route of the app appears here with
its methods, and nothing else does.
"""

from __future__ import annotations

from typing import Any

from unlatch import __version__
from unlatch.relay.service import MAX_REPLY_WAIT, REQUEST_STATES

B64 = {"type": "string", "pattern": "^[A-Za-z0-9_-]*$", "description": "base64url, no padding"}
ID16 = {**B64, "minLength": 22, "maxLength": 22, "description": "16 bytes, base64url"}
ERROR = {"$ref": "#/components/schemas/Error"}


def _b64(max_bytes: int, what: str) -> dict[str, Any]:
    return {
        **B64,
        "maxLength": (max_bytes * 4 + 2) // 3,
        "description": f"{what} (<= {max_bytes} bytes)",
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
    status: str, desc: str, schema: dict[str, Any] | None = None, *errors: str
) -> dict[str, Any]:
    out: dict[str, Any] = {status: {"description": desc}}
    if schema is not None:
        out[status]["content"] = {"application/json": {"schema": schema}}
    for code in errors:
        out[code] = {"description": "error", "content": {"application/json": {"schema": ERROR}}}
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
    if body is not None:
        op["requestBody"] = body
        # a body that does not arrive within body_timeout (slow or stalled clients)
        responses.setdefault(
            "408",
            {"description": "request_timeout", "content": {"application/json": {"schema": ERROR}}},
        )
    if params:
        op["parameters"] = params
    return op


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID16}


WAIT_PARAMS = [
    _path("channel_id"),
    {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
    {
        "name": "timeout",
        "in": "query",
        "schema": {"type": "integer", "minimum": 0, "maximum": 30, "default": 25},
    },
]
OBJ = {"type": "object"}
DATA = {"type": "object", "properties": {"seq": {"type": "integer"}}}
WAIT = {"$ref": "#/components/schemas/WaitResult"}
OK = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
REPLY_POSTED = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"},
        "delivery": {
            "type": "string",
            "enum": ["delivered", "undelivered"],
            "description": "only with wait: did a desktop still waiting take the reply",
        },
    },
}
REQUEST_STATE = {
    "type": "object",
    "properties": {
        "type": {"const": "request"},
        "request_id": {"type": "string"},
        "state": {"type": "string", "enum": list(REQUEST_STATES)},
        "acknowledged": {"type": "boolean", "description": "answered: the desktop closed it"},
        "replaced_by": {"type": "string", "description": "renewed: the newer request's id"},
    },
    "required": ["type", "request_id", "state"],
}


def _post_message(summary: str, tag: str, max_bytes: int, what: str) -> dict[str, Any]:
    """A party posts one opaque message to a channel (hello/accept, seen/reply).

    The four message routes differ only in summary, tag and size limit.
    """
    return _op(
        summary,
        _resp("202", "posted", DATA, "400", "401", "403", "404", "409", "410", "413"),
        tag=tag,
        params=[_path("channel_id")],
        body=_body({"data": _b64(max_bytes, what)}, ["data"]),
    )


def openapi_document(server_url: str) -> dict[str, Any]:
    """The document served at ``/openapi.json``."""
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
                _resp("200", "a file", None, "404", "503"),
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
                _resp("200", "healthy", OBJ, "503"),
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
        "/v1/auth/challenge": {
            "post": _op(
                "Get a single-use challenge to sign",
                _resp("200", "challenge", {"$ref": "#/components/schemas/Challenge"}, "400", "429"),
                auth=False,
                tag="auth",
            )
        },
        "/v1/auth/session": {
            "post": _op(
                "Register (first use) and open a session by signing the challenge",
                _resp(
                    "200", "session", {"$ref": "#/components/schemas/Session"}, "400", "401", "403"
                ),
                auth=False,
                tag="auth",
                body=_body(
                    {
                        "public_key": {**B64, "description": "uncompressed P-256 point (65 bytes)"},
                        "kind": {"enum": ["desktop", "phone"]},
                        "challenge": {**B64, "description": "32 bytes"},
                        "signature": {
                            **B64,
                            "description": "raw r||s ECDSA P-256/SHA-256 (64 bytes)",
                        },
                    },
                    ["public_key", "kind", "challenge", "signature"],
                ),
            )
        },
        "/v1/devices/me": {
            "get": _op("This device", _resp("200", "device", OBJ, "401"), tag="devices")
        },
        "/v1/devices/me/push": {
            "put": _op(
                "Set the phone's push target (Web Push or UnifiedPush)",
                _resp("200", "stored", OK, "400", "401", "403", "413"),
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
                _resp("200", "removed", OK, "401", "403"),
                tag="devices",
            ),
        },
        "/v1/push/vapid-public-key": {
            "get": _op(
                "The relay's VAPID public key (applicationServerKey)",
                _resp("200", "key", OBJ, "503"),
                auth=False,
                tag="devices",
            )
        },
        "/v1/pairing": {
            "post": _op(
                "Create a pairing channel (desktop)",
                _resp("201", "created", OBJ, "400", "401", "403", "409", "413", "429"),
                tag="pairing",
                body=_body(
                    {"channel_id": ID16, "ttl": {"type": "integer", "minimum": 1, "maximum": 600}},
                    ["channel_id"],
                ),
            )
        },
        "/v1/pairing/{channel_id}": {
            "delete": _op(
                "Close a pairing channel (either party)",
                _resp("200", "closed", OK, "400", "401", "403", "404"),
                tag="pairing",
                params=[_path("channel_id")],
            )
        },
        "/v1/pairing/{channel_id}/hello": {
            "post": _post_message(
                "Post the phone's hello (first phone owns the channel)",
                "pairing",
                4096,
                "opaque protocol message",
            )
        },
        "/v1/pairing/{channel_id}/accept": {
            "post": _post_message(
                "Post the desktop's accept", "pairing", 4096, "opaque protocol message"
            )
        },
        "/v1/pairing/{channel_id}/wait": {
            "get": _op(
                "Long-poll for the other party's messages",
                _resp("200", "messages", WAIT, "400", "401", "403", "404"),
                tag="pairing",
                params=WAIT_PARAMS,
            )
        },
        "/v1/pairings": {
            "post": _op(
                "Register one side of a pairing",
                _resp("200", "state", OBJ, "400", "401", "404", "409"),
                tag="pairings",
                body=_body(
                    {"routing_id": ID16, "peer_device_id": {"type": "string", "maxLength": 22}},
                    ["routing_id", "peer_device_id"],
                ),
            ),
            "get": _op(
                "This device's pairings", _resp("200", "pairings", OBJ, "401"), tag="pairings"
            ),
        },
        "/v1/pairings/{routing_id}": {
            "delete": _op(
                "Unpair (removes both sides)",
                _resp("200", "deleted", OK, "400", "401", "404"),
                tag="pairings",
                params=[_path("routing_id")],
            )
        },
        "/v1/pairings/{routing_id}/block": {
            "post": _op(
                '"I did not ask for this": block unlock requests (phone)',
                _resp("200", "blocked", OBJ, "400", "401", "403", "404"),
                tag="pairings",
                params=[_path("routing_id")],
            )
        },
        "/v1/pairings/{routing_id}/unblock": {
            "post": _op(
                "Re-confirm: allow unlock requests again (phone)",
                _resp("200", "unblocked", OBJ, "400", "401", "403", "404"),
                tag="pairings",
                params=[_path("routing_id")],
            )
        },
        "/v1/unlock": {
            "post": _op(
                "Create an unlock channel and wake the paired phone (desktop)",
                _resp("201", "created", OBJ, "400", "401", "403", "409", "413", "429"),
                tag="unlock",
                body=_body(
                    {
                        "request_id": ID16,
                        "routing_id": ID16,
                        "push": _b64(1024, "opaque push payload"),
                        "ttl": {"type": "integer", "minimum": 1, "maximum": 120},
                    },
                    ["request_id", "routing_id", "push"],
                ),
            )
        },
        "/v1/unlock/pending": {
            "get": _op(
                "Open unanswered requests for this phone",
                _resp("200", "requests", OBJ, "401", "403"),
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
                    "400",
                    "401",
                    "403",
                    "404",
                    "410",
                ),
                tag="unlock",
                params=[_path("channel_id")],
            ),
            "delete": _op(
                "Acknowledge/cancel: close the channel (desktop)",
                _resp("200", "closed", OK, "400", "401", "403", "404"),
                tag="unlock",
                params=[_path("channel_id")],
            ),
        },
        "/v1/unlock/{channel_id}/seen": {
            "post": _post_message("The phone saw the request (once)", "unlock", 256, "opaque")
        },
        "/v1/unlock/{channel_id}/reply": {
            "post": _op(
                "The phone's reply (once, before expiry); with wait, whether a desktop took it",
                _resp(
                    "202", "posted", REPLY_POSTED, "400", "401", "403", "404", "409", "410", "413"
                ),
                tag="unlock",
                params=[_path("channel_id")],
                body=_body(
                    {
                        "data": _b64(1024, "opaque"),
                        "wait": {"type": "integer", "minimum": 0, "maximum": MAX_REPLY_WAIT},
                    },
                    ["data"],
                ),
            )
        },
        "/v1/unlock/{channel_id}/state": {
            "get": _op(
                "Where the request stands, also once closed (paired phone)",
                _resp("200", "state", REQUEST_STATE, "400", "401", "403", "404"),
                tag="unlock",
                params=[_path("channel_id")],
            )
        },
        "/v1/unlock/{channel_id}/wait": {
            "get": _op(
                "Long-poll for seen/reply (desktop)",
                _resp("200", "messages", WAIT, "400", "401", "403", "404"),
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
            "WebSockets (not describable in OpenAPI): /v1/pairing/{id}/ws, /v1/unlock/{id}/ws, "
            "/v1/listen; see docs/relay.md.",
        },
        "servers": [{"url": server_url}],
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
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "retry_after": {"type": "integer"},
                        "scope": {"type": "string"},
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
                            "enum": ["answered", "cancelled", "rejected", "closed"],
                            "description": "closed: why (rejected: the desktop refused the"
                            " phone's hello, i.e. its user said the codes differ)",
                        },
                        "expires_at": {"type": ["number", "null"]},
                    },
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
