"""Push sending cost: encryption, VAPID signing, and sends through a local push service.

Prints figures. The local push service (tests/fixtures) runs in a child
process (so its threads do not compete with the sender's event loop for the
GIL) and verifies VAPID and decrypts every message, so end-to-end sends/s is
a lower bound on what the dispatcher alone can do; the CPU-only lines
isolate the dispatcher's own cost.
Run: python bench/push_bench.py  (about 20 s)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from unlatch.push import PushDispatcher, PushTarget, VapidKeys, encryption

PAYLOAD = bytes(range(256)) * 8  # 2048 bytes, a typical padded notification
SUBJECT = "mailto:bench@example.org"


def rate(fn: object, seconds: float = 2.0) -> float:
    assert callable(fn)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - start)


SERVICE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from fixtures.push_endpoint import LocalPushService
service = LocalPushService().start()
sub = service.subscribe(application_server_key=sys.argv[2])
print(json.dumps(sub.to_json()), flush=True)
sys.stdin.read()
print(len(sub.delivered), flush=True)
"""


async def sends(target: PushTarget, vapid: VapidKeys, concurrency: int, total: int) -> None:
    latencies: list[float] = []
    async with PushDispatcher(vapid, SUBJECT) as push:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with semaphore:
                t0 = time.perf_counter()
                result = await push.send(target, PAYLOAD)
                latencies.append(time.perf_counter() - t0)
                assert result.outcome == "delivered", result

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one() for _ in range(total)))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"send+decrypt round trip, concurrency {concurrency:>3}: {total / elapsed:7.0f} pushes/s, "
        f"p50 {statistics.median(latencies) * 1000:6.1f} ms, p99 {p99 * 1000:6.1f} ms, "
        f"sender CPU {cpu / total * 1000:.2f} ms/push"
    )


def main() -> None:
    vapid = VapidKeys.generate()
    ua = ec.generate_private_key(ec.SECP256R1())
    ua_pub = ua.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    enc = rate(lambda: encryption.encrypt(PAYLOAD, ua_pub, b"a" * 16))
    sign = rate(lambda: vapid.authorization("https://push.example.net", SUBJECT))
    print(f"RFC 8291 encryption of {len(PAYLOAD)} bytes: {enc:8.0f} /s ({1e6 / enc:6.0f} us each)")
    print(f"VAPID JWT signing (ES256):          {sign:8.0f} /s ({1e6 / sign:6.0f} us each)")
    print(f"ratio sign/encrypt cost: {enc / sign:.2f} (tokens are cached per origin for 11 h)")
    tests_dir = str(Path(__file__).resolve().parent.parent / "tests")
    child = subprocess.Popen(
        [sys.executable, "-c", SERVICE, tests_dir, vapid.public_key_b64url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        # the local push service is on http://127.0.0.1, a private endpoint
        target = PushTarget.from_json(json.loads(child.stdout.readline()), allow_private=True)
        asyncio.run(sends(target, vapid, 1, 300))
        asyncio.run(sends(target, vapid, 50, 1000))
        asyncio.run(sends(target, vapid, 200, 2000))
        child.stdin.close()
        delivered = int(child.stdout.readline())
        print(f"the push service decrypted and recorded {delivered} of 3300 pushes")
    finally:
        child.kill()
        child.wait()


if __name__ == "__main__":
    main()
