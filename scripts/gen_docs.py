"""Regenerate what the docs copy from a single source: ``python scripts/gen_docs.py``.

* docs/protocol.md field tables: from the message layouts (unlatch/protocol/messages.py);
* web/phone/src/protocol/layouts.json: the same layouts for the phone app;
* docs/relay.md's error table: from unlatch/relay/errors.json;
* docs/relay.md's channel-socket state table: from unlatch/relay/waiter.py;
* docs/protocol.md appendix A: a worked pairing and unlock, every value from
  tests/vectors/*.json.

Each generated part of a Markdown file sits between ``<!-- generated: NAME -->``
and ``<!-- /generated -->``. ``--check`` writes nothing and exits 1 when a file
differs; tests/test_docs_generated.py runs the same comparison.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from unlatch.protocol.messages import LAYOUTS, layout_table, layouts_json  # noqa: E402
from unlatch.relay.errors import markdown_table  # noqa: E402
from unlatch.relay.waiter import ChannelWaiter  # noqa: E402

VECTORS = ROOT / "tests" / "vectors"
SECTION = re.compile(r"(<!-- generated: ([^>]+?) -->\n)(.*?)(<!-- /generated -->)", re.S)


def _hexblock(rows: list[tuple[str, Any]]) -> str:
    """``name = value`` lines in a code block; bytes as hex, long hex wrapped at 64 digits."""
    width = max(len(name) for name, _ in rows)
    out = ["```"]
    for name, value in rows:
        text = str(value)
        if re.fullmatch(r"(?:[0-9a-f]{2})+", text) and len(text) > 64:
            parts = [text[i : i + 64] for i in range(0, len(text), 64)]
            out.append(f"{name:<{width}} = {parts[0]}")
            out.extend(" " * (width + 3) + p for p in parts[1:])
        else:
            out.append(f"{name:<{width}} = {text}")
    out.append("```")
    return "\n".join(out)


def appendix_pairing() -> str:
    v = json.loads((VECTORS / "pairing.json").read_text(encoding="utf-8"))
    i, m, d = v["intermediate"], v["messages"], v["draws"]
    inp = v["inputs"]
    hp = i["hello_hpke"]
    return "\n\n".join(
        [
            "Inputs (the random draws are in the order an implementation makes them):",
            _hexblock(
                [
                    ("desktop identity seed", d["identities"][0]),
                    ("phone identity seed", d["identities"][1]),
                    ("desktop_sk", i["desktop_sk"]),
                    ("desktop_pk", i["desktop_pk"]),
                    ("phone_sk", i["phone_sk"]),
                    ("phone_pk", i["phone_pk"]),
                    ("relay_url", inp["relay_url"]),
                    ("now (offer)", inp["now_offer"]),
                    ("pairing ttl", inp["pairing_ttl"]),
                    ("desktop_name", inp["desktop_name"]),
                    ("desktop_device_id", inp["desktop_device_id"]),
                    ("phone_name", inp["phone_name"]),
                    ("phone_device_id", inp["phone_device_id"]),
                ]
            ),
            "**A.1 Offer (5.1).** Draws: `channel_id` (16), then `S` (32).",
            _hexblock(
                [
                    ("channel_id", d["offer"][0]),
                    ("pairing_secret S", d["offer"][1]),
                    ("offer", m["offer"]),
                    ("app link", m["offer_link"]),
                    ("bare link", m["offer_bare"]),
                ]
            ),
            "**A.2 Hello (5.2).** Draw: the HPKE ephemeral seed (32), `skE = DeriveKeyPair(seed)`.",
            _hexblock(
                [
                    ("ephemeral seed", d["hello"][0]),
                    ("skEm", hp["skEm"]),
                    ("psk", i["pairing_psk"]),
                    ("psk_id", i["pairing_psk_id"]),
                    ("info", i["hello_info"]),
                    ("aad", i["hello_aad"]),
                    ("plaintext", i["hello_plaintext"]),
                    ("shared_secret", hp["shared_secret"]),
                    ("key_schedule_context", hp["key_schedule_context"]),
                    ("secret", hp["secret"]),
                    ("key", hp["key"]),
                    ("base_nonce", hp["base_nonce"]),
                    ("exporter_secret", hp["exporter_secret"]),
                    ("hello", m["hello"]),
                ]
            ),
            "**A.3 Transcript, root, verification code (5.2).** `hello_message_bytes` "
            "is the whole `hello` above, header included.",
            _hexblock(
                [
                    ("transcript_hash TH", i["transcript_hash"]),
                    ("exporter context", i["root_export_context"]),
                    ("root", i["pairing_root"]),
                    ("verification code", i["verification_code"]),
                ]
            ),
            "**A.4 Accept (5.3).** Draw: `K_P` (32).",
            _hexblock(
                [
                    ("K_P", d["accept"][0]),
                    ("k_acc", i["accept_key"]),
                    ("aad", i["accept_aad"]),
                    ("plaintext", i["accept_plaintext"]),
                    ("accept", m["accept"]),
                ]
            ),
            "**A.5 Pairing keys (5.4).**",
            _hexblock(list(i["pairing_keys"].items())),
        ]
    )


def appendix_unlock() -> str:
    u = json.loads((VECTORS / "unlock.json").read_text(encoding="utf-8"))
    v = next(x for x in u["vectors"] if x["name"] == "scan_approve")
    i, m, d, inp = v["intermediate"], v["messages"], v["draws"], v["inputs"]
    rh = i["reply_hpke"]
    return "\n\n".join(
        [
            f"The pairing of A.1–A.5; mode {inp['mode']} (scan), ttl {inp['ttl']}, "
            f"`created_at` = {inp['now_request']}.",
            "**A.6 Request (6.1).** Draws, in order: the ephemeral seed (32), `request_id` "
            "(16), `Q` (16), the push nonce (12).",
            _hexblock(
                [
                    ("ephemeral seed", d["request"][0]),
                    ("request_id", d["request"][1]),
                    ("qr_secret Q", d["request"][2]),
                    ("push nonce", d["request"][3]),
                    ("ephemeral_sk", i["ephemeral_sk"]),
                    ("ephemeral_pk", i["ephemeral_pk"]),
                ]
            ),
            "**A.7 UnlockQR (6.2).**",
            _hexblock(
                [
                    ("mac input", i["qr_mac_input"]),
                    ("qr", m["qr"]),
                    ("app link", m["qr_link"]),
                    ("bare link", m["qr_bare"]),
                ]
            ),
            f"**A.8 UnlockPush (6.3).** The plaintext is {i['push_plaintext_len']} bytes; "
            "its last field is the padding, length-prefixed like the others.",
            _hexblock(
                [
                    ("push plaintext", i["push_plaintext"]),
                    ("aad", i["push_aad"]),
                    ("push", m["push"]),
                ]
            ),
            "**A.9 UnlockSeen (6.4).**",
            _hexblock([("mac input", i["seen_mac_input"]), ("seen", m["seen"])]),
            "**A.10 UnlockReply (6.5).** Draw: the HPKE ephemeral seed (32).",
            _hexblock(
                [
                    ("ephemeral seed", d["reply"][0]),
                    ("skEm", rh["skEm"]),
                    ("psk", i["unlock_psk"]),
                    ("psk_id", i["unlock_psk_id"]),
                    ("info", i["reply_info"]),
                    ("aad", i["reply_aad"]),
                    ("plaintext", i["reply_plaintext"]),
                    ("shared_secret", rh["shared_secret"]),
                    ("key_schedule_context", rh["key_schedule_context"]),
                    ("secret", rh["secret"]),
                    ("key", rh["key"]),
                    ("base_nonce", rh["base_nonce"]),
                    ("reply", m["reply"]),
                ]
            ),
            f"The desktop opens it: verdict `{v['outcome']['verdict']}`, policy "
            f"{v['outcome']['policy']}, share `{v['outcome']['phone_share']}` (= `K_P`).",
        ]
    )


def sections() -> dict[str, Callable[[], str]]:
    """NAME -> the text between its markers."""
    out: dict[str, Callable[[], str]] = {
        "relay-errors": markdown_table,
        "channel-socket-table": ChannelWaiter.table_markdown,
        "appendix-pairing": appendix_pairing,
        "appendix-unlock": appendix_unlock,
    }
    for cls in LAYOUTS:
        out[f"layout {cls.__name__}"] = lambda cls=cls: layout_table(cls)  # type: ignore[misc]
    return out


def render(text: str) -> str:
    """``text`` with every generated section replaced by its fresh content."""
    gens = sections()

    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in gens:
            raise SystemExit(f"unknown generated section {name!r}")
        body = gens[name]().rstrip("\n") + "\n"
        return match.group(1) + body + match.group(4)

    return SECTION.sub(fill, text)


def outputs() -> dict[Path, str]:
    """Every generated file with the content it must have."""
    out = {ROOT / "web/phone/src/protocol/layouts.json": layouts_json()}
    for name in ("protocol.md", "relay.md"):
        path = ROOT / "docs" / name
        out[path] = render(path.read_text(encoding="utf-8"))
    return out


def main(argv: list[str]) -> int:
    stale = []
    for path, text in outputs().items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(path.relative_to(ROOT))
            if "--check" not in argv:
                path.write_text(text, encoding="utf-8")
    for path in stale:
        print(("stale: " if "--check" in argv else "wrote ") + str(path))
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
