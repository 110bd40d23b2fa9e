"""scripts/dev.sh steps that only run on a fresh machine, checked with stub commands.

The script only defines its functions when sourced, so each step runs here
against stubs on ``PATH`` (``python3``, ``apt-get``, ``sudo``, ``id``...)
with no stdin, as root and as a user with sudo.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "dev.sh"
TRUST = "host all all 127.0.0.1/32 trust  # unlatch-tests"


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def run(bin_dir: Path, snippet: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"; {snippet}'],
        env={**os.environ, **env, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_venv_without_python3_venv_installs_it_and_retries(tmp_path: Path) -> None:
    bin_dir, calls, venv = tmp_path / "bin", tmp_path / "calls", tmp_path / "venv"
    bin_dir.mkdir()
    # Like Debian without python3-venv: `python3 -m venv` leaves a venv without pip and fails.
    stub(
        bin_dir,
        "python3",
        f'[ "$1 $2" = "-m venv" ] || exit 9\nmkdir -p "$3/bin"\n'
        f'[ -f "{tmp_path}/venv-ok" ] && touch "$3/bin/pip" && exit 0\nexit 1',
    )
    stub(bin_dir, "dpkg", "exit 1")
    stub(bin_dir, "id", "echo 0")
    stub(
        bin_dir,
        "apt-get",
        f'echo "apt-get $*" >> "{calls}"\n'
        f'case "$*" in *install*python3-venv*) touch "{tmp_path}/venv-ok" ;; esac',
    )
    proc = run(bin_dir, f'VENV="{venv}"; make_venv')
    assert proc.returncode == 0, proc.stderr
    assert "python3-venv" in calls.read_text()
    assert (venv / "bin" / "pip").exists()


def test_pg_hba_is_edited_through_sudo_by_a_user(tmp_path: Path) -> None:
    bin_dir, calls, hba = tmp_path / "bin", tmp_path / "calls", tmp_path / "pg_hba.conf"
    bin_dir.mkdir()
    hba.write_text("local all postgres peer\n")
    stub(bin_dir, "id", "echo 1000")
    stub(bin_dir, "sudo", f'echo "sudo $1" >> "{calls}"\nexec "$@"')
    stub(bin_dir, "pg_ctlcluster", f'echo "pg_ctlcluster $*" >> "{calls}"')
    proc = run(bin_dir, f'allow_pg_test_connections "{hba}" 15')
    assert proc.returncode == 0, proc.stderr
    assert hba.read_text().splitlines()[0] == TRUST
    assert calls.read_text().split("\n")[:3] == ["sudo grep", "sudo sed", "sudo pg_ctlcluster"]
    assert "15 main reload" in calls.read_text()
    before = hba.read_text()
    calls.unlink()
    assert run(bin_dir, f'allow_pg_test_connections "{hba}" 15').returncode == 0
    assert hba.read_text() == before and calls.read_text() == "sudo grep\n"  # once only


def test_pg_hba_without_root_rights_warns_and_goes_on(tmp_path: Path) -> None:
    bin_dir, hba = tmp_path / "bin", tmp_path / "pg_hba.conf"
    bin_dir.mkdir()
    hba.write_text("local all postgres peer\n")
    stub(bin_dir, "id", "echo 1000")
    stub(bin_dir, "sudo", "echo 'sudo: a password is required' >&2\nexit 1")
    proc = run(bin_dir, f'allow_pg_test_connections "{hba}" 15; echo carried-on')
    assert proc.returncode == 0 and "carried-on" in proc.stdout
    assert "could not edit" in proc.stderr and TRUST not in hba.read_text()


def test_as_root_needs_no_sudo(tmp_path: Path) -> None:
    bin_dir, hba = tmp_path / "bin", tmp_path / "pg_hba.conf"
    bin_dir.mkdir()
    hba.write_text("local all postgres peer\n")
    stub(bin_dir, "id", "echo 0")
    stub(bin_dir, "sudo", "exit 1")  # would fail: root must not use it
    stub(bin_dir, "pg_ctlcluster", "exit 0")
    proc = run(bin_dir, f'allow_pg_test_connections "{hba}" 15')
    assert proc.returncode == 0, proc.stderr
    assert hba.read_text().splitlines()[0] == TRUST


def test_setup_links_the_unlatch_command_into_local_bin(tmp_path: Path) -> None:
    bin_dir, home, venv = tmp_path / "bin", tmp_path / "home", tmp_path / "venv"
    bin_dir.mkdir()
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "unlatch").write_text("#!/bin/sh\necho unlatch from the venv\n")
    (venv / "bin" / "unlatch").chmod(0o755)
    local_bin = home / ".local" / "bin"
    proc = run(bin_dir, f'VENV="{venv}"; link_command; link_command', HOME=str(home))
    assert proc.returncode == 0, proc.stderr
    link = local_bin / "unlatch"
    assert link.is_symlink() and os.readlink(link) == str(venv / "bin" / "unlatch")
    assert f"the unlatch command: {link} -> {venv}/bin/unlatch" in proc.stdout
    assert f"note: {local_bin} is not on your PATH" in proc.stderr  # said, with the fix
    on_path = subprocess.run(
        ["bash", "-c", f'source "{SCRIPT}"; VENV="{venv}"; link_command; unlatch'],
        env={**os.environ, "HOME": str(home), "PATH": f"{local_bin}:{os.environ['PATH']}"},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert on_path.stdout.strip().endswith("unlatch from the venv")
    assert "note:" not in on_path.stderr
    # A command of the user's own at that place is never replaced.
    link.unlink()
    link.write_text("#!/bin/sh\necho mine\n")
    proc = run(bin_dir, f'VENV="{venv}"; link_command', HOME=str(home))
    assert proc.returncode == 0 and "left alone" in proc.stderr
    assert link.read_text() == "#!/bin/sh\necho mine\n"
