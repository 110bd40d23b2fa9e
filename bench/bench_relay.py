"""The relay beside a bare `websockets` forwarder, in one run: throughput, tail, CPU, memory.

One exchange, on both servers: a desktop waits on a WebSocket, a phone POSTs a
~200-byte reply, the desktop receives it and closes. On the relay that is the
real protocol, as the desktop client speaks it: the channel's WebSocket whose
auth frame creates the request (on a ``--baseline`` relay from before that:
``POST /v1/unlock`` first), ``ready``, the phone's ``POST .../reply``, the message frame,
then ``{"type": "close"}`` on the socket (acknowledge, as the desktop client
does; the relay answers ``closed``); device sign-in and pairing are
done before timing. On the forwarder (bench/bare_forwarder.py) it is a
WebSocket that is sent ``ready`` and one POST, nothing else: the floor.

How it is measured (docs/deploy.md, "Performance", says what each figure is):

* the servers run pinned to CPU 0 (``taskset``), this load client to CPU 1, so
  the client does not steal the server's core (PostgreSQL and Redis, shared
  services of the machine, are not pinned);
* each level (``--levels``, concurrency: exchanges in flight at once) runs
  ``--runs`` times for ``--seconds``; the figures are medians of the runs.
  The servers are all started first and take turns (each run of a level goes
  to every server in turn), so a change in the machine's load weighs on all;
  Bounded: no exchange is started after ``--seconds``, each has its own
  30 s limit, and the level ends at a deadline; every started exchange is
  counted as completed, failed (with its error) or cut off at the deadline;
* CPU: the server's user+system CPU (every node's) per completed exchange, and
  the load client's own, so a client-bound figure shows (client CPU near
  1000 ms per second of run);
* idle waiters (``--idle``, on a fresh server of their own): that many
  WebSockets waiting on their own channel, with nothing happening; the
  server's RSS growth per waiter, its CPU while they wait (per 1,000 waiters,
  as % of a core), and its RSS after they all left (against before they came);
  for the relay, the same again with phones listening on ``/v1/listen``;
* ``--db postgresql://... --bus redis://...``: the relay on PostgreSQL (a fresh
  database ``unlatch_bench_<random>`` is made on that server and dropped after)
  and Redis (a random key prefix, removed after), with ``--nodes 1,2,3`` nodes
  (the desktop's WebSocket on one node, the phone's POST on the next).

Run: python bench/bench_relay.py                        # SQLite beside the bare forwarder
     python bench/bench_relay.py --db postgresql://postgres@127.0.0.1:5432/postgres \\
         --bus redis://127.0.0.1:6379/0 --nodes 1,2,3
     python bench/bench_relay.py --smoke                # tiny counts: does it all work?
     python bench/bench_relay.py --baseline /tmp/base   # and the relay of another checkout
                                                        # (git worktree add /tmp/base main)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import httpx
from websockets.asyncio.client import ClientConnection, connect

from unlatch.relay.client import RelayClient
from unlatch.relay.device_key import DeviceKey

HERE = Path(__file__).resolve().parent
SERVER_CPU, CLIENT_CPU = 0, 1
EXCHANGE_TIMEOUT = 30.0
LIMITS = {
    "UNLATCH_RELAY_RATE_UNLOCK_PAIRING": "1000000/1",
    "UNLATCH_RELAY_RATE_UNLOCK_DEVICE": "1000000/1",
    "UNLATCH_RELAY_RATE_UNLOCK_IP": "1000000/1",
    "UNLATCH_RELAY_RATE_PUSH": "1000000/1",
    "UNLATCH_RELAY_RATE_AUTH_IP": "1000000/1",
    "UNLATCH_RELAY_MAX_PENDING_UNLOCK": "1000000",
    "UNLATCH_RELAY_UNLOCK_TTL": "600",  # idle waiters wait on channels that must not expire
    "UNLATCH_RELAY_MAX_CONNECTIONS": "15000",
    "UNLATCH_RELAY_LOG_LEVEL": "warning",
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time of a process (what it cost, whatever the machine's load).

    With ``children``, also that of its children that exited and were waited for.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def backend_cpu() -> float:
    """CPU of every postgres and redis-server process on the machine (others' load included).

    A PostgreSQL backend that exits (a closed connection) takes its CPU time with it; the
    postmaster, which waits for it, then counts it among its children's, so those count
    too (else the total could go down over a window in which connections closed).
    """
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in ("postgres", "redis-server"):
                    total += cpu_seconds(int(entry.name), children=True)
    return total


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def wait_healthy(url: str, proc: subprocess.Popen[bytes], path: str = "/healthz") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            httpx.get(url + path, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{url} did not start")


# -- a minimal HTTP/1.1 keep-alive client (the same for both servers, lighter than httpx) ----


class Http:
    """One keep-alive connection; enough HTTP/1.1 for these JSON requests and answers."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._rw: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", token: str | None = None
    ) -> tuple[int, bytes]:
        for attempt in (0, 1):  # a keep-alive connection the server closed: once more
            if self._rw is None:
                self._rw = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._rw
            head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\n"
            head += f"content-length: {len(body)}\r\n"
            if body:
                head += "content-type: application/json\r\n"
            if token:
                head += f"authorization: Bearer {token}\r\n"
            try:
                writer.write(head.encode() + b"\r\n" + body)
                status_head = await reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt:
                    raise
                continue
            lines = status_head.split(b"\r\n")
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            data = await reader.readexactly(length)
            if close:
                self.close()
            return int(lines[0].split(b" ")[1]), data
        raise ConnectionError("unreachable")

    def close(self) -> None:
        if self._rw is not None:
            self._rw[1].close()
            self._rw = None


# -- the two servers --------------------------------------------------------------------------


class Target:
    """A server under test: its processes, and how one exchange and one idle waiter go."""

    name = ""
    procs: list[subprocess.Popen[bytes]]

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids())

    def rss(self) -> int:
        return sum(rss_kib(pid) for pid in self.pids())

    async def prepare(self) -> None:
        return None

    def worker(self, index: int) -> Callable[[], Awaitable[float]]:
        """A closure doing one exchange (own keep-alive connections), returning its post->recv."""
        raise NotImplementedError

    async def idle_waiter(self, index: int) -> ClientConnection:
        raise NotImplementedError

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


class Bare(Target):
    name = "bare websockets"

    def __init__(self) -> None:
        self.ws_port, self.http_port = free_port(), free_port()
        self.procs = [
            subprocess.Popen(
                [
                    "taskset",
                    "-c",
                    str(SERVER_CPU),
                    sys.executable,
                    str(HERE / "bare_forwarder.py"),
                    str(self.ws_port),
                    str(self.http_port),
                ]
            )
        ]
        wait_healthy(f"http://127.0.0.1:{self.http_port}", self.procs[0], "/")

    def worker(self, index: int) -> Callable[[], Awaitable[float]]:
        phone = Http("127.0.0.1", self.http_port)
        body = json.dumps({"data": b64(os.urandom(200))}).encode()

        async def one() -> float:
            key = os.urandom(16).hex()
            async with connect(
                f"ws://127.0.0.1:{self.ws_port}/wait/{key}", ping_interval=None, compression=None
            ) as ws:
                assert json.loads(await ws.recv())["type"] == "ready"
                t0 = time.perf_counter()
                status, _ = await phone.request("POST", f"/reply/{key}", body)
                assert status == 202, status
                assert json.loads(await ws.recv())["type"] == "message"
                return time.perf_counter() - t0

        return one

    async def idle_waiter(self, index: int) -> ClientConnection:
        ws = await connect(
            f"ws://127.0.0.1:{self.ws_port}/wait/idle{index}",
            ping_interval=None,
            compression=None,
            open_timeout=30,
        )
        assert json.loads(await ws.recv())["type"] == "ready"
        return ws


SQLITE = "relay sqlite"  # the name of --with-sqlite's relay


@dataclass
class Pair:
    desktop_token: str
    phone_token: str
    routing_id: str
    desktop_node: int
    phone_node: int


@dataclass
class Relay(Target):
    pair_count: ClassVar[int] = 50  # pairings made before timing (main: one per worker)
    base: Path
    db: str
    bus: str
    nodes: int
    pairs: list[Pair] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    # a command each node runs under, e.g. a profiler (bench/profile_relay.py)
    wrapper: list[str] = field(default_factory=list)
    # another checkout whose relay code the nodes run (--baseline), instead of this one's
    src: Path | None = None
    # whether the relay creates an unlock request on its socket (a --baseline may predate it)
    create_on_socket: bool = True
    label: str = ""  # a name of its own (--with-sqlite: "relay sqlite")

    def __post_init__(self) -> None:
        self.name = "relay" if self.src is None else "baseline"
        self.name += "" if self.nodes == 1 else f" x{self.nodes}"
        self.name = self.label or self.name
        self.ports = [free_port() for _ in range(self.nodes)]
        public = f"http://127.0.0.1:{self.ports[0]}"
        env = {**os.environ, "UNLATCH_HOME": str(self.base / "home"), **LIMITS}
        env.pop("UNLATCH_CONFIG", None)
        self.procs = []
        for i, port in enumerate(self.ports):
            log = (self.base / f"relay-{i}.log").open("wb")
            cmd = [*self.wrapper, "taskset", "-c", str(SERVER_CPU), sys.executable]
            cmd += ["-m", "unlatch", "relay", "--port", str(port), "--db", self.db]
            cmd += ["--bus", self.bus, "--public-url", public]
            # `python -m` puts the working directory first on sys.path: the code run is src's
            cwd = str(self.src) if self.src is not None else None
            self.procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log, cwd=cwd))
            if i == 0:  # the first node migrates the schema alone
                wait_healthy(public, self.procs[0])
        for port, proc in zip(self.ports, self.procs, strict=True):
            wait_healthy(f"http://127.0.0.1:{port}", proc)

    def url(self, node: int) -> str:
        return f"http://127.0.0.1:{self.ports[node % self.nodes]}"

    async def prepare(self) -> None:
        public = self.url(0)
        for i in range(self.pair_count):
            desktop = RelayClient(public, DeviceKey.generate(), "desktop")
            phone = RelayClient(public, DeviceKey.generate(), "phone")
            try:
                await phone.login()
                rid = os.urandom(16)
                await desktop.register_pairing(rid, phone.device_id)
                assert await phone.register_pairing(rid, desktop.device_id) == "linked"
                assert desktop._token and phone._token
                self.pairs.append(Pair(desktop._token, phone._token, b64(rid), i, i + 1))
            finally:
                await desktop.aclose()
                await phone.aclose()
        self.create_on_socket = await self._creates_on_socket(self.pairs[0])

    async def _creates_on_socket(self, pair: Pair) -> bool:
        """Whether this relay takes ``create`` in an unlock socket's auth frame (one probe)."""
        rid = b64(os.urandom(16))
        create = {"routing_id": pair.routing_id, "push": "AA"}
        async with connect(f"ws://127.0.0.1:{self.ports[0]}/v1/unlock/{rid}/ws") as ws:
            await ws.send(
                json.dumps({"type": "auth", "token": pair.desktop_token, "create": create})
            )
            first = json.loads(await ws.recv())
            if first.get("type") != "ready":
                return False
            await ws.send('{"type":"close"}')
            return True

    def worker(self, index: int) -> Callable[[], Awaitable[float]]:
        pair = self.pairs[index % len(self.pairs)]
        d_port = self.ports[(index + pair.desktop_node) % self.nodes]
        p_port = self.ports[(index + pair.phone_node) % self.nodes]
        desktop, phone = Http("127.0.0.1", d_port), Http("127.0.0.1", p_port)
        push = b64(os.urandom(120))
        reply = json.dumps({"data": b64(os.urandom(200))}).encode()

        async def one() -> float:
            rid = b64(os.urandom(16))
            hello: dict[str, Any] = {"type": "auth", "token": pair.desktop_token, "after": 0}
            if self.create_on_socket:  # the auth frame creates the request (docs/relay.md)
                hello["create"] = {"routing_id": pair.routing_id, "push": push}
            else:  # a relay from before that: POST /v1/unlock first
                body = {"request_id": rid, "routing_id": pair.routing_id, "push": push}
                status, answer = await desktop.request(
                    "POST", "/v1/unlock", json.dumps(body).encode(), pair.desktop_token
                )
                assert status == 201, (status, answer[:200])
            async with connect(
                f"ws://127.0.0.1:{d_port}/v1/unlock/{rid}/ws", ping_interval=None, compression=None
            ) as ws:
                await ws.send(json.dumps(hello))
                ready = json.loads(await ws.recv())
                assert ready["type"] == "ready", ready
                t0 = time.perf_counter()
                status, answer = await phone.request(
                    "POST", f"/v1/unlock/{rid}/reply", reply, pair.phone_token
                )
                assert status == 202, (status, answer[:200])
                while True:
                    frame = json.loads(await ws.recv())
                    if frame.get("type") == "message" and frame.get("kind") == "reply":
                        latency = time.perf_counter() - t0
                        break
                # acknowledge on the socket, as the desktop client does (docs/relay.md)
                await ws.send('{"type":"close"}')
                while (frame := json.loads(await ws.recv())).get("type") != "closed":
                    pass
                assert frame.get("outcome") == "answered", frame
            return latency

        return one

    async def idle_waiter(self, index: int) -> ClientConnection:
        pair = self.pairs[index % len(self.pairs)]
        port = self.ports[index % self.nodes]
        rid = b64(os.urandom(16))
        body = json.dumps({"request_id": rid, "routing_id": pair.routing_id, "push": "AA"})
        http = Http("127.0.0.1", port)
        try:
            status, answer = await http.request(
                "POST", "/v1/unlock", body.encode(), pair.desktop_token
            )
        finally:
            http.close()
        assert status == 201, (status, answer[:200])
        ws = await connect(
            f"ws://127.0.0.1:{port}/v1/unlock/{rid}/ws",
            ping_interval=None,
            compression=None,
            open_timeout=30,
        )
        await ws.send(json.dumps({"type": "auth", "token": pair.desktop_token, "after": 0}))
        assert json.loads(await ws.recv())["type"] == "ready"
        return ws

    async def idle_listener(self, index: int) -> ClientConnection:
        """A phone in the foreground: ``/v1/listen``, hearing nothing (its requests are none)."""
        pair = self.pairs[index % len(self.pairs)]
        port = self.ports[index % self.nodes]
        ws = await connect(
            f"ws://127.0.0.1:{port}/v1/listen",
            ping_interval=None,
            compression=None,
            open_timeout=30,
        )
        await ws.send(json.dumps({"type": "auth", "token": pair.phone_token}))
        assert json.loads(await ws.recv())["type"] == "ready"
        return ws


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Level:
    completed: int
    failed: int
    cut_off: int
    per_s: float
    p50_ms: float
    p99_ms: float
    deliver_p99_ms: float
    server_cpu_ms: float
    client_cpu_ms: float
    client_busy: float  # share of its core the load client used
    backend_cpu_ms: float
    errors: list[str]


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def run_level(target: Target, concurrency: int, seconds: float, backends: bool) -> Level:
    durations: list[float] = []
    delivered: list[float] = []
    errors: list[str] = []
    started = 0
    stop = time.monotonic() + seconds

    async def worker(i: int) -> None:
        nonlocal started
        one = target.worker(i)
        while time.monotonic() < stop:
            started += 1
            t0 = time.perf_counter()
            try:
                delivered.append(await asyncio.wait_for(one(), EXCHANGE_TIMEOUT))
                durations.append(time.perf_counter() - t0)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    cpu0, client0, back0 = target.cpu(), time.process_time(), backend_cpu() if backends else 0.0
    t0 = time.monotonic()
    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    _done, late = await asyncio.wait(tasks, timeout=seconds + EXCHANGE_TIMEOUT + 5)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    elapsed = time.monotonic() - t0
    cpu, client = target.cpu() - cpu0, time.process_time() - client0
    back = backend_cpu() - back0 if backends else 0.0
    n = max(1, len(durations))
    return Level(
        completed=len(durations),
        failed=len(errors),
        cut_off=started - len(durations) - len(errors),
        per_s=len(durations) / elapsed,
        p50_ms=quantile(durations, 0.50) * 1000,
        p99_ms=quantile(durations, 0.99) * 1000,
        deliver_p99_ms=quantile(delivered, 0.99) * 1000,
        server_cpu_ms=cpu * 1000 / n,
        client_cpu_ms=client * 1000 / n,
        client_busy=client / elapsed,
        backend_cpu_ms=back * 1000 / n,
        errors=errors[:3],
    )


def median_level(runs: list[Level]) -> Level:
    def med(name: str) -> float:
        return statistics.median(getattr(r, name) for r in runs)

    return Level(
        completed=sum(r.completed for r in runs),
        failed=sum(r.failed for r in runs),
        cut_off=sum(r.cut_off for r in runs),
        per_s=med("per_s"),
        p50_ms=med("p50_ms"),
        p99_ms=med("p99_ms"),
        deliver_p99_ms=med("deliver_p99_ms"),
        server_cpu_ms=med("server_cpu_ms"),
        client_cpu_ms=med("client_cpu_ms"),
        client_busy=med("client_busy"),
        backend_cpu_ms=med("backend_cpu_ms"),
        errors=[e for r in runs for e in r.errors][:3],
    )


@dataclass
class Idle:
    count: int
    kib_per_waiter: float
    cpu_pct_per_1000: float  # % of one core per 1,000 idle waiters
    left_kib: int  # RSS after they all left, minus before they came
    # PostgreSQL + Redis runs: their CPU meanwhile (every postgres and redis-server process
    # on the machine, so other users of the shared servers count too: an upper bound)
    backend_pct_per_1000: float | None = None

    def backend(self) -> str:
        """The backend figure for a report line ("" when not measured)."""
        pct = self.backend_pct_per_1000
        return "" if pct is None else f" (backend {pct:.2f}%)"


async def measure_idle(
    target: Target, count: int, quiet: float, listeners: bool = False, backends: bool = False
) -> Idle:
    await asyncio.sleep(0.5)
    before = target.rss()
    socks: list[ClientConnection] = []
    sem = asyncio.Semaphore(100)

    failures: list[str] = []

    async def one(i: int) -> None:
        async with sem:
            try:
                opener = target.idle_listener if listeners else target.idle_waiter  # type: ignore[attr-defined]
                socks.append(await opener(i))
            except Exception as exc:  # counted: a server too busy to answer in 30 s
                failures.append(f"{type(exc).__name__}: {str(exc)[:80]}")

    await asyncio.gather(*(one(i) for i in range(count)))
    if failures:
        print(f"    {len(failures)} of {count} waiters could not connect, e.g. {failures[0]}")
    count = max(1, len(socks))
    await asyncio.sleep(1.5)  # let the connect burst settle
    cpu0, backend0, t0 = target.cpu(), backend_cpu() if backends else 0.0, time.monotonic()
    await asyncio.sleep(quiet)
    elapsed = time.monotonic() - t0
    cpu = (target.cpu() - cpu0) / elapsed
    backend = (backend_cpu() - backend0) / elapsed if backends else None
    during = target.rss()
    await asyncio.gather(*(ws.close() for ws in socks), return_exceptions=True)
    await asyncio.sleep(6.0)  # the relay gives memory back within a few seconds
    after = target.rss()
    return Idle(
        count,
        (during - before) / count,
        cpu * 100 * 1000 / count,
        after - before,
        None if backend is None else backend * 100 * 1000 / count,
    )


# -- the run ----------------------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    """``unlatch_bench_<random>`` on the server of ``admin``; dropped after (as tests do)."""
    name = "unlatch_bench_" + os.urandom(6).hex()

    def psql(sql: str) -> None:
        subprocess.run(["psql", admin, "-qAtc", sql], check=True, capture_output=True)

    psql(f"CREATE DATABASE {name}")
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def redis_cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def print_level(name: str, level: int, r: Level, backends: bool) -> None:
    extra = f" backend {r.backend_cpu_ms:5.2f} ms" if backends else ""
    print(
        f"  {name:<14} c={level:<4} {r.per_s:7.1f} x/s  p50 {r.p50_ms:7.1f} ms"
        f"  p99 {r.p99_ms:7.1f} ms (post->recv p99 {r.deliver_p99_ms:6.1f})"
        f"  server {r.server_cpu_ms:5.2f} ms/x  client {r.client_cpu_ms:5.2f} ms/x"
        f" ({r.client_busy * 100:3.0f}% of its core){extra}"
        f"  [{r.completed} done, {r.failed} failed, {r.cut_off} cut off]"
    )
    for err in r.errors:
        print(f"      e.g. {err}")


async def bench(args: argparse.Namespace, tmp: Path) -> None:
    levels = [int(x) for x in args.levels.split(",") if x]
    # a pairing per worker: workers sharing one would end each other's requests (a
    # desktop's newest request, acknowledged, closes its older ones by design)
    Relay.pair_count = max([50, *levels])
    idle_counts = [int(x) for x in args.idle.split(",") if x]
    nofile = raise_nofile()
    idle_counts = [n for n in idle_counts if n + 200 < nofile] or idle_counts[:0]
    pg = args.db.startswith(("postgresql://", "postgres://"))
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f};"
        f" servers on CPU {SERVER_CPU}, load client on CPU {CLIENT_CPU}; medians of {args.runs}"
        f" runs of {args.seconds:g} s; open-file limit {nofile}"
    )
    with contextlib.ExitStack() as stack:
        targets: list[Callable[[], Target]] = []
        if not args.no_bare:
            targets.append(Bare)
        if pg and args.with_sqlite:  # this checkout's relay on SQLite, in the same turns
            (tmp / "sqlite").mkdir()
            targets.append(
                lambda: Relay(
                    tmp / "sqlite", str(tmp / "relay-sqlite.db"), "memory://", 1, label=SQLITE
                )
            )
        sources: list[Path | None] = [None]
        if args.baseline:  # the other checkout's relay first, then this one's
            sources.insert(0, Path(args.baseline).resolve())
        for nodes in [int(x) for x in args.nodes.split(",")]:
            for src in sources:
                if pg:
                    db = stack.enter_context(fresh_database(args.db))
                else:
                    db = str(tmp / f"relay-{nodes}{'-baseline' if src else ''}.db")
                bus = args.bus
                if bus.startswith("redis"):
                    prefix = f"unlatch_bench_{os.urandom(4).hex()}:"
                    bus += ("&" if "?" in bus else "?") + f"prefix={prefix}"
                    stack.callback(redis_cleanup, args.bus.split("?")[0], prefix)
                base = tmp / f"nodes{nodes}{'-baseline' if src else ''}"
                base.mkdir()
                targets.append(lambda b=base, d=db, u=bus, n=nodes, s=src: Relay(b, d, u, n, src=s))
        results: dict[str, dict[int, Level]] = {}
        idles: dict[str, list[Idle]] = {}
        # The servers take turns: every run of a level goes to each of them in turn, so a
        # change in the machine's load (other jobs) weighs on all alike, not on one.
        live: list[Target] = []
        try:
            for make in targets:
                target = make()
                live.append(target)
                await target.prepare()
                print(f"{target.name}: pids {target.pids()}, RSS {target.rss() / 1024:.1f} MiB")
                results[target.name] = {}
            for level in levels:
                runs: dict[str, list[Level]] = {target.name: [] for target in live}
                for _ in range(args.runs):
                    for target in live:
                        backends = pg and target.name != SQLITE
                        runs[target.name].append(
                            await run_level(target, level, args.seconds, backends)
                        )
                for target in live:
                    results[target.name][level] = median_level(runs[target.name])
                    backends = pg and target.name != SQLITE
                    print_level(target.name, level, results[target.name][level], backends)
        finally:
            for target in live:
                target.stop()
        idles.update((name, []) for name in results)
        for make in targets if idle_counts and not args.with_sqlite else []:
            # idle waiters each on a fresh server: the thousands of sockets the idle measure
            # opens and closes must not weigh on the levels, nor the levels' buffers hide
            # the waiters' memory
            target = make()
            try:
                await target.prepare()
                for count in idle_counts:
                    idle = await measure_idle(target, count, args.quiet, backends=pg)
                    idles[target.name].append(idle)
                    print(
                        f"  {target.name:<14} {count} idle waiters: {idle.kib_per_waiter:.1f} KiB"
                        f" each, {idle.cpu_pct_per_1000:.2f}% of a core per 1,000{idle.backend()};"
                        f" after they left RSS {idle.left_kib / 1024:+.1f} MiB vs before"
                    )
            finally:
                target.stop()
            if not isinstance(target, Relay):
                continue
            target = make()  # the phone's side, /v1/listen, on a fresh server too
            try:
                await target.prepare()
                for count in idle_counts:
                    phones = await measure_idle(
                        target, count, args.quiet, listeners=True, backends=pg
                    )
                    print(
                        f"  {target.name:<14} {count} idle phone listeners:"
                        f" {phones.kib_per_waiter:.1f} KiB each,"
                        f" {phones.cpu_pct_per_1000:.2f}% of a core per 1,000{phones.backend()};"
                        f" after they left RSS {phones.left_kib / 1024:+.1f} MiB vs before"
                    )
            finally:
                target.stop()
        print_ratios(results, idles)
        print_sqlite_ratios(results)


def print_sqlite_ratios(results: dict[str, dict[int, Level]]) -> None:
    """--with-sqlite: each PostgreSQL + Redis relay against the SQLite one of the same run."""
    base = results.get(SQLITE)
    if base is None:
        return
    print("PostgreSQL + Redis against SQLite (same run), server CPU per exchange:")
    for name, levels in results.items():
        if name in (SQLITE, "bare websockets"):
            continue
        for level, r in levels.items():
            b = base[level]
            print(
                f"  {name:<14} c={level:<4} relay {r.server_cpu_ms / b.server_cpu_ms:4.2f}x"
                f"  with PostgreSQL's and Redis's CPU"
                f" {(r.server_cpu_ms + r.backend_cpu_ms) / b.server_cpu_ms:4.2f}x"
            )


def print_ratios(results: dict[str, dict[int, Level]], idles: dict[str, list[Idle]]) -> None:
    names = list(results)
    if "bare websockets" not in results or len(names) < 2:
        return
    bare = results["bare websockets"]
    print("ratios against the bare forwarder (same run):")
    for name in names[1:]:
        for level, r in results[name].items():
            b = bare.get(level)
            if b is None or not b.per_s or not b.server_cpu_ms:
                continue
            print(
                f"  {name:<14} c={level:<4} exchanges/s {r.per_s / b.per_s:4.2f}x"
                f"  server CPU per exchange {r.server_cpu_ms / b.server_cpu_ms:4.2f}x"
                f"  p99 {r.p99_ms / b.p99_ms:4.2f}x"
            )
        for mine, theirs in zip(idles.get(name, []), idles["bare websockets"], strict=False):
            if theirs.kib_per_waiter > 0:
                print(
                    f"  {name:<14} {mine.count} idle waiters: memory"
                    f" {mine.kib_per_waiter / theirs.kib_per_waiter:4.2f}x"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--runs", type=int, default=3, help="runs per level (medians reported)")
    parser.add_argument("--levels", default="1,50,500", help="concurrencies")
    parser.add_argument("--idle", default="1000,10000", help="idle waiter counts")
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds of idle CPU measure")
    parser.add_argument("--db", default="", help="postgresql://... (admin URL) or empty: SQLite")
    parser.add_argument("--bus", default="memory://")
    parser.add_argument("--nodes", default="1", help="relay node counts, e.g. 1,2,3")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare forwarder")
    parser.add_argument(
        "--with-sqlite",
        action="store_true",
        help="with --db postgresql://...: also this checkout's relay on SQLite, taking turns"
        " with the others, and the ratios to it (no idle measure)",
    )
    parser.add_argument(
        "--baseline",
        default="",
        help="another checkout (e.g. `git worktree add /tmp/base main`): its relay runs too,"
        " as 'baseline', before this one's, in the same run",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny counts, one run")
    args = parser.parse_args()
    if args.smoke:
        args.seconds, args.runs, args.levels, args.idle, args.quiet = 0.5, 1, "1,5", "20", 0.5
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {CLIENT_CPU})
    import uvloop

    with tempfile.TemporaryDirectory() as tmp:
        uvloop.run(bench(args, Path(tmp)))


if __name__ == "__main__":
    main()
