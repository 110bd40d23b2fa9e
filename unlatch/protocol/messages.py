"""The seven v1 messages: their field layouts, and encode/decode for each.

Each message is a frozen dataclass with ``encode() -> bytes`` and a
``decode(bytes)`` classmethod that enforces the exact layout (see
:mod:`unlatch.protocol.encoding`). Decoding checks structure only;
authenticity is checked by the state machines, which hold the keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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


def _fixed(name: str, size: int) -> Field:
    return Field(name, size, size)


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


# --------------------------------------------------------------------------- pairing


@dataclass(frozen=True)
class PairingOffer:
    """Shown by the desktop as a QR code: where to pair and with which one-time secret."""

    channel_id: bytes
    pairing_secret: bytes
    desktop_pk: bytes
    relay_url: str
    expires_at: int

    TYPE: ClassVar[MessageType] = MessageType.PAIRING_OFFER
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("channel_id", ID_LEN),
        _fixed("pairing_secret", PAIRING_SECRET_LEN),
        _fixed("desktop_pk", KEY_LEN),
        Field("relay_url", 8, MAX_URL_BYTES),
        _fixed("expires_at", 8),
    )

    def encode(self) -> bytes:
        url = _check_url(self.relay_url).encode("utf-8")
        utf8(url, "relay URL")  # encode refuses what decode would refuse
        return encode_message(
            self.TYPE,
            [
                self.channel_id,
                self.pairing_secret,
                self.desktop_pk,
                url,
                u64(self.expires_at),
            ],
            self.LAYOUT,
        )

    @classmethod
    def decode(cls, data: bytes) -> PairingOffer:
        cid, secret, dpk, url, exp = decode_message(data, cls.TYPE, cls.LAYOUT, "pairing offer")
        return cls(
            cid, secret, dpk, _check_url(utf8(url, "relay URL")), read_u64(exp, "expires_at")
        )


@dataclass(frozen=True)
class PairingHello:
    """Phone to desktop: HPKE (mode_psk) to the desktop's static key."""

    enc: bytes
    ciphertext: bytes

    TYPE: ClassVar[MessageType] = MessageType.PAIRING_HELLO
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("enc", ENC_LEN),
        Field("ciphertext", TAG_LEN + 1, 512),
    )

    def encode(self) -> bytes:
        return encode_message(self.TYPE, [self.enc, self.ciphertext], self.LAYOUT)

    @classmethod
    def decode(cls, data: bytes) -> PairingHello:
        enc, ct = decode_message(data, cls.TYPE, cls.LAYOUT, "pairing hello")
        return cls(enc, ct)


@dataclass(frozen=True)
class HelloPlaintext:
    """Inside the hello: who the phone is and how the relay knows it."""

    phone_pk: bytes
    phone_name: str
    phone_device_id: str

    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("phone_pk", KEY_LEN),
        Field("phone_name", 1, MAX_NAME_BYTES),
        Field("phone_device_id", 1, MAX_DEVICE_ID_BYTES),
    )

    def encode(self) -> bytes:
        return encode_fields(
            [
                self.phone_pk,
                check_name(self.phone_name, "phone name"),
                check_device_id(self.phone_device_id, "phone device id"),
            ],
            self.LAYOUT,
        )

    @classmethod
    def decode(cls, data: bytes) -> HelloPlaintext:
        pk, name, dev = decode_fields(data, cls.LAYOUT, "pairing hello contents")
        return cls(pk, utf8(name, "phone name"), _ascii(dev, "phone device id"))


@dataclass(frozen=True)
class PairingAccept:
    """Desktop to phone, sent only after the user confirmed the verification code."""

    ciphertext: bytes

    TYPE: ClassVar[MessageType] = MessageType.PAIRING_ACCEPT
    LAYOUT: ClassVar[tuple[Field, ...]] = (Field("ciphertext", TAG_LEN + 1, 512),)

    def encode(self) -> bytes:
        return encode_message(self.TYPE, [self.ciphertext], self.LAYOUT)

    @classmethod
    def decode(cls, data: bytes) -> PairingAccept:
        (ct,) = decode_message(data, cls.TYPE, cls.LAYOUT, "pairing accept")
        return cls(ct)


@dataclass(frozen=True)
class AcceptPlaintext:
    """Inside the accept: the phone's unlock share and the desktop's identity."""

    phone_share: bytes
    desktop_name: str
    desktop_device_id: str

    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("phone_share", KEY_LEN),
        Field("desktop_name", 1, MAX_NAME_BYTES),
        Field("desktop_device_id", 1, MAX_DEVICE_ID_BYTES),
    )

    def encode(self) -> bytes:
        return encode_fields(
            [
                self.phone_share,
                check_name(self.desktop_name, "desktop name"),
                check_device_id(self.desktop_device_id, "desktop device id"),
            ],
            self.LAYOUT,
        )

    @classmethod
    def decode(cls, data: bytes) -> AcceptPlaintext:
        share, name, dev = decode_fields(data, cls.LAYOUT, "pairing accept contents")
        return cls(share, utf8(name, "desktop name"), _ascii(dev, "desktop device id"))


def _ascii(data: bytes, what: str) -> str:
    if not all(0x21 <= b <= 0x7E for b in data):
        raise MalformedMessage(f"{what} must be printable ASCII")
    return data.decode("ascii")


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
class UnlockQR:
    """Shown by the desktop as a QR code; authenticated with the pairing's request-MAC key."""

    pairing_id: bytes
    request_id: bytes
    qr_secret: bytes
    ephemeral_pk: bytes
    created_at: int
    ttl: int
    mac: bytes

    TYPE: ClassVar[MessageType] = MessageType.UNLOCK_QR
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("pairing_id", ID_LEN),
        _fixed("request_id", ID_LEN),
        _fixed("qr_secret", QR_SECRET_LEN),
        _fixed("ephemeral_pk", KEY_LEN),
        _fixed("created_at", 8),
        _fixed("ttl", 2),
        _fixed("mac", MAC_LEN),
    )

    def encode(self) -> bytes:
        return encode_message(
            self.TYPE,
            [
                self.pairing_id,
                self.request_id,
                self.qr_secret,
                self.ephemeral_pk,
                u64(self.created_at),
                u16(self.ttl),
                self.mac,
            ],
            self.LAYOUT,
        )

    @classmethod
    def decode(cls, data: bytes) -> UnlockQR:
        pid, rid, q, epk, created, ttl, tag = decode_message(
            data, cls.TYPE, cls.LAYOUT, "unlock QR code"
        )
        return cls(
            pid, rid, q, epk, read_u64(created, "created_at"), _check_ttl(read_u16(ttl, "ttl")), tag
        )


@dataclass(frozen=True)
class UnlockPush:
    """The opaque payload the relay pushes to the phone: AES-256-GCM under the push key."""

    routing_id: bytes
    nonce: bytes
    ciphertext: bytes

    TYPE: ClassVar[MessageType] = MessageType.UNLOCK_PUSH
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("routing_id", ID_LEN),
        _fixed("nonce", NONCE_LEN),
        _fixed("ciphertext", PUSH_PLAINTEXT_LEN + TAG_LEN),
    )

    def encode(self) -> bytes:
        return encode_message(
            self.TYPE, [self.routing_id, self.nonce, self.ciphertext], self.LAYOUT
        )

    @classmethod
    def decode(cls, data: bytes) -> UnlockPush:
        rid, nonce, ct = decode_message(data, cls.TYPE, cls.LAYOUT, "unlock notification")
        return cls(rid, nonce, ct)


@dataclass(frozen=True)
class PushPlaintext:
    """Inside the push. ``qr_secret``, ``number`` and ``choices`` are empty unless number matching.

    The phone app itself checks the user's pick against ``number`` and releases
    nothing on a wrong pick; it never displays which choice is right.
    """

    params: RequestParams
    qr_secret: bytes
    number: int | None
    choices: tuple[int, ...]

    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("request_id", ID_LEN),
        _fixed("ephemeral_pk", KEY_LEN),
        _fixed("created_at", 8),
        _fixed("ttl", 2),
        _fixed("mode", 1),
        Field("qr_secret", 0, QR_SECRET_LEN),
        Field("number", 0, 1),
        Field("choices", 0, NUMBER_CHOICES),
        Field("padding", 0, PUSH_PLAINTEXT_LEN),
    )

    def encode(self) -> bytes:
        p = self.params
        fields = [
            p.request_id,
            p.ephemeral_pk,
            u64(p.created_at),
            u16(p.ttl),
            u8(int(p.mode)),
            self.qr_secret,
            b"" if self.number is None else u8(self.number),
            bytes(self.choices),
        ]
        used = sum(2 + len(f) for f in fields) + 2
        if used > PUSH_PLAINTEXT_LEN:
            raise ValueError("push plaintext too large")
        return encode_fields([*fields, bytes(PUSH_PLAINTEXT_LEN - used)], self.LAYOUT)

    @classmethod
    def decode(cls, data: bytes) -> PushPlaintext:
        if len(data) != PUSH_PLAINTEXT_LEN:
            raise MalformedMessage("unlock notification contents have the wrong size")
        rid, epk, created, ttl, mode, q, number, choices, padding = decode_fields(
            data, cls.LAYOUT, "unlock notification contents"
        )
        if any(padding):
            raise MalformedMessage("unlock notification padding is not zero")
        m = _mode(read_u8(mode, "mode"))
        if m is UnlockMode.NUMBER_MATCH:
            if len(q) != QR_SECRET_LEN or len(number) != 1 or len(choices) != NUMBER_CHOICES:
                raise MalformedMessage("number-matching notification lacks its secret or numbers")
            if len(set(choices)) != NUMBER_CHOICES or number[0] not in choices:
                raise MalformedMessage("number-matching notification has inconsistent numbers")
        elif q or number or choices:
            raise MalformedMessage("scan-mode notification must not carry a secret or numbers")
        params = RequestParams(
            rid, epk, read_u64(created, "created_at"), _check_ttl(read_u16(ttl, "ttl")), m
        )
        return cls(params, q, number[0] if number else None, tuple(choices))


@dataclass(frozen=True)
class UnlockSeen:
    """Phone to desktop: "the QR was scanned", so the desktop can say so (status only)."""

    request_id: bytes
    mac: bytes

    TYPE: ClassVar[MessageType] = MessageType.UNLOCK_SEEN
    LAYOUT: ClassVar[tuple[Field, ...]] = (_fixed("request_id", ID_LEN), _fixed("mac", MAC_LEN))

    def encode(self) -> bytes:
        return encode_message(self.TYPE, [self.request_id, self.mac], self.LAYOUT)

    @classmethod
    def decode(cls, data: bytes) -> UnlockSeen:
        rid, tag = decode_message(data, cls.TYPE, cls.LAYOUT, "scan notice")
        return cls(rid, tag)


@dataclass(frozen=True)
class UnlockReply:
    """Phone to desktop: HPKE mode_auth_psk to the request's ephemeral key. Constant size."""

    request_id: bytes
    enc: bytes
    ciphertext: bytes

    TYPE: ClassVar[MessageType] = MessageType.UNLOCK_REPLY
    LAYOUT: ClassVar[tuple[Field, ...]] = (
        _fixed("request_id", ID_LEN),
        _fixed("enc", ENC_LEN),
        _fixed("ciphertext", REPLY_PLAINTEXT_LEN + TAG_LEN),
    )

    def encode(self) -> bytes:
        return encode_message(self.TYPE, [self.request_id, self.enc, self.ciphertext], self.LAYOUT)

    @classmethod
    def decode(cls, data: bytes) -> UnlockReply:
        rid, enc, ct = decode_message(data, cls.TYPE, cls.LAYOUT, "unlock reply")
        return cls(rid, enc, ct)


@dataclass(frozen=True)
class UnlockRefusal:
    """Phone to desktop: "I did not ask for this", from the notification, before any scan.

    A scan-mode push does not carry the QR secret, so the phone cannot make an
    :class:`UnlockReply` without scanning; this message needs only the pairing's
    seen-MAC key (docs/protocol.md 6.9). It releases nothing and ends the request.
    """

    request_id: bytes
    mac: bytes

    TYPE: ClassVar[MessageType] = MessageType.UNLOCK_REFUSAL
    LAYOUT: ClassVar[tuple[Field, ...]] = (_fixed("request_id", ID_LEN), _fixed("mac", MAC_LEN))

    def encode(self) -> bytes:
        return encode_message(self.TYPE, [self.request_id, self.mac], self.LAYOUT)

    @classmethod
    def decode(cls, data: bytes) -> UnlockRefusal:
        rid, tag = decode_message(data, cls.TYPE, cls.LAYOUT, "refusal")
        return cls(rid, tag)


ALL_MESSAGES: tuple[type, ...] = (
    PairingOffer,
    PairingHello,
    PairingAccept,
    UnlockQR,
    UnlockPush,
    UnlockSeen,
    UnlockReply,
    UnlockRefusal,
)
