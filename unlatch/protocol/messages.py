"""The v1 messages: one declarative layout each, and encode/decode made from it.

Each message is a frozen dataclass whose ``LAYOUT`` is the single statement of
its field order, sizes, value kinds and meanings. ``encode()`` and
``decode()`` (from :class:`_Message`) walk the layout, the docs/protocol.md
field tables are generated from it (:func:`layout_table`), and the phone app
reads the same layouts from a generated JSON (:func:`layouts_json`,
web/phone/src/protocol/layouts.json), so field order is written once for
both languages. Decoding checks structure only; authenticity is checked by
the state machines, which hold the keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from unlatch.protocol.constants import (
    ENC_LEN,
    ID_LEN,
    KEY_LEN,
    MAC_LEN,
    MAX_DEVICE_ID_BYTES,
    MAX_NAME_BYTES,
    MAX_TTL_SECONDS,
    MAX_URL_BYTES,
    NONCE_LEN,
    NUMBER_CHOICES,
    PAIRING_SECRET_LEN,
    PUSH_PLAINTEXT_LEN,
    QR_SECRET_LEN,
    REPLY_PLAINTEXT_LEN,
    TAG_LEN,
    MessageType,
    UnlockMode,
)
from unlatch.protocol.encoding import (
    Field,
    decode_fields,
    decode_message,
    encode_fields,
    encode_message,
    read_u8,
    read_u16,
    read_u64,
    u8,
    u16,
    u64,
    utf8,
)
from unlatch.protocol.errors import MalformedMessage

M = TypeVar("M", bound="_Message")


def _fixed(name: str, size: int, doc: str = "", kind: str = "bytes") -> Field:
    return Field(name, size, size, kind, doc)


def _check_url(url: str) -> str:
    """The offer's relay URL, exactly as encoded: the hello binds its bytes, so no rewriting.

    A trailing ``/`` is refused rather than stripped, so decoding never
    changes what the desktop encoded (docs/protocol.md 5.1).
    """
    if not (url.startswith("https://") or url.startswith("http://")):
        raise MalformedMessage("relay URL must start with https:// or http://")
    if any(c in url for c in "#?@ \\"):
        raise MalformedMessage("relay URL must be a plain origin and path")
    if url.endswith("/"):
        raise MalformedMessage("relay URL must not end with /")
    return url


def check_name(name: str, what: str) -> bytes:
    """A device name as it goes on the wire: 1-64 bytes of UTF-8, nothing that hides text.

    The same rule as the decoder's (:func:`utf8` and the field bounds), so a
    name one side sends is never one the other side refuses. Raises
    :class:`MalformedMessage`, not ``ValueError``.
    """
    if not isinstance(name, str):
        raise MalformedMessage(f"{what} must be text")
    try:
        data = name.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedMessage(f"{what} is not valid Unicode") from None
    if not 1 <= len(data) <= MAX_NAME_BYTES:
        raise MalformedMessage(
            f"{what} must be 1..{MAX_NAME_BYTES} bytes of UTF-8, got {len(data)}"
        )
    utf8(data, what)
    return data


def check_device_id(device_id: str, what: str) -> bytes:
    """A relay device id as it goes on the wire: 1-64 printable ASCII characters."""
    if not isinstance(device_id, str) or not device_id.isascii():
        raise MalformedMessage(f"{what} must be printable ASCII")
    data = device_id.encode("ascii")
    if not 1 <= len(data) <= MAX_DEVICE_ID_BYTES:
        raise MalformedMessage(
            f"{what} must be 1..{MAX_DEVICE_ID_BYTES} characters, got {len(data)}"
        )
    _ascii(data, what)
    return data


def _check_ttl(ttl: int) -> int:
    if not 1 <= ttl <= MAX_TTL_SECONDS:
        raise MalformedMessage(f"lifetime must be 1..{MAX_TTL_SECONDS} seconds, got {ttl}")
    return ttl


def _mode(value: int) -> UnlockMode:
    try:
        return UnlockMode(value)
    except ValueError:
        raise MalformedMessage(f"unknown unlock mode {value}") from None


def _ascii(data: bytes, what: str) -> str:
    if not all(0x21 <= b <= 0x7E for b in data):
        raise MalformedMessage(f"{what} must be printable ASCII")
    return data.decode("ascii")


def _what(f: Field) -> str:
    """How errors name a field: "relay URL", "phone name", ..."""
    return "relay URL" if f.kind == "url" else f.name.replace("_", " ")


def _url_bytes(url: str, what: str) -> bytes:
    data = _check_url(url).encode("utf-8")
    utf8(data, what)  # encode refuses what decode would refuse
    return data


# kind -> (value to bytes, bytes to value); each takes the field's name for its errors
_ENCODE: dict[str, Callable[[Any, str], bytes]] = {
    "bytes": lambda v, w: bytes(v),
    "u64": lambda v, w: u64(v),
    "ttl": lambda v, w: u16(v),
    "mode": lambda v, w: u8(int(v)),
    "url": _url_bytes,
    "name": check_name,
    "device_id": check_device_id,
    "opt_u8": lambda v, w: b"" if v is None else u8(v),
    "u8s": lambda v, w: bytes(v),
}
_DECODE: dict[str, Callable[[bytes, str], Any]] = {
    "bytes": lambda d, w: d,
    "u64": lambda d, w: read_u64(d, w.replace(" ", "_")),
    "ttl": lambda d, w: _check_ttl(read_u16(d, "ttl")),
    "mode": lambda d, w: _mode(read_u8(d, "mode")),
    "url": lambda d, w: _check_url(utf8(d, w)),
    "name": utf8,
    "device_id": _ascii,
    "opt_u8": lambda d, w: d[0] if d else None,
    "u8s": lambda d, w: tuple(d),
    "padding": lambda d, w: d,
}
KINDS: dict[str, str] = {
    "bytes": "raw bytes",
    "u64": "u64, big-endian",
    "ttl": f"u16, big-endian, 1–{MAX_TTL_SECONDS}",
    "mode": "u8: 1 scan, 2 number matching",
    "url": "UTF-8 (5.6)",
    "name": "UTF-8 (5.6)",
    "device_id": "printable ASCII 0x21–0x7E",
    "opt_u8": "u8, or empty",
    "u8s": "u8 each",
    "padding": "zero bytes",
}


class _Message:
    """Encode/decode for a frozen dataclass whose attributes are named by its ``LAYOUT``.

    A message with a ``TYPE`` has the 4-byte header; one without (the
    plaintexts inside encrypted messages) is fields only. A ``padding`` field
    fills the encoding up to ``SIZE`` bytes.
    """

    TYPE: ClassVar[MessageType | None] = None
    WHAT: ClassVar[str]
    LAYOUT: ClassVar[tuple[Field, ...]]
    SIZE: ClassVar[int | None] = None  # the exact size of a padded encoding

    def _values(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in self.LAYOUT if f.kind != "padding"}

    @classmethod
    def _from_values(cls: type[M], values: dict[str, Any]) -> M:
        return cls(**values)

    def encode(self) -> bytes:
        values = self._values()
        parts = [
            _ENCODE[f.kind](values[f.name], _what(f)) for f in self.LAYOUT if f.kind != "padding"
        ]
        if any(f.kind == "padding" for f in self.LAYOUT):
            assert self.SIZE is not None
            used = sum(2 + len(p) for p in parts) + 2
            if used > self.SIZE:
                raise ValueError(f"{self.WHAT} too large")
            parts.append(bytes(self.SIZE - used))
        if self.TYPE is None:
            return encode_fields(parts, self.LAYOUT)
        return encode_message(self.TYPE, parts, self.LAYOUT)

    @classmethod
    def decode(cls: type[M], data: bytes) -> M:
        if cls.SIZE is not None and len(data) != cls.SIZE:
            raise MalformedMessage(f"{cls.WHAT} have the wrong size")
        if cls.TYPE is None:
            raw = decode_fields(data, cls.LAYOUT, cls.WHAT)
        else:
            raw = decode_message(data, cls.TYPE, cls.LAYOUT, cls.WHAT)
        values = {
            f.name: _DECODE[f.kind](r, _what(f)) for f, r in zip(cls.LAYOUT, raw, strict=True)
        }
        return cls._from_values(values)


# --------------------------------------------------------------------------- pairing


@dataclass(frozen=True)
class PairingOffer(_Message):
    """Shown by the desktop as a QR code: where to pair and with which one-time secret."""

    channel_id: bytes
    pairing_secret: bytes
    desktop_pk: bytes
    relay_url: str
    expires_at: int

    TYPE: ClassVar[MessageType] = MessageType.PAIRING_OFFER
    WHAT: ClassVar[str] = "pairing offer"
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("channel_id", ID_LEN, "random; the relay's pairing channel id"),
        _fixed(
            "pairing_secret", PAIRING_SECRET_LEN, "`S`: random, one-time; never leaves the screen"
        ),
        _fixed("desktop_pk", KEY_LEN, "`D.public`"),
        Field(
            "relay_url",
            8,
            MAX_URL_BYTES,
            "url",
            "where the phone reaches the relay (no trailing `/`: 5.6)",
        ),
        _fixed("expires_at", 8, "`now + ttl`, Unix seconds", "u64"),
    )


@dataclass(frozen=True)
class PairingHello(_Message):
    """Phone to desktop: HPKE (mode_psk) to the desktop's static key."""

    enc: bytes
    ciphertext: bytes

    TYPE: ClassVar[MessageType] = MessageType.PAIRING_HELLO
    WHAT: ClassVar[str] = "pairing hello"
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("enc", ENC_LEN, "HPKE encapsulated key"),
        Field("ciphertext", TAG_LEN + 1, 512, doc="HPKE ciphertext of the HelloPlaintext"),
    )


@dataclass(frozen=True)
class HelloPlaintext(_Message):
    """Inside the hello: who the phone is and how the relay knows it."""

    phone_pk: bytes
    phone_name: str
    phone_device_id: str

    WHAT: ClassVar[str] = "pairing hello contents"
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("phone_pk", KEY_LEN, "`P.public`"),
        Field("phone_name", 1, MAX_NAME_BYTES, "name", "the phone's name, shown on the desktop"),
        Field(
            "phone_device_id",
            1,
            MAX_DEVICE_ID_BYTES,
            "device_id",
            "the phone's relay device id (relay.md)",
        ),
    )


@dataclass(frozen=True)
class PairingAccept(_Message):
    """Desktop to phone, sent only after the user confirmed the verification code."""

    ciphertext: bytes

    TYPE: ClassVar[MessageType] = MessageType.PAIRING_ACCEPT
    WHAT: ClassVar[str] = "pairing accept"
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        Field("ciphertext", TAG_LEN + 1, 512, doc="AEAD ciphertext of the AcceptPlaintext"),
    )


@dataclass(frozen=True)
class AcceptPlaintext(_Message):
    """Inside the accept: the phone's unlock share and the desktop's identity."""

    phone_share: bytes
    desktop_name: str
    desktop_device_id: str

    WHAT: ClassVar[str] = "pairing accept contents"
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("phone_share", KEY_LEN, "`K_P`, the phone's unlock share"),
        Field("desktop_name", 1, MAX_NAME_BYTES, "name", "the desktop's name, shown on the phone"),
        Field(
            "desktop_device_id",
            1,
            MAX_DEVICE_ID_BYTES,
            "device_id",
            "the desktop's relay device id: the phone checks the accept's relay `sender`"
            " equals it (5.3)",
        ),
    )


# --------------------------------------------------------------------------- unlock


@dataclass(frozen=True)
class RequestParams:
    """What identifies one unlock request; bound into every MAC and the reply's info."""

    request_id: bytes
    ephemeral_pk: bytes
    created_at: int
    ttl: int
    mode: UnlockMode

    @property
    def expires_at(self) -> int:
        return self.created_at + self.ttl


@dataclass(frozen=True)
class UnlockQR(_Message):
    """Shown by the desktop as a QR code; authenticated with the pairing's request-MAC key."""

    pairing_id: bytes
    request_id: bytes
    qr_secret: bytes
    ephemeral_pk: bytes
    created_at: int
    ttl: int
    mac: bytes

    TYPE: ClassVar[MessageType] = MessageType.UNLOCK_QR
    WHAT: ClassVar[str] = "unlock QR code"
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("pairing_id", ID_LEN, "the pairing (never sent to the relay)"),
        _fixed("request_id", ID_LEN, "random; the relay's unlock channel id"),
        _fixed("qr_secret", QR_SECRET_LEN, "`Q`, random: keys the reply's PSK"),
        _fixed("ephemeral_pk", KEY_LEN, "`E.public`: the reply is sealed to it"),
        _fixed("created_at", 8, "Unix seconds", "u64"),
        _fixed("ttl", 2, "seconds the request lives", "ttl"),
        _fixed("mac", MAC_LEN, "see below"),
    )


@dataclass(frozen=True)
class UnlockPush(_Message):
    """The opaque payload the relay pushes to the phone: AES-256-GCM under the push key."""

    routing_id: bytes
    nonce: bytes
    ciphertext: bytes

    TYPE: ClassVar[MessageType] = MessageType.UNLOCK_PUSH
    WHAT: ClassVar[str] = "unlock notification"
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("routing_id", ID_LEN, "the relay's name for the pairing"),
        _fixed("nonce", NONCE_LEN, "random AEAD nonce"),
        _fixed(
            "ciphertext",
            PUSH_PLAINTEXT_LEN + TAG_LEN,
            f"AEAD of the {PUSH_PLAINTEXT_LEN}-byte push plaintext, tag appended",
        ),
    )


@dataclass(frozen=True)
class PushPlaintext(_Message):
    """Inside the push. ``qr_secret``, ``number`` and ``choices`` are empty unless number matching.

    The phone app itself checks the user's pick against ``number`` and releases
    nothing on a wrong pick; it never displays which choice is right.
    """

    params: RequestParams
    qr_secret: bytes
    number: int | None
    choices: tuple[int, ...]

    WHAT: ClassVar[str] = "unlock notification contents"
    SIZE: ClassVar[int | None] = PUSH_PLAINTEXT_LEN
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("request_id", ID_LEN),
        _fixed("ephemeral_pk", KEY_LEN),
        _fixed("created_at", 8, "", "u64"),
        _fixed("ttl", 2, "", "ttl"),
        _fixed("mode", 1, "", "mode"),
        Field("qr_secret", 0, QR_SECRET_LEN, doc="0 (scan) or 16 (number matching): `Q`"),
        Field(
            "number",
            0,
            1,
            "opt_u8",
            "0 (scan) or 1 (number matching): the number the desktop shows",
        ),
        Field(
            "choices",
            0,
            NUMBER_CHOICES,
            "u8s",
            f"0 (scan) or {NUMBER_CHOICES} (number matching): distinct, one equals `number`",
        ),
        Field(
            "padding",
            0,
            PUSH_PLAINTEXT_LEN,
            "padding",
            f"a length-prefixed field like the others: u16 length, then that many zero bytes,"
            f" making the whole plaintext exactly {PUSH_PLAINTEXT_LEN} bytes (must be zero)",
        ),
    )

    def _values(self) -> dict[str, Any]:
        p = self.params
        return {
            "request_id": p.request_id,
            "ephemeral_pk": p.ephemeral_pk,
            "created_at": p.created_at,
            "ttl": p.ttl,
            "mode": p.mode,
            "qr_secret": self.qr_secret,
            "number": self.number,
            "choices": self.choices,
        }

    @classmethod
    def _from_values(cls, values: dict[str, Any]) -> PushPlaintext:
        if any(values["padding"]):
            raise MalformedMessage("unlock notification padding is not zero")
        q, number, choices = values["qr_secret"], values["number"], values["choices"]
        if values["mode"] is UnlockMode.NUMBER_MATCH:
            if len(q) != QR_SECRET_LEN or number is None or len(choices) != NUMBER_CHOICES:
                raise MalformedMessage("number-matching notification lacks its secret or numbers")
            if len(set(choices)) != NUMBER_CHOICES or number not in choices:
                raise MalformedMessage("number-matching notification has inconsistent numbers")
        elif q or number is not None or choices:
            raise MalformedMessage("scan-mode notification must not carry a secret or numbers")
        params = RequestParams(
            values["request_id"],
            values["ephemeral_pk"],
            values["created_at"],
            values["ttl"],
            values["mode"],
        )
        return cls(params, q, number, choices)


@dataclass(frozen=True)
class UnlockSeen(_Message):
    """Phone to desktop: "the QR was scanned", so the desktop can say so (status only)."""

    request_id: bytes
    mac: bytes

    TYPE: ClassVar[MessageType] = MessageType.UNLOCK_SEEN
    WHAT: ClassVar[str] = "scan notice"
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("request_id", ID_LEN),
        _fixed(
            "mac",
            MAC_LEN,
            '`MAC(seen_mac_key, TR("unlatch/v1/unlock/seen", pairing_id, request_id, qr_secret))`',
        ),
    )


@dataclass(frozen=True)
class UnlockReply(_Message):
    """Phone to desktop: HPKE mode_auth_psk to the request's ephemeral key. Constant size."""

    request_id: bytes
    enc: bytes
    ciphertext: bytes

    TYPE: ClassVar[MessageType] = MessageType.UNLOCK_REPLY
    WHAT: ClassVar[str] = "unlock reply"
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("request_id", ID_LEN),
        _fixed("enc", ENC_LEN, "HPKE encapsulated key"),
        _fixed(
            "ciphertext",
            REPLY_PLAINTEXT_LEN + TAG_LEN,
            f"HPKE ciphertext of the {REPLY_PLAINTEXT_LEN}-byte reply plaintext",
        ),
    )


@dataclass(frozen=True)
class UnlockRefusal(_Message):
    """Phone to desktop: "I did not ask for this", from the notification, before any scan.

    A scan-mode push does not carry the QR secret, so the phone cannot make an
    :class:`UnlockReply` without scanning; this message needs only the pairing's
    seen-MAC key (docs/protocol.md 6.9). It releases nothing and ends the request.
    """

    request_id: bytes
    mac: bytes

    TYPE: ClassVar[MessageType] = MessageType.UNLOCK_REFUSAL
    WHAT: ClassVar[str] = "refusal"
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("request_id", ID_LEN),
        _fixed(
            "mac",
            MAC_LEN,
            '`MAC(seen_mac_key, TR("unlatch/v1/unlock/refusal", pairing_id, request_id,'
            " ephemeral_pk, u64(created_at), u16(ttl), u8(mode)))`",
        ),
    )


ALL_MESSAGES: tuple[type[_Message], ...] = (
    PairingOffer,
    PairingHello,
    PairingAccept,
    UnlockQR,
    UnlockPush,
    UnlockSeen,
    UnlockReply,
    UnlockRefusal,
)
# every layout, in the order docs/protocol.md presents them
LAYOUTS: tuple[type[_Message], ...] = (
    PairingOffer,
    PairingHello,
    HelloPlaintext,
    PairingAccept,
    AcceptPlaintext,
    UnlockQR,
    UnlockPush,
    PushPlaintext,
    UnlockSeen,
    UnlockReply,
    UnlockRefusal,
)


def _size(f: Field) -> str:
    return str(f.min_len) if f.min_len == f.max_len else f"{f.min_len}–{f.max_len}"


def layout_table(cls: type[_Message]) -> str:
    """The docs/protocol.md field table of one message (a test checks the doc holds it)."""
    rows = ["| # | field | size | encoding | meaning |", "|---|---|---|---|---|"]
    for i, f in enumerate(cls.LAYOUT, 1):
        rows.append(f"| {i} | `{f.name}` | {_size(f)} | {KINDS[f.kind]} | {f.doc} |")
    return "\n".join(rows) + "\n"


def layouts_json() -> str:
    """web/phone/src/protocol/layouts.json: the same layouts for the JavaScript side."""
    lines = []
    for cls in LAYOUTS:
        fields = ",\n".join(
            "   " + json.dumps({"name": f.name, "min": f.min_len, "max": f.max_len, "kind": f.kind})
            for f in cls.LAYOUT
        )
        head = {"type": None if cls.TYPE is None else int(cls.TYPE), "what": cls.WHAT}
        head["size"] = cls.SIZE
        lines.append(f' "{cls.__name__}": {json.dumps(head)[:-1]}, "fields": [\n{fields}\n  ]}}')
    return "{\n" + ",\n".join(lines) + "\n}\n"
