"""``unlatch phone ...``: the Python phone client on the command line.

Every command wraps :class:`unlatch.phone.PhoneClient`. Errors from the
relay, the protocol and the phone's storage are all
:class:`~unlatch.errors.UnlatchError`s, printed as one line with a non-zero
exit by the CLI group. Answers need an explicit ``approve``/``deny``: nothing
is ever approved automatically.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from unlatch.cli import ask, main
from unlatch.phone.client import (
    HOME_ENV,
    Answer,
    DesktopRemoved,
    Ignored,
    PairingAttempt,
    PhoneClient,
    RequestEnded,
)
from unlatch.phone.errors import UserDeclined
from unlatch.phone.requests import RequestView
from unlatch.phone.sealed import MIN_PIN_LEN, offline_guess_time
from unlatch.protocol.links import parse_link
from unlatch.protocol.messages import PairingOffer

PIN_ENV = "UNLATCH_PHONE_PIN"
T = TypeVar("T")


def _pin_prompt() -> str:
    """The PIN from $UNLATCH_PHONE_PIN (scripts) or a hidden prompt.

    A PIN shorter than new ones may be (set by an earlier version) still
    opens the state, with a warning that says what it costs to guess.
    """
    pin = os.environ.get(PIN_ENV) or str(click.prompt("PIN", hide_input=True, err=True))
    if len(pin.strip()) < MIN_PIN_LEN:
        click.echo(
            f"unlatch: warning: this PIN has {len(pin.strip())} characters: a copy of this "
            f"phone's files falls to an offline guess in about {offline_guess_time(pin.strip())} "
            f"on one core; choose one of at least {MIN_PIN_LEN} (`unlatch phone set-pin`)",
            err=True,
        )
    return pin


def _client(ctx: click.Context) -> PhoneClient:
    obj = ctx.find_object(dict) or {}
    home = obj.get("home")
    return PhoneClient(Path(home) if home else None, pin=_pin_prompt)


def _run(coro: Awaitable[T]) -> T:
    async def runner() -> T:
        return await coro

    try:
        return asyncio.run(runner())
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        sys.exit(130)


def _link(link: str | None, qr_image: Path | None) -> str:
    if (link is None) == (qr_image is None):
        raise click.UsageError("give either LINK or --qr-image PNG (exactly one)")
    if qr_image is not None:
        from unlatch.phone.qrimage import decode_qr_image  # Pillow + zxing-cpp only when needed

        return decode_qr_image(qr_image)
    assert link is not None
    if link == "-":
        return _link_from_stdin()
    return link


MAX_LINK = 8192


def _link_from_stdin() -> str:
    """``-``: the link from standard input (a paste, or a pipe), never from the command line.

    A link carries its secret in its #fragment; as an argument it would be in
    the process list, which every user of the machine can read
    (``/proc/PID/cmdline``). Read from stdin it is not.
    """
    if sys.stdin.isatty():
        text = click.prompt("Paste the link", err=True, show_default=False)
    else:
        text = sys.stdin.readline(MAX_LINK + 1)
    text = text.strip()
    if not text or len(text) > MAX_LINK:
        raise click.UsageError("no link on standard input (paste it, or pipe it in)")
    return text


def _emit(as_json: bool, obj: dict[str, Any], lines: list[str]) -> None:
    if as_json:
        click.echo(json.dumps(obj, ensure_ascii=False))
    else:
        for line in lines:
            click.echo(line)


@main.group("phone")
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    envvar=HOME_ENV,
    default=None,
    help=f"The phone's state directory (default: $UNLATCH_HOME/phone; env {HOME_ENV}).",
)
@click.pass_context
def phone_group(ctx: click.Context, home: str | None) -> None:
    """The Python phone client: pair with desktops and answer their unlock requests.

    \b
    Typical use:
      unlatch phone pair -                         # paste the pairing link
      unlatch phone listen                         # prints each unlock request
      unlatch phone approve --qr-image screen.png  # a picture of the QR
      unlatch phone deny LINK --not-me             # "I did not ask for this"

    Several phones can live on one machine: give each its own --home.
    With a PIN set (`unlatch phone set-pin`) every command asks for it
    ($UNLATCH_PHONE_PIN supplies it to scripts).
    """
    ctx.ensure_object(dict)["home"] = home


@phone_group.command("init")
@click.option("--name", default=None, help="What desktops will call this phone.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def init_command(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Create this phone's keys (done by `pair` if needed).

    \b
    Example:
      unlatch phone --home ~/.phone2 init --name "Test phone"
    """
    client = _client(ctx)
    state, created = client.init(name)
    info = {
        "name": state.name,
        "device_id": client.device_id,
        "home": str(client.home),
        "created": created,
    }
    verb = "Created" if created else "Already set up:"
    _emit(
        as_json,
        info,
        [f"{verb} phone “{state.name}” (relay id {client.device_id})", f"state in {client.home}"],
    )


@phone_group.command("pair")
@click.argument("link", required=False)
@click.option(
    "--qr-image",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A picture of the desktop's pairing QR code (PNG, JPEG).",
)
@click.option("--name", default=None, help="What this phone will call the desktop.")
@click.option("--phone-name", default=None, help="What the desktop will call this phone.")
@click.option(
    "--push-endpoint",
    default=None,
    metavar="URL",
    help="A UnifiedPush/ntfy endpoint the relay should wake this phone on.",
)
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds to wait for the desktop's confirmation.",
)
@click.option(
    "--allow-number-matching",
    is_flag=True,
    help="Let this desktop be approved from the notification by picking the number it "
    "shows (weaker than scanning; default: scan only).",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before contacting the relay.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON objects (code, then result).")
@click.pass_context
def pair_command(
    ctx: click.Context,
    link: str | None,
    qr_image: Path | None,
    name: str | None,
    phone_name: str | None,
    push_endpoint: str | None,
    timeout: float,
    allow_number_matching: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Pair with a desktop from its pairing QR (as a link or a picture).

    Prints a 6-digit code: check that the desktop shows the same one and
    confirm there. The phone then stores the pairing (sealed) and registers
    it on the relay. LINK "-" reads the link from standard input: a link
    given as an argument is in the process list, which other users of this
    machine can read, and its #fragment holds the pairing secret.

    \b
    Examples:
      unlatch phone pair -                 # then paste the link
      unlatch pair --show-link | unlatch phone pair - --yes   # both on one machine
      unlatch phone pair 'https://relay.example.org/app/#m=AQEC...'
      unlatch phone pair --qr-image pairing.png --name "Work laptop" --yes
    """
    text = _link(link, qr_image)
    client = _client(ctx)
    offer = PairingOffer.decode(parse_link(text))
    ask.confirm_or_abort(f"Pair with the desktop through the relay {offer.relay_url}?", yes=yes)

    def show_code(attempt: PairingAttempt) -> None:
        _emit(
            as_json,
            {
                "type": "code",
                "code": attempt.verification_code,
                "expires_at": attempt.expires_at,
                "relay_url": attempt.relay_url,
            },
            [
                f"Check that the desktop shows {attempt.display_code}",
                "then confirm on the desktop.",
            ],
        )

    async def go() -> Any:
        attempt = await client.start_pairing(
            text,
            name=name,
            phone_name=phone_name,
            push_endpoint=push_endpoint,
            allow_number_matching=allow_number_matching,
        )
        show_code(attempt)
        ticker = None
        if sys.stderr.isatty() and not as_json:
            ticker = asyncio.create_task(_status_line(attempt.expires_at))
        elif not as_json:
            # no terminal for a live line (a script, a log): say once what we wait for
            until = time.strftime("%H:%M:%S", time.localtime(attempt.expires_at))
            click.echo(f"Waiting for the desktop to confirm the code (until {until})...", err=True)
        try:
            return await attempt.finish(timeout)
        finally:
            if ticker is not None:
                ticker.cancel()
                click.echo("\r\033[K", nl=False, err=True)

    result = _run(go())
    summary = result.pairing.summary()
    _emit(
        as_json,
        {
            "type": "paired",
            **summary,
            "relay_state": result.relay_state,
            "push_registered": result.push_registered,
        },
        [
            f"Paired with “{result.pairing.label}” (desktop id {summary['id']} on this phone:"
            " other commands accept it in place of the name).",
            "The relay links the pairing once the desktop registers it too."
            if result.relay_state != "linked"
            else "The relay has linked the pairing.",
        ],
    )


async def _status_line(expires_at: int) -> None:
    """A live "waiting" line on stderr while the user confirms on the desktop."""
    spinner = "|/-\\"
    i = 0
    while True:
        left = max(0, int(expires_at - time.time()))
        click.echo(
            f"\r\033[K{spinner[i % 4]} waiting for the desktop to confirm "
            f"({left // 60}:{left % 60:02d} left)",
            nl=False,
            err=True,
        )
        i += 1
        await asyncio.sleep(0.5)


@phone_group.command("listen")
@click.option("--once", is_flag=True, help="Exit after the first request.")
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Give up after this many seconds (exit 4 when nothing came).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (for scripts).")
@click.pass_context
def listen_command(ctx: click.Context, once: bool, timeout: float | None, as_json: bool) -> None:
    """Print every unlock request the paired desktops send, as it arrives.

    Holds the relay's listener WebSocket (reconnecting after drops, falling
    back to polling). Each request shows the desktop, the time, where the
    request came from (as the relay saw it), the time left, and how to answer.
    Nothing is answered here.

    \b
    Examples:
      unlatch phone listen
      unlatch phone listen --once --json --timeout 60
    """
    client = _client(ctx)
    client.state()  # open (and ask the PIN) before connecting

    async def go() -> int:
        count = 0
        async for item in client.listen():
            now = int(time.time())
            if isinstance(item, Ignored):
                _emit(
                    as_json,
                    item.to_json(),
                    [f"(ignored a request no paired desktop made: {item.reason})"],
                )
                continue
            if isinstance(item, RequestEnded | DesktopRemoved):
                _emit(as_json, item.to_json(), [item.message, ""])
                sys.stdout.flush()
                continue
            _emit(as_json, item.to_json(now), [*item.describe(now), ""])
            sys.stdout.flush()
            count += 1
            if once:
                break
        return count

    async def bounded() -> int:
        if timeout is None:
            return await go()
        try:
            return await asyncio.wait_for(go(), timeout)
        except TimeoutError:
            return 0

    count = _run(bounded())
    if once and count == 0:
        click.echo("unlatch: no unlock request arrived in time", err=True)
        sys.exit(4)


def _confirm_prompt(
    yes: bool, question: Callable[[RequestView], str] = lambda view: "Approve?"
) -> Callable[[RequestView], bool]:
    """Show who asks, then ask ``question(view)`` (unless ``yes``)."""

    def confirm(view: RequestView) -> bool:
        for line in view.describe(int(time.time()))[:2]:
            click.echo(line, err=True)
        return ask.confirm(question(view), yes=yes)

    return confirm


def _not_me_question(view: RequestView) -> str:
    """Refusing from the notification blocks the desktop until `unblock`: ask first."""
    return (
        f"You did not ask for this? “{view.desktop}” is told so and blocked until "
        "`unlatch phone unblock`"
    )


def _report(answer: Answer, as_json: bool) -> None:
    now = int(time.time())
    texts = {
        "approved": f"Approved: “{answer.request.desktop}” received this phone's share.",
        "denied": f"Denied the request from “{answer.request.desktop}”.",
        "not_me": f"Denied, and blocked “{answer.request.desktop}” on the relay until you "
        f"run `unlatch phone unblock {answer.request.desktop_id}`.",
        "wrong_number": "That was not the number on the desktop: nothing was released, "
        "the request is over.",
    }
    lines = [texts[answer.verdict]]
    if answer.delivery == "queued":  # the relay holds it; the desktop has not taken it yet
        lines = [
            f"Sent, not picked up yet: “{answer.request.desktop}” has not taken the answer "
            "(it may be reconnecting). It gets it when it is back, until the request "
            "expires; if it does not unlock, request again on the desktop."
        ]
    _emit(as_json, answer.to_json(now), lines)
    if answer.verdict == "wrong_number":
        sys.exit(5)


F = TypeVar("F", bound=Callable[..., Any])


def _request_source(fn: F) -> F:
    """The ways `approve` and `deny` name a request: LINK, --qr-image, or --request ID."""
    fn = click.option(
        "--request",
        "request_id",
        default=None,
        metavar="ID",
        help="The request id printed by `listen` (number matching; or, with `deny "
        "--not-me`, a request you did not ask for, before scanning).",
    )(fn)
    fn = click.option(
        "--qr-image",
        type=click.Path(dir_okay=False, path_type=Path),
        help="A picture of the desktop's unlock QR code.",
    )(fn)
    return click.argument("link", required=False)(fn)


@phone_group.command("approve")
@_request_source
@click.option(
    "--number", type=int, default=None, help="Number matching: the number the desktop shows."
)
@click.option("--yes", "-y", is_flag=True, help='Do not ask "Approve?".')
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def approve_command(
    ctx: click.Context,
    link: str | None,
    qr_image: Path | None,
    request_id: str | None,
    number: int | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Approve an unlock request: release this phone's share to the desktop.

    The QR is checked first: one not made by a paired desktop (phishing), an
    expired one, or one already answered is refused and nothing is sent.
    Answering "no" at the prompt sends a denial (exit 3).

    \b
    Examples:
      unlatch phone approve 'https://relay.example.org/app/#m=AQEC...'
      unlatch phone approve --qr-image screen.png --yes
      unlatch phone approve --request REQUEST_ID --number 47
    """
    client = _client(ctx)
    confirm = _confirm_prompt(yes)
    if request_id is not None or number is not None:
        if request_id is None or number is None or link or qr_image:
            raise click.UsageError("number matching takes --request ID and --number N (only)")
        answer = _run(client.approve_request(request_id, number, confirm=confirm))
    else:
        answer = _run(client.approve(_link(link, qr_image), confirm=confirm))
    _report(answer, as_json)
    if not answer.approved:
        raise UserDeclined("not approved: the desktop was told no")


@phone_group.command("deny")
@_request_source
@click.option(
    "--not-me",
    is_flag=True,
    help='"I did not ask for this": also block this desktop until `unblock`.',
)
@click.option("--yes", "-y", is_flag=True, help="With --request --not-me: do not ask first.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def deny_command(
    ctx: click.Context,
    link: str | None,
    qr_image: Path | None,
    request_id: str | None,
    not_me: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Refuse an unlock request (the desktop is told at once).

    \b
    Examples:
      unlatch phone deny --qr-image screen.png
      unlatch phone deny LINK --not-me       # also blocks that desktop
      unlatch phone deny --request REQUEST_ID --not-me   # from `listen`, before scanning
    """
    client = _client(ctx)
    if request_id is not None:
        if link or qr_image:
            raise click.UsageError("give LINK, --qr-image or --request, not several")
        confirm = _confirm_prompt(yes, _not_me_question) if not_me else None
        answer = _run(client.deny_request(request_id, not_me=not_me, confirm=confirm))
    else:
        answer = _run(client.deny(_link(link, qr_image), not_me=not_me))
    _report(answer, as_json)


@phone_group.command("unblock")
@click.argument("desktop")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def unblock_command(ctx: click.Context, desktop: str, yes: bool) -> None:
    """Accept unlock requests again from a desktop blocked with `deny --not-me`.

    \b
    Example:
      unlatch phone unblock "Work laptop"
    """
    client = _client(ctx)
    pairing = client.state().find(desktop)
    ask.confirm_or_abort(f"Accept unlock requests from “{pairing.label}” again?", yes=yes)
    summary = _run(client.unblock(desktop))
    click.echo(f"“{summary['name']}” may send unlock requests again.")


@phone_group.command("list")
@click.option(
    "--relay",
    "check_relay",
    is_flag=True,
    help="Also ask each relay for the pairing's state (linked, blocked).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def list_command(ctx: click.Context, check_relay: bool, as_json: bool) -> None:
    """List the paired desktops.

    \b
    Examples:
      unlatch phone list
      unlatch phone list --relay --json
    """
    client = _client(ctx)
    rows = _run(client.relay_pairings()) if check_relay else client.list_pairings()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        click.echo("No paired desktop. Pair one with `unlatch phone pair LINK`.")
        return
    for row in rows:
        when = time.strftime("%Y-%m-%d", time.localtime(row["paired_at"]))
        flags = " [blocked]" if row["blocked"] else ""
        if row.get("removed"):
            flags += f" [removed by the desktop: forget it with `unlatch phone unpair {row['id']}`]"
        flags += " [number matching allowed]" if row["number_matching"] else ""
        if "relay_state" in row:
            flags += f" [relay: {row['relay_state']}]"
        click.echo(f"{row['id']}  {row['name']}{flags}  paired {when}  via {row['relay_url']}")


@phone_group.command("sync")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def sync_command(ctx: click.Context, as_json: bool) -> None:
    """Register every pairing on its relay again (after a relay was down while pairing).

    \b
    Example:
      unlatch phone sync
    """
    rows = _run(_client(ctx).sync())
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        click.echo(f"{row['id']}  {row['name']}  relay: {row['relay_state']}")


@phone_group.command("rename")
@click.argument("desktop")
@click.argument("new_name")
@click.pass_context
def rename_command(ctx: click.Context, desktop: str, new_name: str) -> None:
    """Change what this phone calls a desktop (local only).

    \b
    Example:
      unlatch phone rename "DESKTOP-4F2" "Work laptop"
    """
    summary = _client(ctx).rename(desktop, new_name)
    click.echo(f"Renamed to “{summary['name']}”.")


@phone_group.command("number-matching")
@click.argument("desktop")
@click.argument("choice", type=click.Choice(["on", "off"]))
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def number_matching_command(ctx: click.Context, desktop: str, choice: str, yes: bool) -> None:
    """Allow a desktop to be approved from the notification (on), or scan only (off).

    The policy is this phone's, per desktop: a desktop can ask for number
    matching, but this phone refuses it unless it is on here. The desktop
    learns the change from this phone's next answer.

    \b
    Example:
      unlatch phone number-matching "Work laptop" on
    """
    client = _client(ctx)
    pairing = client.state().find(desktop)
    allowed = choice == "on"
    if allowed:
        ask.confirm_or_abort(
            f"Let “{pairing.label}” be approved from the notification? Only the number you "
            "pick then proves you are at the desktop (scanning proves more).",
            yes=yes,
        )
    summary = client.set_number_matching(desktop, allowed)
    state = "may now be approved" if allowed else "must now be approved by scanning, not"
    click.echo(f"“{summary['name']}” {state} from the notification.")


@phone_group.command("unpair")
@click.argument("desktop")
@click.option("--force", is_flag=True, help="Forget locally even if the relay is unreachable.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_context
def unpair_command(ctx: click.Context, desktop: str, force: bool, yes: bool) -> None:
    """Unpair a desktop: delete the pairing on the relay and this phone's share.

    \b
    Example:
      unlatch phone unpair "Work laptop" --yes
    """
    client = _client(ctx)
    pairing = client.state().find(desktop)
    ask.confirm_or_abort(f"Unpair “{pairing.label}”? This phone can no longer unlock it.", yes=yes)
    summary = _run(client.unpair(desktop, force=force))
    click.echo(f"Unpaired “{summary['name']}”.")


@phone_group.command("set-pin")
@click.option("--remove", is_flag=True, help="Remove the PIN (state sealed by the key file only).")
@click.pass_context
def set_pin_command(ctx: click.Context, remove: bool) -> None:
    """Protect this phone's state (and its shares) with a PIN, change it, or remove it.

    The PIN is stretched with Argon2id (256 MiB, 3 passes); without it the
    shares cannot be read. It has at least 6 characters: a copy of the
    phone's files then costs about 8 days per core to guess (6 digits), more
    with a longer PIN or a passphrase (docs/phone-client.md).
    The current PIN is asked first when one is set. In scripts, the new PIN
    can come from $UNLATCH_PHONE_NEW_PIN.

    \b
    Examples:
      unlatch phone set-pin
      unlatch phone set-pin --remove
    """
    client = _client(ctx)
    client.state()  # asks the current PIN, if any, and checks it
    if remove:
        client.set_pin(None)
        click.echo("PIN removed.")
        return
    new_pin = os.environ.get("UNLATCH_PHONE_NEW_PIN") or str(
        click.prompt("New PIN", hide_input=True, confirmation_prompt=True, err=True)
    )
    client.set_pin(new_pin)
    click.echo("PIN set: every command now asks for it.")


@phone_group.command("set-push")
@click.argument("endpoint", required=False)
@click.option("--remove", is_flag=True, help="Stop push notifications (listeners only).")
@click.pass_context
def set_push_command(ctx: click.Context, endpoint: str | None, remove: bool) -> None:
    """Register a UnifiedPush/ntfy endpoint the relays wake this phone on.

    \b
    Example:
      unlatch phone set-push 'https://ntfy.sh/upAbC123?up=1'
    """
    if remove == (endpoint is not None):
        raise click.UsageError("give an ENDPOINT or --remove")
    count = _run(_client(ctx).set_push(None if remove else endpoint))
    click.echo(f"Push target {'removed from' if remove else 'registered on'} {count} relay(s).")
