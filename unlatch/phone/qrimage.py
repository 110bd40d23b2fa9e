"""Reading a QR code from an image file (a screenshot of the desktop, a photo).

Decoding uses zxing-cpp, a maintained decoder, on an image loaded by Pillow.
Files are bounded in size and pixel count before decoding, so a hostile image
cannot exhaust memory; every failure is a :class:`QRImageError` that says what
was wrong with the picture.
"""

from __future__ import annotations

from pathlib import Path

import zxingcpp
from PIL import Image, UnidentifiedImageError

from unlatch.phone.errors import QRImageError
from unlatch.protocol.links import BARE_PREFIX, FRAGMENT_KEY

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_PIXELS = 40_000_000


def _looks_like_unlatch(text: str) -> bool:
    t = text.strip()
    return t.lower().startswith(BARE_PREFIX) or f"#{FRAGMENT_KEY}" in t


def decode_qr_image(path: Path) -> str:
    """The text of the unlatch QR code in the image at ``path``.

    When the image holds several codes, the first one that is an unlatch link
    is taken; if none is, the error says what was found instead.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise QRImageError(f"cannot read image {path}: {exc.strerror}") from None
    if size > MAX_IMAGE_BYTES:
        raise QRImageError(f"image {path} is too large ({size} bytes)")
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise QRImageError(f"image {path} has too many pixels")
            img.load()
            rgb = img.convert("L")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise QRImageError(f"{path} is not an image Pillow can read (PNG, JPEG...)") from None
    results = zxingcpp.read_barcodes(
        rgb, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    )
    texts = [r.text for r in results if r.valid and r.text]
    if not texts:
        raise QRImageError(f"no QR code found in {path}")
    for text in texts:
        if _looks_like_unlatch(text):
            return text.strip()
    raise QRImageError(f"the QR code in {path} is not an unlatch code")
