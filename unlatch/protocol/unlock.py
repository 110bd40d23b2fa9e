"""Phone unlock: the desktop's request and the phone's reply, as sans-IO state machines.

Flow (docs/protocol.md, "Phone unlock")::

    desktop                         relay                    phone
    DesktopUnlock(pairing, now)
      UnlockPush  ---------------->  push / listener ----->  PhoneUnlock.open_push
      UnlockQR    ======== QR code on the desktop's screen =====>  PhoneUnlock.from_qr
                  <----------------  UnlockSeen  <---------  .seen()          (optional)
                  <----------------  UnlockReply <---------  .approve() / .deny()
                  <----------------  UnlockRefusal <-------  .refuse()   (from the push, no QR)
    .receive_reply -> Approved(K_P) | Denied

The reply is HPKE mode_auth_psk: encrypted to the request's ephemeral key,
authenticated by the phone's static key, keyed by the QR's fresh secret, and
bound to the pairing id, request id, ephemeral key, times and mode. Every
request is answered at most once on both sides; the desktop drops its
ephemeral private key after the first reply, on expiry or on cancel.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from unlatch.protocol.constants import (
    CLOCK_SKEW_SECONDS,
    DEFAULT_UNLOCK_TTL,
    ID_LEN,
    KEY_LEN,
    NONCE_LEN,
    NUMBER_CHOICES,
    NUMBER_MAX,
    NUMBER_MIN,
    QR_SECRET_LEN,
    REPLY_PLAINTEXT_LEN,
    Label,
    MessageType,
    UnlockMode,
    UnlockPolicy,
    Verdict,
)
from unlatch.protocol.encoding import header, peek_type, u8
from unlatch.protocol.errors import (
    AlreadyAnswered,
    InvalidState,
    MalformedMessage,
    ModeNotAllowed,
    ProtocolError,
    RequestExpired,
    UnknownPairing,
    WrongRequest,
)
from unlatch.protocol.keyschedule import (
    push_aad,
    qr_mac_input,
    refusal_mac_input,
    reply_info,
    seen_mac_input,
    unlock_psk,
)
from unlatch.protocol.links import parse_link
from unlatch.protocol.messages import (
    PushPlaintext,
    RequestParams,
    UnlockPush,
    UnlockQR,
    UnlockRefusal,
    UnlockReply,
    UnlockSeen,
    _check_ttl,
)
from unlatch.protocol.primitives import (
    KeyPair,
    Random,
    aead_open,
    aead_seal,
    check_public_key,
    hpke_open,
    hpke_seal,
    mac,
    verify_mac,
)
from unlatch.protocol.records import DesktopPairingRecord, PhonePairingRecord


class UnlockState(Enum):
    """States of a desktop's unlock request."""

    WAITING = "waiting"  # QR shown / push sent, nothing back yet
    SEEN = "seen"  # the phone says it scanned the QR
    APPROVED = "approved"
    DENIED = "denied"
    FAILED = "failed"  # a reply failed authentication: the request is burnt
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in (UnlockState.WAITING, UnlockState.SEEN)


class PhoneUnlockState(Enum):
    """States of the phone's answer to one request (docs/protocol.md 6.7).

    ``verified`` is the only state that can send anything; the other three
    are final, and entering one drops the request's QR secret.
    """

    VERIFIED = "verified"  # the QR or push checked out: waiting for the user's decision
    ANSWERED = "answered"  # a reply was made (approve, deny or wrong number)
    EXPIRED = "expired"  # the user decided after the request's lifetime: nothing was sent
    FAILED = "failed"  # no reply could be made (e.g. an unusable ephemeral key)

    @property
    def is_final(self) -> bool:
        return self is not PhoneUnlockState.VERIFIED


@dataclass(frozen=True)
class Approved:
    """The phone approved: ``phone_share`` (K_P) unwraps the phone's vault slot.

    ``policy`` is the pairing's unlock policy as the phone holds it now
    (every reply carries it, authenticated): what the desktop should ask
    for next time.
    """

    phone_share: bytes
    policy: UnlockPolicy = UnlockPolicy.SCAN_ONLY


@dataclass(frozen=True)
class Denied:
    """The phone refused: plainly, "I did not ask for this", or a wrong number was picked."""

    verdict: Verdict
    # The policy the reply stated; None for an UnlockRefusal, which carries none.
    policy: UnlockPolicy | None = UnlockPolicy.SCAN_ONLY

    @property
    def not_me(self) -> bool:
        return self.verdict is Verdict.DENY_NOT_ME

    @property
    def wrong_number(self) -> bool:
        return self.verdict is Verdict.WRONG_NUMBER


UnlockOutcome = Approved | Denied


def _uniform(rng: Random, low: int, high: int) -> int:
    """A uniform integer in ``[low, high]`` by rejection sampling one byte at a time."""
    span = high - low + 1
    limit = 256 - 256 % span
    while True:
        b = rng(1)[0]
        if b < limit:
            return low + b % span


def _number_choices(rng: Random) -> tuple[int, tuple[int, ...]]:
    """The number to show and the shuffled choices the phone offers (distinct)."""
    choices: list[int] = []
    while len(choices) < NUMBER_CHOICES:
        n = _uniform(rng, NUMBER_MIN, NUMBER_MAX)
        if n not in choices:
            choices.append(n)
    correct = choices[0]
    for i in range(len(choices) - 1, 0, -1):  # Fisher-Yates
        j = _uniform(rng, 0, i)
        choices[i], choices[j] = choices[j], choices[i]
    return correct, tuple(choices)


class DesktopUnlock:
    """One unlock request made by the desktop for one paired phone.

    ``push_bytes`` go to the relay; in scan mode ``qr_bytes`` are shown as a
    QR code, in number-matching mode there is no QR (``qr`` and ``qr_bytes``
    are None) and ``number`` is shown instead.
    """

    def __init__(
        self,
        pairing: DesktopPairingRecord,
        *,
        now: int,
        ttl: int = DEFAULT_UNLOCK_TTL,
        mode: UnlockMode = UnlockMode.SCAN,
        rng: Random = os.urandom,
    ) -> None:
        _check_ttl(ttl)
        self.pairing = pairing
        self._ephemeral: KeyPair | None = KeyPair.generate(rng)
        self.params = RequestParams(
            request_id=rng(ID_LEN),
            ephemeral_pk=self._ephemeral.public,
            created_at=now,
            ttl=ttl,
            mode=mode,
        )
        self._qr_secret: bytes | None = rng(QR_SECRET_LEN)
        keys = pairing.keys
        self.number: int | None = None
        choices: tuple[int, ...] = ()
        if mode is UnlockMode.NUMBER_MATCH:
            self.number, choices = _number_choices(rng)
        # A QR only in scan mode. Its MAC does not cover the mode, and a phone that
        # scans one answers in scan mode, which a number-matching request's reply
        # info refuses: a QR shown in mode 2 could only fail (docs/protocol.md 6.2).
        self.qr: UnlockQR | None = None
        self.qr_bytes: bytes | None = None
        if mode is UnlockMode.SCAN:
            tag = mac(
                keys.request_mac_key, qr_mac_input(keys.pairing_id, self._qr_secret, self.params)
            )
            self.qr = UnlockQR(
                keys.pairing_id,
                self.params.request_id,
                self._qr_secret,
                self.params.ephemeral_pk,
                now,
                ttl,
                tag,
            )
            self.qr_bytes = self.qr.encode()
        push_secret = self._qr_secret if mode is UnlockMode.NUMBER_MATCH else b""
        plaintext = PushPlaintext(self.params, push_secret, self.number, choices).encode()
        nonce = rng(NONCE_LEN)
        aad = push_aad(header(UnlockPush.TYPE), keys.routing_id)
        self.push_bytes = UnlockPush(
            keys.routing_id, nonce, aead_seal(keys.push_key, nonce, plaintext, aad)
        ).encode()
        self.state = UnlockState.WAITING

    @property
    def request_id(self) -> bytes:
        return self.params.request_id

    @property
    def expires_at(self) -> int:
        return self.params.expires_at

    def _finish(self, state: UnlockState) -> None:
        """Enter a final state and drop the request's secrets.

        The ephemeral private key (its only copy) and the QR secret, with the
        QR that carries it. Python cannot wipe memory; dropping the only
        references is what it can do.
        """
        self._ephemeral = None
        self._qr_secret = None
        self.qr = None
        self.qr_bytes = None
        self.state = state

    def _open_secrets(self) -> tuple[KeyPair, bytes]:
        """The ephemeral key and QR secret of an open request (present until it ends)."""
        assert self._ephemeral is not None and self._qr_secret is not None
        return self._ephemeral, self._qr_secret

    def _check_open(self, now: int) -> None:
        if self.state.is_final:
            raise AlreadyAnswered(f"this unlock request is already {self.state.value}")
        if now > self.params.expires_at:
            self._finish(UnlockState.EXPIRED)
            raise RequestExpired("the unlock request expired: make a new one")

    def check_expiry(self, *, now: int) -> bool:
        """Expire the request if its time is up; True when it is (now) expired."""
        if not self.state.is_final and now > self.params.expires_at:
            self._finish(UnlockState.EXPIRED)
        return self.state is UnlockState.EXPIRED

    def cancel(self) -> None:
        if not self.state.is_final:
            self._finish(UnlockState.CANCELLED)

    def receive_seen(self, data: bytes, *, now: int) -> None:
        """The phone reports a scan. Only a status: it changes nothing else."""
        seen = UnlockSeen.decode(data)
        if seen.request_id != self.request_id:
            raise WrongRequest("scan notice is for another request")
        self._check_open(now)
        _, qr_secret = self._open_secrets()
        keys = self.pairing.keys
        verify_mac(
            keys.seen_mac_key,
            seen_mac_input(keys.pairing_id, self.request_id, qr_secret),
            seen.mac,
            "scan notice",
        )
        self.state = UnlockState.SEEN

    def receive_reply(self, data: bytes, *, now: int) -> UnlockOutcome:
        """Decrypt the phone's reply. The first reply for this request ends it, whatever it says.

        The reply is an :class:`UnlockReply` or, when the user refused from the
        notification without scanning, an :class:`UnlockRefusal` ("I did not ask
        for this"). Bytes that are neither, or an answer for another request id,
        are refused without touching the request (they cannot be attributed to
        it); an answer for this request that fails authentication burns it.
        """
        if peek_type(data) is MessageType.UNLOCK_REFUSAL:
            return self._receive_refusal(data, now=now)
        reply = UnlockReply.decode(data)
        if reply.request_id != self.request_id:
            raise WrongRequest("reply is for another request")
        self._check_open(now)
        ephemeral, qr_secret = self._open_secrets()
        keys = self.pairing.keys
        try:
            plaintext, _ = hpke_open(
                recipient=ephemeral,
                enc=reply.enc,
                info=reply_info(keys.pairing_id, self.params),
                aad=header(UnlockReply.TYPE) + reply.request_id,
                ciphertext=reply.ciphertext,
                psk=unlock_psk(keys, self.request_id, qr_secret),
                psk_id=Label.UNLOCK_PSK_ID,
                sender_pk=self.pairing.phone_pk,
                what="unlock reply",
            )
            outcome = _parse_reply_plaintext(plaintext)
        except ProtocolError:
            self._finish(UnlockState.FAILED)
            raise
        self._finish(UnlockState.APPROVED if isinstance(outcome, Approved) else UnlockState.DENIED)
        return outcome

    def _receive_refusal(self, data: bytes, *, now: int) -> UnlockOutcome:
        """ "I did not ask for this" made from the push: a MAC under the seen-MAC key.

        Only the two ends of the pairing hold that key, so the relay can neither
        forge nor redirect one (it names this request and its parameters). It
        carries no share, so it can only end the request.
        """
        refusal = UnlockRefusal.decode(data)
        if refusal.request_id != self.request_id:
            raise WrongRequest("refusal is for another request")
        self._check_open(now)
        keys = self.pairing.keys
        try:
            verify_mac(
                keys.seen_mac_key,
                refusal_mac_input(keys.pairing_id, self.params),
                refusal.mac,
                "refusal",
            )
        except ProtocolError:
            self._finish(UnlockState.FAILED)
            raise
        self._finish(UnlockState.DENIED)
        return Denied(Verdict.DENY_NOT_ME, policy=None)


_POLICY_AT = 1 + KEY_LEN  # verdict | share | policy | padding


def _parse_reply_plaintext(plaintext: bytes) -> UnlockOutcome:
    if len(plaintext) != REPLY_PLAINTEXT_LEN:
        raise MalformedMessage("unlock reply contents have the wrong size")
    verdict, share = plaintext[0], plaintext[1:_POLICY_AT]
    policy, padding = plaintext[_POLICY_AT], plaintext[_POLICY_AT + 1 :]
    if any(padding):
        raise MalformedMessage("unlock reply padding is not zero")
    if policy not in tuple(UnlockPolicy):
        raise MalformedMessage(f"unknown unlock policy {policy}")
    if verdict == Verdict.APPROVE:
        return Approved(share, UnlockPolicy(policy))
    if verdict in (Verdict.DENY, Verdict.DENY_NOT_ME, Verdict.WRONG_NUMBER):
        if any(share):
            raise MalformedMessage("a denial must not carry a share")
        return Denied(Verdict(verdict), UnlockPolicy(policy))
    raise MalformedMessage(f"unknown verdict {verdict}")


def _reply_plaintext(verdict: Verdict, share: bytes, policy: UnlockPolicy) -> bytes:
    body = u8(int(verdict)) + share + u8(int(policy))
    return body + bytes(REPLY_PLAINTEXT_LEN - len(body))


MODE_NOT_ALLOWED = (
    "this desktop asked for approve-from-notification, which you did not allow for it: "
    "nothing was released. If you did not change this, someone may have copied the "
    "desktop's files: revoke it (unpair it on this phone)"
)


def _find_pairing(
    pairings: Iterable[PhonePairingRecord],
    *,
    pairing_id: bytes | None = None,
    routing_id: bytes | None = None,
) -> PhonePairingRecord:
    for record in pairings:
        if pairing_id is not None and hmac.compare_digest(record.pairing_id, pairing_id):
            return record
        if routing_id is not None and hmac.compare_digest(record.keys.routing_id, routing_id):
            return record
    raise UnknownPairing(
        "this QR code was not made by a desktop paired with this phone: "
        "nothing was sent (if you did not expect it, someone may be trying to trick you)"
    )


def _check_time(params: RequestParams, now: int) -> None:
    if params.created_at > now + CLOCK_SKEW_SECONDS:
        raise RequestExpired("the request's time is in the future: check the clocks")
    if now > params.expires_at + CLOCK_SKEW_SECONDS:
        raise RequestExpired("this unlock request has expired: ask the desktop for a new one")


EPHEMERAL_KEY = "the request's ephemeral key"


@dataclass(frozen=True)
class PushedRequest:
    """A decrypted notification: who asks and when; with number matching, enough to answer."""

    pairing: PhonePairingRecord
    params: RequestParams
    qr_secret: bytes
    number: int | None
    choices: tuple[int, ...]


class PhoneUnlock:
    """The phone's answer to one request (from a scanned QR, or a number-matching push).

    ``identity`` is the phone's static key pair: it authenticates the reply
    (HPKE mode_auth_psk), so only the paired phone can make one. The object
    is made only for a request that checked out (``verified``) and answers it
    at most once: a second answer is :class:`AlreadyAnswered` from the object
    itself, whatever the app's persistent :class:`ReplayGuard` says.
    """

    def __init__(
        self,
        pairing: PhonePairingRecord,
        identity: KeyPair,
        params: RequestParams,
        qr_secret: bytes | None,
        *,
        number: int | None = None,
        choices: tuple[int, ...] = (),
    ) -> None:
        self.pairing = pairing
        self._identity = identity
        self.params = params
        self._qr_secret: bytes | None = qr_secret
        self._number = number
        self.choices = choices
        self.approved_share_sent = False
        self.state = PhoneUnlockState.VERIFIED

    @property
    def answered(self) -> bool:
        """True once a reply was made (the state ``answered``)."""
        return self.state is PhoneUnlockState.ANSWERED

    def _end(self, state: PhoneUnlockState) -> None:
        self._qr_secret = None  # the request's one fresh secret: no further use
        self.state = state

    def _check_verified(self) -> None:
        """The typed refusal of a step after a final state."""
        if self.state is PhoneUnlockState.ANSWERED:
            raise AlreadyAnswered("this request was already answered")
        if self.state is not PhoneUnlockState.VERIFIED:
            raise InvalidState(f"this request is {self.state.value}: nothing more can be sent")

    def _verified_secret(self) -> bytes:
        """The QR secret, or the typed refusal of a step after a final state or without it."""
        self._check_verified()
        if self._qr_secret is None:  # made from a scan-mode push: only refuse() can answer
            raise InvalidState("this request must be answered by scanning the desktop's QR code")
        return self._qr_secret

    @classmethod
    def from_qr(
        cls,
        qr: bytes | str,
        pairings: Iterable[PhonePairingRecord],
        identity: KeyPair,
        *,
        now: int,
    ) -> PhoneUnlock:
        """Check a scanned QR: a paired desktop made it, untampered, and it is fresh."""
        raw = parse_link(qr) if isinstance(qr, str) else qr
        msg = UnlockQR.decode(raw)
        pairing = _find_pairing(pairings, pairing_id=msg.pairing_id)
        params = RequestParams(
            msg.request_id, msg.ephemeral_pk, msg.created_at, msg.ttl, UnlockMode.SCAN
        )
        verify_mac(
            pairing.keys.request_mac_key,
            qr_mac_input(pairing.pairing_id, msg.qr_secret, params),
            msg.mac,
            "unlock QR code (it was not made by your paired desktop)",
        )
        check_public_key(params.ephemeral_pk, EPHEMERAL_KEY)
        _check_time(params, now)
        return cls(pairing, identity, params, msg.qr_secret)

    @staticmethod
    def open_push(
        data: bytes, pairings: Iterable[PhonePairingRecord], *, now: int
    ) -> PushedRequest:
        """Decrypt a notification from the relay (it can neither read nor forge one)."""
        push = UnlockPush.decode(data)
        pairing = _find_pairing(pairings, routing_id=push.routing_id)
        aad = push_aad(header(UnlockPush.TYPE), push.routing_id)
        plaintext = aead_open(
            pairing.keys.push_key, push.nonce, push.ciphertext, aad, "unlock notification"
        )
        c = PushPlaintext.decode(plaintext)
        check_public_key(c.params.ephemeral_pk, EPHEMERAL_KEY)
        _check_time(c.params, now)
        return PushedRequest(pairing, c.params, c.qr_secret, c.number, c.choices)

    @classmethod
    def from_push(cls, pushed: PushedRequest, identity: KeyPair) -> PhoneUnlock:
        """Answer a number-matching request straight from its notification.

        Made also for a pairing whose policy does not allow number matching,
        so the user can deny it: :meth:`approve` then refuses
        (:class:`ModeNotAllowed`), and :attr:`mode_allowed` tells a UI to show
        that refusal instead of the numbers.
        """
        if pushed.params.mode is not UnlockMode.NUMBER_MATCH:
            raise InvalidState("this request must be approved by scanning the desktop's QR code")
        return cls(
            pushed.pairing,
            identity,
            pushed.params,
            pushed.qr_secret,
            number=pushed.number,
            choices=pushed.choices,
        )

    @classmethod
    def for_refusal(cls, pushed: PushedRequest, identity: KeyPair) -> PhoneUnlock:
        """A request known from its notification only, which the user may refuse.

        In scan mode the push has no QR secret, so the only answer this object
        can make is :meth:`refuse` ("I did not ask for this"); approve, deny and
        seen are :class:`InvalidState` until the QR is scanned.
        """
        if pushed.params.mode is UnlockMode.NUMBER_MATCH:
            return cls.from_push(pushed, identity)
        return cls(pushed.pairing, identity, pushed.params, None)

    @property
    def request_id(self) -> bytes:
        return self.params.request_id

    @property
    def can_reply(self) -> bool:
        """False for a request known only from a scan-mode push: it can only be refused."""
        return self._qr_secret is not None or self.state is not PhoneUnlockState.VERIFIED

    @property
    def needs_number(self) -> bool:
        return self.params.mode is UnlockMode.NUMBER_MATCH

    @property
    def mode_allowed(self) -> bool:
        """Whether this pairing's policy allows the mode the request was made for.

        Scanning is always allowed; number matching only when the phone's
        user allowed it for this desktop (docs/protocol.md 6.8). The request
        says its mode, but whoever holds the desktop's files can make one,
        so the phone's record decides.
        """
        return not self.needs_number or self.pairing.allow_number_matching

    def check_mode(self) -> None:
        """Refuse, before anything is shown or sent, a mode the pairing did not agree to."""
        if not self.mode_allowed:
            raise ModeNotAllowed(MODE_NOT_ALLOWED)

    def remaining(self, *, now: int) -> int:
        """Seconds left before the request expires (never negative)."""
        return max(0, self.params.expires_at - now)

    def seen(self) -> bytes:
        """The optional "QR scanned" notice for the desktop's live status (before answering)."""
        qr_secret = self._verified_secret()
        keys = self.pairing.keys
        tag = mac(keys.seen_mac_key, seen_mac_input(keys.pairing_id, self.request_id, qr_secret))
        return UnlockSeen(self.request_id, tag).encode()

    def approve(self, *, now: int, choice: int | None = None, rng: Random = os.urandom) -> bytes:
        """Release K_P to the desktop.

        With number matching, ``choice`` is the number the user picked; a wrong
        pick releases nothing: the reply says WRONG_NUMBER and the request is over.
        Check :attr:`approved_share_sent` afterwards to tell the user which happened.
        A number-matching request from a pairing whose policy does not allow it
        is refused (:class:`ModeNotAllowed`) and stays unanswered: the user may
        still deny it.
        """
        self._verified_secret()  # answered or over: refused before looking at the choice
        self.check_mode()
        if self.needs_number:
            if choice is None or choice not in self.choices:
                raise InvalidState("pick one of the numbers offered")
            if not hmac.compare_digest(u8(choice), u8(self._number or 0)):
                return self._reply(Verdict.WRONG_NUMBER, bytes(KEY_LEN), now, rng)
        elif choice is not None:
            raise InvalidState("scan-mode requests take no number")
        reply = self._reply(Verdict.APPROVE, self.pairing.phone_share, now, rng)
        self.approved_share_sent = True
        return reply

    def deny(self, *, now: int, not_me: bool = False, rng: Random = os.urandom) -> bytes:
        """Refuse; ``not_me``: the user did not ask for this (the app also blocks the relay)."""
        verdict = Verdict.DENY_NOT_ME if not_me else Verdict.DENY
        return self._reply(verdict, bytes(KEY_LEN), now, rng)

    def refuse(self, *, now: int) -> bytes:
        """ "I did not ask for this" without the QR secret: an :class:`UnlockRefusal`.

        The answer of a request seen only in its notification (a scan-mode push
        has no QR secret, so no :class:`UnlockReply` can be made). It releases
        nothing; the app also blocks the pairing on the relay.
        """
        self._check_verified()
        self._check_fresh(now)
        keys = self.pairing.keys
        tag = mac(keys.seen_mac_key, refusal_mac_input(keys.pairing_id, self.params))
        self._end(PhoneUnlockState.ANSWERED)
        return UnlockRefusal(self.request_id, tag).encode()

    def _check_fresh(self, now: int) -> None:
        """Decided too late: nothing is sent and the request ends ``expired``."""
        try:
            _check_time(self.params, now)
        except RequestExpired:
            self._end(PhoneUnlockState.EXPIRED)
            raise

    def _reply(self, verdict: Verdict, share: bytes, now: int, rng: Random) -> bytes:
        """Make the one reply: ``verified`` -> ``answered`` (or ``expired`` / ``failed``)."""
        qr_secret = self._verified_secret()
        self._check_fresh(now)
        keys = self.pairing.keys
        try:
            enc, ct, _ = hpke_seal(
                recipient_pk=self.params.ephemeral_pk,
                info=reply_info(keys.pairing_id, self.params),
                aad=header(UnlockReply.TYPE) + self.request_id,
                plaintext=_reply_plaintext(verdict, share, self.pairing.policy),
                psk=unlock_psk(keys, self.request_id, qr_secret),
                psk_id=Label.UNLOCK_PSK_ID,
                ephemeral_seed=rng(KEY_LEN),
                sender=self._identity,
                recipient=EPHEMERAL_KEY,
            )
        except ProtocolError:
            self._end(PhoneUnlockState.FAILED)
            raise
        self._end(PhoneUnlockState.ANSWERED)
        return UnlockReply(self.request_id, enc, ct).encode()
