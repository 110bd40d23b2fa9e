"""AgentCore: the unlocked vault held in memory, independent of any transport.

The Unix-socket server (:mod:`unlatch.agent.server`) and, later, the local
web UI call these coroutines in the same event loop. Vault operations run
in a worker thread (Argon2id and SQLite block) under one
:class:`asyncio.Lock`, so operations never interleave and the idle timer
never locks the vault in the middle of one. Two short read-only paths run on
the loop itself once the file is open, because a thread hop costs more than
they do: the status the UI shows, and unlocking with a slot (see
:meth:`AgentCore.unlock_with_slot`).

Locking drops the vault key (the :class:`~unlatch.vault.Vault` zeroes its
``bytearray`` and forgets decrypted items). Python cannot promise that no
copy of the key survives elsewhere in memory; we drop every reference we
hold and keep the key in a mutable buffer where practical.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from unlatch.agent.errors import NoVaultError
from unlatch.agent.staging import ImportStaging
from unlatch.errors import UnlatchError
from unlatch.vault import Item, KdfParams, SlotInfo, Vault, VaultLockedError
from unlatch.vault.errors import VaultNotFoundError
from unlatch.vault.slots import SlotMeta
from unlatch.vault.vault import Rotation

log = logging.getLogger(__name__)
T = TypeVar("T")
Listener = Callable[[str], None]


class AgentCore:
    """Owns the vault handle, the unlock state and the idle auto-lock timer."""

    def __init__(self, vault_path: Path, idle_lock_seconds: float) -> None:
        self.vault_path = vault_path
        self.idle_lock_seconds = idle_lock_seconds
        # "--idle-lock" or the env var that set it: the settings page may not change it then
        self.idle_lock_fixed_by = ""
        self._vault: Vault | None = None
        self._mutex = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._idle_task: asyncio.Task[None] | None = None  # the last idle lock started
        self._listeners: list[Listener] = []
        self.started_at = time.time()
        self.imports = ImportStaging()  # socket imports in batches (see staging.py)

    # ------------------------------------------------------------- state

    @property
    def is_unlocked(self) -> bool:
        """True while the vault key is in memory."""
        return self._vault is not None and self._vault.is_unlocked

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` on ``"unlocked"``, ``"locked"``, ``"changed"``."""
        self._listeners.append(listener)

    def _emit(self, event: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a UI callback must never break the agent
                log.exception("listener failed on %s", event)

    def touch(self) -> None:
        """Activity: push the idle auto-lock back by ``idle_lock_seconds``."""
        if not self.is_unlocked or self.idle_lock_seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        self._deadline = loop.time() + self.idle_lock_seconds
        if self._timer is None:
            self._timer = loop.call_at(self._deadline, self._on_timer)

    def set_idle_lock(self, seconds: float) -> None:
        """Change the idle auto-lock delay now (settings page), counted from this moment.

        The running timer is dropped and, when unlocked, armed again with the
        new delay (none for ``0``), so a shorter time applies at once rather
        than after the old deadline.
        """
        self.idle_lock_seconds = seconds
        self._cancel_timer()
        self.touch()

    def _on_timer(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            return
        if loop.time() < self._deadline:  # touched since: sleep until the new deadline
            self._timer = loop.call_at(self._deadline, self._on_timer)
            return
        self._idle_task = loop.create_task(self._lock_if_idle())

    async def _lock_if_idle(self) -> None:
        """The idle lock, decided again under the mutex.

        The timer fires at the deadline, but an operation may hold the mutex
        then; when it ends, its :meth:`touch` moves the deadline. Checking only
        before waiting for the mutex would lock the vault right after that
        activity, so the deadline is read again once the mutex is ours.
        """
        async with self._mutex:
            loop = asyncio.get_running_loop()
            if self._deadline is None:  # locked (or the timer cancelled) meanwhile
                return
            if loop.time() < self._deadline:  # touched while we waited: not idle
                if self._timer is None:
                    self._timer = loop.call_at(self._deadline, self._on_timer)
                return
            was = self._drop_key()
        if was:
            log.info("vault locked (idle)")
            self._emit("locked")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._deadline = None

    async def status(self, *, slots: bool = True) -> dict[str, Any]:
        """What the CLI's ``status`` and the UI show (no secrets; does not count as activity).

        The UI asks for this on every change, so it is cheap: once the file is
        open, the two small reads (a count and the slot rows, tens of
        microseconds) run on the event loop under the mutex instead of in a
        worker thread, because a thread hop waits for the GIL (up to
        ``sys.getswitchinterval()``, 5 ms) whenever the loop is busy, which is
        what the unlocked page waited for (issue 15). ``slots=False`` leaves
        the slot list out (the UI's snapshot does not show it).
        """
        exists = self.vault_path.exists()
        remaining = None
        if self.is_unlocked and self._deadline is not None:
            remaining = max(0.0, self._deadline - asyncio.get_running_loop().time())
        slot_list: list[dict[str, Any]] = []
        items = None
        error = None

        def read() -> tuple[list[dict[str, Any]], int]:
            vault = self._open_vault()
            listed = [_slot_dict(s) for s in vault.list_slots()] if slots else []
            return listed, vault.count_items()

        if exists:
            async with self._mutex:
                try:
                    if self._vault is None:  # the first open reads and may migrate: a thread
                        slot_list, items = await asyncio.to_thread(read)
                    else:
                        slot_list, items = read()
                except VaultNotFoundError:
                    exists = False
                except UnlatchError as exc:
                    error = str(exc)
        return {
            "pid": os.getpid(),
            "vault_path": str(self.vault_path),
            "vault_exists": exists,
            "unlocked": self.is_unlocked,
            "items": items,
            "slots": slot_list,
            "idle_lock_seconds": self.idle_lock_seconds,
            "locks_in_seconds": remaining,
            "error": error,
        }

    # --------------------------------------------------------- lock/unlock

    async def init_vault(self, password: str, kdf_params: KdfParams | None = None) -> None:
        """Create the vault (fails if one exists); it is left unlocked."""
        async with self._mutex:
            vault = await asyncio.to_thread(
                Vault.create, self.vault_path, password, kdf_params=kdf_params
            )
            if self._vault is not None:
                self._vault.close()
            self._vault = vault
        self.touch()
        self._emit("unlocked")

    async def unlock_with_password(self, password: str) -> None:
        """Unlock with the master password (:class:`WrongPasswordError` otherwise)."""
        await self._unlock(lambda v: v.unlock_with_password(password))

    async def unlock_with_slot(self, slot_id: str, kek: bytes) -> None:
        """Unlock with a KEK computed by the caller (phone share + local key, passkey PRF).

        Once the file is open this runs on the event loop, not in a worker
        thread: it is two small reads and an AES-GCM open (about 0.3 ms), and
        the thread hop cost two thread wake-ups, each a wait for a core and the
        GIL, which on a busy machine made most of the phone unlock's tail
        (issue 15, docs/deploy.md). The first open of the file (it may
        migrate) and a slot renewal (a write, rare: after a key rotation)
        still go to a thread.
        """
        async with self._mutex:
            vault = self._vault
            if vault is None:
                await asyncio.to_thread(lambda: self._open_vault().unlock_with_slot(slot_id, kek))
            else:
                opened = vault.open_slot(slot_id, kek)
                if opened.needs_write:
                    await asyncio.to_thread(vault.finish_slot_unlock, opened)
                else:
                    vault.finish_slot_unlock(opened)
        self.touch()
        self._emit("unlocked")

    async def _unlock(self, how: Callable[[Vault], None]) -> None:
        async with self._mutex:  # one thread hop: open (first time) and unlock
            await asyncio.to_thread(lambda: how(self._open_vault()))
        self.touch()
        self._emit("unlocked")

    async def lock(self, reason: str = "manual") -> bool:
        """Drop the key; returns whether the vault was unlocked."""
        async with self._mutex:
            was = self._drop_key()
        if was:
            log.info("vault locked (%s)", reason)
            self._emit("locked")
        return was

    def _drop_key(self) -> bool:
        """Lock the vault and stop the idle timer (caller holds the mutex)."""
        was = self.is_unlocked
        if self._vault is not None:
            self._vault.lock()
        self.imports.clear()
        self._cancel_timer()
        return was

    async def close(self) -> None:
        """Lock and close the file (agent shutdown)."""
        await self.lock(reason="stop")
        async with self._mutex:
            if self._vault is not None:
                self._vault.close()
                self._vault = None

    # -------------------------------------------------------------- items

    async def with_vault(
        self, fn: Callable[[Vault], T], *, changes: bool = False, activity: bool = True
    ) -> T:
        """Run ``fn(vault)`` in a worker thread on the unlocked vault; counts as activity.

        The extension point for later features (pairing, passkeys) that need
        an operation not listed here. ``activity=False`` is for reads a page
        repeats on its own (the one-time code it refreshes every period): they
        must not keep an idle vault unlocked for ever.
        """
        async with self._mutex:
            vault = self._vault
            if vault is None and not self.vault_path.exists():
                raise NoVaultError()
            if vault is None or not vault.is_unlocked:
                raise VaultLockedError()
            result = await asyncio.to_thread(fn, vault)
        if activity:
            self.touch()
        if changes:
            self._emit("changed")
        return result

    async def add_item(self, item: Item) -> Item:
        """Store a new item."""
        return await self.with_vault(lambda v: v.add_item(item), changes=True)

    async def get_item(self, ref: str) -> Item:
        """The item with this id or (unique) title."""
        return await self.with_vault(lambda v: v.find(ref))

    async def update_item(self, ref: str, changes: Mapping[str, Any]) -> Item:
        """Edit the item with this id or title."""
        return await self.with_vault(lambda v: v.update_item(v.find(ref).id, changes), changes=True)

    async def remove_item(self, ref: str) -> Item:
        """Delete the item with this id or title; returns what was deleted."""

        def remove(v: Vault) -> Item:
            item = v.find(ref)
            v.delete_item(item.id)
            return item

        return await self.with_vault(remove, changes=True)

    async def search(self, query: str = "", tag: str | None = None) -> list[Item]:
        """Items matching ``query`` (title, username, URL, tag) and ``tag``."""
        return await self.with_vault(lambda v: v.search(query, tag))

    async def import_items(self, items: list[Item]) -> list[Item]:
        """Add ``items`` in one transaction: all land or none do (imports)."""
        return await self.with_vault(lambda v: v.add_items(items), changes=True)

    async def export_items(self) -> list[Item]:
        """Every item with its secrets (for an export file)."""
        return await self.with_vault(lambda v: v.items())

    async def change_password(
        self, old: str, new: str, kdf_params: KdfParams | None = None
    ) -> None:
        """Rewrap the master-password slot (works locked or unlocked)."""
        async with self._mutex:
            vault = await asyncio.to_thread(self._open_vault)
            await asyncio.to_thread(vault.change_password, old, new, kdf_params=kdf_params)
        self.touch()

    async def rotate_key(
        self, password: str, new_password: str | None = None, kdf_params: KdfParams | None = None
    ) -> Rotation:
        """Replace the vault key (:meth:`Vault.rotate_key`; works locked or unlocked).

        Under the mutex like every write, so no item write, idle lock or
        slot renewal interleaves with it; the held key becomes the new one.
        """
        async with self._mutex:
            vault = await asyncio.to_thread(self._open_vault)
            result = await asyncio.to_thread(
                vault.rotate_key, password, new_password, kdf_params=kdf_params
            )
        self.touch()
        self._emit("changed")
        return result

    # -------------------------------------------------------------- slots

    async def list_slots(self) -> list[SlotInfo]:
        """Every key slot (available while locked)."""
        async with self._mutex:
            vault = await asyncio.to_thread(self._open_vault)
            return await asyncio.to_thread(vault.list_slots)

    async def find_slots(self, kind: str) -> list[SlotInfo]:
        """The slots of one kind."""
        return [s for s in await self.list_slots() if s.kind == kind]

    async def add_slot(self, kind: str, label: str, kek: bytes, meta: SlotMeta) -> str:
        """Wrap the vault key under a new KEK (needs the vault unlocked)."""
        return await self.with_vault(lambda v: v.add_slot(kind, label, kek, meta), changes=True)

    async def rename_slot(self, slot_id: str, label: str) -> None:
        """Relabel a slot."""
        await self.with_vault(lambda v: v.rename_slot(slot_id, label), changes=True)

    async def remove_slot(self, slot_id: str) -> None:
        """Delete a slot (the last password slot is refused)."""
        await self.with_vault(lambda v: v.remove_slot(slot_id), changes=True)

    # ----------------------------------------------------------- internal

    def _open_vault(self) -> Vault:
        """Open the file on first use (runs in a worker thread under the mutex)."""
        if self._vault is None:
            if not self.vault_path.exists():
                raise NoVaultError()
            self._vault = Vault.open(self.vault_path)
        return self._vault


def _slot_dict(slot: SlotInfo) -> dict[str, Any]:
    return {
        "id": slot.id,
        "kind": slot.kind,
        "label": slot.label,
        "created_at": slot.created_at,
        "meta": dict(slot.meta),
        "renewal": slot.renewal,
    }
