"""What every importer and exporter shares: errors, bounds, the import result,
the mapping of foreign entries onto items, and bounded readers for CSV, JSON
and ZIP.

Importers never write to the vault: they turn the bytes of a file into an
:class:`ImportResult` (items to add, entries skipped and why), and the caller
adds all the items in one transaction (:meth:`unlatch.vault.Vault.add_items`),
so a file that fails half-way leaves the vault as it was. Every parser is
bounded: the file size, the number of entries and the size of any one value
are checked before anything large is built, and each failure is a typed
:class:`TransferError` whose message names the line or entry.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from unlatch.vault import totp
from unlatch.vault.errors import InvalidItemError, VaultError
from unlatch.vault.items import (
    LIMITS,
    MAX_FIELD_VALUE,
    MAX_FIELDS,
    MAX_TAG_LEN,
    MAX_TAGS,
    MAX_URL_LEN,
    MAX_URLS,
    TYPE_FIELDS,
    CustomField,
    Item,
)

# Bounds for every import (one place; docs/vault.md quotes them).
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_ENTRIES = 20_000
MAX_VALUE_CHARS = 64 * 1024  # any one value in a foreign file


class TransferError(VaultError):
    """Base of import and export failures (bad file, wrong password, too large)."""

    exit_code = 2


class MalformedFileError(TransferError):
    """The file is not what its format says; the message names the line or entry."""


class FileTooLargeError(TransferError):
    """The file, an entry or a value is over the import bounds."""


class UnknownFormatError(TransferError):
    """No importer or exporter has this name."""


class TransferPasswordError(TransferError):
    """The password does not open the file (KeePass database, unlatch export)."""

    exit_code = 1


@dataclass
class Skipped:
    """An entry that was not imported, and why (shown in the report)."""

    entry: str
    reason: str


@dataclass
class ImportResult:
    """What an importer made of a file: the items to add and what it left out."""

    format: str
    items: list[Item] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # metadata columns/keys not kept

    def report(self) -> list[str]:
        """Human lines: imported N, skipped M and why, what was ignored."""
        lines = [f"imported {len(self.items)} item(s) from {self.format}"]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)}:")
            lines += [f"  {s.entry}: {s.reason}" for s in self.skipped]
        if self.ignored:
            lines.append("not imported (metadata): " + ", ".join(self.ignored))
        return lines


@dataclass
class Draft:
    """A foreign entry on its way to becoming an :class:`Item`.

    Importers fill in what maps onto an item and call :meth:`keep` for the
    rest; :meth:`finish` then fits everything into the item's bounds, moving
    what does not fit into custom fields or the notes (never dropping it), or
    reports the entry as skipped with the reason.
    """

    entry: str  # how the report names it: "line 7" or "item 'GitHub'"
    title: str = ""
    type: str = "login"
    username: str = ""
    password: str = ""
    urls: list[str] = field(default_factory=list)
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    totp: str = ""
    favorite: bool = False
    data: dict[str, str] = field(default_factory=dict)
    fields: list[CustomField] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # things that cannot be imported at all

    def keep(self, name: str, value: str, kind: str = "text") -> None:
        """A value with no place on the item: it becomes a custom field."""
        if value:
            self.fields.append(CustomField(name.strip() or "field", value, kind))

    def add_url(self, value: str) -> None:
        """A URL (several may be given; blanks are ignored)."""
        value = value.strip()
        if value and value not in self.urls:
            self.urls.append(value)

    def add_tag(self, value: str) -> None:
        """A tag, a folder or a group name (blanks and repeats are ignored)."""
        value = value.strip()
        if value and value not in self.tags:
            self.tags.append(value)

    def finish(self) -> Item | Skipped:
        """The item, or why the entry was skipped."""
        notes_extra: list[str] = []
        self.title = " ".join(self.title.split())[: LIMITS["title"]]
        if not self.title:
            self.title = _fallback_title(self)
        if self.totp and not _valid_totp(self.totp):
            self.keep("one-time code (not understood)", self.totp, "hidden")
            self.totp = ""
        urls = [u for u in self.urls if len(u) <= MAX_URL_LEN]
        for long_url in (u for u in self.urls if len(u) > MAX_URL_LEN):
            self.keep("URL", long_url, "url")
        for extra_url in urls[MAX_URLS:]:
            self.keep("URL", extra_url, "url")
        tags = [t for t in self.tags if len(t) <= MAX_TAG_LEN][:MAX_TAGS]
        left = [t for t in self.tags if t not in tags]
        if left:
            notes_extra.append("tags: " + ", ".join(left))
        specs = {f.key: f for f in TYPE_FIELDS.get(self.type, ())}
        data: dict[str, str] = {}
        for key, value in self.data.items():
            spec = specs.get(key)
            if spec is None or len(value) > spec.limit:
                self.keep(spec.label if spec else key, value, "hidden")
            elif value:
                data[key] = value
        for name, limit in (("username", LIMITS["username"]), ("password", LIMITS["password"])):
            value = getattr(self, name)
            if len(value) > limit:
                self.keep(name, value, "hidden")
                setattr(self, name, "")
        fields: list[CustomField] = []
        for f in self.fields:
            if len(f.value) > MAX_FIELD_VALUE or len(fields) >= MAX_FIELDS:
                if f.kind == "hidden":
                    return Skipped(self.entry, f"its hidden field {f.name[:40]!r} does not fit")
                notes_extra.append(f"{f.name}: {f.value}")
            else:
                fields.append(CustomField(f.name[:128], f.value, f.kind))
        if self.lost:
            notes_extra.append("not imported: " + "; ".join(self.lost))
        notes = "\n\n".join(p for p in (self.notes, "\n".join(notes_extra)) if p)
        item = Item(
            title=self.title,
            username=self.username,
            password=self.password,
            urls=urls[:MAX_URLS],
            notes=notes,
            tags=tags,
            totp_secret=self.totp,
            type=self.type,
            favorite=self.favorite,
            fields=fields,
            data=data,
        )
        try:
            item.validate()
        except InvalidItemError as exc:
            return Skipped(self.entry, str(exc))
        return item


def _valid_totp(secret: str) -> bool:
    try:
        totp.parse(secret)
    except InvalidItemError:
        return False
    return True


def _fallback_title(draft: Draft) -> str:
    for url in draft.urls:
        host = urlsplit(url if "//" in url else f"//{url}").hostname
        if host:
            return host[: LIMITS["title"]]
    return (draft.username or f"untitled {draft.type.replace('_', ' ')}")[: LIMITS["title"]]


def collect(fmt: str, drafts: Iterator[Draft], result: ImportResult | None = None) -> ImportResult:
    """Finish every draft into ``result`` (items or skipped), bounding the count."""
    result = result or ImportResult(fmt)
    for n, draft in enumerate(drafts, 1):
        if n > MAX_ENTRIES:
            raise FileTooLargeError(f"more than {MAX_ENTRIES} entries: split the file")
        done = draft.finish()
        if isinstance(done, Skipped):
            result.skipped.append(done)
        else:
            result.items.append(done)
    return result


# ----------------------------------------------------------------- readers


def check_size(data: bytes, what: str) -> None:
    """Refuse a file over :data:`MAX_FILE_BYTES` and an empty one."""
    if len(data) > MAX_FILE_BYTES:
        raise FileTooLargeError(f"{what} is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    if not data.strip():
        raise MalformedFileError(f"{what} is empty")


def text_of(data: bytes, what: str) -> str:
    """Strict UTF-8 (a BOM is allowed), naming the line of a bad byte."""
    check_size(data, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MalformedFileError(f"{what}: line {line} is not UTF-8 text") from None


def looks_like_json(data: bytes) -> bool:
    """Whether the content (after a BOM and blanks) starts like a JSON object."""
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def read_json(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object from ``data``, bounded in size and nesting."""
    try:
        value = json.loads(text_of(data, what))
    except json.JSONDecodeError as exc:
        raise MalformedFileError(
            f"{what} is not valid JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:  # the parser's own nesting bound
        raise MalformedFileError(f"{what} is nested too deeply") from None
    if not isinstance(value, dict):
        raise MalformedFileError(f"{what} is not a JSON object")
    return value


@dataclass
class CsvRow:
    """One CSV record: its first line number and its values by lower-cased header."""

    line: int
    values: dict[str, str]
    extra: dict[str, str]  # columns the format does not know, by their header as written

    def get(self, name: str) -> str:
        """The value of column ``name`` (lower case), or ``""``."""
        return self.values.get(name, "")


def read_csv(
    data: bytes, what: str, required: tuple[str, ...], known: tuple[str, ...]
) -> tuple[list[str], Iterator[CsvRow]]:
    """The records of a CSV file with a header line, bounded and strictly checked.

    ``required`` headers must all be present (case-insensitive); columns
    outside ``known`` are passed on in ``extra`` so the importer can keep them
    as custom fields. A record with the wrong number of columns, an unclosed
    quote or an over-long value is an error naming its line. Returns the
    header as written (checked now) and the records (read lazily).
    """
    text = text_of(data, what)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise MalformedFileError(f"{what}: no header line ({exc})") from None
    names = [h.strip() for h in header]
    lower = [h.lower() for h in names]
    missing = [r for r in required if r not in lower]
    if missing:
        raise MalformedFileError(
            f"{what}: the header line has no {', '.join(missing)} column "
            f"(found: {', '.join(names)[:200]}); is this the right format?"
        )
    return names, _csv_rows(reader, what, names, lower, known)


def _csv_rows(
    reader: Any, what: str, names: list[str], lower: list[str], known: tuple[str, ...]
) -> Iterator[CsvRow]:
    count = 0
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise MalformedFileError(f"{what}: line {start}: {exc}") from None
        line, start = start, reader.line_num + 1
        if not row or row == [""]:
            continue
        if len(row) != len(names):
            raise MalformedFileError(
                f"{what}: line {line} has {len(row)} columns, the header has {len(names)}"
            )
        count += 1
        if count > MAX_ENTRIES:
            raise FileTooLargeError(f"{what}: more than {MAX_ENTRIES} entries: split the file")
        for value in row:
            if len(value) > MAX_VALUE_CHARS:
                raise FileTooLargeError(f"{what}: line {line} has a value over 64 KiB")
        values = dict(zip(lower, row, strict=True))
        extra = {n: v for n, lo, v in zip(names, lower, row, strict=True) if lo not in known}
        yield CsvRow(line, values, extra)


def read_zip_member(data: bytes, member: str, what: str) -> bytes:
    """One member of a ZIP archive, its uncompressed size bounded before reading."""
    check_size(data, what)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise MalformedFileError(f"{what} is not a ZIP archive") from None
    with archive:
        try:
            info = archive.getinfo(member)
        except KeyError:
            raise MalformedFileError(f"{what} has no {member}") from None
        if info.file_size > MAX_FILE_BYTES:
            raise FileTooLargeError(f"{what}: {member} is larger than the import limit")
        try:
            with archive.open(info) as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)
        except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
            raise MalformedFileError(f"{what}: cannot read {member}: {exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise FileTooLargeError(f"{what}: {member} is larger than the import limit")
    return raw


def text(value: Any, where: str) -> str:
    """A string value from parsed JSON (``None`` is empty), bounded; else an error naming it."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise MalformedFileError(f"{where} must be text")
    value = str(value)
    if len(value) > MAX_VALUE_CHARS:
        raise FileTooLargeError(f"{where} is longer than 64 KiB")
    return value


def obj(value: Any, where: str) -> dict[str, Any]:
    """A JSON object value (``None`` is empty), else an error naming it."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedFileError(f"{where} must be an object")
    return value


def array(value: Any, where: str) -> list[Any]:
    """A JSON array value (``None`` is empty), bounded, else an error naming it."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedFileError(f"{where} must be a list")
    if len(value) > MAX_ENTRIES:
        raise FileTooLargeError(f"{where} has more than {MAX_ENTRIES} entries")
    return value
