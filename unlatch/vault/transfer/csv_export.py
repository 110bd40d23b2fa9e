"""The unencrypted CSV export (only behind ``--unencrypted``): one row per item.

Columns: ``title,type,favorite,username,password,urls,notes,tags,totp,fields,data``;
``urls`` and ``tags`` are one per line inside the cell, ``fields`` and ``data``
JSON (custom fields ``[{"name", "value", "kind"}]`` and the type's fields
``{key: value}``), so nothing of an item is left out. Every secret is in the
clear: the command asks for an explicit confirmation.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict

from unlatch.vault.items import Item

COLUMNS = (
    *("title", "type", "favorite", "username", "password"),
    *("urls", "notes", "tags", "totp", "fields", "data"),
)


def export_items(items: list[Item]) -> bytes:
    """The CSV bytes (UTF-8, CRLF line ends as RFC 4180 says)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for i in items:
        writer.writerow(
            [
                i.title,
                i.type,
                "1" if i.favorite else "",
                i.username,
                i.password,
                "\n".join(i.urls),
                i.notes,
                "\n".join(i.tags),
                i.totp_secret,
                json.dumps([asdict(f) for f in i.fields], ensure_ascii=False) if i.fields else "",
                json.dumps(i.data, ensure_ascii=False) if i.data else "",
            ]
        )
    return out.getvalue().encode("utf-8")
