"""AgentCore in-process: unlock paths, idle auto-lock, key dropped on lock, events."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from fixtures.vault import PASSWORD

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


async def test_idle_auto_lock_and_touch(tmp_path: Path) -> None:
    core = await make_core(tmp_path, idle=0.4)
    for _ in range(4):  # activity keeps it unlocked past the idle delay
        await asyncio.sleep(0.2)
        await core.search()
    assert core.is_unlocked
    status = await core.status()  # status is not activity
    assert 0 < status["locks_in_seconds"] <= 0.4
    await asyncio.sleep(0.7)
    assert not core.is_unlocked
    with pytest.raises(VaultLockedError):
        await core.search()
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
