"""Safari / Apple Passwords "Export Passwords": ``Title,URL,Username,Password,Notes,OTPAuth``."""

from __future__ import annotations

from unlatch.vault.transfer import csvformat as c
from unlatch.vault.transfer.base import ImportResult

COLUMNS = {
    "title": c.TITLE,
    "url": c.URL,
    "username": c.USERNAME,
    "password": c.PASSWORD,
    "notes": c.NOTES,
    "otpauth": c.TOTP,
}
REQUIRED = ("title", "url", "username", "password")


def import_data(data: bytes) -> ImportResult:
    """Items from a Safari password CSV."""
    return c.import_csv("safari", data, COLUMNS, REQUIRED)
