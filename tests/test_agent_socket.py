"""The agent's socket protocol against a real server in this event loop."""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fixtures.vault import PASSWORD

from unlatch.agent import server, settings, wire
from unlatch.vault import OWASP_MINIMUM


@pytest.fixture
async def agent(unlatch_home: Path) -> AsyncIterator[Path]:
    ready = asyncio.Event()
    task = asyncio.create_task(server.serve(600, ready))
    await asyncio.wait_for(ready.wait(), 10)
    yield settings.socket_path()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def exchange(path: Path, *lines: bytes) -> list[dict]:  # type: ignore[type-arg]
    reader, writer = await asyncio.open_unix_connection(os.fspath(path), limit=2**24)
    replies = []
    for line in lines:
        writer.write(line)
        await writer.drain()
        raw = await reader.readline()
        replies.append(json.loads(raw) if raw else {})
    writer.close()
    return replies


def req(op: str, **args: object) -> bytes:
    return wire.encode({"op": op, "args": args})


async def test_garbage_gets_typed_errors_and_the_connection_survives(agent: Path) -> None:
    replies = await exchange(
        agent,
        b"not json\n",
        b"[1, 2]\n",
        b'{"op": 5}\n',
        req("no-such-op"),
        req("unlock", password=12),
        req("add", item={"title": "x", "evil": 1}),
        b"\xff\xfe\n",
        req("status"),
    )
    types = [r["error"]["type"] for r in replies[:-1]]
    assert types == ["BadRequestError"] * 7
    assert "unknown operation" in replies[3]["error"]["message"]
    assert replies[-1]["ok"] is True and replies[-1]["result"]["vault_exists"] is False


async def test_deeply_nested_request_is_a_bad_request(agent: Path) -> None:
    # The standard parser's RecursionError used to come back as "internal error".
    (reply,) = await exchange(agent, b"[" * 50_000 + b"\n")
    assert reply["error"]["type"] == "BadRequestError"
    assert "nested too deeply" in reply["error"]["message"]
    (reply,) = await exchange(agent, req("status"))
    assert reply["ok"] is True


async def test_oversized_request_is_refused(agent: Path) -> None:
    big = b'{"op": "status", "args": {"x": "' + b"a" * (wire.MAX_REQUEST + 10) + b'"}}\n'
    (reply,) = await exchange(agent, big)
    assert (
        reply["error"]["type"] == "BadRequestError" and "larger than" in reply["error"]["message"]
    )
    (reply,) = await exchange(agent, req("status"))  # the agent is still fine
    assert reply["ok"] is True


async def test_vault_errors_come_back_typed(agent: Path) -> None:
    kdf = {"memory_kib": OWASP_MINIMUM.memory_kib, "time_cost": OWASP_MINIMUM.time_cost}
    replies = await exchange(
        agent,
        req("search"),
        req("init", password=PASSWORD, kdf={"memory_kib": 1024, "time_cost": 1}),
        req("init", password=PASSWORD, kdf=kdf),
        req("lock"),
        req("search"),
        req("unlock", password="wrong password"),
        req("unlock_slot", slot_id="nope", kek="!!"),
        req("unlock", password=PASSWORD),
        req("add", item={"title": "x", "password": "p"}),
        req("get", ref="x"),
    )
    errors = [r["error"]["type"] if not r["ok"] else "ok" for r in replies]
    assert errors == [
        "NoVaultError",
        "WeakKdfError",
        "ok",
        "ok",
        "VaultLockedError",
        "WrongPasswordError",
        "BadRequestError",
        "ok",
        "ok",
        "ok",
    ]
    assert replies[-1]["result"]["password"] == "p"
    assert "password" not in replies[-2]["result"]


async def test_second_agent_in_the_same_home_is_refused(agent: Path) -> None:
    with pytest.raises(server.AgentAlreadyRunningError):
        await server.serve(600)
    (reply,) = await exchange(agent, req("status"))
    assert reply["ok"] is True


async def test_stop_locks_and_removes_the_socket(unlatch_home: Path) -> None:
    ready = asyncio.Event()
    task = asyncio.create_task(server.serve(600, ready))
    await asyncio.wait_for(ready.wait(), 10)
    path = settings.socket_path()
    kdf = {"memory_kib": OWASP_MINIMUM.memory_kib, "time_cost": OWASP_MINIMUM.time_cost}
    await exchange(path, req("init", password=PASSWORD, kdf=kdf), req("stop"))
    await asyncio.wait_for(task, 10)
    assert not path.exists()


async def test_item_fields_must_have_their_types(agent: Path) -> None:
    """No coercion: "abc" is not three URLs and 5 is not the title "5"."""
    kdf = {"memory_kib": OWASP_MINIMUM.memory_kib, "time_cost": OWASP_MINIMUM.time_cost}
    bad_fields = [
        ({"title": 5}, '"title" must be a string'),
        ({"title": "x", "urls": "abc"}, '"urls" must be a list of strings'),
        ({"title": "x", "tags": ["ok", 3]}, '"tags" must be a list of strings'),
        ({"title": "x", "password": None}, '"password" must be a string'),
        ({"title": "x", "notes": {"a": 1}}, '"notes" must be a string'),
        ({"username": "u"}, 'needs a "title"'),
    ]
    replies = await exchange(
        agent,
        req("init", password=PASSWORD, kdf=kdf),
        *(req("add", item=fields) for fields, _ in bad_fields),
        req("add", item={"title": "kept", "urls": ["https://a.example"], "tags": ["t"]}),
        req("edit", ref="kept", changes={"urls": "abc"}),
        req("edit", ref="kept", changes={"title": 5}),
        req("edit", ref="kept", changes=["title"]),
        req("edit", ref="kept", changes={"urls": [], "tags": []}),
        req("search"),
    )
    for reply, (_fields, message) in zip(replies[1 : len(bad_fields) + 1], bad_fields, strict=True):
        assert reply["error"]["type"] == "BadRequestError", reply
        assert message in reply["error"]["message"]
    added, edit_urls, edit_title, edit_list, cleared, listing = replies[len(bad_fields) + 1 :]
    assert added["ok"] is True
    assert edit_urls["error"]["message"] == '"urls" must be a list of strings'
    assert edit_title["error"]["message"] == '"title" must be a string'
    assert edit_list["error"]["message"] == '"changes" must be an object'
    assert cleared["ok"] is True and cleared["result"]["urls"] == []
    assert [i["title"] for i in listing["result"]] == ["kept"]


async def test_the_agent_settles_its_heap_once_started(unlatch_home: Path) -> None:
    """The agent freezes its start-up heap (unlatch.agent.heap): no full collection walks it."""
    gc.unfreeze()
    ready = asyncio.Event()
    task = asyncio.create_task(server.serve(600, ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        assert gc.get_freeze_count() > 0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gc.unfreeze()
