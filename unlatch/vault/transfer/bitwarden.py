"""Bitwarden exports: the unencrypted JSON export and the CSV export.

JSON (``bw export --format json``): ``{"encrypted": false, "folders": [{id,
name}], "items": [...]}``; each item has ``type`` 1 login, 2 secure note,
3 card, 4 identity, 5 SSH key, with a sub-object of the same name, plus
``name``, ``notes``, ``favorite``, ``folderId`` and ``fields`` (``type`` 0
text, 1 hidden, 2 boolean, 3 linked). CSV: ``folder,favorite,type,name,notes,
fields,reprompt,login_uri,login_username,login_password,login_totp`` (logins
and notes only; ``fields`` is ``name: value`` per line).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from unlatch.vault.items import CARD, IDENTITY, LOGIN, NOTE, SSH_KEY
from unlatch.vault.transfer import csvformat as c
from unlatch.vault.transfer.base import (
    Draft,
    ImportResult,
    MalformedFileError,
    Skipped,
    array,
    collect,
    looks_like_json,
    obj,
    read_json,
    text,
)

TYPES = {1: LOGIN, 2: NOTE, 3: CARD, 4: IDENTITY, 5: SSH_KEY}
CARD_KEYS = {
    "cardholderName": "cardholder",
    "brand": "brand",
    "number": "number",
    "expMonth": "exp_month",
    "expYear": "exp_year",
    "code": "code",
}
IDENTITY_KEYS = {
    "title": "honorific",
    "firstName": "first_name",
    "middleName": "middle_name",
    "lastName": "last_name",
    "company": "company",
    "email": "email",
    "phone": "phone",
    "address1": "address1",
    "address2": "address2",
    "address3": "address3",
    "city": "city",
    "state": "state",
    "postalCode": "postal_code",
    "country": "country",
    "ssn": "ssn",
    "passportNumber": "passport_number",
    "licenseNumber": "license_number",
}
SSH_KEYS = {"privateKey": "private_key", "publicKey": "public_key", "keyFingerprint": "fingerprint"}
FIELD_KINDS = {0: "text", 1: "hidden", 2: "text", 3: "text"}
METADATA = ["id", "organizationId", "collectionIds", "revisionDate", "creationDate", "reprompt"]


def import_data(data: bytes) -> ImportResult:
    """Items from a Bitwarden export, JSON or CSV (told apart by the content)."""
    if looks_like_json(data):
        return _import_json(data)
    return c.import_csv("bitwarden", data, CSV_COLUMNS, CSV_REQUIRED, row_hook=_csv_row)


# ------------------------------------------------------------------- JSON


def _import_json(data: bytes) -> ImportResult:
    root = read_json(data, "the Bitwarden JSON file")
    if (
        root.get("encrypted")
        or "passwordProtected" in root
        or "encKeyValidation_DO_NOT_EDIT" in root
    ):
        raise MalformedFileError(
            "this is an encrypted Bitwarden export: export again as .json without a password"
        )
    if "items" not in root:
        raise MalformedFileError('the Bitwarden JSON file has no "items" list')
    folders = {}
    for n, folder in enumerate(array(root.get("folders"), "folders"), 1):
        folder = obj(folder, f"folder {n}")
        folders[text(folder.get("id"), f"folder {n} id")] = text(folder.get("name"), f"folder {n}")
    items = array(root["items"], "items")
    result = ImportResult("bitwarden", ignored=METADATA)

    def drafts() -> Iterator[Draft]:
        for n, raw in enumerate(items, 1):
            draft = _json_item(obj(raw, f"item {n}"), n, folders)
            if isinstance(draft, Skipped):
                result.skipped.append(draft)
            else:
                yield draft

    return collect("bitwarden", drafts(), result)


def _json_item(item: dict[str, Any], n: int, folders: dict[str, str]) -> Draft | Skipped:
    name = text(item.get("name"), f"item {n} name")
    where = f"item {n} ({name[:40]!r})"
    if item.get("deletedDate"):
        return Skipped(where, "in the trash")
    kind = item.get("type")
    if type(kind) is not int or kind not in TYPES:
        return Skipped(where, f"unknown Bitwarden item type {str(kind)[:10]!r}")
    draft = Draft(where, title=name, type=TYPES[kind], notes=text(item.get("notes"), where))
    draft.favorite = item.get("favorite") is True
    folder = folders.get(text(item.get("folderId"), where))
    if folder:
        draft.add_tag(folder)
    if kind == 1:
        login = obj(item.get("login"), f"{where} login")
        draft.username = text(login.get("username"), where)
        draft.password = text(login.get("password"), where)
        draft.totp = text(login.get("totp"), where)
        for uri in array(login.get("uris"), f"{where} uris"):
            draft.add_url(text(obj(uri, f"{where} uri").get("uri"), where))
        if login.get("fido2Credentials"):
            draft.lost.append("its passkey (passkeys cannot be exported from Bitwarden)")
    for key, table in (("card", CARD_KEYS), ("identity", IDENTITY_KEYS), ("sshKey", SSH_KEYS)):
        section = obj(item.get(key), f"{where} {key}")
        for theirs, ours in table.items():
            draft.data[ours] = text(section.get(theirs), f"{where} {key}.{theirs}")
        if key == "identity" and section.get("username"):
            draft.username = text(section.get("username"), where)
    for m, field in enumerate(array(item.get("fields"), f"{where} fields"), 1):
        field = obj(field, f"{where} field {m}")
        kind_no = field.get("type", 0)
        value = text(field.get("value"), f"{where} field {m}")
        if kind_no == 3:
            value = value or f"(linked to {text(field.get('linkedId'), where)})"
        draft.keep(text(field.get("name"), where), value, FIELD_KINDS.get(kind_no, "text"))
    for m, old in enumerate(array(item.get("passwordHistory"), f"{where} passwordHistory"), 1):
        old = obj(old, f"{where} password history")
        draft.keep(f"previous password {m}", text(old.get("password"), where), "hidden")
    return draft


# -------------------------------------------------------------------- CSV


def _fields(draft: Draft, value: str, column: str) -> None:
    """``name: value`` per line (Bitwarden's CSV custom fields)."""
    for line in value.splitlines():
        name, sep, field_value = line.partition(": ")
        if sep:
            draft.keep(name, field_value)
        elif line.strip():
            draft.keep("field", line)


def _csv_row(draft: Draft, values: dict[str, str]) -> None:
    kind = values.get("type", "login").strip().lower() or "login"
    if kind == "note":
        draft.type = NOTE
    elif kind != "login":
        draft.lost.append(f"its Bitwarden type {kind[:20]!r} (only login and note exist in CSV)")


CSV_COLUMNS = {
    "folder": c.FOLDER,
    "favorite": c.FAVORITE,
    "type": c.BY_HOOK,
    "name": c.TITLE,
    "notes": c.NOTES,
    "fields": _fields,
    "reprompt": c.SKIP,
    "login_uri": c.URLS,
    "login_username": c.USERNAME,
    "login_password": c.PASSWORD,
    "login_totp": c.TOTP,
}
CSV_REQUIRED = ("name", "login_uri", "login_username", "login_password")
