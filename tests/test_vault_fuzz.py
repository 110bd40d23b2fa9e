"""Garbage in, typed error out: parsers of files and requests never crash."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unlatch.agent import wire
from unlatch.agent.errors import BadRequestError
from unlatch.vault import Vault, VaultError, totp
from unlatch.vault.errors import InvalidItemError
from unlatch.vault.items import decode
from unlatch.vault.localkeys import LocalKeyError, LocalKeyStore
from unlatch.vault.slots import InvalidSlotError, decode_meta

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.binary(max_size=2000))
def test_request_lines(line: bytes) -> None:
    try:
        op, args = wire.decode_request(line)
    except BadRequestError:
        return
    assert isinstance(op, str) and isinstance(args, dict)


@given(json_values)
def test_item_plaintexts(value: object) -> None:
    try:
        item = decode(json.dumps(value).encode(), "id", 1)
    except InvalidItemError:
        return
    assert isinstance(item.title, str)


@given(st.text(max_size=300) | json_values.map(json.dumps))
def test_slot_meta(text: str) -> None:
    try:
        meta = decode_meta(text)
    except InvalidSlotError:
        return
    assert isinstance(meta, dict)


@given(st.text(max_size=200))
def test_totp_secrets(text: str) -> None:
    try:
        totp.parse(text)
    except InvalidItemError:
        pass


# File and SQLite I/O: no per-example deadline (a loaded CI machine stalls on fsync).
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.booleans())
def test_vault_files(content: bytes, sqlite_magic: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.db"
        path.write_bytes((b"SQLite format 3\x00" if sqlite_magic else b"") + content)
        try:
            Vault.open(path).close()
        except VaultError:
            pass


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=500) | json_values.map(lambda v: json.dumps(v).encode()))
def test_local_key_files(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalKeyStore(Path(tmp) / "keys.json")
        store.path.write_bytes(content)
        try:
            store.refs()
        except LocalKeyError:
            pass
