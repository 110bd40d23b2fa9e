"""The desktop's identities: its protocol key, its relay key, its name.

Two keys on purpose (docs/relay.md, "Authentication"): the X25519 protocol
key (:class:`~unlatch.protocol.KeyPair`) is what a phone pins at pairing and
what the HPKE pairing hello is sealed to; the ECDSA P-256 relay key
(:class:`~unlatch.relay.device_key.DeviceKey`) only proves to the relay which
device is talking. Neither protects vault data, so like an SSH host key they
are stored unencrypted with owner-only permissions, under
``$UNLATCH_HOME/desktop/``. The name is what the phone shows ("Unlock
*work-laptop*?"); it is sent to the phone inside the encrypted pairing accept.
"""

from __future__ import annotations

import base64
import binascii
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from unlatch import paths
from unlatch.desktop.errors import DesktopError, StateFileError
from unlatch.desktop.files import read_json, write_json
from unlatch.protocol import KeyPair, ProtocolError
from unlatch.protocol.constants import MAX_NAME_BYTES
from unlatch.protocol.messages import check_name as check_wire_name
from unlatch.relay.device_key import DeviceKey

IDENTITY_FILE = "identity.json"
RELAY_KEY_FILE = "relay-device-key.pem"
FILE_VERSION = 1


def check_name(name: str) -> str:
    """A device name: 1-64 UTF-8 bytes of printable text; returned stripped.

    Checked here with the protocol's own rule as well (no bidi overrides or
    other invisible format characters), so a name accepted now is never one
    the pairing refuses later.
    """
    name = name.strip() if isinstance(name, str) else ""
    if not name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise DesktopError("a device name must be printable text and not empty")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise DesktopError(f"a device name must be at most {MAX_NAME_BYTES} bytes")
    try:
        check_wire_name(name, "device name")
    except ProtocolError as exc:
        raise DesktopError(str(exc)) from None
    return name


def default_name() -> str:
    """The host name, cut to fit (what a user most likely calls this machine)."""
    host = socket.gethostname().split(".")[0] or "desktop"
    while len(host.encode("utf-8")) > MAX_NAME_BYTES:
        host = host[:-1]
    try:
        return check_name(host)
    except DesktopError:
        return "desktop"


@dataclass
class DesktopIdentity:
    """The desktop's protocol key pair, relay device key and display name."""

    keypair: KeyPair
    relay_key: DeviceKey
    name: str
    directory: Path

    @property
    def device_id(self) -> str:
        """The relay device id (derived from the relay key's public half)."""
        return self.relay_key.device_id

    @classmethod
    def load_or_create(cls, directory: Path | None = None) -> DesktopIdentity:
        """Read the identity files, creating missing keys on first use."""
        directory = directory or paths.subdir("desktop")
        path = directory / IDENTITY_FILE
        data = read_json(path)
        if data is None:
            keypair = KeyPair.generate(os.urandom)
            name = default_name()
            _save(path, keypair, name)
        else:
            keypair, name = _parse(path, data)
        relay_key = DeviceKey.load_or_create(directory / RELAY_KEY_FILE)
        return cls(keypair, relay_key, name, directory)

    def rename(self, name: str) -> None:
        """Change the desktop's name (phones paired later will show it)."""
        self.name = check_name(name)
        _save(self.directory / IDENTITY_FILE, self.keypair, self.name)


def _save(path: Path, keypair: KeyPair, name: str) -> None:
    write_json(
        path,
        {
            "version": FILE_VERSION,
            "protocol_private_key": base64.b64encode(keypair.private_bytes()).decode("ascii"),
            "name": name,
        },
    )


def _parse(path: Path, data: dict[str, object]) -> tuple[KeyPair, str]:
    if data.get("version") != FILE_VERSION:
        raise StateFileError(f"{path} has an unknown version")
    try:
        private = base64.b64decode(str(data.get("protocol_private_key", "")), validate=True)
        keypair = KeyPair.from_private_bytes(private)
        name = check_name(str(data.get("name", "")))
    except (binascii.Error, ValueError, DesktopError):
        raise StateFileError(f"{path} is damaged (bad key or name)") from None
    return keypair, name
