"""Unlock exchanges per second and latency: 1 vs 2 vs 3 relay nodes, SQLite vs PostgreSQL.

    python bench/bench_multinode.py [--seconds 6] [--pairs 12]

Needs PostgreSQL (127.0.0.1:5432, trust, user postgres) and Redis
(127.0.0.1:6379). Each configuration starts real ``python -m unlatch relay``
processes, pairs ``--pairs`` desktops and phones (the desktop on node i, its
phone on node i+1, so with several nodes every exchange crosses nodes), then
runs closed-loop exchanges for ``--seconds``: the desktop creates the unlock
request, the phone's WebSocket listener receives it, the phone posts ``seen``
and ``reply``, the desktop's WebSocket delivers the reply, the desktop
acknowledges. Latency is create -> reply received.

Everything runs on this machine: nodes, PostgreSQL, Redis and this load
generator share its cores, so adding nodes cannot add CPU. On 2 cores the
ratio 3 nodes / 1 node shows the cost of coordination (bus hops, row locks),
not the capacity of 3 machines. Bounded: about 2 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from unlatch.relay.auth import canonical_origin
from unlatch.relay.client import RelayClient
from unlatch.relay.device_key import DeviceKey

PUBLIC_URL = "https://relay.bench.test"
LIBERAL = {
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


def start_nodes(
    base: Path, count: int, db: str, bus: str
) -> list[tuple[str, subprocess.Popen[bytes]]]:
    nodes = []
    for i in range(count):
        port = free_port()
        home = base / f"node{i}-{port}"
        home.mkdir(parents=True)
        env = {**os.environ, **LIBERAL, "UNLATCH_HOME": str(home)}
        env.pop("UNLATCH_CONFIG", None)
        db_url = db if db.startswith("postgresql") else str(home / "relay.db")
        cmd = [sys.executable, "-m", "unlatch", "relay", "--port", str(port), "--db", db_url]
        cmd += ["--bus", bus, "--public-url", PUBLIC_URL, "--no-push"]
        log = (home / "log").open("wb")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
        nodes.append((f"http://127.0.0.1:{port}", proc))
    deadline = time.monotonic() + 90
    for url, proc in nodes:
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"relay {url} did not start (see {base})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
    return nodes


def stop_nodes(nodes: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _url, proc in nodes:
        proc.send_signal(signal.SIGTERM)
    for _url, proc in nodes:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def client(url: str, key: DeviceKey, kind: str) -> RelayClient:
    c = RelayClient(url, key, kind)  # type: ignore[arg-type]
    c.origin = canonical_origin(PUBLIC_URL)  # nodes behind one public URL
    return c


@dataclass
class Result:
    label: str
    nodes: int
    exchanges: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.exchanges / self.seconds

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(len(data) * q))] * 1000 if data else float("nan")


async def run_load(urls: list[str], pairs: int, seconds: float, label: str) -> Result:
    desktops, phones, routes = [], [], []
    for i in range(pairs):
        dk, pk = DeviceKey.generate(), DeviceKey.generate()
        d = client(urls[i % len(urls)], dk, "desktop")
        p = client(urls[(i + 1) % len(urls)], pk, "phone")
        routing_id = os.urandom(16)
        await p.login()  # registers the phone's key, so the desktop can name it as its peer
        await d.register_pairing(routing_id, p.device_id)
        await p.register_pairing(routing_id, d.device_id)
        desktops.append(d)
        phones.append(p)
        routes.append(routing_id)
    latencies: list[float] = []
    counting = False
    stop = False
    done = 0

    async def phone_loop(p: RelayClient) -> None:
        async for note in p.listen():
            await p.post_seen(note.request_id, b"s")
            await p.post_reply(note.request_id, b"r" + note.push)

    async def desktop_loop(d: RelayClient, routing_id: bytes) -> None:
        nonlocal done
        while not stop:
            request_id, push = os.urandom(16), os.urandom(32)
            started = time.monotonic()
            await d.create_unlock(request_id, routing_id, push)
            reply = await d.wait_reply(request_id, timeout=30)
            assert reply == b"r" + push
            if counting:
                latencies.append(time.monotonic() - started)
                done += 1

    listeners = [asyncio.create_task(phone_loop(p)) for p in phones]
    await asyncio.sleep(0.5)
    workers = [
        asyncio.create_task(desktop_loop(d, r)) for d, r in zip(desktops, routes, strict=True)
    ]
    await asyncio.sleep(2.0)  # warm-up (connections, caches)
    counting = True
    started = time.monotonic()
    await asyncio.sleep(seconds)
    counting = False
    elapsed = time.monotonic() - started
    stop = True
    await asyncio.wait(workers, timeout=30)
    for task in listeners + workers:
        task.cancel()
    await asyncio.gather(*listeners, *workers, return_exceptions=True)
    for c in desktops + phones:
        await c.aclose()
    return Result(label, len(urls), done, elapsed, latencies)


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "postgresql://postgres@127.0.0.1:5432/postgres", "-qAtc", sql],
        check=True,
        capture_output=True,
    )


def drop_keys(prefix: str) -> None:
    """Remove the rate-limit buckets this run left under its Redis prefix."""
    import redis

    r = redis.Redis()
    keys = list(r.scan_iter(match=prefix + "*", count=1000))
    if keys:
        r.delete(*keys)
    r.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured time per config")
    parser.add_argument("--pairs", type=int, default=12, help="concurrent desktop/phone pairs")
    args = parser.parse_args()
    configs = [
        ("SQLite, in-process bus", 1, "sqlite", "memory://"),
        ("PostgreSQL, in-process bus", 1, "pg", "memory://"),
        ("PostgreSQL + Redis", 1, "pg", "redis"),
        ("PostgreSQL + Redis", 2, "pg", "redis"),
        ("PostgreSQL + Redis", 3, "pg", "redis"),
    ]
    print(
        f"cores={os.cpu_count()} load={os.getloadavg()[0]:.1f} pairs={args.pairs}"
        f" seconds={args.seconds}"
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="unlatch-bench-") as tmp:
        for label, count, store, bus in configs:
            name = "unlatch_bench_" + os.urandom(4).hex()
            prefix = "unlatch_bench_" + os.urandom(4).hex() + ":"
            db = f"postgresql://postgres@127.0.0.1:5432/{name}" if store == "pg" else "sqlite"
            if store == "pg":
                psql(f"CREATE DATABASE {name}")
            bus_url = f"redis://127.0.0.1:6379/0?prefix={prefix}" if bus == "redis" else bus
            nodes = start_nodes(Path(tmp) / name, count, db, bus_url)
            try:
                result = asyncio.run(
                    run_load([u for u, _ in nodes], args.pairs, args.seconds, label)
                )
            finally:
                stop_nodes(nodes)
                if store == "pg":
                    psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                if bus == "redis":
                    drop_keys(prefix)
            results.append(result)
            print(
                f"{label:28s} nodes={count}  {result.rate:7.1f} exchanges/s"
                f"  p50={result.pct(0.5):6.1f} ms  p99={result.pct(0.99):6.1f} ms"
                f"  (n={result.exchanges})",
                flush=True,
            )
    sqlite, pg1 = results[0], results[1]
    one, two, three = results[2], results[3], results[4]
    print(f"PostgreSQL / SQLite (1 node):     {pg1.rate / sqlite.rate:.2f}x throughput")
    print(f"2 nodes / 1 node (PG + Redis):    {two.rate / one.rate:.2f}x throughput")
    print(f"3 nodes / 1 node (PG + Redis):    {three.rate / one.rate:.2f}x throughput")
    print(
        f"on {os.cpu_count()} cores shared by every node, PostgreSQL, Redis and the load"
        " generator, extra nodes add coordination, not CPU: the ratio measures overhead."
    )


if __name__ == "__main__":
    main()
