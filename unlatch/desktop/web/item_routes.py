"""The vault's items in the page: list, read (secrets only on demand), add, edit, delete,
one-time codes, password generation, and lock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from unlatch.agent.handlers import summary
from unlatch.vault import Item, Vault, totp
from unlatch.vault.generator import generate_passphrase, generate_password
from unlatch.vault.items import FIELD_KINDS, public_view, types_schema

if TYPE_CHECKING:
    from unlatch.desktop.runtime import DesktopRuntime
from unlatch.desktop.web.common import (
    SECRET_KEYS,
    BadInput,
    NoTotpError,
    _body,
    _item_fields,
    _str,
    guarded,
)


def page_item(item: Item) -> dict[str, Any]:
    """An item as the page shows it before any "Show" or "Copy": no secret at all.

    :func:`~unlatch.vault.items.public_view` (no password, no TOTP secret, no
    secret type field, no hidden custom value), plus which secrets exist
    (``has_password``, ``secret_data``: the keys of the type's secret fields
    that hold a value) so the page can draw their rows masked. A value comes
    only when the user asks for it (``POST /api/items/{id}/reveal``); the
    TOTP secret never comes: the page asks for the current code instead
    (``GET /api/items/{id}/totp``), so the secret that makes every future
    code stays in the agent.
    """
    data = public_view(item)
    data["has_password"] = bool(item.password)
    data["secret_data"] = [k for k in SECRET_KEYS.get(item.type, ()) if item.data.get(k)]
    return data


def edit_view(item: Item) -> dict[str, Any]:
    """The item for its edit form (asked for by pressing "Edit"): every value but the
    TOTP secret, which the form only replaces or removes."""
    data = item.to_dict()
    data["has_totp"] = bool(data.pop("totp_secret"))
    return data


def reveal(item: Item, ref: str) -> str:
    """One secret of ``item``: ``password``, ``data.KEY`` or ``fields.INDEX``."""
    if ref == "password":
        return item.password
    kind, _, key = ref.partition(".")
    if kind == "data" and key in item.data:
        return item.data[key]
    if kind == "fields" and key.isdigit() and int(key) < len(item.fields):
        return item.fields[int(key)].value
    raise BadInput(f"{item.title!r} has no field {ref[:40]!r}")


def item_routes(rt: DesktopRuntime) -> list[BaseRoute]:
    """The routes of the items (and lock)."""

    @guarded
    async def lock(request: Request) -> Response:
        return JSONResponse({"was_unlocked": await rt.core.lock(reason="ui")})

    @guarded
    async def items_list(request: Request) -> Response:
        query = request.query_params.get("q", "")[:1024]
        found = await rt.core.search(query)
        return JSONResponse({"items": [summary(i) for i in found]})

    @guarded
    async def item_get(request: Request) -> Response:
        item = await rt.core.get_item(request.path_params["item_id"][:64])
        return JSONResponse(page_item(item))

    @guarded
    async def item_reveal(request: Request) -> Response:
        """One secret value, when the user presses its Show or Copy (activity)."""
        ref = _str(await _body(request), "field", 64)
        item = await rt.core.get_item(request.path_params["item_id"][:64])
        return JSONResponse({"value": reveal(item, ref)}, headers={"Cache-Control": "no-store"})

    @guarded
    async def item_full(request: Request) -> Response:
        item = await rt.core.get_item(request.path_params["item_id"][:64])
        return JSONResponse(edit_view(item), headers={"Cache-Control": "no-store"})

    @guarded
    async def item_types(request: Request) -> Response:
        return JSONResponse({"types": types_schema(), "field_kinds": list(FIELD_KINDS)})

    @guarded
    async def item_totp(request: Request) -> Response:
        """The item's current one-time code, computed here from its secret.

        Not activity for the auto-lock: the page asks again every period while
        the item is open, which must not keep an idle vault unlocked.
        """
        ref = request.path_params["item_id"][:64]

        def current(v: Vault) -> dict[str, str | int]:
            item = v.find(ref)
            if not item.totp_secret:
                raise NoTotpError(f"{item.title!r} has no one-time code")
            return totp.current_view(item.totp_secret)

        return JSONResponse(await rt.core.with_vault(current, activity=False))

    @guarded
    async def item_add(request: Request) -> Response:
        fields = _item_fields(await _body(request))
        item = await rt.core.add_item(Item.from_dict(fields))
        return JSONResponse(summary(item), status_code=201)

    @guarded
    async def item_edit(request: Request) -> Response:
        fields = _item_fields(await _body(request))
        item = await rt.core.update_item(request.path_params["item_id"][:64], fields)
        return JSONResponse(summary(item))

    @guarded
    async def item_delete(request: Request) -> Response:
        item = await rt.core.remove_item(request.path_params["item_id"][:64])
        return JSONResponse({"deleted": summary(item)})

    @guarded
    async def generate(request: Request) -> Response:
        data = await _body(request)
        if data.get("kind") == "passphrase":
            words = data.get("words", 6)
            if not isinstance(words, int):
                raise BadInput('"words" must be a number')
            made = generate_passphrase(words)
        else:
            length = data.get("length", 24)
            flags = {k: data.get(k, True) for k in ("lower", "upper", "digits", "symbols")}
            if not isinstance(length, int) or not all(isinstance(v, bool) for v in flags.values()):
                raise BadInput('"length" must be a number and the sets true/false')
            made = generate_password(length, **flags)
        return JSONResponse({"value": made.value, "entropy_bits": round(made.entropy_bits, 1)})

    return [
        Route("/api/lock", lock, methods=["POST"]),
        Route("/api/items", items_list, methods=["GET"]),
        Route("/api/items", item_add, methods=["POST"]),
        Route("/api/items/{item_id}", item_get, methods=["GET"]),
        Route("/api/items/{item_id}/totp", item_totp, methods=["GET"]),
        Route("/api/items/{item_id}/reveal", item_reveal, methods=["POST"]),
        Route("/api/items/{item_id}/full", item_full, methods=["POST"]),
        Route("/api/types", item_types, methods=["GET"]),
        Route("/api/items/{item_id}", item_edit, methods=["PUT"]),
        Route("/api/items/{item_id}", item_delete, methods=["DELETE"]),
        Route("/api/generate", generate, methods=["POST"]),
    ]
