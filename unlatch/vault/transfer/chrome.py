"""Chrome (and Edge, Brave...) "Export passwords": ``name,url,username,password[,note]``."""

from __future__ import annotations

from unlatch.vault.transfer import csvformat as c
from unlatch.vault.transfer.base import ImportResult

COLUMNS = {"name": c.TITLE, "url": c.URL, "username": c.USERNAME, "password": c.PASSWORD}
COLUMNS |= {"note": c.NOTES}
REQUIRED = ("name", "url", "username", "password")


def import_data(data: bytes) -> ImportResult:
    """Items from a Chrome password CSV."""
    return c.import_csv("chrome", data, COLUMNS, REQUIRED)
