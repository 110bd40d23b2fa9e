"""The phone's directory: key files, the sealed state, and a lock.

Layout (all files 0600, directory 0700)::

    device.pem     relay identity (ECDSA P-256), see unlatch.relay.device_key
    storage.key    32 random bytes: half of (or, without a PIN, all of) the state key
    state.sealed   the PhoneState as JSON, sealed by unlatch.phone.sealed
    lock           flock()ed while a command changes the state

Writes are atomic (temporary file, fsync, rename), so a crash leaves either
the old or the new state, never a torn one; the lock keeps two commands (say
``listen`` in one terminal and ``approve`` in another) from losing each
other's changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from unlatch.phone.errors import NotInitialized, PinRequired, StorageError
from unlatch.phone.sealed import (
    STORAGE_KEY_LEN,
    KdfParams,
    check_pin,
    derive_key,
    open_sealed,
    read_params,
    seal,
)
from unlatch.phone.state import PhoneState, clean_name
from unlatch.protocol import KeyPair
from unlatch.relay.device_key import DeviceKey

PinSource = Callable[[], str]
"""Asked for the PIN only when the state is PIN-protected (a prompt, an env var...)."""


def _write_private(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``, never readable by others."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class PhoneStore:
    """Loads and saves one phone's state under ``home``."""

    def __init__(self, home: Path, pin: PinSource | None = None) -> None:
        self.home = home
        self._pin_source = pin
        self._key_cache: tuple[KdfParams, bytes] | None = None
        self._lock_depth = 0  # _locked() is re-entrant within this object

    @property
    def state_path(self) -> Path:
        return self.home / "state.sealed"

    @property
    def _storage_key_path(self) -> Path:
        return self.home / "storage.key"

    def exists(self) -> bool:
        return self.state_path.is_file()

    def _ensure_dir(self) -> None:
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)

    def device_key(self) -> DeviceKey:
        """The relay identity (created with the state by :meth:`init`)."""
        path = self.home / "device.pem"
        if not path.is_file():
            raise NotInitialized(f"no phone in {self.home}: run `unlatch phone init` first")
        return DeviceKey.load(path)

    def _storage_key(self) -> bytes:
        try:
            data = self._storage_key_path.read_bytes()
        except FileNotFoundError:
            raise StorageError(
                f"{self._storage_key_path} is missing: the state cannot be opened"
            ) from None
        if len(data) != STORAGE_KEY_LEN:
            raise StorageError(f"{self._storage_key_path} is damaged (wrong size)")
        return data

    def _cached_key(self, params: KdfParams) -> bytes | None:
        if self._key_cache is not None and self._key_cache[0] == params:
            return self._key_cache[1]
        return None

    def _ask_pin(self) -> str:
        if self._pin_source is None:
            raise PinRequired("this phone is protected by a PIN: give it to continue")
        return self._pin_source()

    def _key_for(self, params: KdfParams, pin: str | None = None) -> bytes:
        cached = self._cached_key(params)
        if cached is not None:
            return cached
        if params.needs_pin and pin is None:
            pin = self._ask_pin()
        key = derive_key(self._storage_key(), params, pin)
        self._key_cache = (params, key)
        return key

    def pin_protected(self) -> bool:
        """True when the state is sealed under a PIN (read without opening it)."""
        params, _, _ = read_params(self._read_envelope())
        return params.needs_pin

    def _read_envelope(self) -> bytes:
        try:
            return self.state_path.read_bytes()
        except FileNotFoundError:
            raise NotInitialized(
                f"no phone in {self.home}: run `unlatch phone init` or `unlatch phone pair`"
            ) from None

    # -- life cycle -------------------------------------------------------

    def init(self, name: str) -> tuple[PhoneState, bool]:
        """Create the phone (identity, relay key, storage key); ``(state, created)``.

        An existing phone is loaded, never overwritten: its pairings hold shares
        that nothing else can restore.
        """
        name = clean_name(name, "phone name")
        self._ensure_dir()
        with self._locked():
            if self.exists():
                return self.load(), False
            DeviceKey.load_or_create(self.home / "device.pem")
            if not self._storage_key_path.is_file():
                _write_private(self._storage_key_path, os.urandom(STORAGE_KEY_LEN))
            state = PhoneState(name=name, identity=KeyPair.generate(os.urandom))
            self._save(state, KdfParams.keyfile())
            return state, True

    def load(self) -> PhoneState:
        return self._load_current()[0]

    def _open(self) -> tuple[PhoneState, KdfParams, str | None]:
        """The state, its KDF parameters, and the PIN if it had to be asked."""
        params, nonce, ct = read_params(self._read_envelope())
        pin = None
        if params.needs_pin and self._cached_key(params) is None:
            pin = self._ask_pin()
        plaintext = open_sealed(self._key_for(params, pin), params, nonce, ct)
        try:
            data = json.loads(plaintext)
        except ValueError:
            raise StorageError("phone state is damaged (not JSON)") from None
        return PhoneState.from_dict(data), params, pin

    def _load_current(self) -> tuple[PhoneState, KdfParams]:
        """Open the state; one sealed under a cheaper Argon2id than today's is re-sealed.

        The migration happens at the first opening with the PIN (the only time
        the PIN is at hand), under the lock and from a fresh read, so a change
        made meanwhile by another command is neither lost nor migrated twice.
        """
        state, params, pin = self._open()
        if not params.below_defaults or pin is None:
            return state, params
        with self._locked():
            state, params, again = self._open()
            if params.below_defaults:
                params = KdfParams.argon2id()
                self._save(state, params, again or pin)
        return state, params

    def _save(self, state: PhoneState, params: KdfParams, pin: str | None = None) -> None:
        key = self._key_for(params, pin)
        plaintext = json.dumps(state.to_dict(), separators=(",", ":")).encode()
        _write_private(self.state_path, seal(key, params, plaintext))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The directory's flock; re-entrant (a second flock on a new fd would deadlock)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self._ensure_dir()
        fd = os.open(self.home / "lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            yield
        finally:
            self._lock_depth = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PhoneState]:
        """Load under the lock, let the caller change the state, save it on success."""
        with self._locked():
            state, params = self._load_current()
            yield state
            self._save(state, params)

    def set_pin(self, new_pin: str | None) -> None:
        """Re-seal the state under a new PIN (``None`` removes the PIN).

        The current PIN, if any, comes from the PIN source; the state is opened
        with it first, so a wrong current PIN changes nothing.
        """
        with self._locked():
            state = self.load()
            if new_pin is None:
                params = KdfParams.keyfile()
            else:
                new_pin = check_pin(new_pin)
                params = KdfParams.argon2id()
            self._save(state, params, new_pin)
