"""Phone unlock, end to end on loopback: from the phone's approve to "unlocked".

A real relay process (SQLite) and, in this process, the desktop runtime
(PhoneUnlockService on a real AgentCore/vault, and the local web UI served by
uvicorn) plus a phone made of the protocol's PhoneUnlock and the relay
client. Pairing runs once through the real PairingService. A client follows
the UI's event stream (``/api/events``, server-sent events) as the page does.
Then, 100 times: lock, request, phone answers; the clock starts just before
the phone posts its reply and stops when the vault is unlocked, and again
when the page's event stream delivers the unlocked state. Split: relay hop
(phone POST -> desktop receives over its WebSocket), HPKE open of the reply,
KEK derivation (HKDF of K_P and K_L), agent unlock (slot unwrap with AES-GCM
in the vault + bookkeeping); and, before the clock starts, the phone's own
work: sealing its approval (HPKE seal of the share).

    python bench/bench_e2e.py [--n 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
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
    from unlatch.desktop.runtime import DesktopRuntime
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
        rt = DesktopRuntime(core, relay_url=url, unlock_ttl=60, renewals=0)
        await rt.start_web(0)
        identity, pairing = rt.identity, rt.pairing

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

        page = PageStream(rt.port, rt.security.new_launch_url())
        await page.start()
        service = rt.unlock
        total, hop, hpke, kek, agent, seal, sse = [], [], [], [], [], [], []
        started = time.perf_counter()
        for _ in range(n):
            await core.lock()
            await page.wait_for(unlocked=False)
            attempt = await service.start()
            await asyncio.sleep(0.02)  # let the desktop's socket get ready, as a human would
            pu = PhoneUnlock.from_qr(attempt.link, [record], phone_key, now=int(time.time()))
            s0 = time.perf_counter()
            reply = pu.approve(now=int(time.time()))
            seal.append(time.perf_counter() - s0)
            t0 = time.perf_counter()
            await phone_relay.post_reply(pu.request_id, reply)
            while not attempt.final:
                await service.wait(attempt.id, 5)
            assert attempt.state == "approved" and core.is_unlocked, attempt.message
            sse.append(await page.wait_for(unlocked=True) - t0)
            t = attempt.timing
            total.append(t.unlocked_at - t0)
            hop.append(t.reply_received_at - t0)
            hpke.append(t.hpke_open)
            kek.append(t.slot_unwrap)
            agent.append(t.agent_unlock)
        wall = time.perf_counter() - started
        await page.stop()
        await rt.stop()
        await phone_relay.aclose()
        await core.close()
    finally:
        relay.terminate()
        relay.wait(10)

    def row(name: str, xs: list[float]) -> str:
        return (
            f"{name:<38} p50 {statistics.median(xs) * 1000:7.2f} ms   "
            f"p99 {pct(xs, 99) * 1000:7.2f} ms   mean {statistics.fmean(xs) * 1000:7.2f} ms"
        )

    print(f"phone unlock on loopback, {n} unlocks ({wall:.1f} s wall)")
    print(row("phone: seal the approval (HPKE)", seal))
    print(row("approve posted -> vault unlocked", total))
    print(row("  relay hop (POST -> desktop WS)", hop))
    print(row("  HPKE open of the reply", hpke))
    print(row("  KEK = HKDF(K_P, K_L)", kek))
    print(row("  agent unlock (slot unwrap)", agent))
    rest = [a - b - c - d - e for a, b, c, d, e in zip(total, hop, hpke, kek, agent, strict=True)]
    print(row("  other (event loop, bookkeeping)", rest))
    print(row("approve posted -> page gets unlocked", sse))
    after = [a - b for a, b in zip(sse, total, strict=True)]
    print(row("  vault unlocked -> SSE event read", after))
    share = statistics.median(hop) / statistics.median(total)
    print(f"relay hop share of the median: {share:.0%}")


class PageStream:
    """What the desktop page does: open the launch link, then follow ``/api/events``.

    Records when each state snapshot arrives and whether it says unlocked.
    """

    def __init__(self, port: int, launch_url: str) -> None:
        self.origin = f"http://127.0.0.1:{port}"  # the UI listens here; Host check allows it
        self.launch = launch_url.split(f":{port}", 1)[1]
        self.client = httpx.AsyncClient(base_url=self.origin, timeout=None)
        self.unlocked: bool | None = None
        self.changed_at = 0.0
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        answer = await self.client.get(self.launch)  # 303 to the UI's prefix + cookie
        assert answer.status_code == 303, answer.text
        prefix = answer.headers["location"]
        self.task = asyncio.create_task(self._follow(prefix + "api/events"))
        await self.wait_for(unlocked=True)  # the first snapshot: unlocked after init

    async def _follow(self, path: str) -> None:
        async with self.client.stream("GET", path) as resp:
            assert resp.status_code == 200, resp.status_code
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    unlocked = bool(json.loads(line[6:])["vault"]["unlocked"])
                    if unlocked != self.unlocked:
                        self.unlocked, self.changed_at = unlocked, time.perf_counter()
                        self.changed.set()

    async def wait_for(self, *, unlocked: bool) -> float:
        """perf_counter() at which the stream first said ``unlocked``."""
        async with asyncio.timeout(10):
            while self.unlocked is not unlocked:
                self.changed.clear()
                await self.changed.wait()
        return self.changed_at

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["UNLATCH_HOME"] = str(Path(tmp) / "desktop-home")
        asyncio.run(asyncio.wait_for(run(args.n, Path(tmp)), 300))


if __name__ == "__main__":
    main()
