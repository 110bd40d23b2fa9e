"""Argon2id for the master-password slot.

The parameters live in the slot itself, so a vault created on a slow laptop
and one created on a fast desktop both open anywhere, and a later
``passwd`` can raise the cost without a format change. :func:`calibrate`
picks a cost that takes about half a second on this machine, never below
64 MiB, and :data:`OWASP_MINIMUM` is a hard floor for every production path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from argon2.low_level import Type, hash_secret_raw

from unlatch.vault.errors import WeakKdfError

SALT_LEN = 16

# Bounds for parameters read back from a file: a hostile slot must not make
# us allocate 1 TiB or loop for an hour.
MAX_MEMORY_KIB = 4 * 1024 * 1024  # 4 GiB
MAX_TIME_COST = 64
MAX_PARALLELISM = 16

DEFAULT_TARGET_SECONDS = 0.5
DEFAULT_MIN_MEMORY_KIB = 64 * 1024


@dataclass(frozen=True)
class KdfParams:
    """Argon2id cost: memory in KiB, iterations, lanes."""

    memory_kib: int
    time_cost: int
    parallelism: int = 1

    def check(self) -> None:
        """Refuse anything below OWASP's minimum or above our sanity bounds."""
        if (
            self.memory_kib < OWASP_MINIMUM.memory_kib
            or self.time_cost < OWASP_MINIMUM.time_cost
            or self.parallelism < OWASP_MINIMUM.parallelism
        ):
            raise WeakKdfError(
                "Argon2id parameters below the OWASP minimum "
                f"(m={OWASP_MINIMUM.memory_kib} KiB, t={OWASP_MINIMUM.time_cost}, "
                f"p={OWASP_MINIMUM.parallelism}) are refused"
            )
        if (
            self.memory_kib > MAX_MEMORY_KIB
            or self.time_cost > MAX_TIME_COST
            or self.parallelism > MAX_PARALLELISM
        ):
            raise WeakKdfError(
                f"Argon2id parameters too large (at most {MAX_MEMORY_KIB} KiB, "
                f"t={MAX_TIME_COST}, p={MAX_PARALLELISM})"
            )


# OWASP Password Storage Cheat Sheet: Argon2id m=19 MiB, t=2, p=1.
OWASP_MINIMUM = KdfParams(memory_kib=19 * 1024, time_cost=2, parallelism=1)


def derive(password: str, salt: bytes, params: KdfParams) -> bytes:
    """The 32-byte Argon2id output for ``password`` (UTF-8) under ``params``."""
    params.check()
    return hash_secret_raw(
        secret=password.encode("utf-8"),
        salt=salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=32,
        type=Type.ID,
    )


def time_params(params: KdfParams, runs: int = 1) -> float:
    """Seconds one derivation takes with ``params`` here (the fastest of ``runs``).

    The minimum, not the mean: a busy machine must not talk calibration
    into a cheaper cost than the hardware deserves.
    """
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        derive("calibration", b"\0" * SALT_LEN, params)
        best = min(best, time.perf_counter() - start)
    return best


def calibrate(
    target_seconds: float = DEFAULT_TARGET_SECONDS,
    min_memory_kib: int = DEFAULT_MIN_MEMORY_KIB,
) -> KdfParams:
    """Find a cost near ``target_seconds``.

    Memory first (at least ``min_memory_kib``, doubling up to 1 GiB while
    one pass stays well under target), then iterations to fill the budget.
    Costs about two to four derivations.
    """
    memory = max(min_memory_kib, OWASP_MINIMUM.memory_kib)
    base = KdfParams(memory_kib=memory, time_cost=OWASP_MINIMUM.time_cost)
    elapsed = time_params(base, runs=2)
    while elapsed < target_seconds / 4 and memory * 2 <= 1024 * 1024:
        memory *= 2
        base = KdfParams(memory_kib=memory, time_cost=OWASP_MINIMUM.time_cost)
        elapsed = time_params(base)
    time_cost = _scaled_time_cost(base.time_cost, elapsed, target_seconds)
    # One refinement pass: the first timing includes warm-up noise.
    elapsed = time_params(KdfParams(memory_kib=memory, time_cost=time_cost), runs=2)
    time_cost = _scaled_time_cost(time_cost, elapsed, target_seconds)
    result = KdfParams(memory_kib=memory, time_cost=time_cost)
    result.check()
    return result


def _scaled_time_cost(time_cost: int, elapsed: float, target_seconds: float) -> int:
    per_pass = max(elapsed / time_cost, 1e-6)
    return min(MAX_TIME_COST, max(OWASP_MINIMUM.time_cost, round(target_seconds / per_pass)))
