"""``unlatch desktop``, ``pair``, ``devices`` and ``demo``: the desktop side of phone unlock.

The flows themselves live in :mod:`unlatch.desktop`; this module parses
options and prints. Importing it also registers the agent's ``desktop_ui``
socket operation (:mod:`unlatch.desktop.agent_ops`), so the web UI is served
from inside the agent process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import webbrowser
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from unlatch.agent import client
from unlatch.cli import ask, main
from unlatch.desktop import agent_ops, terminal
from unlatch.desktop.errors import DesktopError
from unlatch.desktop.identity import DesktopIdentity
from unlatch.desktop.pairing import PairingService
from unlatch.desktop.settings import DesktopSettings, configured_ui_port
from unlatch.desktop.store import PairingStore
from unlatch.desktop.vault_port import SocketVault
from unlatch.errors import UnlatchError
from unlatch.relay.client import RelayClient

agent_ops.install()

T = TypeVar("T")
RELAY_HELP = (
    "Relay URL (default: UNLATCH_DESKTOP_RELAY_URL, [desktop] relay_url, http://127.0.0.1:8470)."
)


def _run(coro: Awaitable[T]) -> T:
    async def runner() -> T:
        return await coro

    try:
        return asyncio.run(runner())
    except KeyboardInterrupt:
        click.echo("\ninterrupted", err=True)
        sys.exit(130)


def _require_unlocked(agent: client.AgentClient) -> None:
    info = agent.call("status")
    if not info["vault_exists"]:
        raise DesktopError("no vault yet: run `unlatch init`")
    if not info["unlocked"]:
        raise DesktopError("the vault is locked: unlock it first (`unlatch unlock`)")


def start_ui(
    agent: client.AgentClient,
    *,
    port: int | None = None,
    relay: str | None = None,
    unlock_ttl: int | None = None,
    renewals: int | None = None,
    launch: str = "url",
) -> dict[str, Any]:
    """Ask the agent to serve the web UI.

    Returns ``{address, port, relay_url, note}`` and, by ``launch``, the
    single-use link as ``url`` (to print) or ``launch_file`` (to open in a
    browser: :func:`open_launch_file`).
    """
    args: dict[str, Any] = {"launch": launch}
    if port is None:  # no --port: the user's configured one, held or nothing
        port = configured_ui_port()
    if port is not None:  # else 8471 (DEFAULT_UI_PORT), or a free one when that is taken
        args["port"] = port
    if relay:
        args["relay"] = relay
    if unlock_ttl is not None:
        args["unlock_ttl"] = unlock_ttl
    if renewals is not None:
        args["renewals"] = renewals
    result: dict[str, Any] = agent.call("desktop_ui", **args)
    return result


def open_launch_file(path: str) -> None:
    """Open the UI in the user's browser through its launch file.

    A browser's command line is readable by every local user
    (``/proc/PID/cmdline``), so it gets only the path of the agent's 0600
    file, which redirects to the launch link (:mod:`unlatch.desktop.web.launch`).
    """
    uri = Path(path).as_uri()
    if not webbrowser.open(uri):
        click.echo(
            f"no browser could be started: open {uri} in yours "
            "(it works once, within 10 minutes), or run `unlatch desktop --no-browser`",
            err=True,
        )


def vault_line(info: dict[str, Any]) -> str:
    """Which vault the UI opens: a user with two homes must not wonder, nor find
    "No vault yet" without knowing where it looked."""
    path = info["vault_path"]
    if not info["vault_exists"]:
        init = info["reopen"].replace("unlatch desktop", "unlatch init")
        return f"no vault at {path}: run `{init}` to create one (or set UNLATCH_HOME to its folder)"
    return f"vault: {path} ({'unlocked' if info['unlocked'] else 'locked'})"


def echo_ui(info: dict[str, Any], *, no_browser: bool, label: str = "unlatch desktop UI: ") -> None:
    """What ``unlatch desktop`` and the demo print about the UI they opened."""
    if info.get("already_running"):
        shown = (
            info["url"] if no_browser else f"{info['address']} (already running: opening it again)"
        )
    else:
        shown = info["url"] if no_browser else f"{info['address']} (opening it in your browser)"
    click.echo(f"{label}{shown}")
    click.echo(vault_line(info), err=not info["vault_exists"])  # no vault: a warning


@main.command("desktop")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port (default: UNLATCH_DESKTOP_UI_PORT, [desktop] ui_port, 8471; 0: a free one).",
)
@click.option("--no-browser", is_flag=True, help="Only print the one-time link.")
@click.option("--relay", default=None, metavar="URL", help=RELAY_HELP)
@click.option(
    "--unlock-ttl",
    type=click.IntRange(5, 600),
    default=None,
    help="Life of an unlock request in seconds (default 120).",
)
@click.option(
    "--qr-renewals",
    type=click.IntRange(0, 100),
    default=None,
    help="How many times the QR is renewed before it expires (default 4).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def desktop_command(
    port: int | None,
    no_browser: bool,
    relay: str | None,
    unlock_ttl: int | None,
    qr_renewals: int | None,
    as_json: bool,
) -> None:
    """Open the vault window: the local web UI served by the agent on localhost.

    Starts the agent if needed (or reuses the running one: never a second
    agent for a vault) and opens the UI in your browser through a private
    launch file (the one-time secret never goes on a command line). The UI
    is at http://localhost:8471/ unless --port or the configuration says
    otherwise. It prints which vault it opens.
    With --no-browser it prints the link instead: it holds a one-time secret
    that the page trades for a session cookie, so open it only in your own
    browser. Run the command again for a fresh link.

    \b
    Examples:
      unlatch desktop
      unlatch desktop --no-browser --port 8471
      unlatch desktop --relay https://relay.example.org
    """
    if relay:
        DesktopSettings.load(relay)  # validate before the agent sees it
    with client.connect(start=True) as agent:
        info = start_ui(
            agent,
            port=port,
            relay=relay,
            unlock_ttl=unlock_ttl,
            renewals=qr_renewals,
            launch="url" if no_browser else "file",
        )
    if as_json:
        click.echo(json.dumps(info))
    else:
        echo_ui(info, no_browser=no_browser)
        click.echo(f"relay: {info['relay_url']}")
        if info.get("note"):
            click.echo(info["note"], err=True)
    if not no_browser:
        open_launch_file(info["launch_file"])


@main.command("pair")
@click.option("--relay", default=None, metavar="URL", help=RELAY_HELP)
@click.option(
    "--app-url",
    default=None,
    metavar="URL",
    help="Where the phone app is served, if not by the relay (default: UNLATCH_DESKTOP_APP_URL,"
    " [desktop] app_url, <relay>/app/). Its files must match this desktop's build.",
)
@click.option(
    "--name", "label", default=None, help="What to call the phone (default: its own name)."
)
@click.option(
    "--qr-image",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the pairing QR code to this PNG file.",
)
@click.option("--show-link", is_flag=True, help="Also print the pairing link on stdout.")
@click.option("--yes", "-y", is_flag=True, help="Accept the phone without asking (scripts).")
def pair_command(
    relay: str | None,
    app_url: str | None,
    label: str | None,
    qr_image: Path | None,
    show_link: bool,
    yes: bool,
) -> None:
    """Pair a phone: show a QR code, compare the 6-digit codes, confirm.

    The vault must be unlocked (pairing adds a phone key slot to it). The
    phone scans the code with the unlatch app (or `unlatch phone pair`), both
    screens show a code, and you confirm here only if they match. Before the
    code is shown, the phone app at the link's address is compared with this
    desktop's own build: if it differs, no link is shown.

    \b
    Examples:
      unlatch pair
      unlatch pair --name "Pixel 8" --qr-image pair.png
      unlatch pair --app-url https://app.example.org/
    """
    settings = DesktopSettings.load(relay, app_url_override=app_url)

    def confirm(phone_name: str, code: str) -> bool:
        click.echo(f"Phone “{phone_name}” wants to pair. Its screen must show: {code}", err=True)
        return ask.confirm("Do the codes match?", yes=yes)

    with client.connect(start=True) as agent:
        _require_unlocked(agent)
        phone = _run(
            terminal.pair(
                agent,
                settings,
                confirm=confirm,
                label=label,
                qr_image=qr_image,
                show_link=show_link,
            )
        )
    click.echo(f"paired “{phone.label}” (id {phone.id}): it can now unlock this vault")


@main.group("devices", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def devices_group(ctx: click.Context, as_json: bool) -> None:
    """Paired phones: list (default), rename, revoke.

    \b
    Examples:
      unlatch devices
      unlatch devices rename "Pixel 8" "Old phone"
      unlatch devices revoke "Old phone" --yes

    A phone is named by its id (or its first 6+ characters) or by its
    name. Put `--` before a name that starts with "-".
    """
    if ctx.invoked_subcommand is not None:
        return
    phones = PairingStore().all()
    if as_json:
        click.echo(json.dumps([p.public_view() for p in phones], indent=2))
        return
    if not phones:
        click.echo("no paired phones (pair one with `unlatch pair`)")
        return
    for p in phones:
        when = time.strftime("%Y-%m-%d", time.localtime(p.created_at))
        policy = "allows number matching" if p.allows_number_matching else "scan only"
        click.echo(f"{p.id}  {p.label}  (paired {when}, relay {p.relay_url}, {policy})")


@devices_group.command("rename")
@click.argument("phone")
@click.argument("new_name")
def devices_rename(phone: str, new_name: str) -> None:
    """Rename a paired phone (give its id or current name).

    \b
    Example:
      unlatch devices rename "Pixel 8" "Old phone"
    """

    async def go() -> str:
        identity = DesktopIdentity.load_or_create()
        with client.connect(start=True) as agent:
            service = PairingService(
                identity, PairingStore(), SocketVault(agent), _relay(identity, None)
            )
            try:
                return (await service.rename(phone, new_name)).label
            finally:
                await service.relay.aclose()

    click.echo(f"renamed to “{_run(go())}”")


@devices_group.command("revoke")
@click.argument("phone")
@click.option("--relay", default=None, metavar="URL", help=RELAY_HELP)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def devices_revoke(phone: str, relay: str | None, yes: bool) -> None:
    """Unpair a phone: its share stops opening the vault at once.

    Deletes this desktop's local secret for the phone and its vault slot
    (at the next unlock if the vault is locked now), and unlinks the pairing
    on the relay. Asks first unless --yes.

    \b
    Examples:
      unlatch devices revoke "Old phone"
      unlatch devices revoke "Old phone" --yes
    """
    target = PairingStore().get(phone)
    ask.confirm_or_abort(f"Revoke “{target.label}”?", yes=yes)

    async def go() -> dict[str, Any]:
        identity = DesktopIdentity.load_or_create()
        with client.connect(start=True) as agent:
            service = PairingService(
                identity, PairingStore(), SocketVault(agent), _relay(identity, relay)
            )
            try:
                result = await service.revoke(target.id)
            finally:
                await service.relay.aclose()
            # The web UI (in the agent) may be waiting for this phone: it ends that now.
            with contextlib.suppress(UnlatchError):
                agent.call("desktop_phone_revoked", phone_id=target.id)
            return result

    result = _run(go())
    slot = "slot removed" if result["slot_removed"] else "slot removed at the next unlock"
    click.echo(f"revoked “{target.label}” ({slot}) {result['relay']}".rstrip())


def _relay(identity: DesktopIdentity, relay: str | None) -> RelayClient:
    return RelayClient(DesktopSettings.load(relay).relay_url, identity.relay_key, "desktop")


def unlock_with_phone(
    agent: client.AgentClient,
    *,
    phone: str | None,
    relay: str | None,
    qr_image: Path | None,
    show_link: bool,
    number_matching: bool | None = None,
) -> None:
    """``unlatch unlock --phone``: called by the vault's ``unlock`` command.

    ``number_matching`` (``--number-matching``/``--scan``) overrides the
    desktop's setting for this request; either way it is only a wish: the
    phone's policy for this pairing decides (docs/protocol.md 6.8).
    """
    settings = DesktopSettings.load(relay)
    wish = settings.number_matching if number_matching is None else number_matching
    _run(
        terminal.unlock_with_phone(
            agent,
            settings,
            phone_id=phone,
            qr_image=qr_image,
            show_link=show_link,
            number_matching=wish,
        )
    )


# --------------------------------------------------------------------- demo

DEMO_PASSWORD = "unlatch demo password"  # noqa: S105 - printed to the user on purpose
DEMO_ITEMS = [
    {
        "title": "GitHub",
        "username": "ada@example.org",
        "password": "",
        "urls": ["https://github.com"],
        "tags": ["dev"],
        "notes": "Recovery codes are in the safe.",
    },
    {
        "title": "Bank",
        "username": "ada.lovelace",
        "password": "",
        "urls": ["https://bank.example"],
        "tags": ["finance"],
        "notes": "",
    },
    {
        "title": "Email",
        "username": "ada@example.org",
        "password": "",
        "urls": ["https://mail.example"],
        "tags": ["personal"],
        "notes": "",
    },
    {
        "title": "Wi-Fi at home",
        "username": "",
        "password": "",
        "urls": [],
        "tags": ["home"],
        "notes": "Network: Analytical-Engine",
    },
]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DesktopError(f"the relay exited early (code {proc.returncode})")
        try:
            # Our own child process on loopback, whose certificate names the public host.
            if httpx.get(url + "/healthz", timeout=1, verify=False).status_code == 200:  # noqa: S501
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise DesktopError("the relay did not start in time")


def _pairing_help(home: Path, relay_url: str) -> None:
    """How to pair a phone with the demo, as commands that work as printed."""
    host = urlsplit(relay_url).hostname or ""
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    click.echo("Pair a phone:")
    if relay_url.startswith("https://") and not loopback:
        click.echo(f"  - a real phone: open {relay_url}/app/ on it; in the desktop UI (unlocked)")
        click.echo("    open Settings > Pair a new phone and scan the QR with the phone.")
    else:
        why = "it listens on this machine only" if loopback else "it is plain HTTP"
        click.echo(f"  - a real phone cannot use this relay, {relay_url}:")
        click.echo(f"    {why}, and phones need HTTPS for the camera and notifications.")
        click.echo("    Restart the demo with --relay-host 0.0.0.0 --cert fullchain.pem")
        click.echo("    --key privkey.pem --public-url https://<this machine>:8470, then open")
        click.echo("    <public-url>/app/ on the phone and scan the QR code of")
        click.echo("    Settings > Pair a new phone (in the desktop UI, unlocked).")
    quoted_home = shlex.quote(str(home))
    phone_home = shlex.quote(str(home / "phone"))
    click.echo("  - the Python phone client, on this machine (the vault must be unlocked):")
    click.echo("    1. in a second terminal (prints the pairing link, then asks to compare codes):")
    relay_arg = shlex.quote(relay_url)
    click.echo(f"         UNLATCH_HOME={quoted_home} unlatch pair --relay {relay_arg} --show-link")
    click.echo("    2. in a third terminal, then paste the link it printed (read from the")
    click.echo("       input, so the link's secret never shows in the process list):")
    click.echo(f"         unlatch phone --home {phone_home} pair -")
    click.echo("    3. check that both show the same code, then answer y in the second terminal.")


@main.command("demo")
@click.option(
    "--dir",
    "demo_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".demo"),
    show_default=True,
    help="Demo state directory (used as UNLATCH_HOME).",
)
@click.option("--relay-port", type=click.IntRange(0, 65535), default=8470, show_default=True)
@click.option(
    "--relay-host",
    default="127.0.0.1",
    show_default=True,
    help="Address the relay listens on (0.0.0.0 to let phones on your network reach it).",
)
@click.option(
    "--public-url",
    help="The relay's URL as phones reach it, e.g. https://laptop.example:8470 "
    "(default: http://127.0.0.1:PORT). Phones need HTTPS for the camera and notifications.",
)
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Desktop UI port (default: as `unlatch desktop`, 8471).",
)
@click.option("--no-browser", is_flag=True, help="Only print the URLs.")
def demo_command(
    demo_dir: Path,
    relay_port: int,
    relay_host: str,
    public_url: str | None,
    cert: str | None,
    key: str | None,
    port: int | None,
    no_browser: bool,
) -> None:
    """Run everything on this machine: a relay, the agent and the desktop UI.

    Creates a demo vault with sample items (master password printed below)
    in --dir if there is none, then keeps running until Ctrl-C.

    \b
    Examples:
      unlatch demo
      unlatch demo --dir /tmp/unlatch-demo --relay-port 0 --no-browser
      unlatch demo --relay-host 0.0.0.0 --public-url https://laptop.example:8470 \\
                   --cert fullchain.pem --key privkey.pem      # with a real phone
    """
    if (cert is None) != (key is None):
        raise DesktopError("--cert and --key go together")
    home = demo_dir.resolve()
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["UNLATCH_HOME"] = str(home)
    relay_port = relay_port or _free_port()
    scheme = "https" if cert else "http"
    relay_url = (public_url or f"{scheme}://127.0.0.1:{relay_port}").rstrip("/")
    local_url = f"{scheme}://127.0.0.1:{relay_port}"
    os.environ["UNLATCH_DESKTOP_RELAY_URL"] = relay_url
    relay_args = ["--host", relay_host, "--port", str(relay_port), "--public-url", relay_url]
    if relay_host in ("127.0.0.1", "::1", "localhost"):
        # only this machine reaches the relay: let a phone use a push service running here
        # (e.g. ntfy on http://127.0.0.1); a relay open to the network keeps the default
        relay_args.append("--push-allow-private")
    if cert and key:
        relay_args += ["--cert", cert, "--key", key]
    log_path = home / "relay.log"
    with log_path.open("ab") as log:
        relay_proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "unlatch",
                "relay",
                *relay_args,
            ],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    stop = {"now": False}

    def on_signal(signum: int, frame: object) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        _wait_http(local_url, relay_proc)
        with client.connect(start=True) as agent:
            info = agent.call("status")
            created = False
            if not info["vault_exists"]:
                from unlatch.vault import OWASP_MINIMUM
                from unlatch.vault.generator import generate_password

                kdf = {"memory_kib": OWASP_MINIMUM.memory_kib, "time_cost": OWASP_MINIMUM.time_cost}
                agent.call("init", password=DEMO_PASSWORD, kdf=kdf)
                for item in DEMO_ITEMS:
                    agent.call("add", item={**item, "password": generate_password(20).value})
                created = True
            ui = start_ui(agent, port=port, relay=relay_url, launch="url" if no_browser else "file")
        click.echo(f"demo state:   {home}" + ("  (new demo vault created)" if created else ""))
        click.echo(f"master pass:  {DEMO_PASSWORD}")
        click.echo(f"relay:        {relay_url}   (log: {log_path})")
        echo_ui(ui, no_browser=no_browser, label="desktop UI:   ")
        click.echo(f"reopen it:    {ui['reopen']}")  # the tab closed: a fresh link, same agent
        click.echo("")
        _pairing_help(home, relay_url)
        click.echo("Ctrl-C stops the demo.")
        if not no_browser:
            open_launch_file(ui["launch_file"])
        while not stop["now"] and relay_proc.poll() is None:
            time.sleep(0.2)
    finally:
        with contextlib.suppress(Exception), client.connect(start=False) as agent:
            agent.call("stop")  # best effort on the way out
        if relay_proc.poll() is None:
            relay_proc.terminate()
            try:
                relay_proc.wait(10)
            except subprocess.TimeoutExpired:
                relay_proc.kill()
        click.echo("demo stopped", err=True)
