"""The relay's VAPID key: created once, kept private, and tokens push services accept."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fixtures.push_endpoint import VapidRejected, unb64u, verify_vapid

from unlatch.push import VapidError, VapidKeys


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNLATCH_HOME", str(tmp_path / "home"))


def test_key_is_created_0600_and_reloaded_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "relay" / "vapid.pem"
    first = VapidKeys.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    second = VapidKeys.load_or_create(path)
    assert second.public_key_b64url == first.public_key_b64url
    raw = unb64u(first.public_key_b64url)
    assert len(first.public_key_b64url) == 87 and "=" not in first.public_key_b64url
    assert len(raw) == 65 and raw[0] == 4
    assert [p.name for p in path.parent.iterdir()] == ["vapid.pem"], "no temp files left"
    assert first.public_key_b64url in repr(first)
    assert "PRIVATE" not in repr(first)


def test_concurrent_first_starts_agree_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "vapid.pem"
    barrier = threading.Barrier(8)
    results: list[str] = []

    def start() -> None:
        barrier.wait()
        results.append(VapidKeys.load_or_create(path).public_key_b64url)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len(set(results)) == 1
    code = (
        "import sys; from pathlib import Path; from unlatch.push import VapidKeys; "
        "print(VapidKeys.load_or_create(Path(sys.argv[1])).public_key_b64url)"
    )
    other_process = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert other_process.stdout.strip() == results[0]


def test_group_readable_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "vapid.pem"
    VapidKeys.load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(VapidError, match="chmod 600"):
        VapidKeys.load_or_create(path)


@pytest.mark.parametrize(
    "content",
    [b"garbage", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
)
def test_corrupt_key_file_is_refused_not_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vapid.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(VapidError, match="not an unencrypted PEM private key"):
        VapidKeys.load_or_create(path)
    assert path.read_bytes() == content, "a bad key is never silently overwritten"


def test_other_curve_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vapid.pem"
    pem = ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(VapidError, match="not a P-256 key"):
        VapidKeys.load_or_create(path)


def test_token_verifies_with_rfc8292_claims() -> None:
    keys = VapidKeys.generate()
    now = time.time()
    header = keys.authorization("https://push.example.net", "mailto:ops@example.org", now=now)
    assert header.startswith("vapid t=") and header.endswith(f", k={keys.public_key_b64url}")
    claims, k = verify_vapid(header, "https://push.example.net", now=now)
    assert k == keys.public_key_bytes
    assert claims["aud"] == "https://push.example.net"
    assert claims["sub"] == "mailto:ops@example.org"
    assert now < claims["exp"] <= now + 24 * 3600


def test_token_is_refused_for_other_audience_expired_or_tampered() -> None:
    keys = VapidKeys.generate()
    header = keys.authorization("https://a.example", "https://ops.example.org/", now=time.time())
    with pytest.raises(VapidRejected, match="aud"):
        verify_vapid(header, "https://b.example")
    old = keys.authorization(
        "https://a.example", "mailto:x@y.z", lifetime=60, now=time.time() - 120
    )
    with pytest.raises(VapidRejected, match="expired"):
        verify_vapid(old, "https://a.example")
    other = VapidKeys.generate()
    forged = header.split(", k=")[0] + f", k={other.public_key_b64url}"
    with pytest.raises(VapidRejected, match="signature"):
        verify_vapid(forged, "https://a.example")


def test_lifetime_and_subject_are_bounded() -> None:
    keys = VapidKeys.generate()
    with pytest.raises(VapidError, match="lifetime"):
        keys.sign_token("https://a.example", "mailto:x@y.z", lifetime=24 * 3600 + 1)
    for bad in ("", "x@y.z", "mailto:", "http://insecure.example", "https://"):
        with pytest.raises(VapidError, match="VAPID subject"):
            keys.sign_token("https://a.example", bad)


def test_tokens_also_verify_with_py_vapid() -> None:
    """A second, independent verifier: the reference Python VAPID library."""
    from py_vapid import Vapid02

    keys = VapidKeys.generate()
    header = keys.authorization("https://push.example.net", "mailto:ops@example.org")
    # py_vapid splits parameters on "," without spaces.
    assert Vapid02.verify(header.replace(", k=", ",k=")) is True
    forged = header.split(", k=")[0] + ",k=" + VapidKeys.generate().public_key_b64url
    assert Vapid02.verify(forged) is False
