"""Operations of a real relay process: health, metrics, OpenAPI, the PWA mount,
reverse-proxy address handling, configuration by file and environment."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import httpx
import pytest
from fixtures.relay import RelayProcess, make_pair
from starlette.routing import Mount, Route

from unlatch.relay.app import create_app
from unlatch.relay.config import load_config


async def test_healthz_and_metrics_move(relay: RelayProcess) -> None:
    r = httpx.get(relay.url + "/healthz")
    assert r.status_code == 200 and r.json()["ok"] is True
    before_msgs = relay.metric("unlatch_relay_messages_relayed_total")
    pair = await make_pair(relay.url)
    try:
        rid = os.urandom(16)
        await pair.desktop.create_unlock(rid, pair.routing_id, b"p")
        assert relay.metric("unlatch_relay_channels_open", kind="unlock") == 1
        waiter = asyncio.create_task(pair.desktop.wait_reply(rid, timeout=30))
        deadline = time.monotonic() + 20
        while relay.metric("unlatch_relay_websockets_open", endpoint="unlock") != 1:
            assert time.monotonic() < deadline and not waiter.done(), "the waiter never connected"
            await asyncio.sleep(0.02)
        await pair.phone.post_reply(rid, b"r")
        await waiter
        assert relay.metric("unlatch_relay_channels_open", kind="unlock") == 0
        assert (
            relay.metric("unlatch_relay_messages_relayed_total") == before_msgs + 3
        )  # hello, accept, reply
        assert relay.metric("unlatch_relay_messages_relayed_total", kind="reply") == 1
        assert relay.metric("unlatch_relay_messages_delivered_total", transport="websocket") >= 3
        assert relay.metric("unlatch_relay_channels_created_total", kind="unlock") == 1
        assert (
            relay.metric("unlatch_relay_http_requests_total", route="/v1/unlock", status="201") == 1
        )
    finally:
        await pair.aclose()
    text = httpx.get(relay.url + "/metrics").text
    for name in (
        "unlatch_relay_pushes_total",
        "unlatch_relay_rate_limited_total",
        "unlatch_relay_websockets_open",
        "unlatch_relay_channels_open",
    ):
        assert name in text


def test_openapi_lists_every_http_route(relay: RelayProcess) -> None:
    doc = httpx.get(relay.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    app = create_app(load_config({"db": "sqlite:///" + str(relay.home / "x.db")}))
    routes: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, Route):
            routes.setdefault(route.path, set()).update(
                m.lower() for m in route.methods or () if m != "HEAD"
            )
        elif isinstance(route, Mount):
            routes.setdefault(route.path + "/{path}", set()).add("get")
    # the app routes use {msg_type}/{action} placeholders for fixed words: expand them
    expanded: dict[str, set[str]] = {}
    for path, methods in routes.items():
        for word, values in (("{msg_type}", None), ("{action}", ("block", "unblock"))):
            if word in path:
                if values is None:
                    values = (
                        ("hello", "accept")
                        if path.startswith("/v1/pairing/")
                        else ("seen", "reply")
                    )
                for v in values:
                    expanded.setdefault(path.replace(word, v), set()).update(methods)
                break
        else:
            expanded.setdefault(path, set()).update(methods)
    documented = {path: set(ops) for path, ops in doc["paths"].items()}
    assert documented == expanded
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["responses"], (path, method)
            if (
                method in ("post", "put")
                and path not in ("/v1/auth/challenge",)
                and not path.endswith(("block", "unblock"))
            ):
                assert "requestBody" in op, (path, method)


def test_app_mount_503_then_serves_with_strict_headers(relay_factory, tmp_path) -> None:
    relay = relay_factory(env={"UNLATCH_RELAY_APP_DIR": str(tmp_path / "missing")})
    r = httpx.get(relay.url + "/app/")
    assert r.status_code == 503 and r.json()["error"] == "app_unavailable"
    r = httpx.get(relay.url + "/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/app/"

    build = tmp_path / "build"
    build.mkdir()
    (build / "index.html").write_text("<!doctype html><title>phone</title>")
    (build / "manifest.webmanifest").write_text('{"name": "unlatch"}')
    (build / "sw.js").write_text("self.addEventListener('push', () => {});")
    relay2 = relay_factory(env={"UNLATCH_RELAY_APP_DIR": str(build)})
    r = httpx.get(relay2.url + "/app/")
    assert r.status_code == 200 and "phone" in r.text
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["service-worker-allowed"] == "/app/"
    assert r.headers["x-content-type-options"] == "nosniff"
    r = httpx.get(relay2.url + "/app/manifest.webmanifest")
    assert r.headers["content-type"].startswith("application/manifest+json")
    r = httpx.get(relay2.url + "/app/sw.js")
    assert r.headers["content-type"].startswith("text/javascript")
    assert r.headers["service-worker-allowed"] == "/app/"
    assert httpx.get(relay2.url + "/app/../relay.db").status_code == 404
    assert httpx.get(relay2.url + "/app/nope.js").status_code == 404


async def test_trusted_proxy_decides_the_reported_address(relay_factory) -> None:
    trusting = relay_factory(
        args=["--trusted-proxy", "127.0.0.0/8", "--trusted-proxy", "10.0.0.0/8"]
    )
    plain = relay_factory()
    for relay, spoof_expected in ((trusting, "203.0.113.9"), (plain, "127.0.0.1")):
        pair = await make_pair(relay.url)
        try:
            token = await pair.desktop.login()
            cases = [
                ({"x-forwarded-for": "203.0.113.9"}, spoof_expected),
                # a client-written hop before an untrusted one is ignored
                ({"x-forwarded-for": "198.51.100.1, 203.0.113.9, 10.1.2.3"}, spoof_expected),
                # only the configured header (default X-Forwarded-For) is read
                ({"forwarded": 'for="[2001:db8::7]:4711";proto=https'}, "127.0.0.1"),
                ({"x-forwarded-for": "garbage"}, "127.0.0.1"),
            ]
            for headers, expected in cases:
                rid = os.urandom(16)
                from unlatch.relay.codec import b64e

                r = httpx.post(
                    relay.url + "/v1/unlock",
                    json={
                        "request_id": b64e(rid),
                        "routing_id": b64e(pair.routing_id),
                        "push": "eA",
                    },
                    headers={
                        "authorization": f"Bearer {token}",
                        "user-agent": "Firefox/999",
                        **headers,
                    },
                )
                assert r.status_code == 201, r.text
                note = await pair.phone.get_unlock(rid)
                assert note.requester_address == expected, (headers, relay is trusting)
                assert note.requester_user_agent == "Firefox/999"
        finally:
            await pair.aclose()


def test_config_file_env_and_cli_precedence(tmp_path) -> None:
    home = tmp_path / "home"
    cfg = tmp_path / "config.toml"
    cfg.write_text('[relay]\nport = 9100\nunlock_ttl = 60\nrate_push = "5/60"\n')
    env = {
        **os.environ,
        "UNLATCH_HOME": str(home),
        "UNLATCH_CONFIG": str(cfg),
        "UNLATCH_RELAY_UNLOCK_TTL": "30",
    }
    code = (
        "from unlatch.relay.config import load_config; c = load_config({'port': 9200});"
        "print(c.port, c.unlock_ttl, c.rules['push'].burst, c.public_url, c.db.startswith('sqlite:///'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["9200", "30", "5", "http://127.0.0.1:9200", "True"]
    # a bad setting is a clear error at startup, not a traceback
    cfg.write_text('[relay]\nrate_push = "lots"\n')
    r = subprocess.run(
        [sys.executable, "-m", "unlatch", "relay", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0 and "rate limit" in r.stderr and "Traceback" not in r.stderr
    cfg.write_text("[relay]\nnot_a_setting = 1\n")
    r = subprocess.run(
        [sys.executable, "-m", "unlatch", "relay"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0 and "unknown relay setting" in r.stderr and "Traceback" not in r.stderr


def test_relay_help_teaches_use() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "unlatch", "relay", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for word in (
        "--trusted-proxy",
        "--public-url",
        "--cert",
        "Examples",
        "unlatch relay --host 0.0.0.0",
    ):
        assert word in r.stdout


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_direct_tls_with_cert_and_key(relay_factory, tmp_path) -> None:
    import ssl

    from fixtures.relay import free_port

    from unlatch.relay.client import RelayClient
    from unlatch.relay.codec import b64e
    from unlatch.relay.device_key import DeviceKey

    cert, key = _self_signed(tmp_path)
    port = free_port()
    # the fixture polls http://; start it by hand over https
    env = {**os.environ, "UNLATCH_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "unlatch",
            "relay",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "r.db"),
            "--cert",
            str(cert),
            "--key",
            str(key),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # a loaded 2-core CI machine starts slowly
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/healthz", verify=ctx).status_code == 200:
                    break
            except httpx.HTTPError:
                await asyncio.sleep(0.05)
        r = httpx.get(url + "/healthz", verify=ctx)
        assert r.status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/healthz")  # plain http is not served
        # signatures bind the https origin; the client signs in and waits over wss://
        client = RelayClient(url, DeviceKey.generate(), "desktop", ssl_context=ctx)
        assert len(await client.login()) > 20
        channel_id = os.urandom(16)
        await client.create_pairing_channel(channel_id, ttl=2)
        # wss:// works
        ws, _ = await client._ws_open(f"/v1/pairing/{b64e(channel_id)}/ws", {"after": 0})
        await ws.close()
        from unlatch.relay.errors import ChannelExpired

        t0 = time.monotonic()
        with pytest.raises(ChannelExpired):  # waited over wss:// until the channel expired
            await client.wait_pairing_message(channel_id, timeout=40)
        assert time.monotonic() - t0 < 30  # the 2 s channel's expiry, not the wait's timeout
        await client.aclose()
    finally:
        proc.terminate()
        proc.wait(15)
