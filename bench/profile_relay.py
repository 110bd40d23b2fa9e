"""Where the relay's CPU goes: py-spy on a relay under bench/bench_relay.py's exchanges.

Starts a relay (SQLite, in-process bus, the bench's settings) under ``py-spy
record``, runs the bench's exchange at concurrency ``--level`` for
``--seconds``, then sorts the event-loop thread's samples into components by
the innermost frame that belongs to one (JSON, SQLite store, Starlette, uvicorn's
HTTP protocol, the WebSocket path, metrics, logging, the relay's HTTP layer,
its service code, the event loop and transports). Sign-in and pairing
(before timing) and start-up are left out. Figures are shares of the samples:
multiply by the server CPU per exchange of bench/bench_relay.py for time.
py-spy pauses the process to sample it, so its own throughput figure is low.

py-spy is not a dependency of the project: ``pip install py-spy``.

Run: python bench/profile_relay.py [--level 50] [--seconds 10] [--out stacks.txt]
     python bench/profile_relay.py --baseline /tmp/base   # another checkout's relay
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import bench_relay as br
import uvloop

# component -> markers of its frames (file paths, or qualified names); checked from the
# innermost frame outwards, in this order, so a JSON call inside the store counts as JSON
COMPONENTS = [
    ("JSON", ("json/",)),
    ("SQLite store", ("relay/store_sqlite.py",)),
    ("Starlette", ("starlette/",)),
    (
        "uvicorn HTTP",
        (
            "uvicorn/protocols/http",
            "HeadLimitHttpToolsProtocol.on_",
            "HeadLimitHttpToolsProtocol.data_received",
            "HeadLimitHttpToolsProtocol._grow",
        ),
    ),
    (
        "WebSocket (upgrade, frames, channel sockets)",
        (
            "websockets/",
            "relay/channel_socket.py",
            "relay/waiter.py",
            "statemachine.py",
            "handle_websocket_upgrade",
            "uvicorn/protocols/websockets",
        ),
    ),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("logging", ("logging/", "relay/logs.py")),
    (
        "relay HTTP layer (routes, validation, codec)",
        (
            "relay/app.py",
            "relay/fastpath.py",
            "relay/validate.py",
            "relay/codec.py",
            "b64url.py",
            "base64.py",
            "relay/proxy.py",
            "ipaddress.py",
            "relay/apierror.py",
        ),
    ),
    (
        "relay service (rules, auth, limits, bus)",
        (
            "relay/service",
            "relay/ratelimit.py",
            "relay/bus.py",
            "relay/frames.py",
            "relay/auth.py",
            "relay/metrics.py",
            "relay/models.py",
            "dataclasses",
            "<string>",
            "enum.py",
        ),
    ),
    ("event loop, tasks, transports", ("asyncio/", "uvloop", "Runner.run", "uvicorn/")),
]
# samples of work that is not an exchange: start-up, sign-in and pairing, the lifespan
NOT_EXCHANGE = ("LifespanOn", "Relay.auth_", "Relay.pairings", "Server.startup", "Server.main_loop")


def component(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, markers in COMPONENTS:
            if any(marker in frame for marker in markers):
                return name
    return "other"


def breakdown(stacks: Path) -> tuple[int, collections.Counter[str]]:
    """Samples of the event-loop thread by component (py-spy's raw, collapsed format)."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in stacks.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        if not any(f.startswith("Runner.run ") for f in frames):
            continue  # another thread (SQLite's opener, py-spy's view of idle threads)
        if any(f.startswith(NOT_EXCHANGE) for f in frames):
            continue
        total += int(n)
        counts[component(frames)] += int(n)
    return total, counts


async def run(level: int, seconds: float, base: Path, spy: list[str], src: Path | None) -> None:
    relay = br.Relay(base, str(base / "relay.db"), "memory://", 1, wrapper=spy, src=src)
    try:
        await relay.prepare()
        result = await br.run_level(relay, level, seconds, False)
        print(f"c={level}: {result.completed} exchanges ({result.per_s:.0f}/s under py-spy)")
    finally:
        for proc in relay.procs:  # py-spy writes its file on SIGINT, then ends the relay
            proc.send_signal(signal.SIGINT)
        for proc in relay.procs:
            proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--level", type=int, default=50, help="concurrent exchanges")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--out", default="", help="keep the collapsed stacks in this file")
    parser.add_argument("--baseline", default="", help="profile another checkout's relay")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy not found: pip install py-spy")
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {br.CLIENT_CPU})  # the load client's CPU, as bench_relay.py
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        out = Path(args.out) if args.out else tmp / "stacks.txt"
        record = [spy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(out), "--"]
        (tmp / "relay").mkdir()
        src = Path(args.baseline).resolve() if args.baseline else None
        uvloop.run(run(args.level, args.seconds, tmp / "relay", record, src))
        total, counts = breakdown(out)
    print(f"event-loop samples during the exchanges: {total}")
    for name, n in counts.most_common():
        print(f"  {100 * n / max(1, total):5.1f}%  {name}")


if __name__ == "__main__":
    main()
