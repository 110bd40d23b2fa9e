"""Phone unlock, end to end on loopback: from the phone's approve to "unlocked".

A real relay process (SQLite) and, in this process, the desktop's
PhoneUnlockService on a real AgentCore/vault plus a phone made of the
protocol's PhoneUnlock and the relay client. Pairing runs once through the
real PairingService. Then, 100 times: lock, request, phone answers; the clock
starts just before the phone posts its reply and stops when the vault is
unlocked. Split: relay hop (phone POST -> desktop receives over its
WebSocket), HPKE open of the reply, KEK derivation (HKDF of K_P and K_L),
agent unlock (slot unwrap with AES-GCM in the vault + bookkeeping).

    python bench/bench_e2e.py [--n 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LIMITS = {
    "UNLATCH_RELAY_RATE_UNLOCK_PAIRING": "100000/1",
    "UNLATCH_RELAY_RATE_UNLOCK_DEVICE": "100000/1",
    "UNLATCH_RELAY_RATE_UNLOCK_IP": "100000/1",
    "UNLATCH_RELAY_RATE_PUSH": "100000/1",
    "UNLATCH_RELAY_RATE_AUTH_IP": "100000/1",
    "UNLATCH_RELAY_MAX_PENDING_UNLOCK": "10000",
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(n: int, base: Path) -> None:
    from unlatch.agent.core import AgentCore
    from unlatch.desktop.identity import DesktopIdentity
    from unlatch.desktop.pairing import PairingService
    from unlatch.desktop.store import PairingStore
    from unlatch.desktop.unlock import PhoneUnlockService
    from unlatch.desktop.vault_port import CoreVault
    from unlatch.protocol import KeyPair, PhonePairing, PhoneUnlock
    from unlatch.relay.client import RelayClient
    from unlatch.relay.device_key import DeviceKey
    from unlatch.vault import OWASP_MINIMUM

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **LIMITS, "UNLATCH_HOME": str(base / "relay")}
    relay = subprocess.Popen(
        [sys.executable, "-m", "unlatch", "relay", "--port", str(port), "--db", str(base / "r.db")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        core = AgentCore(base / "desktop" / "vault.db", idle_lock_seconds=0)
        await core.init_vault("bench master password", OWASP_MINIMUM)
        identity = DesktopIdentity.load_or_create()
        desk_relay = RelayClient(url, identity.relay_key, "desktop")
        store, vault = PairingStore(), CoreVault(core)
        pairing = PairingService(identity, store, vault, desk_relay)

        phone_key, phone_id = KeyPair.generate(os.urandom), DeviceKey.generate()
        phone_relay = RelayClient(url, phone_id, "phone")
        session = await pairing.start()
        pp = PhonePairing(
            session.link, phone_key, "bench phone", phone_id.device_id, now=int(time.time())
        )
        await phone_relay.post_hello(pp.channel_id, pp.hello_bytes)
        while session.state != "confirm":
            await pairing.wait(session.id, 5)
        confirm = asyncio.create_task(pairing.confirm(session.id))
        accept = await phone_relay.wait_pairing_message(pp.channel_id, timeout=10)
        record = pp.receive_accept(accept.data, now=int(time.time()))
        await confirm
        await phone_relay.register_pairing(record.keys.routing_id, identity.device_id)

        service = PhoneUnlockService(store, vault, desk_relay, ttl=60, renewals=0)
        total, hop, hpke, kek, agent = [], [], [], [], []
        started = time.perf_counter()
        for _ in range(n):
            await core.lock()
            attempt = await service.start()
            await asyncio.sleep(0.02)  # let the desktop's socket get ready, as a human would
            pu = PhoneUnlock.from_qr(attempt.link, [record], phone_key, now=int(time.time()))
            reply = pu.approve(now=int(time.time()))
            t0 = time.perf_counter()
            await phone_relay.post_reply(pu.request_id, reply)
            while not attempt.final:
                await service.wait(attempt.id, 5)
            assert attempt.state == "approved" and core.is_unlocked, attempt.message
            t = attempt.timing
            total.append(t.unlocked_at - t0)
            hop.append(t.reply_received_at - t0)
            hpke.append(t.hpke_open)
            kek.append(t.slot_unwrap)
            agent.append(t.agent_unlock)
        wall = time.perf_counter() - started
        await desk_relay.aclose()
        await phone_relay.aclose()
        await core.close()
    finally:
        relay.terminate()
        relay.wait(10)

    def row(name: str, xs: list[float]) -> str:
        return (
            f"{name:<34} p50 {statistics.median(xs) * 1000:7.2f} ms   "
            f"p99 {pct(xs, 99) * 1000:7.2f} ms   mean {statistics.fmean(xs) * 1000:7.2f} ms"
        )

    print(f"phone unlock on loopback, {n} unlocks ({wall:.1f} s wall)")
    print(row("approve posted -> vault unlocked", total))
    print(row("  relay hop (POST -> desktop WS)", hop))
    print(row("  HPKE open of the reply", hpke))
    print(row("  KEK = HKDF(K_P, K_L)", kek))
    print(row("  agent unlock (slot unwrap)", agent))
    rest = [a - b - c - d - e for a, b, c, d, e in zip(total, hop, hpke, kek, agent, strict=True)]
    print(row("  other (event loop, bookkeeping)", rest))
    share = statistics.median(hop) / statistics.median(total)
    print(f"relay hop share of the median: {share:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["UNLATCH_HOME"] = str(Path(tmp) / "desktop-home")
        asyncio.run(asyncio.wait_for(run(args.n, Path(tmp)), 110))


if __name__ == "__main__":
    main()
