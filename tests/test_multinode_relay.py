"""Every pairing and unlock path across three real relay nodes on PostgreSQL + Redis.

The desktop and the phone talk to *different* nodes (each client is pinned to
one node and signs for the deployment's shared public URL), so every message
crosses nodes through the shared store and the Redis bus. Payloads are random
opaque bytes that must arrive byte for byte, to the right party, once.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fixtures.push_endpoint import LocalPushService
from fixtures.scale import (
    REDIS_URL,
    Cluster,
    fresh_database,
    pinned_client,
    redis_cleanup,
    redis_prefix,
    require_postgres,
    require_redis,
    start_node,
)
from websockets.asyncio.client import connect

from unlatch.push import VapidKeys
from unlatch.relay.client import PairingUpdate, RequestUpdate, UnlockNotification
from unlatch.relay.codec import b64d, b64e
from unlatch.relay.device_key import DeviceKey
from unlatch.relay.errors import (
    AlreadyAnswered,
    AlreadyPosted,
    Blocked,
    ChannelExpired,
    ChannelGone,
    ChannelTaken,
    RateLimited,
    TooManyPending,
)

PUBLIC_URL = "https://relay.unlatch.test"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three nodes, one fresh database and Redis prefix for the module.

    Limits are liberal except two, which the limit tests exercise: 4 unlock
    requests per pairing per 600 s and at most 5 open requests per desktop
    (other tests use a fresh pairing or desktop where they need more). Every
    node pushes, with one shared VAPID key.
    """
    require_postgres()
    require_redis()
    prefix = redis_prefix()
    base = tmp_path_factory.mktemp("multinode")
    VapidKeys.load_or_create(base / "vapid.pem")
    with fresh_database() as db:
        c = Cluster(
            base,
            db_url=db,
            bus_url=f"{REDIS_URL}?prefix={prefix}",
            public_url=PUBLIC_URL,
            env={
                "UNLATCH_RELAY_RATE_UNLOCK_PAIRING": "4/600",
                "UNLATCH_RELAY_MAX_PENDING_UNLOCK": "5",
            },
            vapid_key=base / "vapid.pem",
        )
        try:
            c.start(3)
            yield c
        finally:
            c.stop()
            redis_cleanup(6379, prefix)


class Device:
    """One device key with a client pinned to each node."""

    def __init__(self, cluster: Cluster, kind: str, *, websocket: bool = True) -> None:
        self.key = DeviceKey.generate()
        self.kind = kind
        self.on = [
            pinned_client(n, self.key, kind, PUBLIC_URL, prefer_websocket=websocket)
            for n in cluster.nodes
        ]

    @property
    def device_id(self) -> str:
        return self.key.device_id

    async def aclose(self) -> None:
        for client in self.on:
            await client.aclose()


async def pair_across(cluster: Cluster, *, websocket: bool = True) -> tuple[Device, Device, bytes]:
    """The whole pairing: channel on node 0, hello on node 1, accept on 0, phone waits on 2."""
    desktop = Device(cluster, "desktop", websocket=websocket)
    phone = Device(cluster, "phone", websocket=websocket)
    channel_id = os.urandom(16)
    await desktop.on[0].create_pairing_channel(channel_id)
    hello, accept = os.urandom(400), os.urandom(600)
    waiter = asyncio.create_task(desktop.on[0].wait_pairing_message(channel_id, timeout=15))
    await asyncio.sleep(0.1)
    await phone.on[1].post_hello(channel_id, hello)
    got_hello = await asyncio.wait_for(waiter, 15)
    assert (got_hello.type, got_hello.data, got_hello.sender) == ("hello", hello, phone.device_id)
    phone_waiter = asyncio.create_task(phone.on[2].wait_pairing_message(channel_id, timeout=15))
    await asyncio.sleep(0.1)
    await desktop.on[0].post_accept(channel_id, accept)
    got_accept = await asyncio.wait_for(phone_waiter, 15)
    assert (got_accept.type, got_accept.data) == ("accept", accept)
    assert got_accept.sender == desktop.device_id
    await phone.on[1].close_pairing_channel(channel_id)
    routing_id = os.urandom(16)
    assert await desktop.on[0].register_pairing(routing_id, phone.device_id) == "pending"
    assert await phone.on[2].register_pairing(routing_id, desktop.device_id) == "linked"
    return desktop, phone, routing_id


async def link(desktop: Device, phone: Device) -> bytes:
    """Register one more pairing (a fresh routing id) between two devices."""
    routing_id = os.urandom(16)
    await desktop.on[0].register_pairing(routing_id, phone.device_id)
    assert await phone.on[1].register_pairing(routing_id, desktop.device_id) == "linked"
    return routing_id


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket", "longpoll"])
async def test_pairing_then_unlock_every_message_crosses_nodes(
    cluster: Cluster, websocket: bool
) -> None:
    desktop, phone, routing_id = await pair_across(cluster, websocket=websocket)
    try:
        # pairings are visible from every node
        for node in range(3):
            pairings = await desktop.on[node].list_pairings()
            assert [(p.routing_id, p.peer_device_id, p.linked) for p in pairings] == [
                (routing_id, phone.device_id, True)
            ]
        # the phone listens on node 1; the desktop creates on node 0
        notes: asyncio.Queue[object] = asyncio.Queue()

        async def listen() -> None:
            async for note in phone.on[1].listen(poll_interval=0.5):
                await notes.put(note)

        listener = asyncio.create_task(listen())
        # a first request, once yielded, proves the listener is connected and subscribed
        # (it subscribes before it reads what is pending)
        probe = os.urandom(16)
        await desktop.on[0].create_unlock(probe, routing_id, b"probe")
        assert (await asyncio.wait_for(notes.get(), 30)).request_id == probe  # type: ignore[attr-defined]
        await desktop.on[0].close_unlock(probe)
        request_id, push, seen, reply = (
            os.urandom(16),
            os.urandom(900),
            os.urandom(200),
            os.urandom(1000),
        )
        created = await desktop.on[0].create_unlock(request_id, routing_id, push)
        assert created["request_id"] == b64e(request_id)
        if websocket:
            assert created["notified"]["listeners"] >= 1  # node 1 has a listener for the phone
        note = await asyncio.wait_for(notes.get(), 30)
        assert note.request_id == request_id and note.push == push  # type: ignore[attr-defined]
        assert note.routing_id == routing_id  # type: ignore[attr-defined]
        listener.cancel()
        # the desktop waits on node 0; seen and reply are posted to node 2
        seen_log: list[bytes] = []
        waiter = asyncio.create_task(
            desktop.on[0].wait_reply(request_id, timeout=40, on_seen=seen_log.append)
        )
        assert [n.request_id for n in await phone.on[2].pending_unlocks()] == [request_id]
        assert (await phone.on[2].get_unlock(request_id)).push == push
        await phone.on[2].post_seen(request_id, seen)
        await phone.on[2].post_reply(request_id, reply)
        assert await asyncio.wait_for(waiter, 45) == reply
        assert seen_log == [seen]
        # acknowledged on node 0: closed everywhere
        for node in range(3):
            assert await phone.on[node].pending_unlocks() == []
        with pytest.raises(ChannelGone):
            await phone.on[1].post_reply(request_id, reply)
    finally:
        await desktop.aclose()
        await phone.aclose()


async def test_reply_posted_while_desktop_away_reaches_it_on_another_node(
    cluster: Cluster,
) -> None:
    desktop, phone, routing_id = await pair_across(cluster)
    try:
        request_id, reply = os.urandom(16), os.urandom(700)
        await desktop.on[0].create_unlock(request_id, routing_id, os.urandom(64))
        # nobody waits: the reply lands on node 1 and is kept in the store
        await phone.on[1].post_reply(request_id, reply)
        # the desktop comes back through node 2, resuming after seq 0
        assert await desktop.on[2].wait_reply(request_id, timeout=10) == reply
    finally:
        await desktop.aclose()
        await phone.aclose()


async def test_single_use_holds_when_three_nodes_race(cluster: Cluster) -> None:
    desktop, phone, routing_id = await pair_across(cluster)
    try:
        for attempt in range(5):
            request_id = os.urandom(16)
            if attempt:
                routing_id = await link(desktop, phone)  # 4 requests per pairing in this cluster
            await desktop.on[0].create_unlock(request_id, routing_id, os.urandom(32))
            replies = [os.urandom(100) for _ in range(3)]
            results = await asyncio.gather(
                *(
                    phone.on[i].request(
                        "POST", f"/v1/unlock/{b64e(request_id)}/reply", {"data": b64e(replies[i])}
                    )
                    for i in range(3)
                ),
                return_exceptions=True,
            )
            winners = [i for i, r in enumerate(results) if not isinstance(r, BaseException)]
            losers = [r for r in results if isinstance(r, BaseException)]
            assert len(winners) == 1, results
            assert all(isinstance(r, AlreadyAnswered) for r in losers), losers
            got = await desktop.on[1].wait_reply(request_id, timeout=10)
            assert got == replies[winners[0]]
        # one hello owner per pairing channel, whichever node each phone reached
        for _ in range(3):
            channel_id = os.urandom(16)
            await desktop.on[0].create_pairing_channel(channel_id)
            phones = [Device(cluster, "phone") for _ in range(3)]
            results = await asyncio.gather(
                *(phones[i].on[i].post_hello(channel_id, os.urandom(50)) for i in range(3)),
                return_exceptions=True,
            )
            assert sum(r is None for r in results) == 1, results
            assert all(isinstance(r, ChannelTaken) for r in results if r is not None)
            for p in phones:
                await p.aclose()
    finally:
        await desktop.aclose()
        await phone.aclose()


async def test_seen_then_duplicate_seen_refused_on_another_node(cluster: Cluster) -> None:
    desktop, phone, routing_id = await pair_across(cluster)
    try:
        request_id = os.urandom(16)
        await desktop.on[0].create_unlock(request_id, routing_id, os.urandom(32))
        await phone.on[1].post_seen(request_id, b"s1")
        with pytest.raises(AlreadyPosted):
            await phone.on[2].post_seen(request_id, b"s2")
    finally:
        await desktop.aclose()
        await phone.aclose()


async def test_block_and_unblock_across_nodes(cluster: Cluster) -> None:
    desktop, phone, routing_id = await pair_across(cluster)
    try:
        await phone.on[1].block(routing_id)
        assert (await desktop.on[2].list_pairings())[0].blocked
        with pytest.raises(Blocked):
            await desktop.on[0].create_unlock(os.urandom(16), routing_id, os.urandom(32))
        await phone.on[2].unblock(routing_id)
        request_id = os.urandom(16)
        await desktop.on[0].create_unlock(request_id, routing_id, os.urandom(32))
        assert [n.request_id for n in await phone.on[1].pending_unlocks()] == [request_id]
        # unpairing on one node removes it for both parties everywhere
        await phone.on[0].delete_pairing(routing_id)
        assert await desktop.on[1].list_pairings() == []
        # ... and closes its open request on every node
        with pytest.raises(ChannelGone):
            await phone.on[2].post_reply(request_id, b"late")
        with pytest.raises(ChannelGone):
            await desktop.on[1].wait_reply(request_id, timeout=10)
    finally:
        await desktop.aclose()
        await phone.aclose()


async def test_expiry_is_the_same_on_every_node(cluster: Cluster) -> None:
    desktop, phone, routing_id = await pair_across(cluster)
    try:
        request_id = os.urandom(16)
        created = await desktop.on[0].create_unlock(request_id, routing_id, os.urandom(32), ttl=2)
        assert created["expires_at"] - time.time() <= 2.1
        # a desktop waiting on node 2 learns of the expiry pushed by whichever sweeper ran
        with pytest.raises(ChannelExpired):
            await desktop.on[2].wait_reply(request_id, timeout=15)
        for node in range(3):
            with pytest.raises(ChannelExpired):
                await phone.on[node].post_reply(request_id, b"late")
        # a pairing channel expires the same way
        channel_id = os.urandom(16)
        await desktop.on[1].create_pairing_channel(channel_id, ttl=1)
        await asyncio.sleep(1.3)
        with pytest.raises(ChannelExpired):
            await phone.on[2].post_hello(channel_id, b"late hello")
    finally:
        await desktop.aclose()
        await phone.aclose()


async def test_pending_cap_is_exact_under_concurrent_creates_on_three_nodes(
    cluster: Cluster,
) -> None:
    desktop, phone, first = await pair_across(cluster)
    try:
        # 3 pairings x 4 tokens: rate limits allow all 12, the per-desktop cap allows 5
        routing_ids = [first, await link(desktop, phone), await link(desktop, phone)]
        results = await asyncio.gather(
            *(
                desktop.on[i % 3].create_unlock(os.urandom(16), routing_ids[i % 3], b"x")
                for i in range(12)
            ),
            return_exceptions=True,
        )
        created = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(created) == 5, results
        assert all(isinstance(r, TooManyPending) for r in refused), refused
        # pending: the newest open request of each pairing (a newer one renews the older)
        pairings = {routing_ids[i % 3] for i, r in enumerate(results) if isinstance(r, dict)}
        assert len(await phone.on[2].pending_unlocks()) == len(pairings)
    finally:
        await desktop.aclose()
        await phone.aclose()


async def test_rate_limits_are_shared_by_all_nodes(cluster: Cluster) -> None:
    c = cluster
    desktop, phone, routing_id = await pair_across(c)
    try:
        # 4 requests for this pairing, round-robin over the nodes: all allowed
        for i in range(4):
            request_id = os.urandom(16)
            await desktop.on[i % 3].create_unlock(request_id, routing_id, b"x")
            await desktop.on[(i + 1) % 3].close_unlock(request_id)  # stay under the cap
        # the 5th is refused whichever node it reaches, with a Retry-After
        for node in range(3):
            with pytest.raises(RateLimited) as info:
                await desktop.on[node].create_unlock(os.urandom(16), routing_id, b"x")
            assert info.value.code == "rate_limited"
            assert 60 < info.value.retry_after <= 150  # 600 s / 4 tokens per bucket
        # the raw answer: 429, Retry-After header, scope
        token = await desktop.on[1].login()
        async with httpx.AsyncClient(base_url=c.nodes[2].url) as http:
            answer = await http.post(
                "/v1/unlock",
                headers={"authorization": f"Bearer {token}"},
                json={
                    "request_id": b64e(os.urandom(16)),
                    "routing_id": b64e(routing_id),
                    "push": b64e(b"x"),
                },
            )
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) >= 60
        assert answer.json()["scope"] == "pairing"
        assert sum(n.metric("unlatch_relay_rate_limited_total") for n in c.nodes) >= 4
        # another pairing of the same desktop still has its own budget
        other = await link(desktop, phone)
        await desktop.on[2].create_unlock(os.urandom(16), other, b"x")
    finally:
        await desktop.aclose()
        await phone.aclose()


async def test_nodes_agree_on_health_and_schema(cluster: Cluster) -> None:
    async with httpx.AsyncClient() as http:
        for node in cluster.nodes:
            answer = await http.get(node.url + "/healthz")
            assert answer.status_code == 200 and answer.json()["ok"] is True
    import asyncpg

    from unlatch.relay.store_postgres import migrations

    conn = await asyncpg.connect(cluster.db_url)
    try:
        rows = await conn.fetch("SELECT version FROM unlatch_schema_migrations ORDER BY version")
    finally:
        await conn.close()
    # three nodes started, each packaged migration ran once
    assert [r[0] for r in rows] == [version for version, _, _ in migrations()]


async def test_a_lost_wake_up_costs_latency_not_the_message(cluster: Cluster) -> None:
    """Rows written straight into PostgreSQL, with no bus event at all, still reach the waiters.

    This is the worst case of a lost pub/sub message: the desktop (WebSocket on
    node 0) and the phone's listener (node 1) keep no re-read timer (issue 15);
    each node's reconciler finds the change with its one query per
    ``sweep_interval`` (0.5 s here) and wakes them. Its counter proves that
    path; the bound (4 s, against the 5 s and 10 s per-waiter re-reads it
    replaced) leaves room for a loaded machine.
    """
    import asyncpg

    desktop, phone, routing_id = await pair_across(cluster)
    conn = await asyncpg.connect(cluster.db_url)
    node = cluster.nodes[0]

    try:
        request_id, reply = os.urandom(16), os.urandom(300)
        await desktop.on[0].create_unlock(request_id, routing_id, b"push")
        # the desktop's socket, until ``ready``: admitted (subscribed, then the store read),
        # so the row written next can only reach it by a wake-up (the socket gauge rises at
        # the upgrade, before admission: waiting on it let the admission read find the row)
        token = await desktop.on[0]._token_now()
        url = node.url.replace("http://", "ws://") + f"/v1/unlock/{b64e(request_id)}/ws"
        async with connect(url, ping_interval=None, compression=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token, "after": 0}))
            ready = json.loads(await asyncio.wait_for(ws.recv(), 20))
            assert ready["type"] == "ready" and ready["state"] == "open", ready
            woken = node.metric("unlatch_relay_reconcile_wakeups_total")
            started = time.monotonic()
            await conn.execute(
                "INSERT INTO messages VALUES ($1, 1, 'reply', $2, $3, $4)",
                request_id,
                phone.device_id,
                reply,
                time.time(),
            )
            frame = json.loads(await asyncio.wait_for(ws.recv(), 65))
            while frame.get("type") != "message":  # (an idle ping)
                frame = json.loads(await asyncio.wait_for(ws.recv(), 65))
            assert b64d(frame["data"]) == reply and frame["kind"] == "reply"
        # found by node 0's reconciler, within about one sweep_interval
        assert time.monotonic() - started < 4
        assert node.metric("unlatch_relay_reconcile_wakeups_total") > woken

        notes: asyncio.Queue[object] = asyncio.Queue()

        async def listen() -> None:
            async for note in phone.on[1].listen():
                await notes.put(note)

        listener = asyncio.create_task(listen())
        # a request through the API proves the listener is connected and past its initial list
        live_id = os.urandom(16)
        await desktop.on[0].create_unlock(live_id, routing_id, b"live")
        live = await asyncio.wait_for(notes.get(), 30)
        assert live.request_id == live_id  # type: ignore[attr-defined]
        listening_node = cluster.nodes[1]
        woken = listening_node.metric("unlatch_relay_reconcile_wakeups_total")
        silent_id, now = os.urandom(16), time.time()
        started = time.monotonic()
        await conn.execute(
            "INSERT INTO channels (channel_id, kind, creator, peer, routing_id, push, meta,"
            " created_at, expires_at, state) VALUES ($1, 'unlock', $2, $3, $4, $5, '{}'::jsonb,"
            " $6, $7, 'open')",
            silent_id,
            desktop.device_id,
            phone.device_id,
            routing_id,
            b"silent",
            now,
            now + 60,
        )
        # found by node 1's reconciler (the listener used to re-read every 10 s)
        note = await asyncio.wait_for(notes.get(), 45)
        assert note.request_id == silent_id  # type: ignore[attr-defined]
        assert time.monotonic() - started < 4
        assert listening_node.metric("unlatch_relay_reconcile_wakeups_total") > woken
        listener.cancel()
    finally:
        await conn.close()
        await desktop.aclose()
        await phone.aclose()


async def test_push_registered_through_one_node_is_sent_by_another(
    cluster: Cluster, push_service: LocalPushService
) -> None:
    """The phone registers its Web Push subscription through node 2; desktops ask through
    nodes 0 and 1. Each node signs with the one shared VAPID key: the local push service
    checks the JWT against the subscription's applicationServerKey (403 otherwise) and
    decrypts the RFC 8291 body with the subscription's private key."""
    async with httpx.AsyncClient() as http:
        served = {
            (await http.get(n.url + "/v1/push/vapid-public-key")).json()["public_key"]
            for n in cluster.nodes
        }
    assert cluster.vapid_key is not None
    assert served == {VapidKeys.load_or_create(cluster.vapid_key).public_key_b64url}
    [vapid] = served
    sub = push_service.subscribe("webpush", application_server_key=vapid)
    desktop, phone, routing_id = await pair_across(cluster)
    try:
        await phone.on[2].set_push_target(sub.to_json())
        assert (await phone.on[1].me())["push"]["endpoint"] == sub.endpoint
        sent_before = [
            n.metric("unlatch_relay_pushes_total", outcome="delivered") for n in cluster.nodes
        ]
        requests = [(0, os.urandom(16), os.urandom(600)), (1, os.urandom(16), os.urandom(300))]
        for count, (node, request_id, opaque) in enumerate(requests, start=1):
            created = await desktop.on[node].create_unlock(request_id, routing_id, opaque)
            assert created["notified"]["push"] == "queued"
            deadline = time.monotonic() + 30
            while len(sub.delivered) < count:
                assert time.monotonic() < deadline, [(a.status, a.reason) for a in sub.attempts]
                await asyncio.sleep(0.05)
            delivery = sub.delivered[-1]
            assert delivery.claims is not None and delivery.claims["aud"] == push_service.origin
            assert delivery.headers["content-encoding"] == "aes128gcm"
            note = json.loads(delivery.plaintext or b"")
            assert note["request_id"] == b64e(request_id) and b64d(note["push"]) == opaque
            assert note["routing_id"] == b64e(routing_id)
        assert all(a.status == 201 for a in sub.attempts)  # no node signed with another key
        sent_after = [
            n.metric("unlatch_relay_pushes_total", outcome="delivered") for n in cluster.nodes
        ]
        assert sent_after[0] == sent_before[0] + 1 and sent_after[1] == sent_before[1] + 1
        assert sent_after[2] == sent_before[2]  # the node that took the registration sent none
    finally:
        await desktop.aclose()
        await phone.aclose()


async def test_a_node_with_another_vapid_key_refuses_to_join(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The store records the deployment's VAPID public key: a node started with a different
    key file would sign pushes the push services refuse, so it stops with the fix."""
    other = tmp_path / "other-vapid.pem"
    VapidKeys.load_or_create(other)
    with pytest.raises(RuntimeError) as err:
        await asyncio.to_thread(
            start_node,
            tmp_path / "intruder",
            env={**cluster.node_env(), "UNLATCH_RELAY_VAPID_KEY": str(other)},
            args=cluster.node_args(),
            liberal=True,
        )
    assert "relay exited with 2" in str(err.value)
    assert "VAPID key" in str(err.value) and "same key file" in str(err.value)
    async with httpx.AsyncClient() as http:  # the deployment is untouched
        for node in cluster.nodes:
            assert (await http.get(node.url + "/healthz")).status_code == 200


async def test_lifecycle_phone_hears_its_requests_fate_across_nodes(cluster: Cluster) -> None:
    """Renewed, answered-and-delivered, cancelled and unpaired, each heard on another node.

    The phone listens on node 1, the desktop works on node 0, the phone
    posts on node 2: every frame and the reply's delivery cross the Redis bus.
    """
    desktop, phone, routing_id = await pair_across(cluster)
    frames: asyncio.Queue[tuple[float, object]] = asyncio.Queue()

    async def listen() -> None:
        async for item in phone.on[1].events(poll_interval=0.5):
            await frames.put((time.monotonic(), item))

    async def heard(request_id: bytes, state: str, since: float) -> RequestUpdate:
        while True:
            at, item = await asyncio.wait_for(frames.get(), 15)
            if isinstance(item, RequestUpdate) and item.request_id == request_id:
                assert item.state == state
                assert at - since < 1.0, f"{state} heard after {at - since:.2f} s"
                return item

    listener = asyncio.create_task(listen())
    try:
        first = os.urandom(16)
        await desktop.on[0].create_unlock(first, routing_id, b"first")
        while not isinstance(
            (item := (await asyncio.wait_for(frames.get(), 30))[1]), UnlockNotification
        ):
            pass
        assert item.request_id == first
        second = os.urandom(16)
        t = time.monotonic()
        await desktop.on[0].create_unlock(second, routing_id, b"second")
        assert (await heard(first, "renewed", t)).replaced_by == second
        assert [n.request_id for n in await phone.on[2].pending_unlocks()] == [second]
        # the desktop waits on node 0; the reply posted on node 2 is handed over on node 0
        waiter = asyncio.create_task(desktop.on[0].wait_reply(second, timeout=30))
        await asyncio.sleep(0.5)
        assert await phone.on[2].post_reply(second, b"yes", wait=5) == "delivered"
        assert await waiter == b"yes"
        state = await phone.on[1].unlock_state(second)
        assert (state.state, state.acknowledged) == ("answered", True)
        # cancelled on node 0, heard on node 1
        third = os.urandom(16)
        await desktop.on[0].create_unlock(third, routing_id, b"third")
        t = time.monotonic()
        await desktop.on[0].close_unlock(third)
        await heard(third, "cancelled", t)
        # unpaired on node 0: its open request closes and the pairing is removed, on node 1
        fourth = os.urandom(16)
        await desktop.on[0].create_unlock(fourth, routing_id, b"fourth")
        t = time.monotonic()
        await desktop.on[0].delete_pairing(routing_id)
        await heard(fourth, "closed", t)
        while not isinstance(
            (item := (await asyncio.wait_for(frames.get(), 15))[1]), PairingUpdate
        ):
            pass
        assert (item.routing_id, item.state) == (routing_id, "removed")
        assert (await phone.on[2].unlock_state(fourth)).state == "closed"
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await desktop.aclose()
        await phone.aclose()
