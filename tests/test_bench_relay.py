"""bench/bench_relay.py still runs: a smoke run with tiny counts (the figures are not judged)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_relay_smoke_run_measures_both_servers() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_relay.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    for name in ("bare websockets", "relay"):
        levels = [line for line in lines if line.strip().startswith(name) and " done, " in line]
        assert len(levels) == 2, out.stdout  # c=1 and c=5
        assert all("0 failed, 0 cut off" in line for line in levels), out.stdout
        assert any(name in line and "idle waiters" in line for line in lines), out.stdout
    assert "ratios against the bare forwarder" in out.stdout


def test_profile_breakdown_sorts_loop_samples_by_their_innermost_component(tmp_path) -> None:
    """bench/profile_relay.py's reading of py-spy's collapsed stacks (py-spy itself not needed)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import profile_relay
    finally:
        sys.path.remove(str(ROOT / "bench"))
    loop = "Runner.run (asyncio/runners.py:118)"
    app = "AccessLog.__call__ (/x/unlatch/relay/app.py:404)"
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(
        "\n".join(
            [
                f"{loop};{app};SQLiteStore._run (/x/unlatch/relay/store_sqlite.py:146) 5",
                f"{loop};{app};SQLiteStore._channel (/x/unlatch/relay/store_sqlite.py:1);"
                "loads (json/__init__.py:346) 2",  # JSON inside the store counts as JSON
                f"{loop};{app};Router.app (starlette/routing.py:700) 1",
                f"{loop} 3",  # the event loop's own C code
                f"{loop};LifespanOn.main (uvicorn/lifespan/on.py:86) 7",  # start-up: left out
                "Thread._bootstrap (threading.py:995);_worker (thread.py:81) 9",  # not the loop
            ]
        )
    )
    total, counts = profile_relay.breakdown(stacks)
    assert total == 11
    assert counts == {
        "SQLite store": 5,
        "JSON": 2,
        "Starlette": 1,
        "event loop, tasks, transports": 3,
    }
