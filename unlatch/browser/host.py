"""``unlatch browser host``: the native messaging host the browser extension talks to.

The browser starts this process when the extension connects, passing the
caller's origin (``chrome-extension://<id>/``; Firefox passes the manifest
path and the extension id). Only the extension ids pinned in
``web/extension`` are served: any other caller gets one ``forbidden_origin``
reply and the host exits.

Each request (messaging.py) runs on its own thread with its own agent
connection, so a state watch that waits for a change never holds up a click.
Secrets leave only one item and one action at a time: ``fill`` gives the
username and password of one item, and only for a page its URLs match
(matching.py); ``copy`` gives one field. Nothing else ever carries a secret,
and the extension keeps none.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from unlatch import paths
from unlatch.agent import client as agent_client
from unlatch.browser import matching, messaging
from unlatch.browser.messaging import ForbiddenOrigin, MessageError, UnknownOperation
from unlatch.errors import UnlatchError

log = logging.getLogger(__name__)

MAX_CONCURRENT = 4  # requests in flight (a watch plus a few clicks)
MAX_LOGINS = 200
COPYABLE = ("username", "password", "totp")
Op = Callable[["Agent", dict[str, Any]], Any]


class NoMatch(UnlatchError):
    code = "no_match"


class BadArgument(MessageError):
    code = "bad_request"


def extension_ids() -> dict[str, str]:
    """The pinned ids: ``{"chromium": <id from the manifest key>, "firefox": <gecko id>}``."""
    root = paths.web_dir("extension")
    ids: dict[str, str] = {}
    chromium = json.loads((root / "manifest.json").read_text("utf-8"))
    ids["chromium"] = chromium_id(chromium["key"])
    firefox = root / "manifest.firefox.json"
    if firefox.is_file():
        gecko = json.loads(firefox.read_text("utf-8"))["browser_specific_settings"]["gecko"]
        ids["firefox"] = str(gecko["id"])
    return ids


def chromium_id(key_b64: str) -> str:
    """Chromium's extension id for a manifest ``key``: SHA-256 of the key, hex mapped to a-p."""
    import base64
    import hashlib

    digest = hashlib.sha256(base64.b64decode(key_b64)).hexdigest()[:32]
    return "".join(chr(ord("a") + int(c, 16)) for c in digest)


def check_caller(argv: list[str]) -> str:
    """The caller's extension id, if it is ours; else :class:`ForbiddenOrigin`."""
    ids = extension_ids()
    if argv and argv[0] == f"chrome-extension://{ids['chromium']}/":
        return ids["chromium"]
    if len(argv) >= 2 and "firefox" in ids and argv[1] == ids["firefox"]:
        return ids["firefox"]
    shown = (argv[0] if argv else "none")[:200]
    raise ForbiddenOrigin(f"this host serves only the unlatch extension, not {shown!r}")


class Agent:
    """One request's connection to the agent (started on demand, like the CLI)."""

    def __init__(self) -> None:
        self._client: agent_client.AgentClient | None = None

    def call(self, op: str, args: dict[str, Any] | None = None, *, wait: float = 60.0) -> Any:
        if self._client is None:
            self._client = agent_client.connect(start=True)
        return self._client.request(op, args or {}, timeout=wait)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _text(args: dict[str, Any], name: str, limit: int = 4096, required: bool = True) -> str:
    value = args.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise BadArgument(f'"{name}" must be text of at most {limit} characters')
    return value


# --------------------------------------------------------------------------- operations


def op_hello(agent: Agent, args: dict[str, Any]) -> Any:
    return {"protocol": messaging.PROTOCOL_VERSION, "host": "unlatch"}


def op_state(agent: Agent, args: dict[str, Any]) -> Any:
    """The state now, or (with ``since``) once it differs from that version."""
    since, timeout = args.get("since"), args.get("timeout", 20)
    if since is None:
        return agent.call("browser_state")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0 <= timeout <= 25:
        raise BadArgument('"timeout" must be 0 to 25 seconds')
    return agent.call("browser_state", {"since": since, "timeout": timeout}, wait=timeout + 10)


def op_unlock_password(agent: Agent, args: dict[str, Any]) -> Any:
    agent.call("unlock", {"password": _text(args, "password", 1024)})
    return {"unlocked": True}


def op_unlock_phone(agent: Agent, args: dict[str, Any]) -> Any:
    phone = args.get("phone_id")
    return agent.call("browser_unlock_phone", {} if phone is None else {"phone_id": phone})


def op_unlock_cancel(agent: Agent, args: dict[str, Any]) -> Any:
    return agent.call("browser_unlock_cancel")


def op_unlock_qr(agent: Agent, args: dict[str, Any]) -> Any:
    return agent.call("browser_unlock_qr")


def op_open_ui(agent: Agent, args: dict[str, Any]) -> Any:
    """A fresh single-use address of the desktop UI (passkey unlock lives there)."""
    return {"url": agent.call("desktop_ui")["url"]}


def op_lock(agent: Agent, args: dict[str, Any]) -> Any:
    return agent.call("lock")


def op_logins(agent: Agent, args: dict[str, Any]) -> Any:
    """The logins for ``url`` first (closest match first), then, with ``query``, the rest.

    Summaries only: no password, no one-time code secret.
    """
    url = _text(args, "url", matching.MAX_URL, required=False)
    query = _text(args, "query", 256, required=False).strip()
    items = agent.call("search", {"query": query} if query else {})
    rows: list[tuple[int, str, dict[str, Any]]] = []
    for item in items:
        level = matching.best_match(list(item.get("urls") or []), url)
        if level is matching.Match.NONE and not query:
            continue
        row = {
            "id": item["id"],
            "title": item.get("title", ""),
            "username": item.get("username", ""),
            "urls": item.get("urls", []),
            "has_totp": bool(item.get("has_totp")),
            "match": level.name.lower() if level else None,
        }
        rows.append((-int(level), str(row["title"]).lower(), row))
    rows.sort(key=lambda r: (r[0], r[1]))
    return {"logins": [r[2] for r in rows[:MAX_LOGINS]], "more": len(rows) > MAX_LOGINS}


def _item(agent: Agent, args: dict[str, Any]) -> dict[str, Any]:
    item = agent.call("get", {"ref": _text(args, "item_id", 64)})
    if not isinstance(item, dict) or item.get("id") != args["item_id"]:
        raise NoMatch("no item with this id")  # never a title lookup from the page's side
    return item


def op_fill(agent: Agent, args: dict[str, Any]) -> Any:
    """One item's username and password, only for a page its URLs match."""
    url = _text(args, "url", matching.MAX_URL)
    item = _item(agent, args)
    level = matching.best_match(list(item.get("urls") or []), url)
    if level is matching.Match.NONE:
        raise NoMatch("this login is not saved for this site: nothing was filled")
    return {"username": item.get("username", ""), "password": item.get("password", "")}


def op_copy(agent: Agent, args: dict[str, Any]) -> Any:
    field = _text(args, "field", 16)
    if field not in COPYABLE:
        raise BadArgument(f'"field" must be one of {", ".join(COPYABLE)}')
    item = _item(agent, args)
    if field == "totp":
        from unlatch.vault import totp

        secret = item.get("totp_secret") or ""
        if not secret:
            raise NoMatch("this item has no one-time code")
        code, remaining = totp.current_code(secret)
        return {"value": code, "expires_in": remaining}
    return {"value": item.get(field, "")}


def op_generate(agent: Agent, args: dict[str, Any]) -> Any:
    length = args.get("length", 20)
    if not isinstance(length, int) or isinstance(length, bool) or not 8 <= length <= 128:
        raise BadArgument('"length" must be 8 to 128')
    from unlatch.vault.generator import generate_password

    return {"value": generate_password(length).value}


OPS: dict[str, Op] = {
    "hello": op_hello,
    "state": op_state,
    "unlock_password": op_unlock_password,
    "unlock_phone": op_unlock_phone,
    "unlock_cancel": op_unlock_cancel,
    "unlock_qr": op_unlock_qr,
    "open_ui": op_open_ui,
    "lock": op_lock,
    "logins": op_logins,
    "fill": op_fill,
    "copy": op_copy,
    "generate": op_generate,
}


# --------------------------------------------------------------------------- the loop


class Host:
    """Reads requests from ``stdin``, answers on ``stdout``; one thread per request."""

    def __init__(self, stdin: BinaryIO, stdout: BinaryIO) -> None:
        self._in = stdin
        self._out = stdout
        self._write_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)

    def send(self, message: dict[str, Any]) -> None:
        data = messaging.encode(message)
        with self._write_lock:
            self._out.write(data)
            self._out.flush()

    def serve(self) -> None:
        """Until the browser closes the pipe."""
        while True:
            try:
                frame = messaging.read_frame(self._in)
            except messaging.EndOfInput:
                return
            except MessageError as exc:
                self.send(messaging.error_reply(None, exc))
                continue
            try:
                request = messaging.parse_request(frame)
                op = OPS.get(request.op)
                if op is None:
                    raise UnknownOperation(f"unknown operation {request.op[:64]!r}")
            except MessageError as exc:
                self.send(messaging.error_reply(messaging.request_id(frame), exc))
                continue
            self._slots.acquire()
            threading.Thread(target=self._run, args=(op, request), daemon=True).start()

    def _run(self, op: Op, request: messaging.Request) -> None:
        agent = Agent()
        try:
            self.send(messaging.ok_reply(request.id, op(agent, request.args)))
        except UnlatchError as exc:
            self.send(messaging.error_reply(request.id, _coded(exc)))
        except Exception:
            log.exception("browser host: %s failed", request.op)
            self.send(messaging.error_reply(request.id, UnlatchError("internal error in the host")))
        finally:
            agent.close()
            self._slots.release()


def _coded(exc: UnlatchError) -> UnlatchError:
    """Give an agent/vault error a stable code for the extension (``WrongPasswordError`` ->
    ``wrong_password``) when it has none of its own."""
    if not isinstance(getattr(exc, "code", None), str):
        name = type(exc).__name__.removesuffix("Error")
        snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
        exc.code = snake or "error"  # type: ignore[attr-defined]
    return exc


def main(argv: list[str]) -> int:
    """Entry point: check the caller, then serve until the browser hangs up."""
    # stdout is the browser's channel: log to a file, never to stdout.
    logging.basicConfig(
        filename=str(_log_path()) if _log_path() else None,
        level=logging.INFO,
        format="%(asctime)s host[%(process)d] %(levelname)s %(message)s",
    )
    host = Host(sys.stdin.buffer, sys.stdout.buffer)
    try:
        check_caller(argv)
    except ForbiddenOrigin as exc:
        log.warning("refused a caller: %s", exc)
        host.send(messaging.error_reply(None, exc))
        return 1
    host.serve()
    return 0


def _log_path() -> Path | None:
    try:
        return paths.subdir("browser") / "host.log"
    except UnlatchError:
        return None


if __name__ == "__main__":  # the launcher's entry: no CLI machinery to import at each popup
    sys.exit(main(sys.argv[1:]))
