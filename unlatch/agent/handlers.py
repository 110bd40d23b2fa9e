"""Socket operations: each validates its arguments and calls :class:`AgentCore`.

Arguments are checked here (types, lengths) so the core and the vault only
ever see well-formed values. Listings return item summaries (no password,
no TOTP secret); only ``get`` returns an item's secrets.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from unlatch.agent.core import AgentCore, _slot_dict
from unlatch.agent.errors import BadRequestError
from unlatch.vault import Item, KdfParams
from unlatch.vault.errors import InvalidItemError
from unlatch.vault.items import EDITABLE_FIELDS, ITEM_TYPES, check_types, public_view

Handler = Callable[[AgentCore, dict[str, Any]], Awaitable[Any]]
MAX_TEXT = 64 * 1024


def _text(args: dict[str, Any], name: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    value = args.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise BadRequestError(f'"{name}" must be a string of at most {limit} characters')
    return value


def _kdf(args: dict[str, Any]) -> KdfParams | None:
    raw = args.get("kdf")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise BadRequestError('"kdf" must be an object')
    try:
        params = KdfParams(
            int(raw["memory_kib"]), int(raw["time_cost"]), int(raw.get("parallelism", 1))
        )
    except (KeyError, TypeError, ValueError):
        raise BadRequestError('"kdf" needs integer memory_kib and time_cost') from None
    params.check()
    return params


def summary(item: Item) -> dict[str, Any]:
    """An item without its secrets (:func:`unlatch.vault.items.public_view`)."""
    return public_view(item)


async def status(core: AgentCore, args: dict[str, Any]) -> Any:
    return await core.status()


async def init(core: AgentCore, args: dict[str, Any]) -> Any:
    await core.init_vault(_text(args, "password", limit=1024), _kdf(args))
    return await core.status()


async def unlock(core: AgentCore, args: dict[str, Any]) -> Any:
    await core.unlock_with_password(_text(args, "password", limit=1024))
    return {"unlocked": True}


def _kek(args: dict[str, Any]) -> bytes:
    try:
        return base64.b64decode(_text(args, "kek", limit=128), validate=True)
    except binascii.Error:
        raise BadRequestError('"kek" must be base64') from None


async def unlock_slot(core: AgentCore, args: dict[str, Any]) -> Any:
    await core.unlock_with_slot(_text(args, "slot_id", limit=64), _kek(args))
    return {"unlocked": True}


async def lock(core: AgentCore, args: dict[str, Any]) -> Any:
    return {"was_unlocked": await core.lock()}


def _item_fields(args: dict[str, Any], name: str) -> dict[str, Any]:
    """``args[name]``: an object of editable item fields, each of its own type.

    Text fields must be strings, ``urls``/``tags`` lists of strings,
    ``favorite`` a boolean, ``fields`` and ``data`` their own shapes
    (:func:`unlatch.vault.items.check_types`); no coercion (``"abc"`` is not
    three URLs, ``5`` is not a title). Lengths are checked by the vault
    (:meth:`Item.validate`).
    """
    fields = args.get(name)
    if not isinstance(fields, dict):
        raise BadRequestError(f'"{name}" must be an object')
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        shown = ", ".join(sorted(str(k)[:40] for k in unknown)[:10])
        raise BadRequestError(f"unknown item field(s): {shown}")
    try:
        check_types(fields)
    except InvalidItemError as exc:
        raise BadRequestError(str(exc).removeprefix("malformed item: ")) from None
    return fields


async def add(core: AgentCore, args: dict[str, Any]) -> Any:
    fields = _item_fields(args, "item")
    if "title" not in fields:
        raise BadRequestError('"item" needs a "title"')
    return summary(await core.add_item(Item.from_dict(fields)))


async def get(core: AgentCore, args: dict[str, Any]) -> Any:
    return (await core.get_item(_text(args, "ref", limit=1024))).to_dict()


async def edit(core: AgentCore, args: dict[str, Any]) -> Any:
    changes = _item_fields(args, "changes")
    return summary(await core.update_item(_text(args, "ref", limit=1024), changes))


async def remove(core: AgentCore, args: dict[str, Any]) -> Any:
    return summary(await core.remove_item(_text(args, "ref", limit=1024)))


async def search(core: AgentCore, args: dict[str, Any]) -> Any:
    tag, item_type, favorite = args.get("tag"), args.get("type"), args.get("favorite")
    if tag is not None and not isinstance(tag, str):
        raise BadRequestError('"tag" must be a string')
    if item_type is not None and item_type not in ITEM_TYPES:
        raise BadRequestError(f'"type" must be one of {", ".join(ITEM_TYPES)}')
    if favorite is not None and not isinstance(favorite, bool):
        raise BadRequestError('"favorite" must be true or false')
    found = await core.search(_text(args, "query", required=False, limit=1024), tag)
    return [
        summary(i)
        for i in found
        if (item_type is None or i.type == item_type)
        and (favorite is None or i.favorite == favorite)
    ]


def _token(args: dict[str, Any]) -> str:
    return _text(args, "token", limit=64)


async def import_begin(core: AgentCore, args: dict[str, Any]) -> Any:
    await core.with_vault(lambda v: None)  # unlocked, or the typed error now
    return {"token": core.imports.begin()}


async def import_add(core: AgentCore, args: dict[str, Any]) -> Any:
    raw = args.get("items")
    if not isinstance(raw, list):
        raise BadRequestError('"items" must be a list')
    items = []
    for n, fields in enumerate(raw, 1):
        checked = _item_fields({"item": fields}, "item")
        try:
            items.append(Item.from_dict(checked))
        except InvalidItemError as exc:
            raise BadRequestError(f"item {n}: {exc}") from None
    return {"staged": core.imports.add(_token(args), items)}


async def import_commit(core: AgentCore, args: dict[str, Any]) -> Any:
    added = await core.import_items(core.imports.take(_token(args)))
    return {"imported": len(added)}


async def export(core: AgentCore, args: dict[str, Any]) -> Any:
    return [i.to_dict() for i in await core.export_items()]


async def passwd(core: AgentCore, args: dict[str, Any]) -> Any:
    await core.change_password(
        _text(args, "old", limit=1024), _text(args, "new", limit=1024), _kdf(args)
    )
    return {"changed": True}


async def rotate_key(core: AgentCore, args: dict[str, Any]) -> Any:
    new = args.get("new")
    if new is not None:
        new = _text(args, "new", limit=1024)
    done = await core.rotate_key(_text(args, "password", limit=1024), new, _kdf(args))
    return {
        "rotated": True,
        "items": done.items,
        "rewrapped": [_slot_dict(s) for s in done.rewrapped],
        "renewing": [_slot_dict(s) for s in done.renewing],
        "dropped": [{**_slot_dict(d.slot), "reason": d.reason} for d in done.dropped],
    }


async def slots(core: AgentCore, args: dict[str, Any]) -> Any:
    return [_slot_dict(s) for s in await core.list_slots()]


async def add_slot(core: AgentCore, args: dict[str, Any]) -> Any:
    meta = args.get("meta", {})
    if not isinstance(meta, dict):
        raise BadRequestError('"meta" must be an object')
    slot_id = await core.add_slot(
        _text(args, "kind", limit=32), _text(args, "label", limit=256), _kek(args), meta
    )
    return {"slot_id": slot_id}


async def rename_slot(core: AgentCore, args: dict[str, Any]) -> Any:
    await core.rename_slot(_text(args, "slot_id", limit=64), _text(args, "label", limit=256))
    return {"renamed": True}


async def remove_slot(core: AgentCore, args: dict[str, Any]) -> Any:
    await core.remove_slot(_text(args, "slot_id", limit=64))
    return {"removed": True}


HANDLERS: dict[str, Handler] = {
    "status": status,
    "init": init,
    "unlock": unlock,
    "unlock_slot": unlock_slot,
    "lock": lock,
    "add": add,
    "get": get,
    "edit": edit,
    "remove": remove,
    "search": search,
    "import_begin": import_begin,
    "import_add": import_add,
    "import_commit": import_commit,
    "export": export,
    "passwd": passwd,
    "rotate_key": rotate_key,
    "slots": slots,
    "add_slot": add_slot,
    "rename_slot": rename_slot,
    "remove_slot": remove_slot,
}
