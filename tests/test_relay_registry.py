"""One registry of relay error codes (unlatch/relay/errors.json), read everywhere.

The relay, the OpenAPI document, the Python client, the phone app and
docs/relay.md each take codes, statuses, close codes and messages from the one
file; these tests fail when a code is used somewhere the registry does not
hold, when a reader disagrees with it, and when the relay's advertised limits
(GET /v1/info) and what it enforces part ways.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
from fixtures.relay import RelayProcess, make_pair

from unlatch.relay import errors as relay_errors
from unlatch.relay.apierror import ApiError
from unlatch.relay.config import RelayConfig
from unlatch.relay.errors import CODES, ERROR_CLASSES, LifetimeTooLong, RelayError
from unlatch.relay.openapi import openapi_document

ROOT = Path(__file__).resolve().parent.parent
# the protocol's own error codes (ProtocolError subclasses), which the app also compares
PROTOCOL_CODES = set(
    re.findall(
        r'static code = "([a-z_]+)"',
        (ROOT / "web/phone/src/protocol/errors.js").read_text(encoding="utf-8"),
    )
)


def _py_codes_used() -> dict[str, set[str]]:
    """Every code the relay and the Python client name, found in their source."""
    found: dict[str, set[str]] = {}
    patterns = (
        r'ApiError\(\s*"([a-z_]+)"',  # ApiError("code", ...)
        r'"error":\s*"([a-z_]+)"',  # hand-made JSON error bodies
        r'code\s*=\s*"([a-z_]+)"',  # RelayError(..., code="...")
        r'exc\.code\s*[!=]=\s*"([a-z_]+)"',
    )
    for path in sorted((ROOT / "unlatch" / "relay").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern in patterns:
            for code in re.findall(pattern, text):
                found.setdefault(code, set()).add(path.name)
    return found


def _js_codes_used() -> dict[str, set[str]]:
    """Every relay code the phone app names: RelayError(...) arguments and comparisons."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "web" / "phone" / "src").rglob("*.js")):
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if "RelayError" not in line and "code" not in line:
                continue
            if re.search(r"new RelayError\(", line):
                codes = re.findall(r'new RelayError\([^,]+,\s*"([a-z_]+)"', line)
            elif "RelayError" in line or re.search(r"\bcode\b", line):
                codes = re.findall(r'"([a-z]+_[a-z_]+|expired|closed|offline)"', line)
            else:
                codes = []
            for code in codes:
                found.setdefault(code, set()).add(path.name)
    return found


def test_every_code_used_anywhere_is_in_the_registry() -> None:
    py, js = _py_codes_used(), _js_codes_used()
    assert {"bad_request", "already_answered", "closed", "offline"} <= set(py) | set(js)
    unknown = {c: w for c, w in py.items() if c not in CODES}
    assert not unknown, f"codes the relay or client use but errors.json lacks: {unknown}"
    unknown_js = {c: w for c, w in js.items() if c not in CODES and c not in PROTOCOL_CODES}
    assert not unknown_js, f"codes the phone app uses but errors.json lacks: {unknown_js}"


def test_registry_entries_are_complete_and_resolve() -> None:
    for code, entry in CODES.items():
        assert re.fullmatch(r"[a-z][a-z_]*", code)
        assert entry.message.endswith(".") and entry.message[0].isupper(), code
        assert issubclass(ERROR_CLASSES[code], RelayError)
        assert ERROR_CLASSES[code].__name__ == entry.exception
        if entry.status is not None and 400 <= entry.status < 500 and entry.ws_close:
            assert entry.ws_close == 4000 + entry.status, code
    with pytest.raises(KeyError):
        ApiError("no_such_code")
    with pytest.raises(ValueError):
        ApiError("offline")  # a client-side code: the relay never sends it
    err = ApiError("expired")
    assert (err.status, err.ws_close, err.message) == (410, 4410, CODES["expired"].message)


def test_python_client_maps_each_code_to_its_registry_class() -> None:
    from unlatch.relay.client import _error_from

    for code, entry in CODES.items():
        if entry.status is None:
            continue
        body = {"error": code, "message": "m"}
        got = _error_from(entry.status, body, httpx.Headers({"retry-after": "7"}))
        assert type(got).__name__ == entry.exception, code
        assert got.code == code and got.status == entry.status
        if entry.status == 429:
            assert got.retry_after == 7.0  # type: ignore[attr-defined]


def test_docs_relay_error_table_is_the_registry() -> None:
    doc = (ROOT / "docs" / "relay.md").read_text(encoding="utf-8")
    assert relay_errors.markdown_table() in doc, (
        "docs/relay.md's error table differs from errors.json: paste the output of"
        " `python -m unlatch.relay.errors`"
    )


def test_openapi_error_answers_come_from_the_registry() -> None:
    doc = openapi_document(RelayConfig(public_url="https://relay.example", unlock_ttl=90))
    seen: set[str] = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if not answer["description"].startswith("error: "):
                    continue
                codes = answer["description"].removeprefix("error: ").split(", ")
                for code in codes:
                    assert CODES[code].status == int(status), (path, method, code)
                    seen.add(code)
    assert {"expired", "closed", "already_answered", "blocked", "rate_limited"} <= seen
    ttl = doc["paths"]["/v1/unlock"]["post"]["requestBody"]["content"]["application/json"]
    assert ttl["schema"]["properties"]["ttl"]["maximum"] == 90  # this relay's, not a constant
    assert "| 410 | `closed` |" in doc["info"]["description"]


def test_openapi_states_the_channel_lifecycle_from_its_one_source() -> None:
    """Outcomes, request states and the reply's wait limit: written once, listed by the
    OpenAPI document and GET /v1/info (phone-lifecycle joined with the registry)."""
    from unlatch.relay.config import MAX_REPLY_WAIT
    from unlatch.relay.models import CHANNEL_OUTCOMES, REQUEST_STATES
    from unlatch.relay.openapi import info_document

    config = RelayConfig(public_url="https://relay.example")
    doc = openapi_document(config)
    schemas = doc["components"]["schemas"]
    assert schemas["WaitResult"]["properties"]["outcome"]["enum"] == list(CHANNEL_OUTCOMES)
    assert schemas["RequestState"]["properties"]["state"]["enum"] == list(REQUEST_STATES)
    reply = doc["paths"]["/v1/unlock/{channel_id}/reply"]["post"]
    body = reply["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert (
        body["wait"]["maximum"]
        == MAX_REPLY_WAIT
        == info_document(config)["limits"]["reply_wait_max"]
    )
    state = doc["paths"]["/v1/unlock/{channel_id}/state"]["get"]["responses"]
    assert state["404"]["description"] == "error: unknown_channel"
    # "rejected" is a client-side code: the phone hears it as a closed channel's outcome
    assert CODES["rejected"].status is None and "rejected" in CHANNEL_OUTCOMES
    assert ERROR_CLASSES["rejected"].__name__ == "PairingRejected"


def test_phone_app_bundles_the_registry() -> None:
    """The built app carries the registry's messages (imported as JSON by relay.js)."""
    app = ROOT / "web" / "phone" / "dist" / "app.js"
    if not app.is_file():
        pytest.skip("web/phone is not built")
    text = app.read_text(encoding="utf-8")
    for code in ("closed", "expired", "channel_taken", "rejected"):
        assert CODES[code].message in text


def test_405_names_every_method_in_allow(relay: RelayProcess) -> None:
    for path, method, allow in (
        ("/v1/pairings", "PUT", {"GET", "POST", "HEAD"}),
        ("/v1/unlock/AAAAAAAAAAAAAAAAAAAAAA", "PUT", {"GET", "DELETE", "HEAD"}),
        ("/v1/unlock", "GET", {"POST"}),
    ):
        r = httpx.request(method, relay.url + path)
        assert r.status_code == 405 and r.json()["error"] == "method_not_allowed", path
        assert set(r.headers["allow"].replace(" ", "").split(",")) == allow, path


async def test_relay_advertises_its_unlock_lifetime_and_the_client_follows(
    relay_factory,
) -> None:
    relay = relay_factory(env={"UNLATCH_RELAY_UNLOCK_TTL": "60"})
    info = httpx.get(relay.url + "/v1/info").json()
    assert info["limits"]["unlock_ttl_max"] == 60
    assert info["limits"]["after_max"] == 2**31 - 1
    pair = await make_pair(relay.url)
    try:
        # a desktop configured above the relay's limit hears why, before anything is sent
        with pytest.raises(LifetimeTooLong) as caught:
            await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p", ttl=300)
        assert caught.value.limit == 60 and "unlock_ttl to 60 or less" in str(caught.value)
        assert relay.metric("unlatch_relay_channels_created_total", kind="unlock") == 0
        # the relay itself says the same to a client that did not ask first
        token = await pair.desktop._token_now()
        r = httpx.post(
            relay.url + "/v1/unlock",
            json={
                "request_id": "AAAAAAAAAAAAAAAAAAAAAA",
                "routing_id": "AAAAAAAAAAAAAAAAAAAAAA",
                "push": "cA",
                "ttl": 61,
            },
            headers={"authorization": f"Bearer {token}"},
        )
        assert r.status_code == 400 and "unlock lifetime of 60 s" in r.json()["message"]
        await pair.desktop.create_unlock(os.urandom(16), pair.routing_id, b"p", ttl=60)
    finally:
        await pair.aclose()
