"""The pages hallq serves itself: lobby display, kiosk, clerk console, counter screen, manager
dashboard, service desk, the manager's console and the region report.

The pages are static HTML shells (`templates/`) with the branch (and counter) code filled in, and
plain JavaScript modules and CSS (`static/`): no CDN and no build step, so a hall works offline.
Serving a page needs no token and touches no database (the printed ticket's QR code aside,
which looks its code up): the page asks for its token itself
(`?token=` or local storage) and talks to the API, so a screen still loads while PostgreSQL is
down and recovers with it.
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path
from string import Template

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from app.core.codes import BranchCode, CounterCode
from app.core.database import SessionDep
from app.core.errors import not_found
from app.public import service as public_service
from app.public.limits import PublicClient
from app.public.qr import qr_svg, ticket_url
from app.public.schemas import TicketCode

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
    """What the pages add to the headers every response gets (nosniff, no-referrer — tokens may
    travel in a page's URL — and DENY framing: app.core.limits)."""
    return {
        "Content-Security-Policy": content_security_policy(request.headers.get("host")),
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        "Cache-Control": "no-cache",
    }


VIEWPORT = "width=device-width, initial-scale=1"
# The console's pages keep one stored token for all branches (a manager's or an admin's).
CONSOLE_TOKENS = "console"


@functools.cache
def _template(name: str) -> Template:
    return Template((TEMPLATES_DIR / f"{name}.html").read_text(encoding="utf-8"))


def _page(
    request: Request,
    name: str,
    *,
    title: str,
    branch: str,
    counter: str = "",
    viewport: str = VIEWPORT,
    token_scope: str = "",
) -> HTMLResponse:
    """`_page.html` (head and body tag, the same on every page) around the page's own body;
    `title` may use $branch and $counter. Pages of one `token_scope` share a stored token
    (the console's pages: one manager or admin token for all of them)."""
    values = {
        "static": STATIC_PREFIX,
        "page": name,
        "branch": html.escape(branch, quote=True),
        "counter": html.escape(counter, quote=True),
        "token_scope": token_scope,
    }
    values["content"] = _template(name).substitute(values)
    values["title"] = Template(title).substitute(values)
    body = _template("_page").substitute(values, viewport=viewport)
    return HTMLResponse(body, headers=security_headers(request))


@router.get("/display/{branch}", response_class=HTMLResponse)
async def display_page(branch: BranchCode, request: Request) -> HTMLResponse:
    """The lobby screen: calls large, spoken aloud; waiting per business type."""
    return _page(request, "display", title="叫号屏 Lobby display · $branch", branch=branch)


@router.get("/kiosk/{branch}", response_class=HTMLResponse)
async def kiosk_page(branch: BranchCode, request: Request) -> HTMLResponse:
    """The ticket kiosk: one button per business type, then a printable ticket."""
    return _page(
        request,
        "kiosk",
        title="取号机 Kiosk · $branch",
        branch=branch,
        viewport=f"{VIEWPORT}, user-scalable=no",
    )


@router.get("/counter/{branch}/{counter}", response_class=HTMLResponse)
async def counter_page(branch: BranchCode, counter: CounterCode, request: Request) -> HTMLResponse:
    """The clerk console of one counter."""
    return _page(
        request,
        "counter",
        title="窗口 $counter Counter console · $branch",
        branch=branch,
        counter=counter,
    )


@router.get("/window/{branch}/{counter}", response_class=HTMLResponse)
async def window_page(branch: BranchCode, counter: CounterCode, request: Request) -> HTMLResponse:
    """The counter screen (窗口屏) above one counter: its number, clerk and state, large."""
    return _page(
        request,
        "window",
        title="窗口屏 $counter Counter screen · $branch",
        branch=branch,
        counter=counter,
    )


@router.get("/dashboard/{branch}", response_class=HTMLResponse)
async def dashboard_page(branch: BranchCode, request: Request) -> HTMLResponse:
    """The duty manager's dashboard."""
    return _page(request, "dashboard", title="值班看板 Dashboard · $branch", branch=branch)


@router.get("/desk/{branch}", response_class=HTMLResponse)
async def desk_page(branch: BranchCode, request: Request) -> HTMLResponse:
    """The service desk (导办台): find a ticket, act on it, issue on a customer's behalf."""
    return _page(request, "desk", title="导办台 Service desk · $branch", branch=branch)


@router.get("/admin", response_class=HTMLResponse)
async def admin_index_page(request: Request) -> HTMLResponse:
    """The console's index: the branches an admin (or a manager) configures; an admin creates
    branches here."""
    return _page(
        request, "admin-index", title="管理控制台 Console", branch="", token_scope=CONSOLE_TOKENS
    )


@router.get("/admin/{branch}", response_class=HTMLResponse)
async def admin_page(branch: BranchCode, request: Request) -> HTMLResponse:
    """The manager's console of one branch: every setting, through the public API."""
    return _page(
        request,
        "admin",
        title="管理控制台 Console · $branch",
        branch=branch,
        token_scope=CONSOLE_TOKENS,
    )


# -- the customer's phone (SPEC §9, docs/phone.md) ------------------------------------------------

PHONE_VIEWPORT = f"{VIEWPORT}, viewport-fit=cover"


@router.get("/t/{code}", response_class=HTMLResponse)
async def ticket_page(code: TicketCode, request: Request) -> HTMLResponse:
    """The ticket on the customer's phone; the page reads the public API with the code from its
    own address (no lookup here: an unknown code is the page's "no such ticket")."""
    return _page(request, "ticket", title="我的号码 My ticket", branch="", viewport=PHONE_VIEWPORT)


@router.get("/t/{code}/qr.svg")
async def ticket_qr(
    code: TicketCode,
    request: Request,
    session: SessionDep,
    _client: PublicClient,
) -> Response:
    """The QR code of the ticket's page, `<public URL>/t/<code>` (HALLQ_PUBLIC_URL, else this
    request's base URL), for the printed ticket. Unknown codes: the public API's bare 404."""
    ticket = await public_service.ticket_by_code(session, code)
    base = request.app.state.settings.public_url or str(request.base_url)
    return Response(
        qr_svg(ticket_url(base, ticket.code)),
        media_type="image/svg+xml",
        headers={"Cache-Control": "private, max-age=86400"},
    )


@router.get("/join/{branch}", response_class=HTMLResponse)
async def join_page(branch: BranchCode, request: Request) -> HTMLResponse:
    """Remote join: the branch's business types with their waits, one tap to take a number."""
    return _page(
        request,
        "join",
        title="手机取号 Take a number · $branch",
        branch=branch,
        viewport=PHONE_VIEWPORT,
    )


@router.get("/region", response_class=HTMLResponse)
async def region_page(request: Request) -> HTMLResponse:
    """The region report (admin): every branch over a range of days, side by side."""
    return _page(
        request, "region", title="区域报表 Region report", branch="", token_scope=CONSOLE_TOKENS
    )


@router.get(STATIC_PREFIX + "/{path:path}")
async def static_file(path: str, request: Request) -> Response:
    """A file under app/web/static/, and nothing outside it."""
    root = STATIC_DIR.resolve()
    target = (root / path).resolve()
    media_type = MEDIA_TYPES.get(target.suffix)
    if media_type is None or not target.is_relative_to(root) or not target.is_file():
        raise not_found(f"static file {path!r}")
    return FileResponse(target, media_type=media_type, headers=security_headers(request))
