"""QR code payloads as links.

A QR code holds either an https link to the phone app whose ``#fragment``
carries the message (any phone camera opens the app on it, and browsers never
send a fragment to a server), or a bare ``unlatch:`` form for the Python
phone client and scripts. Both carry the same base64url message bytes.
"""

from __future__ import annotations

from unlatch.protocol.constants import MAX_LINK_CHARS
from unlatch.protocol.encoding import b64d, b64e
from unlatch.protocol.errors import MalformedMessage

FRAGMENT_KEY = "m="
BARE_PREFIX = "unlatch:"


def app_link(app_url: str, message: bytes) -> str:
    """``https://relay.example/app/#m=<base64url(message)>``."""
    if "#" in app_url:
        raise ValueError("the app URL must not have a fragment")
    return f"{app_url}#{FRAGMENT_KEY}{b64e(message)}"


def bare_link(message: bytes) -> str:
    """``unlatch:<base64url(message)>``."""
    return BARE_PREFIX + b64e(message)


def parse_link(text: str) -> bytes:
    """The message bytes of an app link, a bare link, or bare base64url text."""
    if not isinstance(text, str):
        raise MalformedMessage("a link must be text")
    text = text.strip()
    if len(text) > MAX_LINK_CHARS:
        raise MalformedMessage("link is too long to be an unlatch QR code")
    if text.lower().startswith(BARE_PREFIX):
        payload = text[len(BARE_PREFIX) :]
    elif "#" in text:
        fragment = text.split("#", 1)[1]
        if not fragment.startswith(FRAGMENT_KEY):
            raise MalformedMessage("link does not carry an unlatch code in its #fragment")
        payload = fragment[len(FRAGMENT_KEY) :]
    elif "://" in text:
        raise MalformedMessage("link does not carry an unlatch code (no #fragment)")
    else:
        payload = text
    if not payload:
        raise MalformedMessage("link carries an empty code")
    return b64d(payload, "QR code payload")
