"""The storage interface of the relay.

Everything a relay node must share with the others lives behind :class:`Store`:
devices, challenges, session-token hashes, channels with their messages, and
pairings. Routes never touch a database; they call the service, which calls
these async methods. A backend (SQLite, PostgreSQL) must make each method
atomic on its own: the single-use rules (one ``hello`` owner, one ``reply``)
rely on :meth:`Store.claim_channel` and :meth:`Store.add_message` being
compare-and-set operations, which is what makes them hold across nodes.

Some methods do what the service would otherwise ask in two or three calls
(:meth:`Store.unlock_context`, :meth:`Store.create_unlock`,
:meth:`Store.close_as`, the guard of :meth:`Store.add_message`): on
PostgreSQL every call is a network round trip, and an exchange's store calls
were most of what the relay spent on it there.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from unlatch.relay.models import (
    Channel,
    ChannelKind,
    ChannelState,
    Device,
    DeviceKind,
    Message,
    PairingView,
)


class CreateResult(StrEnum):
    """Outcome of :meth:`Store.create_channel`."""

    CREATED = "created"
    EXISTS = "exists"
    TOO_MANY = "too_many"


class AddResult(StrEnum):
    """Outcome of :meth:`Store.add_message`."""

    ADDED = "added"
    DUPLICATE = "duplicate"  # this message type is already on the channel
    NOT_OPEN = "not_open"  # unknown, expired or closed channel
    NOT_ALLOWED = "not_allowed"  # open, but of another kind or the sender is not its peer


class PairResult(StrEnum):
    """Outcome of :meth:`Store.register_pairing`."""

    PENDING = "pending"
    LINKED = "linked"
    CONFLICT = "conflict"


class CloseResult(StrEnum):
    """Outcome of :meth:`Store.close_as`."""

    CLOSED = "closed"  # it was open; now closed (with the requests it renewed)
    NOT_OPEN = "not_open"  # a party closing a channel already closed or expired: a no-op
    UNKNOWN = "unknown"  # no channel of this kind with this id
    NOT_PARTY = "not_party"  # the device is neither its creator nor its peer
    NOT_CREATOR = "not_creator"  # an unlock request closed by another than its desktop


@dataclass(frozen=True)
class Closing:
    """What :meth:`Store.close_as` did: the result, and what the closer must announce.

    ``outcome`` and ``peer``/``expires_at`` are set when the channel was
    found and the device may close it; ``older`` are the renewed requests
    closed with it, with ``renewed_outcome``.
    """

    result: CloseResult
    outcome: str | None = None
    renewed_outcome: str | None = None
    peer: str | None = None
    expires_at: float = 0.0
    older: tuple[bytes, ...] = ()


def close_outcomes(kind: ChannelKind, by_creator: bool, posted: set[str]) -> tuple[str, str]:
    """Why a party's close ends a channel, and what its renewed predecessors hear.

    An unlock request is ``answered`` once a reply was posted, else
    ``cancelled``. A pairing channel that its desktop closes after the phone's
    ``hello`` without an ``accept`` was ``rejected`` (its user said the codes
    differ); any other close is ``closed``. Renewed requests end ``cancelled``
    with a cancelled attempt, else ``closed``. (The PostgreSQL store's
    ``unlatch_close_as`` follows these rules in SQL: migration 005; the store
    contract tests hold both to them.)
    """
    if kind == "unlock":
        outcome = "answered" if "reply" in posted else "cancelled"
    else:
        refused = by_creator and "hello" in posted and "accept" not in posted
        outcome = "rejected" if refused else "closed"
    return outcome, "cancelled" if outcome == "cancelled" else "closed"


@dataclass(frozen=True)
class UnlockContext:
    """What creating an unlock request checks first (:meth:`Store.unlock_context`)."""

    pairing: PairingView | None  # the desktop's view of the pairing
    request_taken: bool  # a channel with the request's id exists (any kind, any state)
    phone: Device | None  # the pairing's phone (for its push target), if registered


@dataclass(frozen=True)
class ChangeCursor:
    """Where one look at the store's changes ended; opaque to the caller, handed back.

    ``position`` is a backend's own mark (an id in SQLite's change log, a
    transaction-id horizon in PostgreSQL); ``seen`` holds what the last look
    reported that the next one may see again (PostgreSQL), so it is not
    reported twice.
    """

    position: int
    seen: frozenset[tuple[bytes, int, int]] = frozenset()


# What changed on a channel: "created" (an unlock request reaches its phone's pending
# list), "ended" (closed or expired), or the type of a message posted on it.
CHANNEL_CREATED = "created"
CHANNEL_ENDED = "ended"


@dataclass(frozen=True)
class ChannelChange:
    """One change to a channel: ``what`` is CHANNEL_CREATED, CHANNEL_ENDED or a message type.

    ``kind`` and ``peer`` are the channel's (None if it is gone since), so the
    caller knows whose phone's pending list moved.
    """

    channel_id: bytes
    what: str
    kind: ChannelKind | None
    peer: str | None


def channel_change(
    channel_id: bytes,
    state: str | None,
    msg_type: str | None,
    kind: ChannelKind | None,
    peer: str | None,
) -> ChannelChange:
    """A change as a store records it: a channel row's new ``state``, or a message's type.

    A channel row is only ever written open (created) or moved out of open
    (ended), so its state says which.
    """
    if msg_type is not None:
        what = msg_type
    else:
        what = CHANNEL_CREATED if state == ChannelState.OPEN else CHANNEL_ENDED
    return ChannelChange(channel_id, what, kind, peer)


@dataclass(frozen=True)
class Changes:
    """The answer of :meth:`Store.channel_changes`.

    ``complete`` is False when changes since the cursor can no longer be told
    (SQLite trimmed its change log past it): the caller must then assume that
    every channel changed.
    """

    cursor: ChangeCursor
    channels: list[ChannelChange]
    complete: bool = True


class Store(abc.ABC):
    """Async persistence for one relay (or many nodes sharing one database)."""

    # lifecycle -------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create/migrate the schema."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise if the store cannot answer (used by /healthz)."""

    # deployment settings --------------------------------------------------------
    @abc.abstractmethod
    async def record_setting(self, name: str, value: str, *, replace: bool = False) -> str:
        """Record ``value`` under ``name`` unless a value is recorded; return the recorded one.

        The first node to record wins (atomically), so every node can check it
        agrees with the deployment; ``replace`` overwrites on purpose.
        """

    # challenges and sessions ------------------------------------------------
    @abc.abstractmethod
    async def put_challenge(self, challenge: bytes, expires_at: float) -> None:
        """Remember a freshly issued challenge."""

    @abc.abstractmethod
    async def take_challenge(self, challenge: bytes, now: float) -> bool:
        """Consume a challenge: True once if it exists and has not expired."""

    @abc.abstractmethod
    async def put_session(self, token_hash: bytes, device_id: str, expires_at: float) -> None:
        """Store the hash of a new session token."""

    @abc.abstractmethod
    async def get_session(self, token_hash: bytes, now: float) -> str | None:
        """The device id of a live session, or None."""

    # devices ------------------------------------------------------------------
    @abc.abstractmethod
    async def register_device(
        self, device_id: str, public_key: bytes, kind: DeviceKind, now: float
    ) -> Device:
        """Insert the device if new; return the stored record (its kind may differ)."""

    @abc.abstractmethod
    async def get_device(self, device_id: str) -> Device | None:
        """A device by id."""

    @abc.abstractmethod
    async def set_push_target(
        self, device_id: str, target: dict[str, Any] | None, *, only_if_endpoint: str | None = None
    ) -> bool:
        """Replace (or clear) the push target; ``only_if_endpoint`` makes it a compare-and-set."""

    # channels -------------------------------------------------------------------
    @abc.abstractmethod
    async def create_channel(self, channel: Channel, max_open_per_creator: int) -> CreateResult:
        """Insert an open channel unless the id exists or the creator has too many open."""

    @abc.abstractmethod
    async def create_unlock(
        self, channel: Channel, max_open_per_creator: int
    ) -> tuple[CreateResult, bytes | None]:
        """:meth:`create_channel` for an unlock request, and the request it renews.

        The renewed one (when CREATED) is the newest other open, unanswered
        request of the same desktop, phone and pairing, as
        :meth:`open_unlock_for_peer` sees it just after the insert; else None.
        """

    @abc.abstractmethod
    async def unlock_context(
        self, routing_id: bytes, desktop_id: str, request_id: bytes
    ) -> UnlockContext:
        """In one read: the desktop's pairing view, whether the request id is taken, the phone."""

    @abc.abstractmethod
    async def get_channel(self, channel_id: bytes) -> Channel | None:
        """A channel (open, or a tombstone) by id."""

    @abc.abstractmethod
    async def claim_channel(self, channel_id: bytes, peer: str) -> bool:
        """Set the channel's peer if unset; True if it is now ``peer``."""

    @abc.abstractmethod
    async def add_message(
        self,
        channel_id: bytes,
        msg_type: str,
        sender: str,
        data: bytes,
        now: float,
        *,
        kind: ChannelKind | None = None,
        from_peer: bool = False,
    ) -> tuple[AddResult, Message | None]:
        """Append a message if the channel is live and has no message of this type.

        The checks, in order: live at ``now`` (else NOT_OPEN); of ``kind`` when
        given and, with ``from_peer``, ``sender`` is its peer (else
        NOT_ALLOWED); no message of this type yet (else DUPLICATE). The guard
        lets a caller that has not read the channel post in one call and read
        it only when refused, to say why.
        """

    @abc.abstractmethod
    async def messages_after(self, channel_id: bytes, after: int) -> list[Message]:
        """Messages with ``seq > after`` in order."""

    async def channel_with_messages(
        self, channel_id: bytes, after: int
    ) -> tuple[Channel | None, list[Message]]:
        """The channel and its messages with ``seq > after``, in one round trip.

        What a waiter reads at every wake-up. Backends answer it with one
        query; this default (two calls) is for a backend that has not yet.
        """
        ch = await self.get_channel(channel_id)
        if ch is None:
            return None, []
        return ch, await self.messages_after(channel_id, after)

    @abc.abstractmethod
    async def close_channel(self, channel_id: bytes, now: float, outcome: str = "closed") -> bool:
        """Mark closed and drop its payloads; True if it was open.

        ``outcome`` (why it closed: ``answered``, ``cancelled``, ``rejected``,
        ``closed``) stays on the tombstone as ``meta["outcome"]``, so a party
        that asks later (a phone at its next start) hears the same as those
        that were listening.
        """

    @abc.abstractmethod
    async def close_as(
        self, channel_id: bytes, device_id: str, kind: ChannelKind, now: float
    ) -> Closing:
        """A party closes a channel, in one call: the checks, the outcome, the close.

        Checked in this order: a channel of ``kind`` with this id (UNKNOWN),
        ``device_id`` its creator or peer (NOT_PARTY), for an unlock request its
        creator (NOT_CREATOR). The outcome follows :func:`close_outcomes` from
        the messages posted, read under the same lock as the close, so a reply
        racing the close either counts (``answered``) or is refused. An unlock
        request with a phone also closes the older open, unanswered requests of
        the same desktop, phone and pairing (created before it), with
        ``renewed_outcome``: the attempt is over. NOT_OPEN: already closed or expired (nothing
        changes; its messages are dropped all the same).
        """

    @abc.abstractmethod
    async def expire_channels(self, now: float, grace: float) -> list[bytes]:
        """Expire open channels past their life, drop payloads, return their ids.

        A channel that already holds messages keeps them ``grace`` seconds past
        its expiry (no new posts are accepted), so a reply posted just before
        expiry still reaches a desktop that is reconnecting.
        """

    @abc.abstractmethod
    async def purge(self, now: float, tombstone_before: float) -> int:
        """Delete old tombstones, expired challenges and sessions; return rows removed."""

    @abc.abstractmethod
    async def open_unlock_for_peer(self, peer: str, now: float) -> list[Channel]:
        """Live unlock channels addressed to this phone that have no reply yet."""

    @abc.abstractmethod
    async def channel_changes(self, since: ChangeCursor | None) -> Changes:
        """The channel changes committed after the call that returned ``since``.

        With ``since`` None: no changes, only a starting cursor, and the store
        records changes from then on (SQLite makes its change-log triggers
        then, so a relay without a reconciler does not pay for them). Every change
        (channel created, message added, channel closed or expired) committed
        after the call that returned ``since`` is in the answer of one of the
        following calls, whatever the order in which concurrent transactions
        commit; a change may be reported more than once. This is what lets a
        node wake its waiters when the bus lost an event (:mod:`unlatch.relay.reconcile`):
        one query per node, whatever the number of waiters.
        """

    @abc.abstractmethod
    async def count_open_channels(self) -> dict[ChannelKind, int]:
        """Open channels by kind (for metrics)."""

    # pairings ---------------------------------------------------------------------
    @abc.abstractmethod
    async def register_pairing(
        self, routing_id: bytes, device_id: str, peer_device_id: str, kind: DeviceKind, now: float
    ) -> PairResult:
        """Record one side of a pairing; LINKED when both sides match."""

    @abc.abstractmethod
    async def list_pairings(self, device_id: str) -> list[PairingView]:
        """This device's pairings."""

    @abc.abstractmethod
    async def get_pairing(self, routing_id: bytes, device_id: str) -> PairingView | None:
        """This device's view of one pairing."""

    @abc.abstractmethod
    async def delete_pairing(self, routing_id: bytes, device_id: str) -> bool:
        """Unpair: remove both sides' entries if ``device_id`` is a party."""

    @abc.abstractmethod
    async def set_blocked(self, routing_id: bytes, phone_id: str, blocked: bool) -> bool:
        """Set the phone's block flag on its entry; False if it has no such entry."""


def open_store(url: str) -> Store:
    """Pick a backend by URL: ``sqlite:///abs/path`` or a file path (PostgreSQL slots in here)."""
    from unlatch.relay.errors import RelayConfigError

    if url.startswith(("postgresql://", "postgres://")):
        import importlib

        try:
            module = importlib.import_module("unlatch.relay.store_postgres")
        except ImportError:
            raise RelayConfigError("this relay has no PostgreSQL backend installed") from None
        store: Store = module.PostgresStore(url)
        return store
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
    elif "://" in url:
        raise RelayConfigError(f"unsupported --db URL (expected sqlite:///PATH or a file): {url}")
    else:
        path = url
    if not path:
        raise RelayConfigError("--db needs a file path, e.g. sqlite:///var/lib/unlatch/relay.db")
    from unlatch.relay.store_sqlite import SQLiteStore

    return SQLiteStore(path)
