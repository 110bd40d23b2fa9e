"""Byte-level encoding: message framing, bounded fields, transcripts, base64url.

A v1 message is ``"UL" | version u8 | type u8`` followed by its fields, each
``u16be length | bytes``. Every message type declares its exact field list
with a minimum and maximum length per field, so a parser never allocates
more than :data:`~unlatch.protocol.constants.MAX_MESSAGE_BYTES` and refuses
trailing bytes. Cryptographic bindings never hash this framing or JSON text:
they use :func:`transcript`, a sequence of ``u32be length | bytes``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from unlatch import b64url
from unlatch.protocol.constants import (
    HEADER_LEN,
    MAGIC,
    MAX_MESSAGE_BYTES,
    VERSION,
    MessageType,
)
from unlatch.protocol.errors import MalformedMessage, UnexpectedMessage, UnsupportedVersion


@dataclass(frozen=True)
class Field:
    """One field of a message layout: its name, length bounds, value kind and meaning.

    ``kind`` says how a value becomes bytes and back (see
    :mod:`unlatch.protocol.messages`: ``bytes``, ``u64``, ``ttl``, ``mode``,
    ``url``, ``name``, ``device_id``, ``opt_u8``, ``u8s``, ``padding``);
    ``doc`` is the meaning column of docs/protocol.md's field tables.
    """

    name: str
    min_len: int
    max_len: int
    kind: str = "bytes"
    doc: str = ""


def lp(data: bytes) -> bytes:
    """Length-prefix ``data`` with a 4-byte big-endian length."""
    return struct.pack(">I", len(data)) + data


def transcript(label: bytes, *parts: bytes) -> bytes:
    """The unambiguous byte string that MACs, AADs and HKDF infos bind.

    ``LP(label) | LP(part_1) | ... | LP(part_n)``: no two different part lists
    give the same bytes, unlike concatenation or JSON text.
    """
    return lp(label) + b"".join(lp(p) for p in parts)


def u8(value: int) -> bytes:
    return struct.pack(">B", value)


def u16(value: int) -> bytes:
    return struct.pack(">H", value)


def u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def read_u16(data: bytes, name: str) -> int:
    _exact(data, 2, name)
    return int(struct.unpack(">H", data)[0])


def read_u64(data: bytes, name: str) -> int:
    _exact(data, 8, name)
    return int(struct.unpack(">Q", data)[0])


def read_u8(data: bytes, name: str) -> int:
    _exact(data, 1, name)
    return data[0]


def _exact(data: bytes, size: int, name: str) -> None:
    if len(data) != size:
        raise MalformedMessage(f"field {name} must be {size} bytes, got {len(data)}")


def header(mtype: MessageType) -> bytes:
    """The 4-byte header of a message of type ``mtype``."""
    return MAGIC + u8(VERSION) + u8(int(mtype))


def encode_fields(values: Sequence[bytes], layout: Sequence[Field]) -> bytes:
    """Encode field values after checking them against ``layout`` (a programming check)."""
    if len(values) != len(layout):
        raise ValueError("field count does not match layout")
    out = bytearray()
    for value, spec in zip(values, layout, strict=True):
        if not spec.min_len <= len(value) <= spec.max_len:
            raise ValueError(
                f"field {spec.name} is {len(value)} bytes, allowed {spec.min_len}..{spec.max_len}"
            )
        out += u16(len(value)) + value
    return bytes(out)


def decode_fields(data: bytes, layout: Sequence[Field], what: str) -> list[bytes]:
    """Split ``data`` into exactly the fields of ``layout``, enforcing every bound."""
    values: list[bytes] = []
    pos = 0
    for spec in layout:
        if pos + 2 > len(data):
            raise MalformedMessage(f"{what}: truncated before field {spec.name}")
        (length,) = struct.unpack_from(">H", data, pos)
        pos += 2
        if not spec.min_len <= length <= spec.max_len:
            raise MalformedMessage(
                f"{what}: field {spec.name} is {length} bytes, "
                f"allowed {spec.min_len}..{spec.max_len}"
            )
        if pos + length > len(data):
            raise MalformedMessage(f"{what}: truncated inside field {spec.name}")
        values.append(data[pos : pos + length])
        pos += length
    if pos != len(data):
        raise MalformedMessage(f"{what}: {len(data) - pos} unexpected trailing bytes")
    return values


def encode_message(mtype: MessageType, values: Sequence[bytes], layout: Sequence[Field]) -> bytes:
    """Header plus encoded fields."""
    return header(mtype) + encode_fields(values, layout)


def peek_type(data: bytes) -> MessageType:
    """Check the header of ``data`` and return its message type."""
    if not isinstance(data, bytes | bytearray):
        raise MalformedMessage("a message must be bytes")
    if len(data) > MAX_MESSAGE_BYTES:
        raise MalformedMessage(
            f"message is {len(data)} bytes, more than the {MAX_MESSAGE_BYTES}-byte limit"
        )
    if len(data) < HEADER_LEN:
        raise MalformedMessage("message is shorter than its 4-byte header")
    if bytes(data[:2]) != MAGIC:
        raise MalformedMessage("not an unlatch message (bad magic bytes)")
    if data[2] != VERSION:
        raise UnsupportedVersion(
            f"message is protocol version {data[2]}, this implementation speaks {VERSION}"
        )
    try:
        return MessageType(data[3])
    except ValueError:
        raise MalformedMessage(f"unknown message type 0x{data[3]:02x}") from None


def decode_message(
    data: bytes, expected: MessageType, layout: Sequence[Field], what: str
) -> list[bytes]:
    """Parse a whole message of type ``expected``; any other type is refused."""
    mtype = peek_type(data)
    if mtype != expected:
        raise UnexpectedMessage(f"expected {what}, got a {mtype.name.lower()} message")
    return decode_fields(bytes(data[HEADER_LEN:]), layout, what)


def b64e(data: bytes) -> str:
    """base64url without padding (RFC 4648 section 5)."""
    return b64url.encode(data)


def b64d(text: str, what: str = "value", max_len: int = MAX_MESSAGE_BYTES * 2) -> bytes:
    """Strict base64url decoding (no padding, no whitespace, canonical)."""
    try:
        return b64url.decode(text, max_chars=max_len)
    except b64url.Base64urlError as exc:
        raise MalformedMessage(f"{what}: {exc}") from None


# Code points refused in device names and the relay URL: text a person reads
# must show what it says. C0 and C1 controls and DEL (escape sequences, line
# breaks), and the invisible format controls that can hide or reorder text:
# soft hyphen, Arabic letter mark, Mongolian vowel separator, zero-width space,
# left-to-right/right-to-left marks, line and paragraph separators, the bidi
# embeddings and overrides (U+202A-U+202E), word joiner, invisible operators
# and the bidi isolates (U+2060-U+206F), byte-order mark, interlinear
# annotations and the tag characters. Zero-width (non-)joiners U+200C/U+200D
# stay allowed: scripts and emoji sequences need them and they reorder nothing.
# An explicit list (not a Unicode category) so every implementation and
# Unicode version refuses exactly the same names (docs/protocol.md 3.1).
REFUSED_CODE_POINTS: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x061C, 0x061C),
    (0x180E, 0x180E),
    (0x200B, 0x200B),
    (0x200E, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0xE0000, 0xE007F),
)


def refused_char(c: str) -> bool:
    """True for a code point that must not appear in a name shown to a person."""
    o = ord(c)
    return any(low <= o <= high for low, high in REFUSED_CODE_POINTS)


def utf8(data: bytes, what: str) -> str:
    """Decode a UTF-8 name field, refusing control and invisible format characters."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage(f"{what} is not valid UTF-8") from None
    if any(refused_char(c) for c in text):
        raise MalformedMessage(f"{what} contains control or invisible formatting characters")
    return text
