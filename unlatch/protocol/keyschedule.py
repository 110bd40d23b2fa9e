"""Every key the protocol derives, each with its own label.

The pairing root comes from the HPKE exporter of the pairing hello, bound to
the transcript hash of the offer and the hello; everything a pairing needs
afterwards is expanded from that root with HKDF-SHA256 and a distinct label
(:class:`~unlatch.protocol.constants.Label`). Unlock secrets combine the
fresh QR secret with the pairing's unlock-PSK key, so the HPKE PSK has 256
bits of entropy against anyone who lacks the pairing (RFC 9180 section 9.5
asks for at least 32 bytes) and 128 fresh bits against anyone who has it.
"""

from __future__ import annotations

from dataclasses import dataclass

from unlatch.protocol.constants import ID_LEN, KEY_LEN, SAS_DIGITS, Label, UnlockMode
from unlatch.protocol.encoding import transcript, u8, u16, u64
from unlatch.protocol.messages import RequestParams
from unlatch.protocol.primitives import hkdf, sha256


def expand(root: bytes, label: bytes, length: int = KEY_LEN, *context: bytes) -> bytes:
    """HKDF-SHA256 with an empty salt and ``info = transcript(label, *context)``."""
    return hkdf(root, salt=b"", info=transcript(label, *context), length=length)


def pairing_psk(pairing_secret: bytes, channel_id: bytes) -> bytes:
    """The HPKE PSK of the pairing hello: only holders of the QR's secret can make one."""
    return expand(pairing_secret, Label.PAIR_PSK, KEY_LEN, channel_id)


def hello_info(channel_id: bytes, desktop_pk: bytes, relay_url: str, expires_at: int) -> bytes:
    """HPKE ``info`` of the hello: binds every public field of the offer (not its secret)."""
    return transcript(
        Label.PAIR_HELLO_INFO, channel_id, desktop_pk, relay_url.encode(), u64(expires_at)
    )


def pairing_transcript_hash(
    channel_id: bytes, desktop_pk: bytes, relay_url: str, expires_at: int, hello: bytes
) -> bytes:
    """SHA-256 over the public offer fields and the exact hello bytes."""
    return sha256(
        transcript(
            Label.PAIR_TRANSCRIPT,
            channel_id,
            desktop_pk,
            relay_url.encode(),
            u64(expires_at),
            hello,
        )
    )


def root_export_context(transcript_hash: bytes) -> bytes:
    """HPKE exporter context that yields the pairing root."""
    return transcript(Label.PAIR_ROOT, transcript_hash)


def verification_code(root: bytes) -> str:
    """The 6-digit code both screens show; bias of 64 bits mod 10^6 is < 2^-44."""
    value = int.from_bytes(expand(root, Label.PAIR_SAS, 8), "big") % 10**SAS_DIGITS
    return f"{value:0{SAS_DIGITS}d}"


@dataclass(frozen=True)
class PairingKeys:
    """The long-term symmetric material both ends of a pairing hold."""

    pairing_id: bytes  # names the pairing inside QR codes; never sent to the relay
    routing_id: bytes  # names the pairing to the relay
    request_mac_key: bytes  # desktop authenticates unlock QR codes
    push_key: bytes  # desktop encrypts push payloads
    seen_mac_key: bytes  # phone authenticates "QR scanned" notices
    unlock_psk_key: bytes  # salt of every unlock PSK

    @classmethod
    def from_root(cls, root: bytes) -> PairingKeys:
        return cls(
            pairing_id=expand(root, Label.PAIRING_ID, ID_LEN),
            routing_id=expand(root, Label.ROUTING_ID, ID_LEN),
            request_mac_key=expand(root, Label.KEY_REQUEST_MAC),
            push_key=expand(root, Label.KEY_PUSH),
            seen_mac_key=expand(root, Label.KEY_SEEN_MAC),
            unlock_psk_key=expand(root, Label.KEY_UNLOCK_PSK),
        )


def accept_key(root: bytes) -> bytes:
    """Single-use AES-256-GCM key of the pairing accept (so a zero nonce is safe)."""
    return expand(root, Label.KEY_ACCEPT)


def accept_aad(transcript_hash: bytes) -> bytes:
    return transcript(Label.PAIR_ACCEPT, transcript_hash)


def qr_mac_input(pairing_id: bytes, qr_secret: bytes, params: RequestParams) -> bytes:
    return transcript(
        Label.UNLOCK_QR_MAC,
        pairing_id,
        params.request_id,
        qr_secret,
        params.ephemeral_pk,
        u64(params.created_at),
        u16(params.ttl),
    )


def push_aad(header: bytes, routing_id: bytes) -> bytes:
    return transcript(Label.UNLOCK_PUSH_AAD, header, routing_id)


def seen_mac_input(pairing_id: bytes, request_id: bytes, qr_secret: bytes) -> bytes:
    return transcript(Label.UNLOCK_SEEN_MAC, pairing_id, request_id, qr_secret)


def refusal_mac_input(pairing_id: bytes, params: RequestParams) -> bytes:
    """MAC input of a refusal sent without the QR: the request as its push described it."""
    return _request_transcript(Label.UNLOCK_REFUSAL_MAC, pairing_id, params)


def _request_transcript(label: bytes, pairing_id: bytes, params: RequestParams) -> bytes:
    """Every parameter of one request, under ``label``."""
    return transcript(
        label,
        pairing_id,
        params.request_id,
        params.ephemeral_pk,
        u64(params.created_at),
        u16(params.ttl),
        u8(int(params.mode)),
    )


def unlock_psk(keys: PairingKeys, request_id: bytes, qr_secret: bytes) -> bytes:
    """The reply's HPKE PSK: the fresh QR secret, salted with the pairing's unlock-PSK key."""
    return hkdf(
        qr_secret,
        salt=keys.unlock_psk_key,
        info=transcript(Label.UNLOCK_PSK, keys.pairing_id, request_id),
    )


def reply_info(pairing_id: bytes, params: RequestParams) -> bytes:
    """HPKE ``info`` of the reply: pairing, request id, ephemeral key, times and mode."""
    return _request_transcript(Label.UNLOCK_REPLY_INFO, pairing_id, params)


def phone_slot_kek(phone_share: bytes, local_secret: bytes, pairing_id: bytes) -> bytes:
    """Key-encryption key of a phone's vault slot: needs the phone's K_P AND the desktop's K_L."""
    return hkdf(phone_share, salt=local_secret, info=transcript(Label.SLOT_PHONE, pairing_id))


def passkey_slot_kek(prf_output: bytes, slot_salt: bytes, credential_id: bytes) -> bytes:
    """Key-encryption key of a passkey's vault slot, from its WebAuthn PRF output."""
    return hkdf(prf_output, salt=slot_salt, info=transcript(Label.SLOT_PASSKEY, credential_id))


__all__ = [
    "PairingKeys",
    "UnlockMode",
    "accept_aad",
    "accept_key",
    "expand",
    "hello_info",
    "pairing_psk",
    "pairing_transcript_hash",
    "passkey_slot_kek",
    "phone_slot_kek",
    "push_aad",
    "qr_mac_input",
    "refusal_mac_input",
    "reply_info",
    "root_export_context",
    "seen_mac_input",
    "unlock_psk",
    "verification_code",
]
