"""Wire constants of unlatch protocol version 1: sizes, message types, labels.

Everything a compatible implementation must agree on byte for byte lives
here and in docs/protocol.md; changing any value is a protocol version bump.
"""

from __future__ import annotations

from enum import IntEnum

VERSION = 1
MAGIC = b"UL"
HEADER_LEN = 4  # MAGIC (2) | version (1) | type (1)

# HPKE (RFC 9180) suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
# All three are native in WebCrypto, so the phone PWA needs no custom crypto.
HPKE_KEM_ID = 0x0020
HPKE_KDF_ID = 0x0001
HPKE_AEAD_ID = 0x0002

KEY_LEN = 32  # X25519 keys, symmetric keys, phone share K_P
ENC_LEN = 32  # HPKE encapsulated key for DHKEM(X25519)
TAG_LEN = 16  # AES-GCM tag
NONCE_LEN = 12  # AES-GCM nonce
ID_LEN = 16  # request ids, channel ids, pairing ids, routing ids: 128 bits
QR_SECRET_LEN = 16  # the unlock QR's fresh secret: 128 bits
PAIRING_SECRET_LEN = 32  # the pairing QR's one-time secret: 256 bits
MAC_LEN = 16  # truncated HMAC-SHA256 tags: 128 bits
SAS_DIGITS = 6  # verification code shown on both screens during pairing

MAX_NAME_BYTES = 64  # device names, UTF-8
MAX_URL_BYTES = 200  # relay URL inside the pairing offer
MAX_DEVICE_ID_BYTES = 64  # relay device id (ASCII)
MAX_MESSAGE_BYTES = 2048  # no v1 message is larger; parsers refuse before decoding
MAX_LINK_CHARS = 4096

REPLY_PLAINTEXT_LEN = 64  # verdict (1) | K_P (32) | policy (1) | zero padding (30)
PUSH_PLAINTEXT_LEN = 128  # padded so scan and number-matching pushes look alike

MAX_TTL_SECONDS = 600  # an unlock request may live at most this long
DEFAULT_UNLOCK_TTL = 120
DEFAULT_PAIRING_TTL = 600
CLOCK_SKEW_SECONDS = 30  # tolerated difference between desktop and phone clocks

NUMBER_CHOICES = 3  # number matching: the phone shows this many numbers
NUMBER_MIN = 10
NUMBER_MAX = 99


class MessageType(IntEnum):
    """The type byte of every v1 message."""

    PAIRING_OFFER = 0x01
    PAIRING_HELLO = 0x02
    PAIRING_ACCEPT = 0x03
    UNLOCK_QR = 0x10
    UNLOCK_PUSH = 0x11
    UNLOCK_SEEN = 0x12
    UNLOCK_REPLY = 0x13
    UNLOCK_REFUSAL = 0x14  # "I did not ask for this" from the notification, without the QR


class UnlockMode(IntEnum):
    """How the phone proves the user is at the desktop."""

    SCAN = 1  # default: the phone scans the QR, whose secret keys the reply
    NUMBER_MATCH = 2  # opt-in: approve from the notification, pick the shown number


class Verdict(IntEnum):
    """The phone's answer, inside the encrypted reply."""

    APPROVE = 1
    DENY = 2
    DENY_NOT_ME = 3  # "I did not ask for this"
    WRONG_NUMBER = 4  # number matching: the user picked a number the desktop did not show


class UnlockPolicy(IntEnum):
    """The unlock modes the phone allows for one pairing, inside every reply (protocol.md 6.8).

    The phone's choice, held in its pairing record: nothing the desktop
    stores can widen it. The desktop only learns it, to know which request
    to make.
    """

    SCAN_ONLY = 0  # the default, and every record made before policies existed
    NUMBER_MATCHING = 1  # scan, or approve from the notification by picking the number


class Label:
    """Domain-separation labels: each derivation and MAC has its own."""

    PAIR_PSK = b"unlatch/v1/pair/psk"
    PAIR_PSK_ID = b"unlatch/v1/pair/psk-id"
    PAIR_HELLO_INFO = b"unlatch/v1/pair/hello"
    PAIR_TRANSCRIPT = b"unlatch/v1/pair/transcript"
    PAIR_ROOT = b"unlatch/v1/pair/root"
    PAIR_SAS = b"unlatch/v1/pair/sas"
    PAIR_ACCEPT = b"unlatch/v1/pair/accept"
    PAIRING_ID = b"unlatch/v1/pairing-id"
    ROUTING_ID = b"unlatch/v1/routing-id"
    KEY_ACCEPT = b"unlatch/v1/key/pair-accept"
    KEY_REQUEST_MAC = b"unlatch/v1/key/request-mac"
    KEY_PUSH = b"unlatch/v1/key/push"
    KEY_SEEN_MAC = b"unlatch/v1/key/seen-mac"
    KEY_UNLOCK_PSK = b"unlatch/v1/key/unlock-psk"
    UNLOCK_QR_MAC = b"unlatch/v1/unlock/qr"
    UNLOCK_PUSH_AAD = b"unlatch/v1/unlock/push"
    UNLOCK_SEEN_MAC = b"unlatch/v1/unlock/seen"
    UNLOCK_PSK = b"unlatch/v1/unlock/psk"
    UNLOCK_PSK_ID = b"unlatch/v1/unlock/psk-id"
    UNLOCK_REPLY_INFO = b"unlatch/v1/unlock/reply"
    UNLOCK_REFUSAL_MAC = b"unlatch/v1/unlock/refusal"
    SLOT_PHONE = b"unlatch/v1/slot/phone"
    SLOT_PASSKEY = b"unlatch/v1/slot/passkey"
