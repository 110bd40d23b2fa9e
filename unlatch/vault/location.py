"""Where the desktop's vault file lives: ``$UNLATCH_HOME/desktop/vault.db``."""

from __future__ import annotations

from pathlib import Path

from unlatch import paths

VAULT_FILE = "vault.db"


def default_vault_path() -> Path:
    """The desktop vault file (one vault per ``UNLATCH_HOME``)."""
    return paths.subdir("desktop") / VAULT_FILE
