"""Vault commands: init, unlock, lock, status, add, list, get, edit, rm, generate, passwd,
rotate-key.

Each command talks to the agent (:mod:`unlatch.agent.client`), which holds
the unlocked key and is started on demand. Secrets are read from a hidden
prompt on a terminal, or from standard input (one per line) otherwise, never
from command-line arguments (visible in ``ps``).

``unlock`` is built to grow: each unlock path is a module-level function
(:func:`unlock_with_password` now; phone and passkey paths add theirs).
"""

from __future__ import annotations

import functools
import json
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from unlatch.agent import client
from unlatch.agent.client import AgentClient
from unlatch.agent.errors import AgentNotRunningError
from unlatch.cli import main
from unlatch.cli.ask import confirm_or_abort
from unlatch.cli.item_options import TYPE_PARAMS, apply_type_options, describe, with_type_options
from unlatch.errors import UnlatchError
from unlatch.vault import generator, totp
from unlatch.vault.errors import VaultExistsError, VaultLockedError
from unlatch.vault.items import ITEM_TYPES
from unlatch.vault.location import default_vault_path
from unlatch.vault.vault import MIN_ID_PREFIX

MAX_STDIN_LINE = 64 * 1024
FIELDS = ("title", "username", "password", "url", "urls", "notes", "tags", "totp", "id")


class InputError(UnlatchError):
    """Missing or unusable input on the command line or standard input."""

    exit_code = 2


# ------------------------------------------------------------------ input


def _stdin_is_terminal() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def read_stdin_line(what: str) -> str:
    """One line of standard input (the trailing newline removed), strictly UTF-8.

    Bytes are read and decoded here rather than through ``sys.stdin``'s text
    layer, whose ``surrogateescape`` handler would smuggle invalid bytes into
    the password as lone surrogates (they cannot be sent to the agent, and the
    same password typed elsewhere would never match). A line longer than
    :data:`MAX_STDIN_LINE` bytes is refused instead of being cut in two.
    """
    stream = sys.stdin
    if stream is None:
        raise InputError(f"expected {what} on standard input, but there is none")
    binary = getattr(stream, "buffer", None)
    raw = binary.readline(MAX_STDIN_LINE + 1) if binary is not None else None
    if raw is None:  # a text-only stream (embedding): check what it decoded
        text = stream.readline(MAX_STDIN_LINE + 1)
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{what} on standard input is not valid UTF-8 text") from None
    if not raw:
        raise InputError(f"expected {what} on standard input")
    line = raw.rstrip(b"\r\n")
    if len(line) > MAX_STDIN_LINE:
        raise InputError(f"{what} on standard input is longer than {MAX_STDIN_LINE} bytes")
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} on standard input is not valid UTF-8 text") from None


def read_secret(what: str, *, from_stdin: bool, confirm: bool = False) -> str:
    """A secret from stdin (``from_stdin``) or a hidden prompt."""
    if from_stdin:
        return read_stdin_line(what)
    if not _stdin_is_terminal():
        raise InputError(f"no terminal to ask for {what}: pipe it in with --password-stdin")
    return str(
        click.prompt(what[0].upper() + what[1:], hide_input=True, confirmation_prompt=confirm)
    )


def _kdf_args(memory_kib: int | None, time_cost: int | None) -> dict[str, Any]:
    if memory_kib is None and time_cost is None:
        return {}
    if memory_kib is None or time_cost is None:
        raise InputError("--kdf-memory-kib and --kdf-time go together")
    return {"kdf": {"memory_kib": memory_kib, "time_cost": time_cost}}


def _agent() -> AgentClient:
    return client.connect(start=True)


def _require_unlocked(agent: AgentClient) -> None:
    """Fail before prompting for anything when the vault is locked."""
    info = agent.call("status")
    if not info["vault_exists"]:
        raise InputError("no vault yet: run `unlatch init`")
    if not info["unlocked"]:
        raise VaultLockedError()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


kdf_options = [
    click.option("--kdf-memory-kib", type=int, hidden=True, help="Argon2id memory (KiB)."),
    click.option("--kdf-time", type=int, hidden=True, help="Argon2id iterations."),
]


def _with_kdf_options(f: Any) -> Any:
    for option in reversed(kdf_options):
        f = option(f)
    return f


# ------------------------------------------------------------------ init / lock


@main.command()
@click.option("--password-stdin", is_flag=True, help="Read the master password from stdin.")
@_with_kdf_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def init(
    password_stdin: bool, kdf_memory_kib: int | None, kdf_time: int | None, as_json: bool
) -> None:
    """Create the vault and set its master password (the vault stays unlocked).

    Argon2id is calibrated on this machine to about 0.5 s and at least 64 MiB.
    The master password is your recovery path: phones and passkeys added later
    are extra ways in, never a replacement.

    \b
    Examples:
      unlatch init
      printf '%s\\n' "$PASSWORD" | unlatch init --password-stdin
    """
    kdf = _kdf_args(kdf_memory_kib, kdf_time)
    path = default_vault_path()
    if path.exists():
        raise VaultExistsError(f"a vault already exists at {path}")
    password = read_secret("new master password", from_stdin=password_stdin, confirm=True)
    with _agent() as agent:
        info = agent.call("init", password=password, **kdf)
    (slot,) = [s for s in info["slots"] if s["kind"] == "password"]
    meta = slot["meta"]
    if as_json:
        _echo_json({"vault_path": info["vault_path"], "unlocked": True, "kdf": meta})
        return
    click.echo(f"vault created at {info['vault_path']} (unlocked)")
    click.echo(f"master password: Argon2id m={meta['m']} KiB, t={meta['t']}, p={meta['p']}")


def unlock_with_password(agent: AgentClient, *, password_stdin: bool) -> None:
    """The master-password unlock path."""
    password = read_secret("master password", from_stdin=password_stdin)
    agent.call("unlock", password=password)


@main.command()
@click.option("--password-stdin", is_flag=True, help="Read the master password from stdin.")
@click.option("--phone", "use_phone", is_flag=True, help="Unlock with a paired phone (QR).")
@click.option("--device", default=None, help="With --phone: which paired phone (id or name).")
@click.option("--relay", default=None, metavar="URL", help="With --phone: the relay URL.")
@click.option(
    "--qr-image",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --phone: also write the QR code to this PNG file.",
)
@click.option("--show-link", is_flag=True, help="With --phone: also print the QR's link.")
@click.option(
    "--number-matching/--scan",
    "number_matching",
    default=None,
    help="With --phone: approve from the phone's notification by picking the number shown"
    " here (only if the phone allows it for this desktop), or scan the QR (the default:"
    " the desktop's setting).",
)
def unlock(
    password_stdin: bool,
    use_phone: bool,
    device: str | None,
    relay: str | None,
    qr_image: Path | None,
    show_link: bool,
    number_matching: bool | None,
) -> None:
    """Unlock the vault (the agent keeps it unlocked until idle or `unlatch lock`).

    \b
    Examples:
      unlatch unlock
      unlatch unlock --password-stdin < password-file
      unlatch unlock --phone                 # scan the QR with your paired phone
      unlatch unlock --phone --number-matching   # pick the number on the phone
    """
    with _agent() as agent:
        info = agent.call("status")
        if not info["vault_exists"]:
            raise InputError("no vault yet: run `unlatch init`")
        if info["unlocked"]:
            click.echo("vault is already unlocked")
            return
        if use_phone:
            from unlatch.cli.desktop_commands import unlock_with_phone

            unlock_with_phone(
                agent,
                phone=device,
                relay=relay,
                qr_image=qr_image,
                show_link=show_link,
                number_matching=number_matching,
            )
        else:
            unlock_with_password(agent, password_stdin=password_stdin)
    click.echo("vault unlocked")


@main.command()
def lock() -> None:
    """Lock the vault now: the agent forgets the key.

    \b
    Example:
      unlatch lock
    """
    try:
        with client.connect(start=False) as agent:
            agent.call("lock")
    except AgentNotRunningError:
        pass
    click.echo("vault locked")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show whether the vault exists and is unlocked, and its unlock methods.

    Does not start the agent, and does not count as activity for auto-lock.

    \b
    Examples:
      unlatch status
      unlatch status --json | jq .unlocked
    """
    try:
        with client.connect(start=False) as agent:
            info = agent.call("status")
        info["agent_running"] = True
    except AgentNotRunningError:
        path = default_vault_path()
        info = {
            "agent_running": False,
            "vault_path": str(path),
            "vault_exists": path.exists(),
            "unlocked": False,
        }
    if as_json:
        _echo_json(info)
        return
    if not info["vault_exists"]:
        click.echo(f"no vault at {info['vault_path']}: run `unlatch init`")
        return
    items = info.get("items")
    click.echo(f"vault: {info['vault_path']}" + (f" ({items} items)" if items is not None else ""))
    if info.get("error"):
        click.echo(f"problem: {info['error']}")
    if info["unlocked"]:
        left = info.get("locks_in_seconds")
        suffix = f" (auto-lock in {_duration(left)})" if left is not None else ""
        click.echo(f"state: unlocked{suffix}")
    else:
        click.echo("state: locked")
    if info["agent_running"]:
        click.echo(f"agent: running (pid {info['pid']})")
        methods = [
            "master password" if s["kind"] == "password" else f"{s['kind']} {s['label']!r}"
            for s in info.get("slots", [])
        ]
        click.echo("unlock methods: " + ", ".join(methods))
    else:
        click.echo("agent: not running")


# ------------------------------------------------------------------ items


@dataclass(frozen=True)
class GeneratorSpec:
    """What ``generate`` and ``add/edit --generate`` were asked for (one set of options)."""

    length: int
    lower: bool
    upper: bool
    digits: bool
    symbols: bool
    passphrase: bool
    words: int
    separator: str
    given: tuple[str, ...]  # the options set on the command line, e.g. ("--length",)

    def generate(self) -> generator.Generated:
        """A fresh password or passphrase as specified."""
        if self.passphrase:
            return generator.generate_passphrase(self.words, self.separator)
        return generator.generate_password(
            self.length,
            lower=self.lower,
            upper=self.upper,
            digits=self.digits,
            symbols=self.symbols,
        )


# One definition for `generate` and for `add`/`edit --generate`, so an item's
# generated password can be shaped exactly like a printed one.
generator_options = [
    click.option(
        "--length",
        "-l",
        type=int,
        default=generator.DEFAULT_LENGTH,
        show_default=True,
        help="Password length.",
    ),
    click.option("--no-lower", is_flag=True, help="No lowercase letters."),
    click.option("--no-upper", is_flag=True, help="No uppercase letters."),
    click.option("--no-digits", is_flag=True, help="No digits."),
    click.option("--no-symbols", is_flag=True, help="No symbols."),
    click.option("--passphrase", is_flag=True, help="Words instead of characters."),
    click.option(
        "--words",
        type=int,
        default=generator.DEFAULT_WORDS,
        show_default=True,
        help="Words in a passphrase.",
    ),
    click.option("--separator", default="-", show_default=True, help="Between passphrase words."),
]
_GENERATOR_PARAMS = (
    "length",
    "no_lower",
    "no_upper",
    "no_digits",
    "no_symbols",
    "passphrase",
    "words",
    "separator",
)


def _with_generator_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add :data:`generator_options` to a command; it receives them as ``spec``."""

    @functools.wraps(f)
    def wrapper(**kwargs: Any) -> Any:
        ctx = click.get_current_context()
        given = tuple(
            "--" + name.replace("_", "-")
            for name in _GENERATOR_PARAMS
            if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)
        )
        v = {name: kwargs.pop(name) for name in _GENERATOR_PARAMS}
        kwargs["spec"] = GeneratorSpec(
            length=v["length"],
            lower=not v["no_lower"],
            upper=not v["no_upper"],
            digits=not v["no_digits"],
            symbols=not v["no_symbols"],
            passphrase=v["passphrase"],
            words=v["words"],
            separator=v["separator"],
            given=given,
        )
        return f(**kwargs)

    for option in reversed(generator_options):
        wrapper = option(wrapper)
    return wrapper


def _check_generator_use(generate: bool, spec: GeneratorSpec) -> None:
    """Refuse generator options without --generate rather than silently ignore them."""
    if spec.given and not generate:
        raise InputError(f"{', '.join(spec.given)}: use together with --generate")


def _item_password(*, generate: bool, spec: GeneratorSpec) -> str:
    if generate:
        g = spec.generate()
        kind = "passphrase" if spec.passphrase else "password"
        click.echo(f"generated a {g.entropy_bits:.0f}-bit {kind}", err=True)
        return g.value
    if _stdin_is_terminal():
        return str(
            click.prompt(
                "Password for the item",
                hide_input=True,
                confirmation_prompt=True,
                default="",
                show_default=False,
            )
        )
    return read_stdin_line("the item's password")


def _secret_value(what: str) -> str:
    """One secret field value: a hidden prompt on a terminal, else the next stdin line."""
    if _stdin_is_terminal():
        return str(click.prompt(what[0].upper() + what[1:], hide_input=True))
    return read_stdin_line(what)


def _totp_secret() -> str:
    if _stdin_is_terminal():
        secret = str(click.prompt("TOTP secret (base32 or otpauth:// URI)", hide_input=True))
    else:
        secret = read_stdin_line("the TOTP secret")
    totp.parse(secret)
    return secret


@main.command()
@click.argument("title")
@click.option("--username", "-u", default="", help="Login name.")
@click.option("--url", "urls", multiple=True, help="Site address (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.option("--notes", default="", help="Free text.")
@click.option(
    "--totp",
    "with_totp",
    is_flag=True,
    help="Also store a TOTP secret (prompted, or the next stdin line).",
)
@click.option("--generate", is_flag=True, help="Generate the password (options below).")
@_with_generator_options
@with_type_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def add(
    title: str,
    username: str,
    urls: tuple[str, ...],
    tags: tuple[str, ...],
    notes: str,
    with_totp: bool,
    generate: bool,
    spec: GeneratorSpec,
    as_json: bool,
    **type_opts: Any,
) -> None:
    """Add an item: a login (the default), a note, a card, an identity or an SSH key.

    A login's (or SSH key's passphrase) password comes from a prompt, stdin,
    or --generate. When stdin is not a terminal its lines are read in order:
    the password (logins and SSH keys, unless --generate), the TOTP secret
    (--totp), then each --secret and --hidden-field value.
    Put -- before a TITLE that starts with - (otherwise it reads as options).

    \b
    Examples:
      unlatch add github -u alice --url https://github.com --generate
      unlatch add bank --generate --length 16 --no-symbols
      printf 'hunter2\\n' | unlatch add forum -u bob
      unlatch add bank --tag money --totp
      unlatch add --generate -- -dash-title
      unlatch add "wifi at home" --type note --notes "router in the hall" --favorite
      printf '4111111111111111\\n123\\n' | unlatch add visa --type card \\
          --set cardholder="A. Person" --set exp_month=12 --set exp_year=2030 \\
          --secret number --secret code
      unlatch add "deploy key" --type ssh_key --secret-file private_key=key.pem --generate
    """
    _check_generator_use(generate, spec)
    item_type = type_opts["item_type"] or "login"
    with _agent() as agent:
        _require_unlocked(agent)
        same = [
            i["id"]
            for i in agent.call("search", query=title)
            if i["title"].casefold() == title.casefold()
        ]
        password = ""
        if generate or item_type in ("login", "ssh_key"):
            password = _item_password(generate=generate, spec=spec)
        secret = _totp_secret() if with_totp else ""
        item: dict[str, Any] = {
            "title": title,
            "username": username,
            "password": password,
            "urls": list(urls),
            "notes": notes,
            "tags": list(tags),
            "totp_secret": secret,
            "type": item_type,
        }
        apply_type_options(item, type_opts, _secret_value)
        added = agent.call("add", item=item)
    if same:
        # Still added (two logins on one site are real), but the title alone no longer
        # names one item: say so now rather than at the next `get`.
        ids = ", ".join(i[:8] for i in [*same, added["id"]])
        click.echo(
            f"warning: {len(same) + 1} items are now titled {title!r} (any case); name them "
            f"by id or its first {MIN_ID_PREFIX}+ characters: {ids}",
            err=True,
        )
    if as_json:
        _echo_json(added)
    else:
        click.echo(f"added {added['title']!r} ({added['id']})")


@main.command("list")
@click.argument("query", required=False, default="")
@click.option("--tag", default=None, help="Only items with this tag.")
@click.option(
    "--type",
    "item_type",
    type=click.Choice(ITEM_TYPES),
    default=None,
    help="Only items of this type.",
)
@click.option("--favorites", is_flag=True, help="Only favourites.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (no secrets).")
def list_items(
    query: str, tag: str | None, item_type: str | None, favorites: bool, as_json: bool
) -> None:
    """List items, optionally only those matching QUERY (title, username, URL, tag,
    custom field). Favourites start with "* "; types other than login are named.

    \b
    Examples:
      unlatch list
      unlatch list github
      unlatch list --tag work --json
      unlatch list --type card
      unlatch list --favorites
    """
    filters: dict[str, Any] = {"type": item_type} if item_type else {}
    if favorites:
        filters["favorite"] = True
    with _agent() as agent:
        found = agent.call("search", query=query, tag=tag, **filters)
    if as_json:
        _echo_json(found)
        return
    if not found:
        click.echo("no items" + (f" matching {query!r}" if query else ""), err=True)
        return
    width = min(40, max(len(i["title"]) for i in found))
    for i in found:
        url = i["urls"][0] if i["urls"] else ""
        tags = " ".join(f"#{t}" for t in i["tags"])
        kind = "" if i.get("type", "login") == "login" else f"[{i['type']}] "
        star = "* " if i.get("favorite") else ""
        line = f"{star}{i['title']:<{width}}  {kind}{i['username']:<24}  {url}  {tags}"
        click.echo(line.rstrip())


def _field_value(item: dict[str, Any], field: str) -> str:
    if field not in FIELDS:
        if field in item.get("data", {}):
            return str(item["data"][field])
        for custom in item.get("fields", []):
            if custom["name"] == field:
                return str(custom["value"])
        raise InputError(
            f"{item['title']!r} has no field {field!r} (fields: {', '.join(FIELDS)}, "
            "the type's fields shown by `unlatch get`, or a custom field's name)"
        )
    if field == "totp":
        if not item["totp_secret"]:
            raise InputError(f"{item['title']!r} has no TOTP secret")
        return totp.current_code(item["totp_secret"])[0]
    if field == "url":
        return item["urls"][0] if item["urls"] else ""
    value = item[field]
    return "\n".join(value) if isinstance(value, list) else str(value)


@main.command()
@click.argument("ref", metavar="TITLE")
@click.option(
    "--field",
    "-f",
    default=None,
    help="Print only this field: password, username, url, totp (the current code), "
    "notes..., a type's field (number, private_key...) or a custom field's name.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (with secrets).")
def get(ref: str, field: str | None, as_json: bool) -> None:
    """Show an item, by title (any case) or id. The password is shown only with --field.

    Put -- before a TITLE that starts with - (otherwise it reads as options).

    \b
    Examples:
      unlatch get github
      unlatch get github --field password | xclip
      unlatch get bank --field totp
      unlatch get visa --field number
      unlatch get --field password -- -dash-title
    """
    with _agent() as agent:
        item = agent.call("get", ref=ref)
    code, valid = totp.current_code(item["totp_secret"]) if item["totp_secret"] else ("", 0)
    if field is not None:
        click.echo(_field_value(item, field))
        return
    if as_json:
        _echo_json({**item, "totp": {"code": code, "valid_seconds": valid} if code else None})
        return
    click.echo(f"title:    {item['title']}" + ("  (favourite)" if item.get("favorite") else ""))
    if item.get("type", "login") != "login":
        click.echo(f"type:     {item['type']}")
    click.echo(f"username: {item['username']}")
    click.echo(
        f"password: {'********  (unlatch get ... --field password)' if item['password'] else ''}"
    )
    for url in item["urls"]:
        click.echo(f"url:      {url}")
    if item["tags"]:
        click.echo(f"tags:     {', '.join(item['tags'])}")
    if code:
        click.echo(f"totp:     {code}  (valid {valid} s)")
    for line in describe(item):
        click.echo(line)
    if item["notes"]:
        click.echo("notes:")
        for line in item["notes"].splitlines():
            click.echo(f"  {line}")
    click.echo(f"id:       {item['id']}  (version {item['version']})")


@main.command()
@click.argument("ref", metavar="TITLE")
@click.option("--title", "new_title", default=None, help="New title.")
@click.option("--username", "-u", default=None, help="New login name.")
@click.option("--url", "urls", multiple=True, help="Replace the URLs (repeatable).")
@click.option("--clear-urls", is_flag=True, help="Remove every URL.")
@click.option("--tag", "tags", multiple=True, help="Replace the tags (repeatable).")
@click.option("--clear-tags", is_flag=True, help="Remove every tag.")
@click.option("--notes", default=None, help='Replace the notes ("" clears them).')
@click.option(
    "--password",
    "new_password",
    is_flag=True,
    help="Set a new password (prompted, or the first stdin line).",
)
@click.option("--totp", "with_totp", is_flag=True, help="Set a new TOTP secret.")
@click.option("--clear-totp", is_flag=True, help="Remove the TOTP secret.")
@click.option("--generate", is_flag=True, help="Generate a new password (options below).")
@_with_generator_options
@with_type_options
@click.option(
    "--remove-field", "remove_fields", multiple=True, metavar="NAME", help="Remove a custom field."
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def edit(
    ref: str,
    new_title: str | None,
    username: str | None,
    urls: tuple[str, ...],
    clear_urls: bool,
    tags: tuple[str, ...],
    clear_tags: bool,
    notes: str | None,
    new_password: bool,
    with_totp: bool,
    clear_totp: bool,
    generate: bool,
    spec: GeneratorSpec,
    remove_fields: tuple[str, ...],
    as_json: bool,
    **type_opts: Any,
) -> None:
    """Change fields of an item (found by title or id).

    --field, --url-field and --hidden-field add a custom field or replace the
    one of the same name; --set and --secret change one of the type's fields
    (an empty --set value removes it).

    Put -- before a TITLE that starts with - (otherwise it reads as options).

    \b
    Examples:
      unlatch edit github --username alice2
      unlatch edit github --generate --length 32 --no-symbols
      unlatch edit github --clear-urls --clear-tags
      printf 'new-secret\\n' | unlatch edit forum --password
      unlatch edit github --url https://github.com --url https://gist.github.com
      unlatch edit --username bob -- -dash-title
      unlatch edit github --favorite --field team=core
      unlatch edit github --remove-field team
    """
    changes: dict[str, Any] = {}
    for name, value in (("title", new_title), ("username", username), ("notes", notes)):
        if value is not None:
            changes[name] = value
    for setter, clearer in (
        (bool(urls) and "--url", clear_urls and "--clear-urls"),
        (bool(tags) and "--tag", clear_tags and "--clear-tags"),
        (with_totp and "--totp", clear_totp and "--clear-totp"),
    ):
        if setter and clearer:
            raise InputError(f"{setter} and {clearer} contradict each other")
    if urls or clear_urls:
        changes["urls"] = list(urls)
    if tags or clear_tags:
        changes["tags"] = list(tags)
    _check_generator_use(generate, spec)
    with _agent() as agent:
        _require_unlocked(agent)
        if generate or new_password:
            changes["password"] = _item_password(generate=generate, spec=spec)
        if with_totp:
            changes["totp_secret"] = _totp_secret()
        if clear_totp:
            changes["totp_secret"] = ""
        if remove_fields or any(type_opts[name] not in (None, ()) for name in TYPE_PARAMS):
            current = agent.call("get", ref=ref)
            current["fields"] = [f for f in current["fields"] if f["name"] not in remove_fields]
            apply_type_options(current, type_opts, _secret_value)
            for name in ("type", "favorite", "fields", "data"):
                changes[name] = current[name]
        if not changes:
            raise InputError("nothing to change: see `unlatch edit --help`")
        edited = agent.call("edit", ref=ref, changes=changes)
    if as_json:
        _echo_json(edited)
    else:
        click.echo(f"updated {edited['title']!r} (version {edited['version']})")


@main.command()
@click.argument("ref", metavar="TITLE")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def rm(ref: str, yes: bool) -> None:
    """Delete an item (found by title or id). Asks first unless --yes.

    Put -- before a TITLE that starts with - (otherwise it reads as options).

    \b
    Examples:
      unlatch rm old-forum
      unlatch rm 3f2a --yes                # by id, or its first 4+ characters
      unlatch rm --yes -- -dash-title
    """
    with _agent() as agent:
        item = agent.call("get", ref=ref)
        confirm_or_abort(f"Delete {item['title']!r} ({item['id']})?", yes=yes)
        agent.call("remove", ref=item["id"])
    click.echo(f"deleted {item['title']!r}")


@main.command()
@_with_generator_options
@click.option("--json", "as_json", is_flag=True, help="Print value and entropy as JSON.")
def generate(spec: GeneratorSpec, as_json: bool) -> None:
    """Print a random password (or passphrase) and its entropy in bits (on stderr).

    Needs no vault. Each chosen character set appears at least once.

    \b
    Examples:
      unlatch generate
      unlatch generate --length 16 --no-symbols
      unlatch generate --passphrase --words 7
    """
    g = spec.generate()
    if as_json:
        _echo_json({"value": g.value, "entropy_bits": round(g.entropy_bits, 2)})
        return
    click.echo(g.value)
    click.echo(f"entropy: {g.entropy_bits:.1f} bits", err=True)


_yes_option = click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="With a key rotation: remove unlock methods it cannot renew without asking.",
)


@main.command()
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the current then the new password from stdin (two lines).",
)
@click.option(
    "--rotate-key",
    is_flag=True,
    help="Also replace the vault key (re-encrypts every item; see `unlatch rotate-key`).",
)
@_yes_option
@_with_kdf_options
def passwd(
    password_stdin: bool,
    rotate_key: bool,
    yes: bool,
    kdf_memory_kib: int | None,
    kdf_time: int | None,
) -> None:
    """Change the master password.

    Without --rotate-key only the password's key slot is rewrapped and the
    vault key stays: the old password still opens any copy of the vault file
    made before the change, and that copy's key decrypts the current file,
    items added later included. If the old password or a copy of the file
    may have leaked, use --rotate-key: a new vault key, every item
    re-encrypted, phones and passkeys kept (see `unlatch rotate-key --help`).

    \b
    Examples:
      unlatch passwd
      unlatch passwd --rotate-key
      printf '%s\\n%s\\n' "$OLD" "$NEW" | unlatch passwd --password-stdin
    """
    kdf = _kdf_args(kdf_memory_kib, kdf_time)
    with _agent() as agent:
        if rotate_key:
            _confirm_rotation_drops(agent, yes=yes)
        old = read_secret("current master password", from_stdin=password_stdin)
        new = read_secret("new master password", from_stdin=password_stdin, confirm=True)
        if not rotate_key:
            agent.call("passwd", old=old, new=new, **kdf)
            click.echo("master password changed")
            return
        done = agent.call("rotate_key", password=old, new=new, **kdf)
    click.echo("master password changed")
    _report_rotation(done)


@main.command("rotate-key")
@click.option("--password-stdin", is_flag=True, help="Read the master password from stdin.")
@_yes_option
@_with_kdf_options
def rotate_key_command(
    password_stdin: bool, yes: bool, kdf_memory_kib: int | None, kdf_time: int | None
) -> None:
    """Replace the vault key: the old key, and every old copy of the vault file, then
    open nothing in the current file.

    A new random vault key is made and every item re-encrypted under it, in
    one transaction (a crash leaves the old vault or the new one). The master
    password is asked for and stays the same (`unlatch passwd --rotate-key`
    changes it at the same time). Paired phones and passkeys keep working:
    each gets the new key sealed to its own renewal key and is rewrapped the
    next time it unlocks. One that has not unlocked the vault since unlatch
    learned key rotation cannot be renewed and is removed (you are asked
    first; pair the phone or add the passkey again afterwards).

    A phone or passkey you no longer trust is not cut off by a rotation:
    revoke or remove it first.

    \b
    Examples:
      unlatch rotate-key
      printf '%s\\n' "$PASSWORD" | unlatch rotate-key --password-stdin --yes
    """
    kdf = _kdf_args(kdf_memory_kib, kdf_time)
    with _agent() as agent:
        _confirm_rotation_drops(agent, yes=yes)
        password = read_secret("master password", from_stdin=password_stdin)
        done = agent.call("rotate_key", password=password, **kdf)
    _report_rotation(done)


def _slot_name(slot: dict[str, Any]) -> str:
    return (
        "master password"
        if slot["kind"] == "password" and slot["label"] == "master password"
        else f"{slot['kind']} {slot['label']!r}"
    )


def _confirm_rotation_drops(agent: AgentClient, *, yes: bool) -> None:
    """Name, before anything changes, the phones and passkeys a rotation will remove."""
    info = agent.call("status")
    if not info["vault_exists"]:
        raise InputError("no vault yet: run `unlatch init`")
    doomed = [s for s in info["slots"] if s["kind"] != "password" and s["renewal"] == "none"]
    if not doomed:
        return
    click.echo(
        "A key rotation cannot renew, and will remove: "
        + ", ".join(_slot_name(s) for s in doomed)
        + ". Each has not unlocked the vault since this version of unlatch; unlock with "
        "it once first to keep it, or pair / add it again after the rotation.",
        err=True,
    )
    confirm_or_abort("Rotate the key and remove them?", yes=yes)


def _report_rotation(done: dict[str, Any]) -> None:
    click.echo(f"vault key rotated: {done['items']} item(s) re-encrypted under a new key")
    if done["renewing"]:
        click.echo(
            "kept, renewed the next time each unlocks: "
            + ", ".join(_slot_name(s) for s in done["renewing"])
        )
    for slot in done["dropped"]:
        if slot["kind"] == "phone":
            again = (
                f"revoke it (`unlatch devices revoke {shlex.quote(slot['label'])}`) "
                "and pair it again"
            )
        elif slot["kind"] == "passkey":
            again = "add the passkey again in the desktop app's Settings -> Passkeys"
        else:
            again = "add it again"
        click.echo(f"removed {_slot_name(slot)}: {slot['reason']}; {again}")
