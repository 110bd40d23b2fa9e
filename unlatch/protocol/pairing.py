"""Pairing a phone with a desktop: both roles as sans-IO state machines.

Flow (docs/protocol.md, "Pairing")::

    desktop                                  phone
    PairingOffer  ==== QR code (screen) ===>  scan
                  <==== PairingHello ====     HPKE mode_psk to desktop_pk,
                                               psk from the QR's secret
    show code                                 show code   (same 6 digits)
    user confirms the codes match
    PairingAccept ====================>       K_P, desktop name (AES-GCM,
                                               key from the HPKE exporter)

Nothing here touches a socket or a clock: times are passed in, randomness
comes from an injected ``rng``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from enum import Enum

from unlatch.protocol.constants import (
    DEFAULT_PAIRING_TTL,
    ID_LEN,
    KEY_LEN,
    NONCE_LEN,
    PAIRING_SECRET_LEN,
    Label,
)
from unlatch.protocol.encoding import header
from unlatch.protocol.errors import InvalidState, ProtocolError, RequestExpired
from unlatch.protocol.keyschedule import (
    PairingKeys,
    accept_aad,
    accept_key,
    hello_info,
    pairing_psk,
    pairing_transcript_hash,
    root_export_context,
    verification_code,
)
from unlatch.protocol.links import parse_link
from unlatch.protocol.messages import (
    AcceptPlaintext,
    HelloPlaintext,
    PairingAccept,
    PairingHello,
    PairingOffer,
    check_device_id,
    check_name,
)
from unlatch.protocol.primitives import (
    KeyPair,
    Random,
    aead_open,
    aead_seal,
    check_public_key,
    hpke_open,
    hpke_seal,
)
from unlatch.protocol.records import DesktopPairingRecord, PhonePairingRecord

_ZERO_NONCE = bytes(NONCE_LEN)


class PairingState(Enum):
    WAITING_HELLO = "waiting_hello"  # desktop: QR shown
    AWAITING_CONFIRM = "awaiting_confirm"  # desktop: codes shown, user must confirm
    WAITING_ACCEPT = "waiting_accept"  # phone: hello sent, code shown
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class PendingPhone:
    """What the desktop shows the user before they confirm."""

    phone_name: str
    phone_device_id: str
    verification_code: str


class DesktopPairing:
    """The desktop's side of one pairing attempt."""

    def __init__(
        self,
        identity: KeyPair,
        relay_url: str,
        *,
        now: int,
        ttl: int = DEFAULT_PAIRING_TTL,
        rng: Random = os.urandom,
    ) -> None:
        self._identity = identity
        self.offer = PairingOffer(
            channel_id=rng(ID_LEN),
            pairing_secret=rng(PAIRING_SECRET_LEN),
            desktop_pk=identity.public,
            relay_url=relay_url.rstrip("/"),
            expires_at=now + ttl,
        )
        self._offer_bytes: bytes | None = self.offer.encode()
        self.state = PairingState.WAITING_HELLO
        self._root: bytes | None = None
        self._th: bytes | None = None
        self._hello: HelloPlaintext | None = None

    @property
    def offer_bytes(self) -> bytes:
        """The offer to show as a QR code, while the attempt is open.

        It holds the one-time secret ``S``, so it is forgotten with the other
        secrets once the attempt is done or failed.
        """
        if self._offer_bytes is None:
            raise InvalidState(f"pairing is {self.state.value}: its code was forgotten")
        return self._offer_bytes

    def _end(self, state: PairingState) -> None:
        """Enter a final state and drop every secret of the attempt.

        Python cannot wipe memory; dropping the only references is what it can
        do. ``offer`` keeps its public fields (channel id, expiry, relay URL)
        with an empty ``pairing_secret``.
        """
        self.offer = dataclasses.replace(self.offer, pairing_secret=b"")
        self._offer_bytes = None
        self._root = self._th = None
        self._hello = None
        self.state = state

    @property
    def channel_id(self) -> bytes:
        return self.offer.channel_id

    @property
    def expires_at(self) -> int:
        return self.offer.expires_at

    def receive_hello(self, data: bytes, *, now: int) -> PendingPhone:
        """Check a phone's hello; on success the user must compare the codes.

        A hello that is malformed or does not open leaves the attempt waiting:
        only a holder of the QR's secret can make one that opens, so garbage
        from the relay must not end it.
        """
        if self.state is not PairingState.WAITING_HELLO:
            raise InvalidState(f"pairing is {self.state.value}, not waiting for a phone")
        if now > self.offer.expires_at:
            self._end(PairingState.FAILED)
            raise RequestExpired("the pairing code expired: start pairing again")
        hello = PairingHello.decode(data)
        o = self.offer
        th = pairing_transcript_hash(o.channel_id, o.desktop_pk, o.relay_url, o.expires_at, data)
        plaintext, root = hpke_open(
            recipient=self._identity,
            enc=hello.enc,
            info=hello_info(o.channel_id, o.desktop_pk, o.relay_url, o.expires_at),
            aad=header(PairingHello.TYPE),
            ciphertext=hello.ciphertext,
            psk=pairing_psk(o.pairing_secret, o.channel_id),
            psk_id=Label.PAIR_PSK_ID,
            export_context=root_export_context(th),
            what="pairing hello",
        )
        contents = HelloPlaintext.decode(plaintext)
        # Every later reply is authenticated with this key: refuse an unusable one now.
        check_public_key(contents.phone_pk, "the phone's key")
        self._root, self._th, self._hello = root, th, contents
        self.state = PairingState.AWAITING_CONFIRM
        return PendingPhone(contents.phone_name, contents.phone_device_id, verification_code(root))

    def confirm(
        self,
        desktop_name: str,
        desktop_device_id: str,
        *,
        now: int,
        rng: Random = os.urandom,
    ) -> tuple[bytes, DesktopPairingRecord, bytes]:
        """The user confirmed matching codes: make K_P and the accept message.

        Returns ``(accept_message, record, phone_share)``. The caller wraps the
        vault key under a slot derived from ``phone_share`` and then drops it.
        """
        if self.state is not PairingState.AWAITING_CONFIRM:
            raise InvalidState(f"pairing is {self.state.value}, nothing to confirm")
        assert self._root is not None and self._th is not None and self._hello is not None
        # The phone refuses an accept whose names break the rules, and that would end
        # its attempt: refuse them here instead, while the user can still fix them.
        check_name(desktop_name, "desktop name")
        check_device_id(desktop_device_id, "desktop device id")
        if now > self.offer.expires_at:
            self._end(PairingState.FAILED)
            raise RequestExpired("the pairing code expired: start pairing again")
        share = rng(KEY_LEN)
        contents = AcceptPlaintext(share, desktop_name, desktop_device_id).encode()
        ct = aead_seal(accept_key(self._root), _ZERO_NONCE, contents, accept_aad(self._th))
        record = DesktopPairingRecord(
            keys=PairingKeys.from_root(self._root),
            phone_pk=self._hello.phone_pk,
            phone_name=self._hello.phone_name,
            phone_device_id=self._hello.phone_device_id,
            created_at=now,
        )
        self._end(PairingState.DONE)
        return PairingAccept(ct).encode(), record, share

    def reject(self) -> None:
        """The codes did not match (or the user cancelled): forget everything."""
        self._end(PairingState.FAILED)


class PhonePairing:
    """The phone's side of one pairing attempt, started from a scanned offer."""

    def __init__(
        self,
        offer: bytes | str,
        identity: KeyPair,
        phone_name: str,
        phone_device_id: str,
        *,
        now: int,
        rng: Random = os.urandom,
    ) -> None:
        raw = parse_link(offer) if isinstance(offer, str) else offer
        self.offer = PairingOffer.decode(raw)
        if now > self.offer.expires_at:
            raise RequestExpired("this pairing code has expired: ask the desktop for a new one")
        # The desktop refuses a hello whose names break the rules: check them here,
        # as protocol errors, before anything is sent.
        check_name(phone_name, "phone name")
        check_device_id(phone_device_id, "phone device id")
        o = self.offer
        contents = HelloPlaintext(identity.public, phone_name, phone_device_id).encode()

        def root_context(enc: bytes, ct: bytes) -> bytes:
            hello = PairingHello(enc, ct).encode()
            return root_export_context(
                pairing_transcript_hash(
                    o.channel_id, o.desktop_pk, o.relay_url, o.expires_at, hello
                )
            )

        enc, ct, root = hpke_seal(
            recipient_pk=o.desktop_pk,
            info=hello_info(o.channel_id, o.desktop_pk, o.relay_url, o.expires_at),
            aad=header(PairingHello.TYPE),
            plaintext=contents,
            psk=pairing_psk(o.pairing_secret, o.channel_id),
            psk_id=Label.PAIR_PSK_ID,
            ephemeral_seed=rng(KEY_LEN),
            export_context=root_context,
            recipient="the desktop's key",
        )
        self.hello_bytes = PairingHello(enc, ct).encode()
        # S has done its job (the hello's PSK): keep only the offer's public fields.
        self.offer = dataclasses.replace(o, pairing_secret=b"")
        self._th: bytes | None = pairing_transcript_hash(
            o.channel_id, o.desktop_pk, o.relay_url, o.expires_at, self.hello_bytes
        )
        self._root: bytes | None = root
        self.verification_code = verification_code(root)
        self.state = PairingState.WAITING_ACCEPT

    @property
    def channel_id(self) -> bytes:
        return self.offer.channel_id

    @property
    def relay_url(self) -> str:
        return self.offer.relay_url

    def receive_accept(self, data: bytes, *, now: int) -> PhonePairingRecord:
        """The desktop's user confirmed: decrypt K_P and make the pairing record.

        Bytes that are not a well-formed accept are refused without changing
        state: anyone on the relay can post them, and the desktop's real
        accept may still come. A well-formed accept that fails authentication
        (or holds invalid contents) is this pairing's one try: the attempt
        fails and its secrets are dropped (docs/protocol.md 5.5).
        """
        if self.state is not PairingState.WAITING_ACCEPT or self._root is None:
            raise InvalidState(f"pairing is {self.state.value}, not waiting for the desktop")
        accept = PairingAccept.decode(data)  # outside the try: garbage does not end the attempt
        assert self._th is not None
        try:
            plaintext = aead_open(
                accept_key(self._root),
                _ZERO_NONCE,
                accept.ciphertext,
                accept_aad(self._th),
                "pairing accept",
            )
            contents = AcceptPlaintext.decode(plaintext)
        except ProtocolError:
            self.fail()
            raise
        record = PhonePairingRecord(
            keys=PairingKeys.from_root(self._root),
            desktop_pk=self.offer.desktop_pk,
            desktop_name=contents.desktop_name,
            desktop_device_id=contents.desktop_device_id,
            relay_url=self.offer.relay_url,
            phone_share=contents.phone_share,
            created_at=now,
        )
        self._end(PairingState.DONE)
        return record

    def fail(self) -> None:
        """Abandon the attempt and forget its secrets."""
        self._end(PairingState.FAILED)

    def _end(self, state: PairingState) -> None:
        self._root = self._th = None
        self.state = state
