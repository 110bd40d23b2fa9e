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
