"""One CSV importer driven by a per-format column table.

Browsers and password managers export CSV with their own headers; each format
module only says which column means what (:data:`Role`). Columns a format
does not know become custom fields; columns that are metadata (ids, icons,
timestamps) are listed in the report as not imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from unlatch.vault.transfer.base import Draft, ImportResult, collect, read_csv

Apply = Callable[[Draft, str, str], None]

TRUE_WORDS = frozenset({"1", "true", "yes", "y", "x"})


def _set(name: str) -> Apply:
    def apply(draft: Draft, value: str, column: str) -> None:
        setattr(draft, name, value)

    return apply


def _notes(draft: Draft, value: str, column: str) -> None:
    draft.notes = "\n".join(p for p in (draft.notes, value) if p)


def _url(draft: Draft, value: str, column: str) -> None:
    draft.add_url(value)


def _urls(draft: Draft, value: str, column: str) -> None:
    """Several URLs in one cell, separated by commas or line breaks (Bitwarden)."""
    for part in value.replace("\n", ",").split(","):
        draft.add_url(part)


def _tags(draft: Draft, value: str, column: str) -> None:
    """Tags separated by semicolons (1Password) or commas."""
    for part in value.replace(",", ";").split(";"):
        draft.add_tag(part)


def _folder(draft: Draft, value: str, column: str) -> None:
    draft.add_tag(value)


def _group(draft: Draft, value: str, column: str) -> None:
    """A KeePass group path "Root/Email/Work": the root group is not a tag."""
    path = [p for p in value.split("/") if p.strip()]
    if len(path) > 1:
        draft.add_tag("/".join(path[1:]))


def _favorite(draft: Draft, value: str, column: str) -> None:
    draft.favorite = value.strip().lower() in TRUE_WORDS


def _archived(draft: Draft, value: str, column: str) -> None:
    if value.strip().lower() in TRUE_WORDS:
        draft.add_tag("archived")


def _field(kind: str) -> Apply:
    def apply(draft: Draft, value: str, column: str) -> None:
        draft.keep(column, value, kind)

    return apply


def _skip(draft: Draft, value: str, column: str) -> None:
    """Metadata (ids, icons, timestamps): listed in the report, not imported."""


def _by_hook(draft: Draft, value: str, column: str) -> None:
    """Read by the format's ``row_hook`` (not a plain mapping)."""


BY_HOOK = _by_hook
TITLE, USERNAME, PASSWORD, TOTP = _set("title"), _set("username"), _set("password"), _set("totp")
NOTES, URL, URLS, TAGS, FOLDER, GROUP = _notes, _url, _urls, _tags, _folder, _group
FAVORITE, ARCHIVED, SKIP = _favorite, _archived, _skip
TEXT_FIELD, URL_FIELD = _field("text"), _field("url")


def import_csv(
    fmt: str,
    data: bytes,
    columns: Mapping[str, Apply],
    required: tuple[str, ...],
    *,
    row_hook: Callable[[Draft, dict[str, str]], None] | None = None,
) -> ImportResult:
    """Parse ``data`` with ``columns`` (lower-case header -> what it means).

    ``row_hook`` runs after the columns of a row were applied, for what a
    table cannot say (Bitwarden's item type and its ``name: value`` fields).
    """
    header, rows = read_csv(data, f"the {fmt} CSV file", required, tuple(columns))
    written = {h.lower(): h for h in header}  # custom fields keep the header's spelling
    ignored = [written[c] for c, how in columns.items() if how is SKIP and c in written]
    result = ImportResult(fmt, ignored=ignored)

    def drafts() -> Iterator[Draft]:
        for row in rows:
            draft = Draft(f"line {row.line}")
            for column, apply in columns.items():
                value = row.get(column)
                if value:
                    apply(draft, value, written.get(column, column))
            for name, value in row.extra.items():
                draft.keep(name, value)
            if row_hook is not None:
                row_hook(draft, row.values)
            yield draft

    return collect(fmt, drafts(), result)
