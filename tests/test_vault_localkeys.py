"""Desktop-local secrets (K_L) for phone slots."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from unlatch.vault import localkeys
from unlatch.vault.localkeys import LocalKeyError, LocalKeyNotFoundError, LocalKeyStore


def test_create_get_delete_in_the_desktop_dir(unlatch_home: Path) -> None:
    secret = localkeys.create_local_secret("slot-1")
    assert len(secret) == 32
    assert localkeys.get_local_secret("slot-1") == secret
    path = unlatch_home / "desktop" / localkeys.FILE_NAME
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    other = localkeys.create_local_secret("slot-2")
    assert other != secret
    with pytest.raises(LocalKeyError, match="already exists"):
        localkeys.create_local_secret("slot-1")
    assert localkeys.delete_local_secret("slot-1") is True
    assert localkeys.delete_local_secret("slot-1") is False
    with pytest.raises(LocalKeyNotFoundError, match="revoked"):
        localkeys.get_local_secret("slot-1")
    assert LocalKeyStore().refs() == ["slot-2"]
    assert localkeys.get_local_secret("slot-2") == other


def test_damaged_or_hostile_files_give_clear_errors(tmp_path: Path) -> None:
    store = LocalKeyStore(tmp_path / "keys.json")
    for content in (
        b"not json",
        b'{"version": 2, "keys": {}}',
        b'{"version": 1, "keys": []}',
        b'{"version": 1, "keys": {"a": "c2hvcnQ="}}',
        b"x" * (2 * 1024 * 1024),
    ):
        store.path.write_bytes(content)
        with pytest.raises(LocalKeyError):
            store.get("a")
    with pytest.raises(LocalKeyError, match="slot reference"):
        store.get("../etc/passwd")


def test_writes_are_atomic_no_temp_files_left(tmp_path: Path) -> None:
    store = LocalKeyStore(tmp_path / "keys.json")
    for i in range(20):
        store.create(f"s{i}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keys.json", "keys.json.lock"]
    assert len(store.refs()) == 20
