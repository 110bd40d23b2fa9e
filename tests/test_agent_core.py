"""AgentCore in-process: unlock paths, idle auto-lock, key dropped on lock, events."""

from __future__ import annotations

import asyncio
import gc
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from fixtures.vault import PASSWORD

from unlatch.agent import heap
from unlatch.agent.core import AgentCore
from unlatch.agent.errors import NoVaultError
from unlatch.vault import OWASP_MINIMUM, Item, VaultLockedError, WrongPasswordError


async def make_core(tmp_path: Path, idle: float = 600) -> AgentCore:
    core = AgentCore(tmp_path / "vault.db", idle)
    await core.init_vault(PASSWORD, OWASP_MINIMUM)
    return core


async def test_no_vault_yet(tmp_path: Path) -> None:
    core = AgentCore(tmp_path / "vault.db", 600)
    assert (await core.status())["vault_exists"] is False
    with pytest.raises(NoVaultError, match="unlatch init"):
        await core.unlock_with_password(PASSWORD)
    with pytest.raises(NoVaultError):
        await core.search()


async def test_lock_drops_the_key_and_unlock_paths(tmp_path: Path) -> None:
    core = await make_core(tmp_path)
    events: list[str] = []
    core.add_listener(events.append)
    await core.add_item(Item(title="a", password="pw"))
    vault = core._vault
    assert vault is not None and vault._key is not None
    key_buffer = vault._key
    assert await core.lock() is True
    assert vault._key is None and bytes(key_buffer) == bytes(len(key_buffer))  # zeroed
    assert vault._cache == {}
    with pytest.raises(VaultLockedError):
        await core.get_item("a")
    with pytest.raises(WrongPasswordError):
        await core.unlock_with_password("nope nope nope")
    await core.unlock_with_password(PASSWORD)
    kek = os.urandom(32)
    slot = await core.add_slot("phone", "test phone", kek, {"pairing": "p1"})
    await core.lock()
    assert [s.id for s in await core.find_slots("phone")] == [slot]  # listable while locked
    await core.unlock_with_slot(slot, kek)
    assert (await core.get_item("a")).password == "pw"
    await core.close()
    assert events == ["changed", "locked", "unlocked", "changed", "locked", "unlocked", "locked"]


async def wait_until(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Poll ``condition`` on the event loop until it holds (generous bound for CI)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_idle_auto_lock_and_touch(tmp_path: Path) -> None:
    idle = 2.0
    core = await make_core(tmp_path, idle=idle)
    began = asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - began < 1.5 * idle:
        await asyncio.sleep(0.3)  # activity every 0.3 s keeps it unlocked past the idle delay
        await core.search()
        assert core.is_unlocked
    status = await core.status()  # status is not activity
    assert 0 < status["locks_in_seconds"] <= idle
    await wait_until(lambda: not core.is_unlocked)
    assert asyncio.get_running_loop().time() - began >= 1.5 * idle
    with pytest.raises(VaultLockedError):
        await core.search()
    await core.close()


async def test_idle_lock_waiting_for_a_running_operation_rechecks_the_deadline(
    tmp_path: Path,
) -> None:
    """The timer fires while an operation holds the mutex; that operation's touch()
    moves the deadline, so the queued idle lock must not lock afterwards."""
    core = await make_core(tmp_path, idle=0.5)
    started, release = threading.Event(), threading.Event()

    def slow(vault: object) -> int:
        started.set()
        release.wait(30)
        return 1

    operation = asyncio.create_task(core.with_vault(slow))
    assert await asyncio.to_thread(started.wait, 30)
    await wait_until(lambda: core._idle_task is not None)  # deadline passed mid-operation
    idle_task = core._idle_task
    assert idle_task is not None and not idle_task.done()  # waiting for the mutex
    release.set()
    assert await operation == 1
    await asyncio.wait_for(idle_task, 30)
    assert core.is_unlocked  # the operation was activity
    events: list[str] = []
    core.add_listener(events.append)
    await wait_until(lambda: not core.is_unlocked)  # and it still locks once truly idle
    assert events == ["locked"]
    await core.close()


async def test_idle_lock_zero_means_never(tmp_path: Path) -> None:
    core = await make_core(tmp_path, idle=0)
    await asyncio.sleep(0.3)
    assert core.is_unlocked and (await core.status())["locks_in_seconds"] is None
    await core.close()


async def test_operations_are_serialised(tmp_path: Path) -> None:
    core = await make_core(tmp_path)
    added = await asyncio.gather(*(core.add_item(Item(title=f"t{i}")) for i in range(30)))
    assert len({i.id for i in added}) == 30
    assert len(await core.search("t")) == 30
    await core.close()


async def test_slot_unlock_of_an_open_file_stays_on_the_loop_and_a_renewal_writes_in_a_thread(
    tmp_path: Path,
) -> None:
    """A phone's unlock is two reads on the event loop's thread (no thread hop, issue 15);
    a slot sealed by a key rotation is renewed by a write, still in a worker thread."""
    core = await make_core(tmp_path)
    kek = os.urandom(32)
    slot = await core.add_slot("phone", "test phone", kek, {"pairing": "p1"})
    vault = core._vault
    assert vault is not None
    statements: list[tuple[int, str]] = []  # SQLite reports every statement, with its thread
    vault._conn.set_trace_callback(lambda sql: statements.append((threading.get_ident(), sql)))
    loop_thread = threading.get_ident()

    await core.lock()
    statements.clear()
    await core.unlock_with_slot(slot, kek)
    assert core.is_unlocked
    assert statements and {t for t, _ in statements} == {loop_thread}
    assert not any(sql.lstrip().upper().startswith(("UPDATE", "BEGIN")) for _, sql in statements)

    await core.rotate_key(PASSWORD)  # seals the phone's slot to its renewal key
    assert {s.id: s.renewal for s in await core.list_slots()}[slot] == "pending"
    await core.lock()
    statements.clear()
    await core.unlock_with_slot(slot, kek)
    writes = [t for t, sql in statements if sql.lstrip().upper().startswith("UPDATE")]
    assert writes and loop_thread not in writes  # the renewal's write went to a thread
    assert {s.id: s.renewal for s in await core.list_slots()}[slot] == "ready"
    await core.lock()
    await core.unlock_with_slot(slot, kek)  # renewed: wrapped under the KEK again
    assert core.is_unlocked
    await core.close()


def test_settle_takes_the_start_up_heap_out_of_the_collectors_walks() -> None:
    """After :func:`heap.settle`, a collection no longer walks what start-up made (issue 15)."""
    gc.unfreeze()
    survivor = [object()]  # a container: tracked by the collector
    assert any(o is survivor for o in gc.get_objects())
    try:
        heap.settle()
        assert gc.get_freeze_count() > 0
        assert not any(o is survivor for o in gc.get_objects())  # frozen: no generation has it
        made_after = [object()]
        assert any(o is made_after for o in gc.get_objects())
    finally:
        gc.unfreeze()
