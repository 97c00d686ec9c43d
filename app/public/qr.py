"""The QR code of a ticket's page, `<public URL>/t/<code>` (SPEC §9), drawn by segno as SVG:
vector, so a thermal printer prints every module edge sharp at any size (receipt.css sets it
to 30 mm on the 80 mm roll)."""

from __future__ import annotations

import io

import segno


def ticket_url(base_url: str, code: str) -> str:
    return f"{base_url.rstrip('/')}/t/{code}"


def qr_svg(url: str) -> str:
    """A standalone SVG document (no XML declaration), with the standard quiet zone of four
    modules; error correction M (15 %), enough for a creased paper ticket."""
    out = io.BytesIO()
    segno.make(url, error="m").save(
        out, kind="svg", xmldecl=False, nl=False, scale=4, border=4, title="ticket"
    )
    return out.getvalue().decode()
