"""Relay throughput and latency: exchanges/s at concurrency 1, 50, 500; RSS per WebSocket.

One exchange = the desktop creates an unlock channel (HTTP), waits on the
channel's WebSocket, the phone posts a ~200-byte reply (HTTP), the desktop
receives it and acknowledges (DELETE). Latency is measured from the moment the
phone starts its POST to the moment the desktop's socket delivers the reply.

The relay is a real subprocess (``python -m unlatch relay``, SQLite, in-process
bus) with rate limits raised; the load generator runs in this process on the
same machine, so on 2 cores both compete for CPU: the figures are a floor.

Run: python bench/bench_relay.py [--seconds 8] [--sockets 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

from unlatch.relay.client import RelayClient
from unlatch.relay.codec import b64e
from unlatch.relay.device_key import DeviceKey

LIMITS = {
    "UNLATCH_RELAY_RATE_UNLOCK_PAIRING": "1000000/1",
    "UNLATCH_RELAY_RATE_UNLOCK_DEVICE": "1000000/1",
    "UNLATCH_RELAY_RATE_UNLOCK_IP": "1000000/1",
    "UNLATCH_RELAY_RATE_PUSH": "1000000/1",
    "UNLATCH_RELAY_RATE_AUTH_IP": "1000000/1",
    "UNLATCH_RELAY_MAX_PENDING_UNLOCK": "100000",
    "UNLATCH_RELAY_LOG_LEVEL": "warning",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (load-independent cost measure)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_relay(base: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "UNLATCH_HOME": str(base / "home"), **LIMITS}
    env.pop("UNLATCH_CONFIG", None)
    log = (base / "relay.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "unlatch", "relay", "--port", str(port), "--db", str(base / "r.db")],
        env=env,
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("relay did not start")


async def make_pairs(url: str, n: int) -> list[tuple[RelayClient, RelayClient, bytes]]:
    pairs = []
    for _ in range(n):
        d = RelayClient(url, DeviceKey.generate(), "desktop")
        p = RelayClient(url, DeviceKey.generate(), "phone")
        await p.login()
        rid = os.urandom(16)
        await d.register_pairing(rid, p.device_id)
        assert await p.register_pairing(rid, d.device_id) == "linked"
        pairs.append((d, p, rid))
    return pairs


async def exchange(url: str, pair: tuple[RelayClient, RelayClient, bytes], reply: bytes) -> float:
    desktop, phone, routing_id = pair
    request_id = os.urandom(16)
    await desktop.create_unlock(request_id, routing_id, os.urandom(120))
    ws_url = url.replace("http", "ws") + f"/v1/unlock/{b64e(request_id)}/ws"
    async with connect(ws_url, open_timeout=30, ping_interval=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": desktop._token, "after": 0}))
        assert json.loads(await ws.recv())["type"] == "ready"
        t0 = time.perf_counter()
        await phone.post_reply(request_id, reply)
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("type") == "message" and frame.get("kind") == "reply":
                latency = time.perf_counter() - t0
                break
    await desktop.close_unlock(request_id)
    return latency


async def run_level(
    url: str, pid: int, pairs: list, concurrency: int, seconds: float
) -> dict[str, float]:
    reply = os.urandom(200)
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def worker(i: int) -> None:
        nonlocal errors
        pair = pairs[i % len(pairs)]
        while True:  # every worker completes at least one exchange
            try:
                latencies.append(await exchange(url, pair, reply))
            except Exception as exc:
                errors += 1
                if errors <= 3:
                    print(f"    error: {type(exc).__name__}: {exc}", file=sys.stderr)
            if time.monotonic() >= stop:
                return

    t0 = time.monotonic()
    cpu0 = cpu_seconds(pid)
    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    # bounded: exchanges still running well after the end are abandoned (not counted)
    _done, late = await asyncio.wait(tasks, timeout=seconds + 10 + concurrency / 10)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    elapsed = time.monotonic() - t0
    cpu = cpu_seconds(pid) - cpu0
    latencies.sort()
    if len(latencies) >= 2:
        q = statistics.quantiles(latencies, n=100)
    else:
        q = [latencies[0] if latencies else float("nan")] * 99
    return {
        "exchanges": len(latencies),
        "abandoned": len(late),
        "errors": errors,
        "per_s": len(latencies) / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "cpu_ms": cpu * 1000 / max(1, len(latencies)),
    }


async def idle_sockets(url: str, pid: int, count: int) -> tuple[int, int]:
    phone = RelayClient(url, DeviceKey.generate(), "phone")
    token = await phone.login()
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    socks = []
    for start in range(0, count, 100):

        async def one() -> object:
            ws = await connect(url.replace("http", "ws") + "/v1/listen", open_timeout=30)
            await ws.send(json.dumps({"type": "auth", "token": token}))
            await ws.recv()
            return ws

        socks += await asyncio.gather(*(one() for _ in range(min(100, count - start))))
    await asyncio.sleep(1.0)
    after = rss_kib(pid)
    ok = httpx.get(url + "/healthz").status_code
    await asyncio.gather(*(ws.close() for ws in socks), return_exceptions=True)
    await phone.aclose()
    assert ok == 200
    return before, after


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="duration of each level")
    parser.add_argument(
        "--sockets", type=int, default=1000, help="idle WebSockets for the RSS figure"
    )
    parser.add_argument("--levels", default="1,50,500")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_relay(Path(tmp))
        try:
            time.sleep(0.5)
            idle = rss_kib(proc.pid)
            print(f"relay {url} pid {proc.pid}; RSS idle {idle / 1024:.1f} MiB")
            load = os.getloadavg()
            print(
                f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} (figures are a floor)"
            )
            pairs = await make_pairs(url, 50)
            results = {}
            for level in (int(x) for x in args.levels.split(",")):
                res = await run_level(url, proc.pid, pairs, level, args.seconds)
                results[level] = res
                print(
                    f"concurrency {level:>4}: {res['per_s']:8.1f} exchanges/s  "
                    f"p50 {res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms  "
                    f"relay CPU {res['cpu_ms']:.2f} ms/exchange  "
                    f"({res['exchanges']} exchanges, {res['errors']} errors, "
                    f"{res['abandoned']} abandoned at the time limit)"
                )
            cpu = statistics.median(r["cpu_ms"] for r in results.values())
            print(
                f"  relay CPU per exchange (median): {cpu:.2f} ms -> ~{1000 / cpu:.0f} exchanges/s "
                "per fully used core"
            )
            base = results.get(1)
            if base:
                for level, res in results.items():
                    print(
                        f"  throughput ratio c={level} / c=1: {res['per_s'] / base['per_s']:.2f}x"
                    )
            before, after = await idle_sockets(url, proc.pid, args.sockets)
            per_ws = (after - before) / args.sockets
            print(
                f"RSS with {args.sockets} idle WebSockets: {after / 1024:.1f} MiB "
                f"(+{(after - before) / 1024:.1f} MiB, {per_ws:.1f} KiB per WebSocket)"
            )
            for d, p, _ in pairs:
                await d.aclose()
                await p.aclose()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


if __name__ == "__main__":
    asyncio.run(main())
