"""Passkey unlock cost on the agent side, next to the master password's.

Prints median and p99 milliseconds of:
* registration: creation options + attestation verification + slot write;
* passkey unlock: request options + assertion verification (ES256) +
  HKDF + slot unwrap + counter file write;
* master-password unlock at the OWASP-minimum Argon2id cost and at the
  cost ``unlatch init`` calibrates on this machine;
and the ratio password / passkey. The authenticator is the software one
from tests/fixtures/softauthn.py (its signing time is not counted), the
vault and AgentCore are real.

Usage: python bench/bench_passkey.py [--unlocks N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from fixtures.softauthn import PORT, SoftAuthenticator

from unlatch.agent.core import AgentCore
from unlatch.desktop.passkey import PasskeyService, SignCounters
from unlatch.vault import OWASP_MINIMUM, KdfParams
from unlatch.vault.kdf import calibrate

PASSWORD = "bench password 123"
SESSION = "bench-session"


def summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    return f"median {statistics.median(ms):7.2f} ms   p99 {p99:7.2f} ms   (n={len(ms)})"


async def password_unlock(directory: Path, params: KdfParams, repeat: int) -> list[float]:
    core = AgentCore(directory / f"pw-{params.memory_kib}.db", 0)
    await core.init_vault(PASSWORD, params)
    samples = []
    for _ in range(repeat):
        await core.lock()
        start = time.perf_counter()
        await core.unlock_with_password(PASSWORD)
        samples.append(time.perf_counter() - start)
    await core.close()
    return samples


async def main(unlocks: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        core = AgentCore(directory / "vault.db", 0)
        await core.init_vault(PASSWORD, OWASP_MINIMUM)
        svc = PasskeyService(core, lambda: PORT, counters=SignCounters(directory / "c.json"))

        register: list[float] = []
        auths = []
        for i in range(20):
            auth = SoftAuthenticator()
            start = time.perf_counter()
            options = await svc.registration_options(SESSION, f"key {i}")
            mid = time.perf_counter()
            answer = auth.create(options)
            resumed = time.perf_counter()
            await svc.register(SESSION, options["token"], answer)
            register.append((mid - start) + (time.perf_counter() - resumed))
            auths.append(auth)

        unlock: list[float] = []
        auth = auths[0]
        for _ in range(unlocks):
            await core.lock()
            start = time.perf_counter()
            options = await svc.unlock_options(SESSION)
            mid = time.perf_counter()
            answer = auth.get(options)
            resumed = time.perf_counter()
            await svc.unlock(SESSION, options["token"], answer)
            unlock.append((mid - start) + (time.perf_counter() - resumed))
        await core.close()

        minimum = await password_unlock(directory, OWASP_MINIMUM, 5)
        calibrated_params = calibrate()
        calibrated = await password_unlock(directory, calibrated_params, 3)

    p_unlock = statistics.median(unlock)
    print("passkey slots (20 registered in the vault while measuring unlock)")
    print(f"  register (options + verify + slot)    {summary(register)}")
    print(f"  unlock (options + verify + unwrap)    {summary(unlock)}")
    print("master password")
    print(f"  unlock, Argon2id OWASP minimum        {summary(minimum)}")
    print(
        f"  unlock, calibrated ({calibrated_params.memory_kib // 1024} MiB, "
        f"t={calibrated_params.time_cost})    {summary(calibrated)}"
    )
    print(
        f"ratio password/passkey: minimum {statistics.median(minimum) / p_unlock:.1f}x, "
        f"calibrated {statistics.median(calibrated) / p_unlock:.1f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unlocks", type=int, default=200)
    asyncio.run(main(parser.parse_args().unlocks))
