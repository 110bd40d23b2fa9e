"""Import from other password managers and browsers; export to files.

One module per format, one registry here (:data:`IMPORTERS`,
:data:`EXPORTERS`) that the CLI and the web UI read, so a format's name,
description and whether it needs a password are written once.

Importers take the file's bytes and return an
:class:`~unlatch.vault.transfer.base.ImportResult` without touching the vault;
the caller adds the items in one transaction. Exporters take decrypted items
and return the bytes to write with :func:`write_private`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from unlatch.vault.items import Item
from unlatch.vault.kdf import KdfParams
from unlatch.vault.transfer import (
    bitwarden,
    chrome,
    csv_export,
    firefox,
    keepass,
    keepassxc_csv,
    onepassword,
    safari,
    unlatch_format,
)
from unlatch.vault.transfer.base import (
    FileTooLargeError,
    ImportResult,
    MalformedFileError,
    Skipped,
    TransferError,
    TransferPasswordError,
    UnknownFormatError,
    check_size,
)

PasswordSource = Callable[[str], str]
"""Asked for a file's password only when the format needs one; the argument says which."""


@dataclass(frozen=True)
class Importer:
    """A format ``unlatch import FORMAT FILE`` reads."""

    name: str
    description: str
    needs_password: bool
    parse: Callable[[bytes, PasswordSource], ImportResult]


IMPORTERS: dict[str, Importer] = {
    i.name: i
    for i in (
        Importer(
            "bitwarden",
            "Bitwarden: unencrypted JSON export or CSV export",
            False,
            lambda data, pw: bitwarden.import_data(data),
        ),
        Importer(
            "1password",
            "1Password: 1PUX export (1Password 8) or CSV export",
            False,
            lambda data, pw: onepassword.import_data(data),
        ),
        Importer(
            "keepass",
            "KeePass / KeePassXC database (KDBX 4; asks for its password)",
            True,
            lambda data, pw: keepass.import_data(
                _checked_kdbx(data), pw("the KeePass database's password")
            ),
        ),
        Importer(
            "keepassxc-csv",
            "KeePassXC: Database > Export > CSV File",
            False,
            lambda data, pw: keepassxc_csv.import_data(data),
        ),
        Importer(
            "chrome",
            "Chrome, Edge, Brave: exported passwords CSV",
            False,
            lambda d, pw: chrome.import_data(d),
        ),
        Importer(
            "firefox", "Firefox: exported logins CSV", False, lambda d, pw: firefox.import_data(d)
        ),
        Importer(
            "safari",
            "Safari / Apple Passwords: exported passwords CSV",
            False,
            lambda d, pw: safari.import_data(d),
        ),
        Importer(
            "unlatch",
            "an encrypted unlatch export (asks for the export's password)",
            True,
            lambda data, pw: unlatch_format.import_data(data, pw("the export's password")),
        ),
    )
}


def _checked_kdbx(data: bytes) -> bytes:
    keepass.check_header(data)  # before asking for a password the file could not use
    return data


@dataclass(frozen=True)
class Exporter:
    """A format ``unlatch export FORMAT FILE`` writes."""

    name: str
    description: str
    encrypted: bool
    suffix: str


EXPORTERS: dict[str, Exporter] = {
    e.name: e
    for e in (
        Exporter(
            "unlatch",
            "encrypted unlatch export (own password; import with `unlatch import unlatch`)",
            True,
            ".unlatch",
        ),
        Exporter("keepass", "KeePass / KeePassXC database, KDBX 4 (own password)", True, ".kdbx"),
        Exporter("csv", "CSV with every secret in the clear (needs --unencrypted)", False, ".csv"),
    )
}


def import_file(fmt: str, data: bytes, password: PasswordSource) -> ImportResult:
    """Parse ``data`` as ``fmt``; the vault is not touched."""
    importer = IMPORTERS.get(fmt)
    if importer is None:
        raise UnknownFormatError(f"unknown import format {fmt!r} (one of {', '.join(IMPORTERS)})")
    check_size(data, f"the {fmt} file")
    return importer.parse(data, password)


def export_items(
    fmt: str, items: list[Item], password: str | None, *, kdf_params: KdfParams | None = None
) -> bytes:
    """The bytes of ``items`` in ``fmt`` (``password`` for the encrypted formats)."""
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise UnknownFormatError(f"unknown export format {fmt!r} (one of {', '.join(EXPORTERS)})")
    if exporter.encrypted:
        if password is None:
            raise TransferPasswordError(f"the {fmt} export needs a password")
        unlatch_format.check_password(password)
        if fmt == "keepass":
            return keepass.export_items(items, password)
        return unlatch_format.export_items(items, password, kdf_params)
    return csv_export.export_items(items)


def write_private(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path``: mode 0600 from the start, all or nothing.

    The bytes go to a temporary file (0600, ``O_EXCL``) in the same
    directory, are fsynced, then linked into place (refusing an existing
    file unless ``overwrite``, then renamed over it) and the directory is
    fsynced: a reader never sees half an export, nor one readable by others.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise TransferError(f"{path} exists: choose another name or use --force") from None
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


__all__ = [
    "EXPORTERS",
    "IMPORTERS",
    "Exporter",
    "FileTooLargeError",
    "ImportResult",
    "Importer",
    "MalformedFileError",
    "Skipped",
    "TransferError",
    "TransferPasswordError",
    "UnknownFormatError",
    "export_items",
    "import_file",
    "write_private",
]
