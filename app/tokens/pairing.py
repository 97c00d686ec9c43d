"""A device's pairing link and QR code (SPEC §7, docs/devices.md).

Secrets are stored hashed, so the link (which carries the token) can only be made at creation:
it is returned once, beside the secret. The QR code is drawn on the server by segno, as SVG.
"""

from __future__ import annotations

import io
from urllib.parse import quote, urlencode

import segno

from app.auth.permissions import Role
from app.tokens.schemas import Pairing


def device_path(role: Role, branch: str | None, counter: str | None) -> str | None:
    """The page a device of `role` opens, or None (no device page, or a clerk without a
    counter)."""
    if branch is None:
        return None
    b = quote(branch, safe="")
    if role is Role.KIOSK:
        return f"/kiosk/{b}"
    if role is Role.DISPLAY:
        # A display token also drives the counter screen (窗口屏) above a named counter.
        if counter is not None:
            return f"/window/{b}/{quote(counter, safe='')}"
        return f"/display/{b}"
    if role is Role.CLERK and counter is not None:
        return f"/counter/{b}/{quote(counter, safe='')}"
    return None


def qr_svg(url: str) -> str:
    """The QR code of `url`, as a standalone SVG document (no XML declaration)."""
    out = io.BytesIO()
    segno.make(url, error="m").save(
        out, kind="svg", xmldecl=False, nl=False, scale=4, title="pairing link"
    )
    return out.getvalue().decode()


def pairing(base_url: str, path: str, token: str) -> Pairing:
    url = base_url.rstrip("/") + path + "?" + urlencode({"token": token})
    return Pairing(url=url, qr_svg=qr_svg(url))
