"""The docs' copies of single-source facts equal a fresh generation (scripts/gen_docs.py).

docs/protocol.md's field tables and the phone app's layouts.json come from
the message layouts in unlatch/protocol/messages.py; docs/relay.md's error
table from unlatch/relay/errors.json; protocol.md's appendix A from
tests/vectors/*.json. Editing any copy by hand, or a source without
regenerating, fails here.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from unlatch.protocol import messages
from unlatch.protocol.encoding import decode_fields

ROOT = Path(__file__).resolve().parent.parent


def _gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["protocol.md", "relay.md", "layouts.json"])
def test_generated_copy_is_fresh(name: str) -> None:
    outputs = {path.name: (path, text) for path, text in _gen().outputs().items()}
    path, text = outputs[name]
    assert path.read_text(encoding="utf-8") == text, (
        f"{path.relative_to(ROOT)} differs from its source: run python scripts/gen_docs.py"
    )


def test_every_layout_has_its_table_in_protocol_md() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    for cls in messages.LAYOUTS:
        marker = f"<!-- generated: layout {cls.__name__} -->\n"
        assert marker + messages.layout_table(cls) in doc, cls.__name__


def test_layouts_name_every_field_of_their_message() -> None:
    """The layout is the one statement of a message's fields: no attribute is left out."""
    for cls in messages.LAYOUTS:
        if cls is messages.PushPlaintext:
            continue  # its request fields live in .params (checked by the vectors)
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        assert names == [f.name for f in cls.LAYOUT if f.kind != "padding"], cls.__name__


def test_appendix_values_are_the_vectors() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    pairing = json.loads((ROOT / "tests/vectors/pairing.json").read_text(encoding="utf-8"))
    unlock = json.loads((ROOT / "tests/vectors/unlock.json").read_text(encoding="utf-8"))
    scan = next(v for v in unlock["vectors"] if v["name"] == "scan_approve")
    # long hex values are wrapped over lines: join them for the search
    flat = "".join(line.strip() for line in doc.splitlines()).replace(" ", "").replace("=", "")
    for value in (
        pairing["intermediate"]["transcript_hash"],
        pairing["intermediate"]["verification_code"],
        pairing["messages"]["hello"],
        scan["messages"]["reply"],
        scan["intermediate"]["push_plaintext"],
    ):
        assert value in flat


def test_push_padding_is_a_length_prefixed_field() -> None:
    """What the spec says of the padding holds for the vector's plaintext (51 bytes in scan)."""
    unlock = json.loads((ROOT / "tests/vectors/unlock.json").read_text(encoding="utf-8"))
    for vector in unlock["vectors"]:
        plain = bytes.fromhex(vector["intermediate"]["push_plaintext"])
        fields = decode_fields(plain, messages.PushPlaintext.LAYOUT, "push")
        used = sum(2 + len(f) for f in fields[:-1]) + 2
        assert len(fields[-1]) == 128 - used
        assert len(fields[-1]) == (51 if vector["inputs"]["mode"] == 1 else 31)
