"""Items: add, edit, delete, read, search and find (by id, title or id prefix)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from unlatch.vault.errors import (
    AmbiguousItemError,
    InvalidItemError,
    ItemIntegrityError,
    ItemNotFoundError,
)
from unlatch.vault.file_core import (
    _ID_PREFIX,
    EDITABLE_FIELDS,
    MIN_ID_PREFIX,
    VaultFile,
    _new_id,
    _now,
)
from unlatch.vault.items import Item


class ItemOps(VaultFile):
    """The vault's items (each sealed on its own, authenticated by the manifest)."""

    # -------------------------------------------------------------------- items

    def add_item(self, item: Item) -> Item:
        """Store a new item (id, version and times assigned here); returns it."""
        key = self._require_key()
        now = _now()
        new = Item.from_dict(
            {**item.to_dict(), "id": _new_id(), "version": 1, "created_at": now, "updated_at": now}
        )
        new.validate()
        nonce, ct = self._seal_item(key, new)
        with self._item_txn(key):
            self._conn.execute(
                "INSERT INTO items (id, version, nonce, ciphertext) VALUES (?, ?, ?, ?)",
                (new.id, new.version, nonce, ct),
            )
        return new

    def add_items(self, new_items: Iterable[Item]) -> list[Item]:
        """Store many items in one transaction (imports): all land or none do."""
        key = self._require_key()
        now = _now()
        prepared: list[tuple[Item, bytes, bytes]] = []
        for item in new_items:
            new = Item.from_dict(
                {
                    **item.to_dict(),
                    "id": _new_id(),
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            new.validate()
            prepared.append((new, *self._seal_item(key, new)))
        with self._item_txn(key):
            self._conn.executemany(
                "INSERT INTO items (id, version, nonce, ciphertext) VALUES (?, ?, ?, ?)",
                [(i.id, i.version, nonce, ct) for i, nonce, ct in prepared],
            )
        return [i for i, _, _ in prepared]

    def update_item(self, item_id: str, changes: Mapping[str, Any]) -> Item:
        """Apply ``changes`` (a subset of :data:`EDITABLE_FIELDS`); bumps the version."""
        key = self._require_key()
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise InvalidItemError(f"unknown item field(s): {', '.join(sorted(unknown))}")
        with self._item_txn(key):
            current = self._load_item(key, item_id)
            data = {**current.to_dict(), **changes}
            data.update(version=current.version + 1, updated_at=max(_now(), current.updated_at))
            new = Item.from_dict(data)
            new.validate()
            nonce, ct = self._seal_item(key, new)
            self._conn.execute(
                "UPDATE items SET version = ?, nonce = ?, ciphertext = ? WHERE id = ?",
                (new.version, nonce, ct, new.id),
            )
        return new

    def delete_item(self, item_id: str) -> None:
        """Remove an item for good."""
        key = self._require_key()
        with self._item_txn(key):
            cur = self._conn.execute("DELETE FROM items WHERE id = ?", (item_id,))
            if cur.rowcount != 1:
                raise ItemNotFoundError(f"no item with id {item_id}")

    def get_item(self, item_id: str) -> Item:
        """One item by id, authenticated."""
        key = self._require_key()
        self._check_manifest(key)
        return self._load_item(key, item_id)

    def items(self) -> list[Item]:
        """Every item, decrypted and authenticated, sorted by title.

        Raises :class:`ItemIntegrityError` naming the damaged items rather
        than silently leaving them out.
        """
        return [i.copy() for i in self._all_items()]

    def search(self, query: str = "", tag: str | None = None) -> list[Item]:
        """Items whose title, username, URLs or tags contain ``query`` (case-insensitive).

        There is no plaintext index on disk, so this decrypts every item
        (cached in memory until :meth:`lock`); see bench/bench_vault.py.
        """
        found = [i for i in self._all_items() if not query or i.matches(query)]
        if tag is not None:
            wanted = tag.casefold()
            found = [i for i in found if wanted in (t.casefold() for t in i.tags)]
        return [i.copy() for i in found]

    def _all_items(self) -> list[Item]:
        """Authenticated items (shared cache objects: never hand these out uncopied).

        One read transaction (a consistent snapshot): ids and versions first,
        then ciphertexts only for items not already decrypted and cached.
        """
        key = self._require_key()
        self._conn.execute("BEGIN")
        try:
            rows = self._manifest_rows()
            self._check_manifest(key, rows)
            missing = [r for r in rows if (r[0], r[1]) not in self._cache]
            fetched: dict[Any, tuple[Any, Any, Any]] = {}
            if missing:
                fetched = {
                    r[0]: (r[1], r[2], r[3])
                    for r in self._conn.execute("SELECT id, version, nonce, ciphertext FROM items")
                }
        finally:
            self._conn.execute("COMMIT")
        result: list[Item] = []
        damaged: list[str] = []
        for item_id, version in rows:
            cached = self._cache.get((item_id, version))
            if cached is not None:
                result.append(cached)
                continue
            try:
                stored_version, nonce, ct = fetched[item_id]
                if stored_version != version:
                    raise ItemIntegrityError(f"item {item_id} changed during the read")
                result.append(self._decrypt_row(key, item_id, version, nonce, ct, copy=False))
            except (ItemIntegrityError, KeyError):
                damaged.append(str(item_id))
        if damaged:
            raise ItemIntegrityError(
                f"{len(damaged)} item(s) failed their integrity check (tampered or "
                f"damaged): {', '.join(sorted(damaged)[:5])}" + (" ..." if len(damaged) > 5 else "")
            )
        result.sort(key=lambda i: (i.title.casefold(), i.id))
        return result

    def find(self, title_or_id: str) -> Item:
        """The one item named by ``title_or_id``: first an exact id, then a title
        (any case), then a unique id prefix of :data:`MIN_ID_PREFIX`+ characters
        (ids are 32 hex digits: nobody types them whole, as with git commits)."""
        key = self._require_key()
        if self._conn.execute("SELECT 1 FROM items WHERE id = ?", (title_or_id,)).fetchone():
            return self.get_item(title_or_id)
        wanted = title_or_id.casefold()
        matches = [i.copy() for i in self._all_items() if i.title.casefold() == wanted]
        del key
        if not matches and _ID_PREFIX.fullmatch(title_or_id):
            prefix = title_or_id.lower()
            matches = [i.copy() for i in self._all_items() if i.id.startswith(prefix)]
            if len(matches) > 1:
                ids = ", ".join(i.id for i in matches[:5])
                raise AmbiguousItemError(
                    f"{len(matches)} items have ids starting with {title_or_id!r}; "
                    f"give more characters: {ids}"
                )
        if not matches:
            hint = "see `unlatch list`"
            if len(title_or_id) < MIN_ID_PREFIX:
                hint += f"; an id prefix needs at least {MIN_ID_PREFIX} characters"
            raise ItemNotFoundError(f"no item titled {title_or_id!r} ({hint})")
        if len(matches) > 1:
            ids = ", ".join(i.id for i in matches)
            raise AmbiguousItemError(
                f"{len(matches)} items are titled {title_or_id!r}; use an id instead: {ids}"
            )
        return matches[0]

    def count_items(self) -> int:
        """Number of items (no key needed: ids are not secret)."""
        (n,) = self._conn.execute("SELECT COUNT(*) FROM items").fetchone()
        return int(n)
