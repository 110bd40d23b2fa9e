"""Desktop-local secrets (K_L), kept apart from the vault file.

A phone slot's key-encryption key is ``HKDF(K_P, K_L)``: K_P lives only on
the phone, K_L only here, in a 0600 file in the desktop state directory
(not in the vault). So the phone's share alone opens nothing, a copy of
the vault file alone opens nothing, and revoking a phone (deleting its slot
*and* its K_L) makes an old backup of the vault file useless even with the
old phone share, unless the attacker also copied this file back then.

Writes are atomic (temp file, fsync, rename, fsync dir) and serialised by
an ``flock`` so two processes never lose each other's keys.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from unlatch import paths, safejson
from unlatch.errors import UnlatchError
from unlatch.vault import crypto

FILE_NAME = "local-keys.json"
FILE_VERSION = 1
MAX_FILE_BYTES = 1024 * 1024
MAX_ENTRIES = 1024
_REF_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


class LocalKeyError(UnlatchError):
    """The local key file is unreadable, or a requested key does not exist."""


class LocalKeyNotFoundError(LocalKeyError):
    """No local secret for this slot (revoked, or the key file was lost)."""


class LocalKeyStore:
    """A small JSON map ``slot_ref -> base64(32 random bytes)`` in a 0600 file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or paths.subdir("desktop") / FILE_NAME

    def create(self, slot_ref: str) -> bytes:
        """Make, store and return a fresh 32-byte secret for ``slot_ref``."""
        _check_ref(slot_ref)
        secret = crypto.random_bytes(crypto.KEY_LEN)
        with self._locked():
            keys = self._read()
            if slot_ref in keys:
                raise LocalKeyError(f"a local key for {slot_ref} already exists")
            if len(keys) >= MAX_ENTRIES:
                raise LocalKeyError("too many local keys")
            keys[slot_ref] = secret
            self._write(keys)
        return secret

    def get(self, slot_ref: str) -> bytes:
        """The secret for ``slot_ref``; :class:`LocalKeyNotFoundError` if absent."""
        _check_ref(slot_ref)
        with self._locked():
            keys = self._read()
        try:
            return keys[slot_ref]
        except KeyError:
            raise LocalKeyNotFoundError(
                f"no desktop-local key for slot {slot_ref} (revoked or lost)"
            ) from None

    def delete(self, slot_ref: str) -> bool:
        """Forget the secret (revocation). Returns whether one existed."""
        _check_ref(slot_ref)
        with self._locked():
            keys = self._read()
            existed = keys.pop(slot_ref, None) is not None
            if existed:
                self._write(keys)
        return existed

    def refs(self) -> list[str]:
        """Every slot ref that has a local secret."""
        with self._locked():
            return sorted(self._read())

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self) -> dict[str, bytes]:
        try:
            with self.path.open("rb") as fh:
                raw = fh.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise LocalKeyError(f"cannot read {self.path}: {exc.strerror}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise LocalKeyError(f"{self.path} is too large to be a local key file")
        try:
            data = safejson.loads(raw)
            if not isinstance(data, dict) or data.get("version") != FILE_VERSION:
                raise ValueError
            entries = data["keys"]
            if not isinstance(entries, dict):
                raise ValueError
            keys = {str(k): base64.b64decode(str(v), validate=True) for k, v in entries.items()}
        except (ValueError, KeyError, binascii.Error):
            raise LocalKeyError(f"{self.path} is damaged (not a local key file)") from None
        if any(len(v) != crypto.KEY_LEN for v in keys.values()):
            raise LocalKeyError(f"{self.path} is damaged (bad key length)")
        return keys

    def _write(self, keys: dict[str, bytes]) -> None:
        body = {
            "version": FILE_VERSION,
            "keys": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(keys.items())},
        }
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(json.dumps(body, indent=1).encode("ascii"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _check_ref(slot_ref: str) -> None:
    if not isinstance(slot_ref, str) or not _REF_RE.match(slot_ref):
        raise LocalKeyError("a slot reference is 1-128 letters, digits or . _ : -")


def create_local_secret(slot_ref: str) -> bytes:
    """:meth:`LocalKeyStore.create` on the desktop's default store."""
    return LocalKeyStore().create(slot_ref)


def get_local_secret(slot_ref: str) -> bytes:
    """:meth:`LocalKeyStore.get` on the desktop's default store."""
    return LocalKeyStore().get(slot_ref)


def delete_local_secret(slot_ref: str) -> bool:
    """:meth:`LocalKeyStore.delete` on the desktop's default store."""
    return LocalKeyStore().delete(slot_ref)
