"""Phone unlock, end to end on loopback: from the phone's approve to "unlocked".

A real relay process (SQLite) and, in this process, the desktop runtime
(PhoneUnlockService on a real AgentCore/vault, and the local web UI served by
uvicorn). Pairing runs once through the real PairingService. Then, ``--n``
times: lock, request, the phone answers; the clock starts just before the
phone posts its reply and stops when the vault is unlocked, and again when
the page's event stream (``/api/events``, server-sent events, followed as the
page does) delivers the unlocked state.

Where the phone and the page run (``--clients``), said openly because it
changes the tail:

* ``same`` (the default, and the only way before issue 15's third round): the
  phone (the protocol's PhoneUnlock and the relay client) and the page's
  event-stream client run in this process, on the desktop's event loop. No
  user has that: the phone is another device and the page is a browser. Their
  own work (the phone's HTTP POST and its answer, about 1-3 ms of CPU per
  unlock; the page's parsing) runs on the desktop's loop in the middle of the
  desktop's unlock and delays it.
* ``split``: the phone and the page's client each run in a process of their
  own (workers of this script, ``--clients-worker``), as they would on their
  own devices; this process is the desktop alone. The clocks agree: on Linux
  ``time.perf_counter`` is the system-wide monotonic clock.

``--clients both`` runs each in turn and prints them side by side, so a
figure from one way is never shown without the other.

Split of "approve posted -> vault unlocked": relay hop (the phone's POST ->
the desktop's follower read the WebSocket frame), the desktop's queue hop
(the follower hands the reply to the session's task), HPKE open of the
reply, KEK derivation (HKDF of K_P and K_L, with reading K_L), agent unlock
(slot unwrap in the vault + bookkeeping), and the rest. Garbage-collector
pauses of this process inside each unlock's window are counted (``gc.callbacks``).
Before the clock starts: the phone's own work, sealing its approval (HPKE seal).

``--baseline PATH`` runs the same bench on another checkout's code (this
script, with ``PYTHONPATH=PATH``), alternating run by run with this one
(``--runs``), and prints the two side by side: absolute figures on a shared
machine swing with its load, so only a same-session comparison means anything.

    python bench/bench_e2e.py [--n 200] [--clients same|split|both]
    python bench/bench_e2e.py --n 200 --clients both --runs 3 --baseline /work/main
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LIMITS = {
    "UNLATCH_RELAY_RATE_UNLOCK_PAIRING": "100000/1",
    "UNLATCH_RELAY_RATE_UNLOCK_DEVICE": "100000/1",
    "UNLATCH_RELAY_RATE_UNLOCK_IP": "100000/1",
    "UNLATCH_RELAY_RATE_PUSH": "100000/1",
    "UNLATCH_RELAY_RATE_AUTH_IP": "100000/1",
    "UNLATCH_RELAY_MAX_PENDING_UNLOCK": "10000",
}

#: the rows printed, in order: key, label
ROWS = (
    ("seal", "phone: seal the approval (HPKE)"),
    ("total", "approve posted -> vault unlocked"),
    ("hop", "  relay hop (POST -> desktop WS read)"),
    ("queue", "  desktop: frame read -> session"),
    ("hpke", "  HPKE open of the reply"),
    ("kek", "  KEK = HKDF(K_P, K_L)"),
    ("agent", "  agent unlock (slot unwrap)"),
    ("rest", "  other (event loop, bookkeeping)"),
    ("gc", "  GC pauses inside (desktop process)"),
    ("sse", "approve posted -> page gets unlocked"),
    ("after", "  vault unlocked -> SSE event read"),
)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class GcPauses:
    """Every collection of this process, as (start, end) on perf_counter's clock."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.spans.append((self._start, time.perf_counter()))

    def inside(self, t0: float, t1: float) -> float:
        return sum(min(e, t1) - max(s, t0) for s, e in self.spans if s < t1 and e > t0)


@dataclass
class Samples:
    xs: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k, _ in ROWS})

    def add(self, **values: float) -> None:
        for key, value in values.items():
            self.xs[key].append(value)


async def run(n: int, base: Path, clients: str) -> Samples:
    from unlatch.agent.core import AgentCore
    from unlatch.desktop.runtime import DesktopRuntime
    from unlatch.vault import OWASP_MINIMUM

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **LIMITS, "UNLATCH_HOME": str(base / "relay")}
    relay = subprocess.Popen(
        [sys.executable, "-m", "unlatch", "relay", "--port", str(port), "--db", str(base / "r.db")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pauses = GcPauses()
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        core = AgentCore(base / "desktop" / "vault.db", idle_lock_seconds=0)
        await core.init_vault("bench master password", OWASP_MINIMUM)
        rt = DesktopRuntime(core, relay_url=url, unlock_ttl=60, renewals=0)
        await rt.start_web(0)
        peer: Clients = (
            InProcessClients(url, rt.port) if clients == "same" else WorkerClients(url, rt.port)
        )
        await peer.start()
        session = await rt.pairing.start()
        paired = asyncio.create_task(peer.pair(session.link, rt.identity.device_id))
        while session.state != "confirm":
            await rt.pairing.wait(session.id, 5)
        await rt.pairing.confirm(session.id)
        await paired
        await peer.follow_page(rt.security.new_launch_url())

        service = rt.unlock
        out = Samples()
        gc.callbacks.append(pauses)
        for _ in range(n):
            await core.lock()
            await peer.page_says(unlocked=False)
            attempt = await service.start()
            await asyncio.sleep(0.02)  # let the desktop's socket get ready, as a human would
            assert attempt.link is not None
            answered = asyncio.create_task(peer.approve(attempt.link))
            while not attempt.final:
                await service.wait(attempt.id, 5)
            assert attempt.state == "approved" and core.is_unlocked, attempt.message
            t0, seal, page_at = await answered
            t = attempt.timing
            handled_at = getattr(t, "handled_at", math.nan)  # absent in older checkouts
            total = t.unlocked_at - t0
            out.add(
                seal=seal,
                total=total,
                hop=t.reply_received_at - t0,
                queue=handled_at - t.reply_received_at,
                hpke=t.hpke_open,
                kek=t.slot_unwrap,
                agent=t.agent_unlock,
                rest=t.unlocked_at - handled_at - t.hpke_open - t.slot_unwrap - t.agent_unlock,
                gc=pauses.inside(t0, t.unlocked_at),
                sse=page_at - t0,
                after=page_at - t.unlocked_at,
            )
        gc.callbacks.remove(pauses)
        await peer.stop()
        await rt.stop()
        await core.close()
    finally:
        relay.terminate()
        relay.wait(10)
    return out


class Clients:
    """The phone and the page, wherever they run."""

    async def start(self) -> None: ...

    async def pair(self, link: str, desktop_device_id: str) -> None: ...

    async def follow_page(self, launch_url: str) -> None: ...

    async def page_says(self, *, unlocked: bool) -> None: ...

    async def approve(self, link: str) -> tuple[float, float, float]:
        """Scan ``link``, approve, post: (t0 = just before the POST, seal time, page saw it)."""
        raise NotImplementedError

    async def stop(self) -> None: ...


class Phone:
    """The phone: protocol objects and a relay client (in whichever process runs it)."""

    def __init__(self, url: str) -> None:
        from unlatch.protocol import KeyPair
        from unlatch.relay.client import RelayClient
        from unlatch.relay.device_key import DeviceKey

        self.key, device = KeyPair.generate(os.urandom), DeviceKey.generate()
        self.relay = RelayClient(url, device, "phone")
        self.record: Any = None

    async def pair(self, link: str, desktop_device_id: str) -> None:
        from unlatch.protocol import PhonePairing

        pp = PhonePairing(link, self.key, "bench phone", self.relay.device_id, now=int(time.time()))
        await self.relay.post_hello(pp.channel_id, pp.hello_bytes)
        accept = await self.relay.wait_pairing_message(pp.channel_id, timeout=10)
        self.record = pp.receive_accept(accept.data, now=int(time.time()))
        await self.relay.register_pairing(self.record.keys.routing_id, desktop_device_id)

    async def approve(self, link: str) -> tuple[float, float]:
        from unlatch.protocol import PhoneUnlock

        pu = PhoneUnlock.from_qr(link, [self.record], self.key, now=int(time.time()))
        s0 = time.perf_counter()
        reply = pu.approve(now=int(time.time()))
        seal = time.perf_counter() - s0
        t0 = time.perf_counter()
        await self.relay.post_reply(pu.request_id, reply)
        return t0, seal


class InProcessClients(Clients):
    """``--clients same``: the phone and the page's client on the desktop's own loop."""

    def __init__(self, url: str, ui_port: int) -> None:
        self.phone = Phone(url)
        self.ui_port = ui_port
        self.page: PageStream | None = None

    async def pair(self, link: str, desktop_device_id: str) -> None:
        await self.phone.pair(link, desktop_device_id)

    async def follow_page(self, launch_url: str) -> None:
        self.page = PageStream(self.ui_port, launch_url)
        await self.page.start()

    async def page_says(self, *, unlocked: bool) -> None:
        assert self.page is not None
        await self.page.wait_for(unlocked=unlocked)

    async def approve(self, link: str) -> tuple[float, float, float]:
        assert self.page is not None
        t0, seal = await self.phone.approve(link)
        return t0, seal, await self.page.wait_for(unlocked=True)

    async def stop(self) -> None:
        if self.page is not None:
            await self.page.stop()
        await self.phone.relay.aclose()


class WorkerClients(Clients):
    """``--clients split``: the phone in one worker process, the page's client in another.

    Two processes, not one: on their own devices the phone's HTTP answer and
    the page's event arrive at about the same moment, and one process would
    handle them one after the other. One JSON line per command on a worker's
    stdin, one JSON answer line on its stdout.
    """

    def __init__(self, url: str, ui_port: int) -> None:
        self.url, self.ui_port = url, ui_port
        self.procs: dict[str, asyncio.subprocess.Process] = {}

    async def start(self) -> None:
        for role in ("phone", "page"):
            self.procs[role] = await asyncio.create_subprocess_exec(
                sys.executable,
                os.path.abspath(__file__),
                "--clients-worker",
                role,
                self.url,
                str(self.ui_port),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )

    async def _call(self, role: str, **command: Any) -> Any:
        proc = self.procs[role]
        assert proc.stdin and proc.stdout
        proc.stdin.write(json.dumps(command).encode() + b"\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError(f"the {role} worker ended")
        return json.loads(line)

    async def pair(self, link: str, desktop_device_id: str) -> None:
        await self._call("phone", op="pair", link=link, desktop=desktop_device_id)

    async def follow_page(self, launch_url: str) -> None:
        await self._call("page", op="page", launch=launch_url)

    async def page_says(self, *, unlocked: bool) -> None:
        await self._call("page", op="page_says", unlocked=unlocked)

    async def approve(self, link: str) -> tuple[float, float, float]:
        answer = await self._call("phone", op="approve", link=link)
        page = await self._call("page", op="page_says", unlocked=True)
        return answer["t0"], answer["seal"], page["at"]

    async def stop(self) -> None:
        for role, proc in self.procs.items():
            with contextlib.suppress(Exception):
                await self._call(role, op="stop")
            await proc.wait()


async def clients_worker(role: str, url: str, ui_port: int) -> None:
    """A worker of ``--clients split``: the phone, or the page, answering the bench's commands."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    phone = Phone(url) if role == "phone" else None
    page: PageStream | None = None
    while line := await reader.readline():
        command = json.loads(line)
        op, answer = command["op"], {}
        if op == "pair":
            assert phone is not None
            await phone.pair(command["link"], command["desktop"])
        elif op == "approve":
            assert phone is not None
            t0, seal = await phone.approve(command["link"])
            answer = {"t0": t0, "seal": seal}
        elif op == "page":
            page = PageStream(ui_port, command["launch"])
            await page.start()
        elif op == "page_says":
            assert page is not None
            answer = {"at": await page.wait_for(unlocked=command["unlocked"])}
        elif op == "stop":
            if page is not None:
                await page.stop()
            if phone is not None:
                await phone.relay.aclose()
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if op == "stop":
            return


class PageStream:
    """What the desktop page does: open the launch link, then follow ``/api/events``.

    Records when each state snapshot arrives and whether it says unlocked.
    """

    def __init__(self, port: int, launch_url: str) -> None:
        self.origin = f"http://127.0.0.1:{port}"  # the UI listens here; Host check allows it
        self.launch = launch_url.split(f":{port}", 1)[1]
        self.client = httpx.AsyncClient(base_url=self.origin, timeout=None)
        self.unlocked: bool | None = None
        self.changed_at = 0.0
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        answer = await self.client.get(self.launch)  # 303 to the UI's prefix + cookie
        assert answer.status_code == 303, answer.text
        prefix = answer.headers["location"]
        self.task = asyncio.create_task(self._follow(prefix + "api/events"))
        await self.wait_for(unlocked=True)  # the first snapshot: unlocked after init

    async def _follow(self, path: str) -> None:
        async with self.client.stream("GET", path) as resp:
            assert resp.status_code == 200, resp.status_code
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    unlocked = bool(json.loads(line[6:])["vault"]["unlocked"])
                    if unlocked != self.unlocked:
                        self.unlocked, self.changed_at = unlocked, time.perf_counter()
                        self.changed.set()

    async def wait_for(self, *, unlocked: bool) -> float:
        """perf_counter() at which the stream first said ``unlocked``."""
        async with asyncio.timeout(10):
            while self.unlocked is not unlocked:
                self.changed.clear()
                await self.changed.wait()
        return self.changed_at

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.client.aclose()


# ------------------------------------------------------------------ report


def summary(samples: Samples) -> dict[str, dict[str, float]]:
    """ms: p50, p90, p99, mean per row (rows without data left out)."""
    out = {}
    for key, _ in ROWS:
        xs = [x for x in samples.xs[key] if not math.isnan(x)]
        if xs:
            out[key] = {
                "p50": pct(xs, 50) * 1000,
                "p90": pct(xs, 90) * 1000,
                "p99": pct(xs, 99) * 1000,
                "mean": statistics.fmean(xs) * 1000,
            }
    gcs = [x for x in samples.xs["gc"] if x > 0]
    out["gc_hits"] = {"p50": float(len(gcs)), "p90": 0.0, "p99": 0.0, "mean": 0.0}
    return out


def print_one(title: str, figures: dict[str, dict[str, float]], n: int) -> None:
    print(f"{title} ({n} unlocks)")
    for key, label in ROWS:
        if key in figures:
            f = figures[key]
            print(
                f"{label:<40} p50 {f['p50']:7.2f}   p90 {f['p90']:7.2f}   "
                f"p99 {f['p99']:7.2f}   mean {f['mean']:7.2f} ms"
            )
    print(f"unlocks with a GC pause inside: {int(figures['gc_hits']['p50'])}")


def print_side_by_side(columns: list[tuple[str, list[dict[str, dict[str, float]]]]]) -> None:
    """One column per (code, clients); each cell the median over runs of p50 / p90 / p99."""
    width = 24
    print(
        f"{'ms: p50 / p90 / p99 (median of runs)':<40}"
        + "".join(f"{c:>{width}}" for c, _ in columns)
    )
    for key, label in ROWS:
        cells = []
        for _, runs in columns:
            have = [r[key] for r in runs if key in r]
            if not have:
                cells.append(f"{'-':>{width}}")
                continue
            p = [statistics.median(h[q] for h in have) for q in ("p50", "p90", "p99")]
            cells.append(f"{p[0]:6.2f} /{p[1]:6.2f} /{p[2]:6.2f}".rjust(width))
        print(f"{label:<40}" + "".join(cells))


def measure(n: int, clients: str) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["UNLATCH_HOME"] = str(Path(tmp) / "desktop-home")
        samples = asyncio.run(asyncio.wait_for(run(n, Path(tmp), clients), 600))
    return summary(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--clients", choices=("same", "split", "both"), default="same")
    parser.add_argument("--runs", type=int, default=1, help="runs per column (medians shown)")
    parser.add_argument(
        "--baseline", help="another checkout: the same bench on its code, alternated"
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--clients-worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.clients_worker:
        role, url, port = args.clients_worker
        asyncio.run(clients_worker(role, url, int(port)))
        return
    modes = ("same", "split") if args.clients == "both" else (args.clients,)
    if args.json:
        print(json.dumps(measure(args.n, modes[0])))
        return
    if args.runs == 1 and not args.baseline and len(modes) == 1:
        print_one(
            f"phone unlock on loopback, clients: {modes[0]}", measure(args.n, modes[0]), args.n
        )
        return
    checkouts = [("this", str(Path(__file__).resolve().parent.parent))]
    if args.baseline:
        checkouts.append(("baseline", str(Path(args.baseline).resolve())))
    results: dict[str, list[dict[str, dict[str, float]]]] = {}
    for i in range(args.runs):
        for mode in modes:
            for name, root in checkouts:  # alternated: each run of one beside one of the other
                env = {**os.environ, "PYTHONPATH": root}
                cmd = [sys.executable, os.path.abspath(__file__), "--json", "--n", str(args.n)]
                # cwd too: `python -m unlatch relay` puts the working directory first on sys.path
                done = subprocess.run(
                    [*cmd, "--clients", mode], env=env, cwd=root, capture_output=True, text=True
                )
                if done.returncode:
                    sys.exit(f"the {name} run failed:\n{done.stderr}")
                figures = json.loads(done.stdout.strip().splitlines()[-1])
                results.setdefault(f"{name}, {mode}", []).append(figures)
                total = figures["total"]
                print(
                    f"run {i + 1} {name:<8} {mode:<5}: approve -> unlocked p50 {total['p50']:.2f} "
                    f"p90 {total['p90']:.2f} p99 {total['p99']:.2f} ms; page p99 "
                    f"{figures['sse']['p99']:.2f} ms",
                    flush=True,
                )
    print(f"\nphone unlock on loopback, {args.n} unlocks per run, {args.runs} run(s) per column")
    print_side_by_side(list(results.items()))


if __name__ == "__main__":
    main()
