"""What one offline guess of the phone client's PIN costs, and the table per PIN length.

Someone who copied both files of a PIN-protected phone (``storage.key`` and
``state.sealed``) tries PINs offline; each try is one Argon2id derivation with
the envelope's parameters (unlatch/phone/sealed.py), then an AES-GCM open
that is negligible beside it. This times that derivation on one core (the
process is pinned to CPU 0 where the OS allows), for the earlier default
(64 MiB) and today's (256 MiB), and prints the worst-case time to try every
PIN of each shape on one core: the table in docs/phone-client.md.

    python bench/bench_phone_pin.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import time

from argon2.low_level import Type, hash_secret_raw

from unlatch.phone import sealed

SHAPES = [
    ("4 digits", 10**4),
    ("6 digits", 10**6),
    ("8 digits", 10**8),
    ("10 digits", 10**10),
    ("4 random words (diceware, 7776^4)", 7776**4),
]


def per_guess(time_cost: int, memory_kib: int, runs: int) -> float:
    """Seconds of one derivation: the fastest of ``runs`` (the machine is shared; an
    attacker's core is not, so the fastest run is the closest to what a guess costs)."""
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        hash_secret_raw(
            f"{i:06d}".encode(),
            os.urandom(sealed.SALT_LEN),
            time_cost=time_cost,
            memory_cost=memory_kib,
            parallelism=1,
            hash_len=32,
            type=Type.ID,
        )
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    rows = [
        ("earlier default", 3, 64 * 1024),
        ("today's default", sealed.DEFAULT_TIME_COST, sealed.DEFAULT_MEMORY_KIB),
    ]
    for name, t, m in rows:
        s = per_guess(t, m, args.runs)
        print(f"{name}: Argon2id t={t} m={m // 1024} MiB p=1: {s:.3f} s per guess (one core)")
        for shape, count in SHAPES:
            every, half = sealed.format_duration(count * s), sealed.format_duration(count * s / 2)
            print(f"  {shape:38} every guess: {every:>22}   half: {half}")


if __name__ == "__main__":
    main()
