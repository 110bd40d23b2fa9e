"""``unlatch agent ...`` through the real CLI: on-demand start, socket modes, idle lock."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures.vault import PASSWORD, Cli

from unlatch.agent import client, settings


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process: a zombie (exited, not yet reaped by its parent,
    which in a container may be a PID 1 that never reaps) counts as gone."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: fall back to signal 0 (true for a zombie too)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat_line.rsplit(")", 1)[1].split()[0]  # the name in (...) may hold spaces
    return state not in ("Z", "X")


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while is_running(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} still running after {timeout:.0f} s")
        time.sleep(0.05)


def test_agent_start_status_stop_and_socket_modes(cli: Cli) -> None:
    assert "not running" in cli("agent", "status", check=True).stdout
    assert "agent is not running" in cli("agent", "stop", check=True).stdout
    out = cli("agent", "start", "--idle-lock", "120", check=True).stdout
    assert "agent started" in out and "idle lock 120 s" in out
    assert "already running" in cli("agent", "start", check=True).stdout
    info = json.loads(cli("agent", "status", "--json", check=True).stdout)
    assert info["running"] is True and info["idle_lock_seconds"] == 120

    sock = cli.home / "desktop" / "agent.sock"
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700

    cli("agent", "stop", check=True)
    assert not sock.exists()
    wait_gone(info["pid"])  # the process is gone too


def test_idle_auto_lock_from_environment(cli: Cli) -> None:
    cli.env["UNLATCH_AGENT_IDLE_LOCK_SECONDS"] = "1.5"
    cli.init()
    assert json.loads(cli("status", "--json").stdout)["idle_lock_seconds"] == 1.5
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not json.loads(cli("status", "--json").stdout)["unlocked"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("vault did not auto-lock")
    assert "vault is locked" in cli("list").stderr
    log = (cli.home / "desktop" / "agent.log").read_text()
    assert "vault locked (idle)" in log
    assert PASSWORD not in log


def test_idle_lock_from_config_file_and_bad_values(cli: Cli) -> None:
    (cli.home / "config.toml").write_text("[agent]\nidle_lock_seconds = 42\n")
    cli("agent", "start", check=True)
    assert json.loads(cli("status", "--json").stdout)["idle_lock_seconds"] == 42
    cli("agent", "stop", check=True)
    proc = cli("agent", "start", "--idle-lock", "-5")
    assert proc.returncode != 0 and "idle lock must be 0" in proc.stderr
    (cli.home / "config.toml").write_text("[agent]\nidle_lock_seconds = 'soon'\n")
    proc = cli("agent", "start")
    assert proc.returncode != 0 and "number of seconds" in proc.stderr


def test_killed_agent_is_replaced_and_the_vault_survives(cli: Cli) -> None:
    """SIGKILL the agent (stale socket left behind): the next command starts a fresh,
    locked agent and every committed item is still there."""
    cli.init()
    cli("add", "kept", input="pw\n", check=True)
    pid = json.loads(cli("agent", "status", "--json", check=True).stdout)["pid"]
    os.kill(pid, 9)
    wait_gone(pid)
    assert (cli.home / "desktop" / "agent.sock").exists()  # stale
    assert "vault is locked" in cli("list").stderr
    cli("unlock", "--password-stdin", input=PASSWORD + "\n", check=True)
    assert cli("get", "kept", "-f", "password", check=True).stdout == "pw\n"
    new_pid = json.loads(cli("agent", "status", "--json", check=True).stdout)["pid"]
    assert new_pid != pid


def test_agent_that_cannot_start_is_reported_at_once_with_its_cause(cli: Cli) -> None:
    """A bad config.toml makes the spawned agent exit: the CLI says why without waiting
    out START_TIMEOUT."""
    (cli.home / "config.toml").write_text("[agent]\nidle_lock_seconds = 'soon'\n")
    began = time.monotonic()
    proc = cli("list")
    elapsed = time.monotonic() - began
    assert proc.returncode != 0
    assert "could not start" in proc.stderr and "number of seconds" in proc.stderr
    assert "agent.log" in proc.stderr and "Traceback" not in proc.stderr
    assert elapsed < client.START_TIMEOUT


def test_too_long_socket_path_is_explained(cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / ("h" * 120)
    home.mkdir()
    cli.env["UNLATCH_HOME"] = str(home)
    for command in ("status", "list"):
        proc = cli(command)
        assert proc.returncode != 0, command
        assert f"{settings.MAX_SOCKET_PATH}-byte limit" in proc.stderr, proc.stderr
        assert "shorter directory" in proc.stderr and "None" not in proc.stderr
    cli.env["UNLATCH_HOME"] = str(cli.home)


def test_spawned_agent_that_lost_the_race_means_wait_for_the_winner(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our child exits with AgentAlreadyRunningError's code while another agent is still
    starting: connect() keeps waiting for that agent's socket instead of failing."""
    real_spawn = client.spawn
    winners: list[subprocess.Popen[bytes]] = []

    def spawn_loser(idle_lock: float | None = None) -> subprocess.Popen[bytes]:
        winners.append(real_spawn(idle_lock))  # still importing when the loser exits
        loser = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
        loser.wait(30)
        return loser

    monkeypatch.setattr(client, "spawn", spawn_loser)
    try:
        with client.connect(start=True) as agent:
            assert agent.call("ping")["pid"] == winners[0].pid
    finally:  # on failure the fixture's `agent stop` may come before the winner listens
        for winner in winners:
            winner.terminate()
            winner.wait(30)


def test_sigterm_locks_the_vault_and_the_agent_exits(cli: Cli) -> None:
    cli.init()
    cli("add", "kept", input="pw\n", check=True)
    info = json.loads(cli("status", "--json", check=True).stdout)
    assert info["unlocked"] is True
    sock = cli.home / "desktop" / "agent.sock"
    os.kill(info["pid"], signal.SIGTERM)
    wait_gone(info["pid"])
    assert not sock.exists()  # removed on the way out, not left stale
    log = (cli.home / "desktop" / "agent.log").read_text()
    assert "vault locked (stop)" in log and "agent stopped; vault locked" in log
    after = json.loads(cli("status", "--json", check=True).stdout)
    assert after["agent_running"] is False and after["unlocked"] is False
    assert "vault is locked" in cli("list").stderr  # a fresh agent: the key did not survive
    cli("unlock", "--password-stdin", input=PASSWORD + "\n", check=True)
    assert cli("get", "kept", "-f", "password", check=True).stdout == "pw\n"
