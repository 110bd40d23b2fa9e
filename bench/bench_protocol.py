"""Crypto cost of the protocol on each side, in microseconds.

    python bench/bench_protocol.py [--rounds N]

Prints the median and p99 of: pairing (desktop, phone), one unlock on the
desktop (make the request + open the reply), one unlock on the phone (open the
push + verify the QR + seal the reply), and the ratio between the two sides.
Pure CPU: no sockets, no disk.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

from unlatch.protocol import (
    Approved,
    DesktopPairing,
    DesktopUnlock,
    KeyPair,
    PhonePairing,
    PhoneUnlock,
)

NOW = 1_800_000_000


def measure(fn: Callable[[], None], rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=500)
    args = parser.parse_args()

    desktop, phone = KeyPair.generate(os.urandom), KeyPair.generate(os.urandom)
    dp = DesktopPairing(desktop, "https://relay.example", now=NOW)
    offer = dp.offer_bytes  # the desktop forgets it once the pairing is done
    pp = PhonePairing(offer, phone, "Phone", "p", now=NOW)
    dp.receive_hello(pp.hello_bytes, now=NOW)
    accept, drec, share = dp.confirm("Desktop", "d", now=NOW)
    prec = pp.receive_accept(accept, now=NOW)

    def pair_desktop() -> None:
        d = DesktopPairing(desktop, "https://relay.example", now=NOW)
        hello = PhonePairing(d.offer_bytes, phone, "Phone", "p", now=NOW).hello_bytes
        d.receive_hello(hello, now=NOW)
        d.confirm("Desktop", "d", now=NOW)

    def pair_phone_only() -> None:
        PhonePairing(offer, phone, "Phone", "p", now=NOW)

    state: dict[str, object] = {}

    def prepare_reply() -> None:
        du = DesktopUnlock(drec, now=NOW)
        pu = PhoneUnlock.from_qr(du.qr_bytes, [prec], phone, now=NOW)
        state["du"], state["reply"] = du, pu.approve(now=NOW)

    def desktop_side() -> None:
        du = DesktopUnlock(drec, now=NOW)
        state["du2"] = du

    def desktop_open() -> None:
        du = state["du"]
        assert isinstance(du, DesktopUnlock)
        reply = state["reply"]
        assert isinstance(reply, bytes)
        assert du.receive_reply(reply, now=NOW) == Approved(share)

    du_fixed = DesktopUnlock(drec, now=NOW)

    def phone_side() -> None:
        PhoneUnlock.open_push(du_fixed.push_bytes, [prec], now=NOW)
        pu = PhoneUnlock.from_qr(du_fixed.qr_bytes, [prec], phone, now=NOW)
        pu.seen()
        pu.approve(now=NOW)

    rows = []
    rows.append(("pairing, desktop+phone (hello, open, confirm)", *measure(pair_desktop, 200)))
    rows.append(("pairing, phone (hello)", *measure(pair_phone_only, args.rounds)))
    make = measure(desktop_side, args.rounds)
    rows.append(("unlock, desktop: make request (QR, push)", *make))
    opened = []
    for _ in range(args.rounds):
        prepare_reply()
        start = time.perf_counter_ns()
        desktop_open()
        opened.append((time.perf_counter_ns() - start) / 1000)
    opened.sort()
    open_stats = (statistics.median(opened), opened[int(len(opened) * 0.99) - 1])
    rows.append(("unlock, desktop: open reply", *open_stats))
    desk_total = make[0] + open_stats[0]
    phone_stats = measure(phone_side, args.rounds)
    rows.append(("unlock, phone: push + QR + seen + reply", *phone_stats))

    print(f"{'operation':<48} {'median us':>10} {'p99 us':>10}")
    for name, med, p99 in rows:
        print(f"{name:<48} {med:>10.0f} {p99:>10.0f}")
    print(f"{'unlock, desktop total (make + open)':<48} {desk_total:>10.0f}")
    print(f"phone/desktop cost ratio: {phone_stats[0] / desk_total:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
