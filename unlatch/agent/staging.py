"""Imports sent over the agent socket in batches, committed as one transaction.

One socket request is at most 256 KiB (:data:`unlatch.agent.wire.MAX_REQUEST`)
but an import may hold thousands of items, and it must land whole or not at
all. The CLI therefore opens an import (``import_begin`` -> token), sends the
items in batches (``import_add``) and commits (``import_commit``), which adds
every staged item in one vault transaction. Staged items live only in the
agent's memory and are dropped when the vault locks.
"""

from __future__ import annotations

from collections import OrderedDict

from unlatch.agent.errors import BadRequestError
from unlatch.vault import crypto
from unlatch.vault.items import Item
from unlatch.vault.transfer.base import MAX_ENTRIES

MAX_PENDING = 4


class ImportStaging:
    """Pending imports by random token (at most :data:`MAX_PENDING`, oldest dropped)."""

    def __init__(self) -> None:
        self._pending: OrderedDict[str, list[Item]] = OrderedDict()

    def begin(self) -> str:
        """A new pending import; returns its token."""
        token = crypto.random_bytes(16).hex()
        self._pending[token] = []
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return token

    def add(self, token: str, items: list[Item]) -> int:
        """Stage a batch; returns how many items the import holds now."""
        staged = self._pending.get(token)
        if staged is None:
            raise BadRequestError("no such import (the vault locked, or it was committed)")
        if len(staged) + len(items) > MAX_ENTRIES:
            raise BadRequestError(f"an import holds at most {MAX_ENTRIES} items")
        staged.extend(items)
        return len(staged)

    def take(self, token: str) -> list[Item]:
        """The staged items, ending the pending import."""
        staged = self._pending.pop(token, None)
        if staged is None:
            raise BadRequestError("no such import (the vault locked, or it was committed)")
        return staged

    def clear(self) -> None:
        """Forget every pending import (on lock: staged items hold secrets)."""
        self._pending.clear()
