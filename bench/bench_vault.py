"""Vault performance: password unlock cost and open + search over 10,000 items.

Prints:
* the Argon2id cost calibrated on this machine (what ``unlatch init`` picks)
  and the unlock time with it and with the OWASP minimum;
* for a vault of N items (default 10,000): file open (with SQLite's quick
  check), unlock, first search (decrypts every item), repeated search
  (decrypted-item cache), a single add and get at that size, items/s, and
  a key rotation (every item re-encrypted, `Vault.rotate_key`).

Usage: python bench/bench_vault.py [--items N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from unlatch.vault import OWASP_MINIMUM, Item, KdfParams, Vault
from unlatch.vault.kdf import calibrate

PASSWORD = "bench password 123"


def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Median seconds of ``repeat`` runs."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def unlock_time(directory: Path, params: KdfParams, repeat: int) -> float:
    path = directory / f"unlock-{params.memory_kib}-{params.time_cost}.db"
    Vault.create(path, PASSWORD, kdf_params=params).close()
    vault = Vault.open(path)

    def unlock() -> None:
        vault.unlock_with_password(PASSWORD)
        vault.lock()

    seconds = timed(unlock, repeat)
    vault.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        start = time.perf_counter()
        default = calibrate()
        calibration = time.perf_counter() - start
        print("== password unlock (Argon2id) ==")
        print(
            f"calibrated default: m={default.memory_kib} KiB, t={default.time_cost}, "
            f"p={default.parallelism} (calibration took {calibration:.2f} s)"
        )
        t_default = unlock_time(directory, default, 3)
        t_owasp = unlock_time(directory, OWASP_MINIMUM, 5)
        print(f"unlock at calibrated default : {t_default * 1000:8.1f} ms")
        print(
            f"unlock at OWASP minimum      : {t_owasp * 1000:8.1f} ms "
            f"(m={OWASP_MINIMUM.memory_kib} KiB, t={OWASP_MINIMUM.time_cost}, p=1)"
        )
        print(f"ratio default / OWASP minimum: {t_default / t_owasp:8.1f}x")

        n = args.items
        print(f"\n== open + search, {n} items ==")
        path = directory / "big.db"
        vault = Vault.create(path, PASSWORD, kdf_params=OWASP_MINIMUM)
        batch = [
            Item(
                title=f"site {i:05d}",
                username=f"user{i}@example.org",
                password=f"pw-{i}",
                urls=[f"https://site{i}.example.com/login"],
                tags=[f"tag{i % 50}"],
                notes="some notes " * 5,
            )
            for i in range(n)
        ]
        t_fill = timed(lambda: vault.add_items(batch))
        print(f"bulk insert (one transaction): {t_fill:8.2f} s  ({n / t_fill:,.0f} items/s)")
        vault.close()
        size = path.stat().st_size
        print(f"file size                    : {size / 1e6:8.2f} MB ({size / n:.0f} B/item)")

        t_open = timed(lambda: Vault.open(path).close(), 3)
        vault = Vault.open(path)
        t_unlock = timed(lambda: vault.unlock_with_password(PASSWORD))
        t_cold = timed(lambda: vault.search("site 09999"))
        hits = vault.search("user42@")
        t_warm = timed(lambda: vault.search("tag7"), 5)
        t_add = timed(lambda: vault.add_item(Item(title="one more", password="x")), 5)
        some = hits[0].id
        t_get = timed(lambda: vault.get_item(some), 5)
        t_rotate = timed(lambda: vault.rotate_key(PASSWORD))
        vault.close()
        print(f"open (header, schema, quick_check): {t_open * 1000:8.1f} ms")
        print(f"unlock (OWASP-minimum Argon2id)   : {t_unlock * 1000:8.1f} ms")
        print(
            f"first search (decrypt all)        : {t_cold * 1000:8.1f} ms "
            f"({n / t_cold:,.0f} items/s)"
        )
        print(
            f"repeat search (cached)            : {t_warm * 1000:8.1f} ms "
            f"({n / t_warm:,.0f} items/s)"
        )
        total = t_open + t_unlock + t_cold
        print(f"open + unlock + first search      : {total * 1000:8.1f} ms")
        print(f"add one item at this size         : {t_add * 1000:8.1f} ms")
        print(f"get one item at this size         : {t_get * 1000:8.2f} ms")
        print(f"rotate the key (OWASP-min Argon2) : {t_rotate * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
