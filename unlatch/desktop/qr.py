"""QR codes for the screen (SVG, made server-side) and the terminal (text).

Rendered by ``segno`` in the agent, so the page needs no JavaScript QR
library and the link (whose #fragment holds the request's secret) is only
ever inside the image shown on this machine's screen.
"""

from __future__ import annotations

import io
import re

import segno


def svg(text: str, *, scale: int = 6, title: str = "QR code") -> str:
    """A standalone SVG document (error correction M, 4-module quiet zone)."""
    qr = segno.make(text, error="m", micro=False)
    out = io.BytesIO()
    qr.save(
        out,
        kind="svg",
        scale=scale,
        border=4,
        dark="#111",
        light="#fff",
        title=title,
        xmldecl=False,
        svgns=True,
        nl=False,
    )
    text_svg = out.getvalue().decode("utf-8")
    # segno writes width/height only; a viewBox lets CSS scale the image crisply.
    m = re.search(r'width="(\d+)" height="(\d+)"', text_svg)
    if m:
        text_svg = text_svg.replace(
            m.group(0), f'{m.group(0)} viewBox="0 0 {m.group(1)} {m.group(2)}"', 1
        )
    return text_svg


def terminal(text: str) -> str:
    """The QR as text for a terminal (two rows per line, half blocks)."""
    qr = segno.make(text, error="m", micro=False)
    out = io.StringIO()
    qr.terminal(out=out, compact=True, border=2)
    return out.getvalue()
