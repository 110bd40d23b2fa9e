"""The Python phone client: a real phone for Linux phones and scripts, and the test driver.

It pairs with desktops (scanning their pairing QR as a link or a PNG),
listens for unlock requests through the relay, and approves or denies them
after checking that the QR comes from a paired desktop. Its state, including
each desktop's unlock share, is sealed at rest (see docs/phone-client.md).

Entry points: :class:`~unlatch.phone.client.PhoneClient` (async Python API)
and ``unlatch phone ...`` (:mod:`unlatch.cli.phone_commands`);
:func:`unlatch.phone.qrimage.decode_qr_image` reads a QR from a picture
(imported on demand: Pillow and zxing-cpp are not needed otherwise).
"""

from unlatch.phone.client import Answer, Ignored, PairingAttempt, PairResult, PhoneClient
from unlatch.phone.requests import RequestView

__all__ = [
    "Answer",
    "Ignored",
    "PairResult",
    "PairingAttempt",
    "PhoneClient",
    "RequestView",
]
