"""Firefox "Export Logins": ``url,username,password,httpRealm,formActionOrigin,guid,
timeCreated,timeLastUsed,timePasswordChanged`` (times in ms; ids and times are not kept)."""

from __future__ import annotations

from unlatch.vault.transfer import csvformat as c
from unlatch.vault.transfer.base import ImportResult

COLUMNS = {
    "url": c.URL,
    "username": c.USERNAME,
    "password": c.PASSWORD,
    "httprealm": c.TEXT_FIELD,
    "formactionorigin": c.URL_FIELD,
    "guid": c.SKIP,
    "timecreated": c.SKIP,
    "timelastused": c.SKIP,
    "timepasswordchanged": c.SKIP,
}
REQUIRED = ("url", "username", "password")


def import_data(data: bytes) -> ImportResult:
    """Items from a Firefox logins CSV (titled by the site's host name)."""
    return c.import_csv("firefox", data, COLUMNS, REQUIRED)
