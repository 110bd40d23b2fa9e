"""Store calls and SQL statements (SQLite) or round trips (PostgreSQL) per relay exchange.

The exchange of bench/bench_relay.py (the channel WebSocket whose auth frame
creates the request, the reply, the acknowledgement on the socket), run 20
times against a relay in this process, whose store's methods are counted; on
SQLite every statement is counted through SQLite's trace callback, on
PostgreSQL every statement, BEGIN, COMMIT and connection reset asyncpg sends
(each one a round trip). Also the CPU the store's calls take on the event
loop's thread, on SQLite (its calls run inline and never suspend, so that is
all of the store's work): the part of an exchange's cost that keeping requests
durable takes, which a forwarder does not pay.

Run: python bench/bench_store_calls.py                      # SQLite
     python bench/bench_store_calls.py --db postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import json
import os
import tempfile
import time
from typing import Any

from bench_relay import LIMITS, Http, b64, free_port, fresh_database
from websockets.asyncio.client import connect

from unlatch.relay.client import RelayClient
from unlatch.relay.config import load_config
from unlatch.relay.device_key import DeviceKey
from unlatch.relay.server import build_server

EXCHANGES = 20
calls: collections.Counter[str] = collections.Counter()
store_cpu = 0.0  # thread CPU seconds inside store calls (SQLite: all of the store's work)
trips: collections.Counter[str] = collections.Counter()


def count_store(store: Any) -> None:
    for name in dir(type(store)):
        fn = getattr(store, name)
        if name.startswith("_") or name in ("open", "close") or not asyncio.iscoroutinefunction(fn):
            continue

        async def counted(*args: Any, _fn: Any = fn, _name: str = name, **kw: Any) -> Any:
            global store_cpu
            calls[_name] += 1
            t0 = time.thread_time()
            try:
                return await _fn(*args, **kw)
            finally:
                store_cpu += time.thread_time() - t0

        setattr(store, name, counted)


def count_asyncpg() -> None:
    from asyncpg.connection import Connection
    from asyncpg.transaction import Transaction

    def wrap(cls: Any, name: str, label: str) -> None:
        orig = getattr(cls, name)

        @functools.wraps(orig)
        async def counted(self: Any, *args: Any, **kw: Any) -> Any:
            trips[label] += 1
            return await orig(self, *args, **kw)

        setattr(cls, name, counted)

    for name in ("fetch", "fetchrow", "fetchval", "execute"):
        wrap(Connection, name, "statements")  # BEGIN/COMMIT/reset go through execute too
    wrap(Transaction, "start", "of which BEGIN")
    wrap(Transaction, "commit", "of which COMMIT")
    wrap(Connection, "reset", "of which pool resets")


async def run(db: str, home: str) -> None:
    os.environ.update(LIMITS)
    os.environ["UNLATCH_HOME"] = home
    port = free_port()
    server = build_server(load_config({"port": port, "db": db, "push_enabled": False}))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    store: Any = server.relay.service.store
    if getattr(store, "_db", None) is not None:
        store._db.set_trace_callback(lambda sql: trips.update(["SQL " + sql.split()[0].upper()]))
    count_store(store)
    url = f"http://127.0.0.1:{port}"
    desktop = RelayClient(url, DeviceKey.generate(), "desktop")
    phone = RelayClient(url, DeviceKey.generate(), "phone")
    await phone.login()
    routing = os.urandom(16)
    await desktop.register_pairing(routing, phone.device_id)
    await phone.register_pairing(routing, desktop.device_id)
    p_http = Http("127.0.0.1", port)
    assert desktop._token and phone._token

    async def exchange() -> None:
        rid = b64(os.urandom(16))
        create = {"routing_id": b64(routing), "push": "AAAA"}
        hello = {"type": "auth", "token": desktop._token, "create": create}
        async with connect(f"ws://127.0.0.1:{port}/v1/unlock/{rid}/ws") as ws:
            await ws.send(json.dumps(hello))
            assert json.loads(await ws.recv())["type"] == "ready"
            reply = json.dumps({"data": b64(os.urandom(200))}).encode()
            status, _ = await p_http.request("POST", f"/v1/unlock/{rid}/reply", reply, phone._token)
            assert status == 202
            while json.loads(await ws.recv()).get("kind") != "reply":
                pass
            await ws.send('{"type":"close"}')
            while json.loads(await ws.recv()).get("type") != "closed":
                pass

    await exchange()
    await asyncio.sleep(0.3)
    global store_cpu
    calls.clear()
    trips.clear()
    store_cpu = 0.0
    for _ in range(EXCHANGES):
        await exchange()
    await asyncio.sleep(0.5)
    print(f"per exchange (mean of {EXCHANGES}):")
    print(f"  store calls {sum(calls.values()) / EXCHANGES:.1f}:", end="")
    print(" " + ", ".join(f"{name} {n / EXCHANGES:g}" for name, n in calls.most_common()))
    sql = {k: v for k, v in trips.items() if k.startswith("SQL ")}
    if sql:
        print(f"  SQLite statements {sum(sql.values()) / EXCHANGES:.1f}:", end="")
        print(" " + ", ".join(f"{k[4:]} {v / EXCHANGES:g}" for k, v in sorted(sql.items())))
        # inline calls that never suspend: this thread's CPU in them is the store's own
        print(f"  CPU in the store's calls: {store_cpu / EXCHANGES * 1000:.3f} ms")
    else:
        print(f"  PostgreSQL round trips {trips['statements'] / EXCHANGES:.1f}:", end="")
        others = {"of which BEGIN", "of which COMMIT"} | {k for k in trips if k != "statements"}
        print(" " + ", ".join(f"{k} {trips[k] / EXCHANGES:g}" for k in sorted(others)))
    for client in (desktop, phone):
        await client.aclose()
    server.should_exit = True
    await serving


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="", help="postgresql://... (admin URL) or empty: SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, contextlib.ExitStack() as stack:
        db = f"{home}/relay.db"
        if args.db.startswith(("postgresql://", "postgres://")):
            count_asyncpg()
            db = stack.enter_context(fresh_database(args.db))
        asyncio.run(run(db, home))


if __name__ == "__main__":
    main()
