"""Crash safety: a writer SIGKILLed at random points never leaves a broken vault.

The writer prints ``B <op>`` before each write and ``D <op>`` after its
commit. After the kill, the vault must open and authenticate, hold every
item whose write was reported done, with exactly the reported contents,
and differ from that at most by the single write that was in flight.

The same harness kills a process that rotates the vault key in a loop (and
renews the phone slot after each rotation): after each kill the file is the
vault before the rotation in flight or the vault after it, never a mix.
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
from fixtures.vault import PASSWORD, copy_file, key_from, readable_items

from unlatch.vault import OWASP_MINIMUM, Item, Vault, WrongPasswordError

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


def run_and_kill(script: str, args: list[str], rng: random.Random, most: float) -> list[list[str]]:
    """Start ``script``, wait for its ``R``, SIGKILL it after a random delay of at most
    ``most`` seconds (``most=0``: wait for it to kill itself); its output lines."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "R"
    if most:
        time.sleep(rng.uniform(0.0, most))
        proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    return [line.split() for line in proc.stdout.read().splitlines()]


@pytest.mark.slow
def test_sigkill_at_random_points_never_corrupts(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    Vault.create(path, PASSWORD, kdf_params=OWASP_MINIMUM).close()
    model: dict[str, str] = {}
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    kills_mid_write = 0
    for iteration in range(ITERATIONS):
        lines = run_and_kill(WRITER, [str(path), PASSWORD, str(iteration)], rng, 0.25)
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


ROTATOR = r"""
import os, signal, sys
from unlatch.vault import Vault

path, phone, kek = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
passwords, current, kill_at = sys.argv[4:6], int(sys.argv[6]), int(sys.argv[7])
vault = Vault.open(path)
statements = []


def trace(sql):
    # Count SQL statements from the first rotation's BEGIN; with kill_at >= 0,
    # SIGKILL this process just before statement number kill_at runs.
    if statements or sql == "BEGIN IMMEDIATE":
        statements.append(sql)
        if len(statements) - 1 == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


vault._conn.set_trace_callback(trace)
print("R", flush=True)
while True:
    print("B rotate", flush=True)
    vault.rotate_key(passwords[current], passwords[1 - current])
    current = 1 - current
    print("D rotate", flush=True)
    print("B renew", flush=True)
    vault.unlock_with_slot(phone, kek)  # the phone's next approval rewraps its slot
    print("D renew", flush=True)
    vault.lock()
"""
OTHER_PASSWORD = "another master password"


def opened_by(path: Path, password: str) -> bytes | None:
    """The vault key ``password`` opens in ``path`` (None if it opens nothing)."""
    try:
        return key_from(path, password)
    except WrongPasswordError:
        return None


class RotationRig:
    """A vault of 400 items and a phone slot, rotated by :data:`ROTATOR` between two
    passwords; after each kill, :meth:`check` finds which vault the file holds."""

    def __init__(self, tmp_path: Path, rng: random.Random) -> None:
        self.tmp_path, self.rng = tmp_path, rng
        self.path = tmp_path / "vault.db"
        vault = Vault.create(self.path, PASSWORD, kdf_params=OWASP_MINIMUM)
        vault.add_items(
            Item(title=f"item-{n}", password=f"pw-{n}", notes="x" * rng.randrange(4000))
            for n in range(400)
        )
        self.titles = sorted(i.title for i in vault.items())
        self.kek = os.urandom(32)
        self.phone = vault.add_slot("phone", "Pixel 8", self.kek, {})
        vault.close()
        self.passwords, self.current = [PASSWORD, OTHER_PASSWORD], 0
        self.key = key_from(self.path, PASSWORD)
        self.landed = {"old": 0, "new": 0}

    def statements_in_a_rotation(self) -> int:
        """SQL statements of one rotation's transaction, BEGIN to COMMIT (on a copy)."""
        copy = copy_file(self.path, self.tmp_path / "count.db")
        vault = Vault.open(copy)
        seen: list[str] = []
        vault._conn.set_trace_callback(seen.append)
        vault.rotate_key(self.passwords[self.current])
        vault.close()
        copy.unlink()
        begin, commit = seen.index("BEGIN IMMEDIATE"), len(seen) - seen[::-1].index("COMMIT")
        assert commit > begin + 400  # one UPDATE per item in between
        return commit - begin

    def run(self, kill_at: int, most: float = 1.0) -> list[list[str]]:
        args = [self.path, self.phone, self.kek.hex(), *self.passwords, self.current, kill_at]
        return run_and_kill(ROTATOR, [str(a) for a in args], self.rng, most)

    def check(self, lines: list[list[str]], where: str) -> None:
        """Exactly one password opens; the phone opens the same key; every item is under
        that key and none under the key before it (if it changed): old vault or new one."""
        self.current = (self.current + sum(line == ["D", "rotate"] for line in lines)) % 2
        in_flight = bool(lines) and lines[-1] == ["B", "rotate"]
        keys = [opened_by(self.path, p) for p in self.passwords]
        assert keys.count(None) == 1, f"{where}: both passwords or neither open the vault"
        if keys[self.current] is None:  # the rotation in flight landed whole before the kill
            assert in_flight, f"{where}: a rotation landed that never started"
            self.current = 1 - self.current
        key = keys[self.current]
        assert key is not None
        vault = Vault.open(self.path)
        vault.unlock_with_slot(self.phone, self.kek)
        assert vault._key is not None and bytes(vault._key) == key, f"{where}: phone differs"
        assert sorted(i.title for i in vault.items()) == self.titles
        vault.close()
        snapshot = copy_file(self.path, self.tmp_path / "snapshot.db")
        assert readable_items(snapshot, key) == self.titles, f"{where}: a mix of keys"
        if key != self.key:
            assert readable_items(snapshot, self.key) == [], f"{where}: the old key still reads"
        snapshot.unlink()
        if in_flight:
            self.landed["new" if key != self.key else "old"] += 1
        self.key = key


@pytest.mark.slow
def test_sigkill_during_key_rotation_leaves_the_old_or_the_new_vault(tmp_path: Path) -> None:
    """Kills at random moments (Argon2, re-encryption, commit, the phone's renewal)."""
    rig = RotationRig(tmp_path, random.Random(int.from_bytes(os.urandom(4), "big")))
    for iteration in range(20):
        rig.check(rig.run(kill_at=-1), f"iteration {iteration}")
    assert rig.landed["old"] + rig.landed["new"] > 0  # the kills did hit rotations in flight


@pytest.mark.slow
def test_sigkill_before_each_statement_of_a_rotation(tmp_path: Path) -> None:
    """Kills just before chosen SQL statements of the rotation's transaction: its first
    ones, re-encrypted items, the key check, the slots, the COMMIT, and after it."""
    rig = RotationRig(tmp_path, random.Random(int.from_bytes(os.urandom(4), "big")))
    total = rig.statements_in_a_rotation()
    points = sorted(
        {0, 1, 2, 3, 4, total // 2, total - 6, total - 5, total - 4, total - 3, total - 2}
        | {total - 1, total, total + 1, total + 3}  # the COMMIT, then the phone's renewal
        | set(rig.rng.sample(range(5, total - 6), 6))
    )
    for point in points:
        lines = rig.run(kill_at=point, most=0)
        expected = ["B", "rotate"] if point < total else ["B", "renew"]
        assert lines[-1] == expected, f"not killed before statement {point}"
        rig.check(lines, f"killed before statement {point} of {total}")
    # Every kill up to and including the COMMIT left the old vault, every later one the new.
    assert rig.landed == {"old": sum(p < total for p in points), "new": 0}
