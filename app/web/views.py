"""The four pages hallq serves itself: lobby display, kiosk, clerk console, manager dashboard.

The pages are static HTML shells (`templates/`) with the branch (and counter) code filled in, and
plain JavaScript modules and CSS (`static/`): no CDN and no build step, so a hall works offline.
Serving a page needs no token and touches no database: the page asks for its token itself
(`?token=` or local storage) and talks to the API, so a screen still loads while PostgreSQL is
down and recovers with it.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from string import Template

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from app.core.codes import BranchCode, CounterCode
from app.core.errors import not_found

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_PREFIX = "/web/static"

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html; charset=utf-8",
}

# A Host header is `host[:port]`; anything else is not echoed into the policy.
_HOST = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")

router = APIRouter(tags=["web"], include_in_schema=False)


def content_security_policy(host: str | None) -> str:
    """Everything from this origin only; the stream's websocket on this host (ws: or wss:)."""
    connect = "'self'"
    if host and _HOST.match(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "media-src 'self'",
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def security_headers(request: Request) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(request.headers.get("host")),
        "X-Content-Type-Options": "nosniff",
        # Tokens may travel in a page's URL (?token=...): never send it anywhere.
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        "Cache-Control": "no-cache",
    }


def _template(name: str) -> Template:
    return Template((TEMPLATES_DIR / f"{name}.html").read_text(encoding="utf-8"))


def _page(request: Request, name: str, **values: str) -> HTMLResponse:
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    body = _template(name).substitute(static=STATIC_PREFIX, page=name, **escaped)
    return HTMLResponse(body, headers=security_headers(request))


@router.get("/display/{branch}", response_class=HTMLResponse)
async def display_page(branch: BranchCode, request: Request) -> HTMLResponse:
    """The lobby screen: calls large, spoken aloud; waiting per business type."""
    return _page(request, "display", branch=branch, counter="")


@router.get("/kiosk/{branch}", response_class=HTMLResponse)
async def kiosk_page(branch: BranchCode, request: Request) -> HTMLResponse:
    """The ticket kiosk: one button per business type, then a printable ticket."""
    return _page(request, "kiosk", branch=branch, counter="")


@router.get("/counter/{branch}/{counter}", response_class=HTMLResponse)
async def counter_page(branch: BranchCode, counter: CounterCode, request: Request) -> HTMLResponse:
    """The clerk console of one counter."""
    return _page(request, "counter", branch=branch, counter=counter)


@router.get("/dashboard/{branch}", response_class=HTMLResponse)
async def dashboard_page(branch: BranchCode, request: Request) -> HTMLResponse:
    """The duty manager's dashboard."""
    return _page(request, "dashboard", branch=branch, counter="")


@router.get(STATIC_PREFIX + "/{path:path}")
async def static_file(path: str, request: Request) -> Response:
    """A file under app/web/static/, and nothing outside it."""
    root = STATIC_DIR.resolve()
    target = (root / path).resolve()
    media_type = MEDIA_TYPES.get(target.suffix)
    if media_type is None or not target.is_relative_to(root) or not target.is_file():
        raise not_found(f"static file {path!r}")
    return FileResponse(target, media_type=media_type, headers=security_headers(request))
