"""``unlatch agent start|stop|status``: the background process holding the key."""

from __future__ import annotations

import json
import time

import click

from unlatch.agent import client, settings
from unlatch.agent.errors import AgentNotRunningError
from unlatch.cli import main


@main.group()
def agent() -> None:
    """The desktop agent: keeps the unlocked vault key in memory (like ssh-agent).

    Other commands start it on demand; you rarely need these.

    \b
    Examples:
      unlatch agent status
      unlatch agent start --idle-lock 300     # auto-lock after 5 idle minutes
      unlatch agent start --foreground        # run attached, log to the terminal
      unlatch agent stop                      # lock the vault and exit
    """


@agent.command("start")
@click.option("--foreground", is_flag=True, help="Run in this terminal (debugging).")
@click.option(
    "--idle-lock",
    type=float,
    default=None,
    metavar="SECONDS",
    help="Lock after this many idle seconds (0 = never). Default: "
    "UNLATCH_AGENT_IDLE_LOCK_SECONDS, the desktop UI's setting, [agent] "
    "idle_lock_seconds, or 600.",
)
def start(foreground: bool, idle_lock: float | None) -> None:
    """Start the agent (in the background unless --foreground).

    Other commands start it on demand; start it yourself to choose the idle
    lock, or to watch its log in a terminal. SIGTERM or SIGINT (Ctrl-C) lock
    the vault and stop it.

    \b
    Examples:
      unlatch agent start
      unlatch agent start --idle-lock 300     # auto-lock after 5 idle minutes
      unlatch agent start --idle-lock 0       # lock only on `unlatch lock` or stop
      unlatch agent start --foreground        # attached, log to the terminal
    """
    chosen = settings.idle_lock(idle_lock)
    seconds = chosen.seconds
    if foreground:
        from unlatch.agent import server
        from unlatch.browser import agent_ops as browser_ops
        from unlatch.desktop import agent_ops

        agent_ops.install()  # the desktop web UI and passkeys live in the agent process
        browser_ops.install()  # and the browser extension's view of the same runtime
        server.run(chosen)
        return
    try:
        with client.connect(start=False) as running:
            pid = running.call("ping")["pid"]
        click.echo(f"agent already running (pid {pid})")
        return
    except AgentNotRunningError:
        pass
    # Only a value given here is passed on: it then fixes the idle lock for this agent,
    # while one from the settings page stays changeable there.
    with client.connect(start=True, idle_lock=idle_lock) as started:
        pid = started.call("ping")["pid"]
    click.echo(f"agent started (pid {pid}, idle lock {seconds:g} s)")


@agent.command("stop")
def stop() -> None:
    """Lock the vault and stop the agent (the key is dropped; the socket removed).

    \b
    Examples:
      unlatch agent stop
      unlatch agent stop && unlatch agent start --idle-lock 60
    """
    try:
        with client.connect(start=False) as running:
            running.call("stop")
    except AgentNotRunningError:
        click.echo("agent is not running")
        return
    deadline = time.monotonic() + 10
    while settings.socket_path().exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    click.echo("agent stopped; vault locked")


@agent.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Whether the agent runs, and its pid and idle-lock setting.

    Does not start the agent and does not count as activity.

    \b
    Examples:
      unlatch agent status
      unlatch agent status --json | jq .idle_lock_seconds
    """
    try:
        with client.connect(start=False) as running:
            info = running.call("status")
    except AgentNotRunningError:
        info = None
    if as_json:
        click.echo(json.dumps({"running": info is not None, **(info or {})}))
    elif info is None:
        click.echo("agent: not running")
    else:
        click.echo(f"agent: running (pid {info['pid']}, idle lock {info['idle_lock_seconds']:g} s)")
