"""How the desktop services reach the vault: in the agent, or through its socket.

The pairing and phone-unlock services need five vault operations. In the
agent process (web UI) they call :class:`~unlatch.agent.core.AgentCore`
directly; in a CLI process (``unlatch pair``, ``unlatch unlock --phone``)
they go through the agent's Unix socket. Both adapters satisfy
:class:`VaultPort`, so the services are written once.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Protocol

from unlatch.agent.client import AgentClient
from unlatch.agent.core import AgentCore
from unlatch.vault.slots import SlotMeta


class VaultPort(Protocol):
    """The vault operations the desktop services use."""

    async def is_unlocked(self) -> bool: ...

    async def unlock_with_slot(self, slot_id: str, kek: bytes) -> None: ...

    async def add_slot(self, kind: str, label: str, kek: bytes, meta: SlotMeta) -> str: ...

    async def rename_slot(self, slot_id: str, label: str) -> None: ...

    async def remove_slot(self, slot_id: str) -> None: ...


class CoreVault:
    """In the agent process: straight to :class:`AgentCore`."""

    def __init__(self, core: AgentCore) -> None:
        self.core = core

    async def is_unlocked(self) -> bool:
        return self.core.is_unlocked

    async def unlock_with_slot(self, slot_id: str, kek: bytes) -> None:
        await self.core.unlock_with_slot(slot_id, kek)

    async def add_slot(self, kind: str, label: str, kek: bytes, meta: SlotMeta) -> str:
        return await self.core.add_slot(kind, label, kek, meta)

    async def rename_slot(self, slot_id: str, label: str) -> None:
        await self.core.rename_slot(slot_id, label)

    async def remove_slot(self, slot_id: str) -> None:
        await self.core.remove_slot(slot_id)


class SocketVault:
    """In a CLI process: through the agent socket (blocking calls run in a thread)."""

    def __init__(self, client: AgentClient) -> None:
        self.client = client
        self._lock = asyncio.Lock()  # one request at a time on the connection

    async def _call(self, op: str, **args: object) -> object:
        async with self._lock:
            return await asyncio.to_thread(lambda: self.client.call(op, **args))

    async def is_unlocked(self) -> bool:
        status = await self._call("status")
        return bool(isinstance(status, dict) and status.get("unlocked"))

    async def unlock_with_slot(self, slot_id: str, kek: bytes) -> None:
        await self._call("unlock_slot", slot_id=slot_id, kek=_b64(kek))

    async def add_slot(self, kind: str, label: str, kek: bytes, meta: SlotMeta) -> str:
        result = await self._call("add_slot", kind=kind, label=label, kek=_b64(kek), meta=meta)
        if not isinstance(result, dict) or not isinstance(result.get("slot_id"), str):
            raise TypeError("the agent answered add_slot without a slot id")
        return str(result["slot_id"])

    async def rename_slot(self, slot_id: str, label: str) -> None:
        await self._call("rename_slot", slot_id=slot_id, label=label)

    async def remove_slot(self, slot_id: str) -> None:
        await self._call("remove_slot", slot_id=slot_id)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
