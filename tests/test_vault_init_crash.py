"""A creation killed half-way leaves scratch files; the next creation removes them.

``Vault.create`` builds the file as ``.<name>.<id>.creating`` (plus SQLite's
``-wal``/``-shm``) and links it into place. A ``kill -9`` in that window used
to leave those files behind for good (issue 15). The creator now holds an
``flock`` on its scratch file; the next creation sweeps every scratch file
whose lock nobody holds, and leaves alone one that a running creation holds.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

from fixtures.vault import PASSWORD

from unlatch.vault import OWASP_MINIMUM, Vault
from unlatch.vault import scratch as scratch_mod

# A real `Vault.create` in a child process that kills itself with SIGKILL just
# after the password slot is written: the scratch file and its WAL exist.
KILLED_CREATE = r"""
import os, signal, sys
from unlatch.vault import OWASP_MINIMUM, Vault, vault as vault_mod

real = vault_mod._insert_password_slot
def insert_then_die(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
vault_mod._insert_password_slot = insert_then_die
Vault.create(sys.argv[1], sys.argv[2], kdf_params=OWASP_MINIMUM)
"""


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if ".creating" in p.name)


def test_a_killed_init_leaves_no_scratch_files_after_the_next_init(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", KILLED_CREATE, str(path), PASSWORD],
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == -9, proc.stderr.decode()
    assert not path.exists()
    # The second (killed) creation already swept the first one's files.
    left = leftovers(tmp_path)
    assert len([n for n in left if n.endswith(".creating")]) == 1, left
    assert any(n.endswith(".creating-wal") for n in left), left

    Vault.create(path, PASSWORD, kdf_params=OWASP_MINIMUM).lock()

    assert leftovers(tmp_path) == []
    vault = Vault.open(path)
    vault.unlock_with_password(PASSWORD)


def test_a_creation_in_progress_keeps_its_scratch_file(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    busy = tmp_path / f".{path.name}.inprogress{scratch_mod.SUFFIX}"
    busy.write_bytes(b"")
    # Another process holds the lock, as a running `unlatch init` does.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR);"
            " fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
            str(busy),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        stale = tmp_path / f".{path.name}.crashed{scratch_mod.SUFFIX}"
        stale.write_bytes(b"x")
        Path(f"{stale}-wal").write_bytes(b"x")

        assert scratch_mod.sweep(path) == [stale]
        assert leftovers(tmp_path) == [busy.name]
    finally:
        holder.kill()
        holder.wait()
    assert scratch_mod.sweep(path) == [busy]


def test_the_sweep_touches_only_this_vaults_scratch_files(tmp_path: Path) -> None:
    path = tmp_path / "vault.db"
    other = tmp_path / f".other.db.x{scratch_mod.SUFFIX}"
    other.write_bytes(b"")
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    link = tmp_path / f".{path.name}.link{scratch_mod.SUFFIX}"
    os.symlink(target, link)

    scratch_mod.sweep(path)

    assert other.exists() and target.read_bytes() == b"keep"
    fd = os.open(other, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody was left holding it
    finally:
        os.close(fd)
