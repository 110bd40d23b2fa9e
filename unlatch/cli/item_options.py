"""Command-line options for item types, custom fields and favourites (``add``/``edit``).

Non-secret values may be given as arguments (``--set cardholder="A. Person"``,
``--field team=core``); secret ones never are (they would show in ``ps``):
``--secret number`` and ``--hidden-field PIN`` ask with a hidden prompt or
read the next line of standard input, and ``--secret-file private_key=PATH``
reads a whole file (an SSH key). What each type holds is
:data:`unlatch.vault.items.TYPE_FIELDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from unlatch.vault.items import ITEM_TYPES, TYPE_FIELDS, DataField

MAX_SECRET_FILE = 64 * 1024

type_options = [
    click.option(
        "--type",
        "item_type",
        type=click.Choice(ITEM_TYPES),
        default=None,
        help="Item type (default for add: login).",
    ),
    click.option(
        "--set",
        "set_values",
        multiple=True,
        metavar="KEY=VALUE",
        help="A non-secret field of the type, e.g. cardholder=..., email=... (repeatable).",
    ),
    click.option(
        "--secret",
        "secret_keys",
        multiple=True,
        metavar="KEY",
        help="A secret field of the type (number, code, ssn...): prompted or next stdin line.",
    ),
    click.option(
        "--secret-file",
        "secret_files",
        multiple=True,
        metavar="KEY=PATH",
        help="A secret field read from a file, e.g. private_key=~/.ssh/id_ed25519.",
    ),
    click.option(
        "--field",
        "text_fields",
        multiple=True,
        metavar="NAME=VALUE",
        help="A custom text field (repeatable).",
    ),
    click.option(
        "--url-field",
        "url_fields",
        multiple=True,
        metavar="NAME=URL",
        help="A custom URL field (repeatable).",
    ),
    click.option(
        "--hidden-field",
        "hidden_fields",
        multiple=True,
        metavar="NAME",
        help="A custom hidden field: its value is prompted or read from the next stdin line.",
    ),
    click.option("--favorite/--no-favorite", default=None, help="Mark as a favourite (or not)."),
]
TYPE_PARAMS = (
    "item_type",
    "set_values",
    "secret_keys",
    "secret_files",
    "text_fields",
    "url_fields",
    "hidden_fields",
    "favorite",
)


def with_type_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add :data:`type_options` to a command."""
    for option in reversed(type_options):
        f = option(f)
    return f


def _pair(value: str, option: str) -> tuple[str, str]:
    key, sep, rest = value.partition("=")
    if not sep or not key.strip():
        raise click.BadParameter(f"{value[:40]!r}: expected NAME=VALUE", param_hint=option)
    return key.strip(), rest


def _spec(item_type: str, key: str, option: str) -> DataField:
    specs = {f.key: f for f in TYPE_FIELDS[item_type]}
    if key not in specs:
        known = ", ".join(specs) or "none"
        raise click.BadParameter(
            f"a {item_type} item has no field {key!r} (its fields: {known})", param_hint=option
        )
    return specs[key]


def apply_type_options(
    item: dict[str, Any], opts: dict[str, Any], read_secret: Callable[[str], str]
) -> bool:
    """Apply the options onto ``item`` (a full item dict); returns whether anything changed.

    ``read_secret(what)`` gets one secret value (hidden prompt or the next
    stdin line), called in the order the options were given.
    """
    changed = False
    if opts["item_type"] is not None:
        item["type"], changed = opts["item_type"], True
    item_type = item.get("type", "login")
    data = dict(item.get("data", {}))
    for raw in opts["set_values"]:
        key, value = _pair(raw, "--set")
        if _spec(item_type, key, "--set").secret:
            raise click.BadParameter(
                f"{key} is secret: use --secret {key} (arguments show in `ps`)", param_hint="--set"
            )
        data[key], changed = value, True
    for key in opts["secret_keys"]:
        spec = _spec(item_type, key, "--secret")
        data[key], changed = read_secret(spec.label.lower()), True
    for raw in opts["secret_files"]:
        key, path = _pair(raw, "--secret-file")
        _spec(item_type, key, "--secret-file")
        data[key], changed = _read_secret_file(Path(path).expanduser()), True
    item["data"] = {k: v for k, v in data.items() if v}
    fields = [dict(f) for f in item.get("fields", [])]
    new: list[tuple[str, str, str]] = []
    new += [(*_pair(raw, "--field"), "text") for raw in opts["text_fields"]]
    new += [(*_pair(raw, "--url-field"), "url") for raw in opts["url_fields"]]
    new += [
        (name, read_secret(f"the value of {name!r}"), "hidden") for name in opts["hidden_fields"]
    ]
    for name, value, kind in new:
        fields = [f for f in fields if f["name"] != name]
        fields.append({"name": name, "value": value, "kind": kind})
        changed = True
    item["fields"] = fields
    if opts["favorite"] is not None:
        item["favorite"], changed = opts["favorite"], True
    return changed


def _read_secret_file(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SECRET_FILE + 1)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_SECRET_FILE:
        raise click.BadParameter(f"{path} is larger than 64 KiB")
    try:
        return raw.decode("utf-8").rstrip("\n")
    except UnicodeDecodeError:
        raise click.BadParameter(f"{path} is not UTF-8 text") from None


def describe(item: dict[str, Any]) -> list[str]:
    """``get``'s lines for the type's fields and the custom fields (secrets masked)."""
    lines: list[str] = []
    specs = {f.key: f for f in TYPE_FIELDS.get(item.get("type", "login"), ())}
    for key, value in item.get("data", {}).items():
        spec = specs.get(key)
        label = spec.label if spec else key
        shown = f"********  (--field {key})" if spec is None or spec.secret else value
        if spec is not None and spec.multiline and not spec.secret:
            shown = value.splitlines()[0] + (" ..." if "\n" in value else "") if value else ""
        lines.append(f"{label}: {shown}")
    for f in item.get("fields", []):
        shown = f"********  (--field {f['name']!r})" if f["kind"] == "hidden" else f["value"]
        lines.append(f"{f['name']} ({f['kind']}): {shown}")
    return lines
