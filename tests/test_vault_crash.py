"""Crash safety: a writer SIGKILLed at random points never leaves a broken vault.

The writer prints ``B <op>`` before each write and ``D <op>`` after its
commit. After the kill, the vault must open and authenticate, hold every
item whose write was reported done, with exactly the reported contents,
and differ from that at most by the single write that was in flight.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.vault import PASSWORD

from unlatch.vault import OWASP_MINIMUM, Vault

ITERATIONS = 40

WRITER = r"""
import random, sys
from unlatch.vault import Item, Vault

vault = Vault.open(sys.argv[1])
vault.unlock_with_password(sys.argv[2])
rng = random.Random(int(sys.argv[3]))
ids = [i.id for i in vault.items()]
print("R", flush=True)
n = 0
while True:
    n += 1
    choice = rng.random()
    if ids and choice < 0.3:
        target = rng.choice(ids)
        value = f"pw-{sys.argv[3]}-{n}"
        print(f"B edit {target} {value}", flush=True)
        vault.update_item(target, {"password": value, "notes": "n" * rng.randrange(5000)})
        print(f"D edit {target} {value}", flush=True)
    elif ids and choice < 0.4:
        target = ids.pop(rng.randrange(len(ids)))
        print(f"B del {target}", flush=True)
        vault.delete_item(target)
        print(f"D del {target}", flush=True)
    else:
        title = f"item-{sys.argv[3]}-{n}"
        print(f"B add {title}", flush=True)
        item = vault.add_item(Item(title=title, password=title, notes="x" * rng.randrange(20000)))
        ids.append(item.id)
        print(f"D add {title} {item.id}", flush=True)
"""


def apply(model: dict[str, str], line: list[str]) -> None:
    """Apply a B/D line's operation to the model ``id -> password``."""
    op = line[1]
    if op == "add":
        if len(line) == 4:
            model[line[3]] = line[2]
    elif op == "edit":
        model[line[2]] = line[3]
    elif op == "del":
        model.pop(line[2], None)


@pytest.mark.slow
def test_sigkill_at_random_points_never_corrupts(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    Vault.create(path, PASSWORD, kdf_params=OWASP_MINIMUM).close()
    model: dict[str, str] = {}
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    kills_mid_write = 0
    for iteration in range(ITERATIONS):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), PASSWORD, str(iteration)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "R"
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        lines = [line.split() for line in proc.stdout.read().splitlines()]
        pending: list[str] | None = None
        for line in lines:
            if line[0] == "D":
                apply(model, line)
                pending = None
            else:
                pending = line
        kills_mid_write += pending is not None

        vault = Vault.open(path)
        vault.unlock_with_password(PASSWORD)
        found = {i.id: i.password for i in vault.items()}  # authenticates every item + manifest
        vault.close()
        if found != model:
            assert pending is not None, f"iteration {iteration}: committed state lost"
            landed = dict(model)
            if pending[1] == "add":
                extra = set(found) - set(model)
                assert len(extra) == 1 and found[extra.pop()] == pending[2]
                model = found
                continue
            apply(landed, pending)
            assert found == landed, f"iteration {iteration}: half-written state"
            model = landed
    assert len(model) > 0
    assert kills_mid_write > 0  # the kills did hit writes in flight
