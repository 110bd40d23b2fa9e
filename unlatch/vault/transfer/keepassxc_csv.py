"""KeePassXC "Export to CSV": ``Group,Title,Username,Password,URL,Notes,TOTP,Icon,
Last Modified,Created``. The group path (without the root group) becomes a tag."""

from __future__ import annotations

from unlatch.vault.transfer import csvformat as c
from unlatch.vault.transfer.base import ImportResult

COLUMNS = {
    "group": c.GROUP,
    "title": c.TITLE,
    "username": c.USERNAME,
    "password": c.PASSWORD,
    "url": c.URL,
    "notes": c.NOTES,
    "totp": c.TOTP,
    "tags": c.TAGS,
    "icon": c.SKIP,
    "last modified": c.SKIP,
    "created": c.SKIP,
}
REQUIRED = ("group", "title", "username", "password", "url", "notes")


def import_data(data: bytes) -> ImportResult:
    """Items from a KeePassXC CSV export."""
    return c.import_csv("keepassxc-csv", data, COLUMNS, REQUIRED)
