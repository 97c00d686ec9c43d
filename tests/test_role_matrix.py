"""The role matrix, exhaustively: every HTTP route, every role, own and other branch (issue 8).

`EXPECTED` says, for every route of the app, which branch roles may use it (admin may use
everything, monitor only `/metrics` and the event schema), as SPEC §2 describes, and what an
allowed request with a valid body answers. The table is checked three ways:

- it names exactly the app's routes: a new route without an entry fails
  `test_expected_table_names_every_route`;
- its role sets are the ones of the permission table in app/auth/permissions.py;
- each role, with a token of branch hz01, calls each route on hz01 ("own") and on sh02
  ("other"): allowed → one of the route's success statuses (never 401/403), a branch role on the
  other branch or a role not in the set → 403, no token / a garbage token / a revoked token → 401,
  always as problem+json.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, routing
from fastapi.routing import APIWebSocketRoute

from app.auth.permissions import BRANCH_ROLES, Action
from app.core.settings import Settings
from app.counters.announcement import AUDIO_ROUTE, announcement, audio_version
from app.main import create_app
from tests.helpers import ADMIN, ADMIN_TOKEN, assert_problem, bearer, ok

OWN, OTHER = "hz01", "sh02"

# Routes outside the matrix: health probes (public by design), the API documentation, and the
# web pages and their files (public HTML/JS; the data they show comes from the API with a
# token). The websocket stream is not an HTTP route; tests/test_stream.py covers its auth.
UNAUTHENTICATED = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/display/{branch}"),
    ("GET", "/kiosk/{branch}"),
    ("GET", "/counter/{branch}/{counter}"),
    ("GET", "/window/{branch}/{counter}"),
    ("GET", "/dashboard/{branch}"),
    ("GET", "/desk/{branch}"),
    ("GET", "/admin"),
    ("GET", "/admin/{branch}"),
    ("GET", "/region"),
    ("GET", "/web/static/{path:path}"),
    # The customer's phone (SPEC §9): the pages; their data is the public API below.
    ("GET", "/t/{code}"),
    ("GET", "/join/{branch}"),
}

# Public routes (SPEC §9): no token; a ticket's code (or a branch's enabled remote join) is the
# key. Every credential, none included, gets the same answer; none is ever a 401 or 403.
PUB = "/api/v1/public"
PUBLIC: dict[tuple[str, str], tuple[frozenset[int], dict[str, Any] | None]] = {
    ("GET", PUB + "/tickets/{code}"): (frozenset({200}), None),
    ("POST", PUB + "/tickets/{code}/cancel"): (frozenset({200, 409}), None),
    ("POST", PUB + "/tickets/{code}/rating"): (frozenset({200, 409}), {"score": 5}),
    ("GET", "/t/{code}/qr.svg"): (frozenset({200}), None),
    # Remote join is off in `_prepare`'s branches: the bare 404.
    ("GET", PUB + "/branches/{branch}"): (frozenset({404}), None),
    ("POST", PUB + "/branches/{branch}/tickets"): (frozenset({404}), {"service": "a"}),
}

MANAGER = frozenset({"manager"})
STAFF = frozenset({"manager", "clerk"})
ISSUERS = frozenset({"manager", "clerk", "kiosk"})
READERS = frozenset({"manager", "clerk", "kiosk", "display"})
NOBODY: frozenset[str] = frozenset()

# What an allowed request may answer: counter and ticket actions depend on the state the
# earlier requests left behind (409), `next` may find nobody (204).
ACTION_OK = frozenset({200, 204, 409})
TICKET_OK = frozenset({200, 409})


@dataclass(frozen=True)
class Rule:
    action: Action
    roles: frozenset[str]  # branch roles allowed on their own branch (admin: always)
    ok: frozenset[int]
    body: Callable[[str], dict[str, Any]] | None = None  # valid body, given the target branch
    branch_scoped: bool = True
    query: Mapping[str, str] | None = None  # query parameters an allowed request needs


def _json(body: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    return lambda _branch: body


C = "/api/v1/branches/{branch}/counters/{counter}"
# In a body: the id of the target branch's ticket (`Hall.tickets`).
TICKET_ID = "{ticket_id}"
T = "/api/v1/tickets/{ticket_id}"
# One notice per role and branch, made by `_prepare`: deleted by the roles that may.
N = "/api/v1/branches/{branch}/notices/{notice}"
WH = "/api/v1/webhooks/{webhook_id}"

EXPECTED: dict[tuple[str, str], Rule] = {
    # -- operations
    ("GET", "/metrics"): Rule(Action.READ_METRICS, NOBODY, frozenset({200}), branch_scoped=False),
    # -- the event catalog (SPEC §8): any valid token
    ("GET", "/api/v1/events/schema"): Rule(
        Action.READ_EVENT_SCHEMA, READERS, frozenset({200}), branch_scoped=False
    ),
    # -- tokens: a manager hands out clerk, kiosk and display tokens of their own branch
    ("POST", "/api/v1/tokens"): Rule(
        Action.MANAGE_TOKENS,
        MANAGER,
        frozenset({201}),
        body=lambda branch: {"role": "kiosk", "branch": branch, "label": "matrix"},
    ),
    ("DELETE", "/api/v1/tokens/{token_id}"): Rule(Action.MANAGE_TOKENS, MANAGER, frozenset({204})),
    # -- devices (SPEC §7): the list (a manager's own branch when none is named), a PATCH
    ("GET", "/api/v1/tokens"): Rule(
        Action.MANAGE_TOKENS, MANAGER, frozenset({200}), branch_scoped=False
    ),
    ("PATCH", "/api/v1/tokens/{token_id}"): Rule(
        Action.MANAGE_TOKENS, MANAGER, frozenset({200}), body=_json({"label": "matrix"})
    ),
    # A device's own token; the environment's admin token has no row (404).
    ("GET", "/api/v1/tokens/self"): Rule(
        Action.READ_OWN_TOKEN, READERS, frozenset({200, 404}), branch_scoped=False
    ),
    # -- configuration
    ("PUT", "/api/v1/branches/{branch}"): Rule(
        Action.CONFIGURE,
        MANAGER,
        frozenset({200}),
        # Clerks may call a chosen ticket here (SPEC §6), as `_prepare` set it up.
        body=lambda branch: {
            "name": f"Branch {branch}",
            "timezone": "Asia/Shanghai",
            "clerks_may_pick": True,
        },
    ),
    ("GET", "/api/v1/branches/{branch}"): Rule(Action.READ_QUEUE, READERS, frozenset({200})),
    # The console's index: an admin lists every branch, a manager their own.
    ("GET", "/api/v1/branches"): Rule(
        Action.CONFIGURE, MANAGER, frozenset({200}), branch_scoped=False
    ),
    ("GET", "/api/v1/branches/{branch}/staff"): Rule(Action.CONFIGURE, MANAGER, frozenset({200})),
    ("PUT", "/api/v1/branches/{branch}/services/{service}"): Rule(
        Action.CONFIGURE, MANAGER, frozenset({200}), body=_json({"name": "综合", "prefix": "A"})
    ),
    ("PUT", "/api/v1/branches/{branch}/staff/{staff}"): Rule(
        Action.CONFIGURE,
        MANAGER,
        frozenset({200, 201}),
        body=_json({"name": "李雷", "role": "clerk"}),
    ),
    ("PUT", C): Rule(
        Action.CONFIGURE,
        MANAGER,
        frozenset({200}),
        body=_json({"name": "matrix", "services": ["a", "b"]}),
    ),
    # -- notices (SPEC §7): managed like the configuration, read like the queue view
    ("GET", "/api/v1/branches/{branch}/notices"): Rule(
        Action.READ_QUEUE, READERS, frozenset({200})
    ),
    ("PUT", N): Rule(
        Action.CONFIGURE, MANAGER, frozenset({200}), body=_json({"text": {"zh": "投诉热线 10000"}})
    ),
    ("DELETE", N): Rule(Action.CONFIGURE, MANAGER, frozenset({204})),
    # -- tickets
    ("POST", "/api/v1/branches/{branch}/tickets"): Rule(
        Action.ISSUE_TICKET, ISSUERS, frozenset({201}), body=_json({"service": "a"})
    ),
    ("GET", T): Rule(Action.READ_TICKET, READERS, frozenset({200})),
    ("POST", T + "/cancel"): Rule(Action.CANCEL_TICKET, ISSUERS, TICKET_OK),
    ("POST", T + "/requeue"): Rule(Action.REQUEUE_TICKET, ISSUERS, TICKET_OK),
    ("POST", T + "/rating"): Rule(Action.RATE_TICKET, ISSUERS, TICKET_OK, body=_json({"score": 5})),
    # -- counters
    ("GET", "/api/v1/branches/{branch}/counters"): Rule(
        Action.READ_QUEUE, READERS, frozenset({200})
    ),
    ("GET", C): Rule(Action.READ_QUEUE, READERS, frozenset({200})),
    ("POST", C + "/open"): Rule(Action.OPERATE_COUNTER, STAFF, ACTION_OK),
    ("POST", C + "/pause"): Rule(
        Action.OPERATE_COUNTER, STAFF, ACTION_OK, body=_json({"reason": "meal break"})
    ),
    ("POST", C + "/resume"): Rule(Action.OPERATE_COUNTER, STAFF, ACTION_OK),
    ("POST", C + "/close"): Rule(Action.OPERATE_COUNTER, STAFF, ACTION_OK),
    ("POST", C + "/next"): Rule(Action.OPERATE_COUNTER, STAFF, ACTION_OK),
    ("POST", C + "/recall"): Rule(Action.OPERATE_COUNTER, STAFF, ACTION_OK),
    ("POST", C + "/start"): Rule(Action.OPERATE_COUNTER, STAFF, ACTION_OK),
    ("POST", C + "/complete"): Rule(Action.OPERATE_COUNTER, STAFF, ACTION_OK),
    ("POST", C + "/no-show"): Rule(Action.OPERATE_COUNTER, STAFF, ACTION_OK),
    ("POST", C + "/transfer"): Rule(
        Action.OPERATE_COUNTER, STAFF, ACTION_OK, body=_json({"service": "b"})
    ),
    # -- the service desk (SPEC §6)
    ("POST", C + "/call"): Rule(
        Action.PICK_TICKET, STAFF, ACTION_OK, body=_json({"ticket": TICKET_ID})
    ),
    ("GET", "/api/v1/branches/{branch}/tickets"): Rule(
        Action.FIND_TICKETS, STAFF, frozenset({200}), query={"status": "waiting"}
    ),
    ("POST", T + "/priority"): Rule(
        Action.PRIORITISE_TICKET,
        MANAGER,
        TICKET_OK,
        body=_json({"priority": "special", "reason": "matrix"}),
    ),
    # -- queue view and reports
    ("GET", "/api/v1/branches/{branch}/queue"): Rule(Action.READ_QUEUE, READERS, frozenset({200})),
    ("POST", "/api/v1/branches/{branch}/day/close"): Rule(
        Action.CLOSE_DAY, MANAGER, frozenset({200})
    ),
    ("GET", "/api/v1/branches/{branch}/reports/daily"): Rule(
        Action.READ_REPORTS, MANAGER, frozenset({200})
    ),
    ("GET", "/api/v1/branches/{branch}/reports/period"): Rule(
        Action.READ_REPORTS,
        MANAGER,
        frozenset({200}),
        query={"from": "2026-11-01", "to": "2026-11-24"},
    ),
    # The staffing plan and its what-if (SPEC §11): the duty manager's. The branches here are
    # always open, so 10:00 is an opening hour.
    ("GET", "/api/v1/branches/{branch}/staffing"): Rule(
        Action.READ_STAFFING, MANAGER, frozenset({200})
    ),
    ("GET", "/api/v1/branches/{branch}/staffing/what-if"): Rule(
        Action.READ_STAFFING, MANAGER, frozenset({200}), query={"hour": "10:00", "counters": "1"}
    ),
    # Every branch side by side: the admin's only (SPEC §10).
    ("GET", "/api/v1/reports/branches"): Rule(
        Action.READ_REGION_REPORTS,
        NOBODY,
        frozenset({200}),
        branch_scoped=False,
        query={"from": "2026-11-01", "to": "2026-11-24"},
    ),
    # A clerk's own tally (the URL names the clerk token's own staff code, s1); another
    # clerk's is refused by tests/test_reports_period.py.
    ("GET", "/api/v1/branches/{branch}/reports/staff/{staff}"): Rule(
        Action.READ_STAFF_TALLY, STAFF, frozenset({200})
    ),
    # -- a call's announcement as audio (SPEC §3: a display token or better)
    ("GET", AUDIO_ROUTE): Rule(Action.HEAR_ANNOUNCEMENTS, READERS, frozenset({200})),
    # -- webhooks (SPEC §8): admin only; one webhook per role and branch, made by the PUT
    ("PUT", WH): Rule(
        Action.MANAGE_WEBHOOKS,
        NOBODY,
        frozenset({201}),
        body=_json({"url": "http://127.0.0.1:9/matrix"}),
        branch_scoped=False,
    ),
    ("GET", "/api/v1/webhooks"): Rule(
        Action.MANAGE_WEBHOOKS, NOBODY, frozenset({200}), branch_scoped=False
    ),
    ("GET", WH): Rule(Action.MANAGE_WEBHOOKS, NOBODY, frozenset({200}), branch_scoped=False),
    ("GET", WH + "/deliveries"): Rule(
        Action.MANAGE_WEBHOOKS, NOBODY, frozenset({200}), branch_scoped=False
    ),
    ("DELETE", WH): Rule(Action.MANAGE_WEBHOOKS, NOBODY, frozenset({204}), branch_scoped=False),
}

ROLES = ["admin", "manager", "clerk", "kiosk", "display", "monitor"]
BAD_CREDENTIALS = ["no token", "garbage token", "revoked token"]


def http_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every HTTP route the app serves, HEAD aside."""
    found: set[tuple[str, str]] = set()
    for context in routing.iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIWebSocketRoute):
            continue
        for method in context.methods or ():
            if method != "HEAD" and context.path is not None:
                found.add((method, context.path))
    return found


def test_expected_table_names_every_route() -> None:
    app = create_app(
        Settings(
            database_url="postgresql+asyncpg://unused@localhost/unused", admin_token=ADMIN_TOKEN
        )
    )
    routes = http_routes(app)
    missing = sorted(routes - set(EXPECTED) - UNAUTHENTICATED - set(PUBLIC))
    assert not missing, f"routes with no entry in the role matrix's EXPECTED table: {missing}"
    stale = sorted((set(EXPECTED) | UNAUTHENTICATED | set(PUBLIC)) - routes)
    assert not stale, f"EXPECTED names routes the app does not have: {stale}"


def test_expected_table_matches_the_permission_table() -> None:
    for key, rule in EXPECTED.items():
        granted = {role.value for role in BRANCH_ROLES[rule.action]}
        assert granted == rule.roles, (key, rule.action, granted, rule.roles)


# -- the matrix ---------------------------------------------------------------------------------


@dataclass
class Hall:
    tokens: dict[str, Mapping[str, str]]
    tickets: dict[str, str]  # branch -> a ticket of that branch
    codes: dict[str, str]  # branch -> that ticket's code


async def _prepare(client: httpx.AsyncClient) -> Hall:
    async def put(path: str, body: dict[str, Any]) -> None:
        assert (await client.put(path, json=body, headers=ADMIN)).status_code in (200, 201)

    async def token(**body: str) -> tuple[str, dict[str, str]]:
        created = await ok(await client.post("/api/v1/tokens", json=body, headers=ADMIN), 201)
        return created["id"], bearer(created["token"])

    tickets = {}
    codes = {}
    for branch in (OWN, OTHER):
        b = f"/api/v1/branches/{branch}"
        await put(
            b, {"name": f"Branch {branch}", "timezone": "Asia/Shanghai", "clerks_may_pick": True}
        )
        await put(f"{b}/services/a", {"name": "综合", "prefix": "A"})
        await put(f"{b}/services/b", {"name": "缴费", "prefix": "B"})
        await put(f"{b}/staff/s1", {"name": "王芳", "role": "clerk"})
        await put(f"{b}/staff/m1", {"name": "张伟", "role": "manager"})
        # One counter per role, so that what one role's requests do to a counter (close it,
        # call its ticket) does not decide another role's outcome.
        for role in [*ROLES, *BAD_CREDENTIALS]:
            await put(f"{b}/counters/{_counter(role)}", {"name": role, "services": ["a", "b"]})
            await put(f"{b}/notices/{_notice(role)}", {"text": {"zh": role}})
        for _ in range(3):
            created = await ok(
                await client.post(f"{b}/tickets", json={"service": "a"}, headers=ADMIN), 201
            )
        tickets[branch] = created["id"]
        codes[branch] = created["code"]
    tokens = {
        "admin": ADMIN,
        "manager": (await token(role="manager", branch=OWN, staff="m1"))[1],
        "clerk": (await token(role="clerk", branch=OWN, staff="s1"))[1],
        "kiosk": (await token(role="kiosk", branch=OWN))[1],
        "display": (await token(role="display", branch=OWN))[1],
        "monitor": (await token(role="monitor"))[1],
        "no token": {},
        "garbage token": {"Authorization": "Bearer hq.0123456789abcdef.not-the-secret"},
    }
    revoked_id, tokens["revoked token"] = await token(role="kiosk", branch=OWN)
    await ok(await client.delete(f"/api/v1/tokens/{revoked_id}", headers=ADMIN), 204)
    return Hall(tokens=tokens, tickets=tickets, codes=codes)


def _body(rule: Rule, branch: str, hall: Hall) -> dict[str, Any] | None:
    """The rule's valid body for `branch`, with `TICKET_ID` replaced by that branch's ticket."""
    if rule.body is None:
        return None
    return {k: hall.tickets[branch] if v == TICKET_ID else v for k, v in rule.body(branch).items()}


def _counter(role: str) -> str:
    return "c-" + role.replace(" ", "-")


def _notice(role: str) -> str:
    return "n-" + role.replace(" ", "-")


async def _url(client: httpx.AsyncClient, path: str, role: str, branch: str, hall: Hall) -> str:
    values = {
        "branch": branch,
        "service": "a",
        # a clerk's tally is read for the clerk token's own staff code
        "staff": "s1" if "/reports/staff/" in path else "p-" + role.replace(" ", "-"),
        "counter": _counter(role),
        "notice": _notice(role),
        "webhook_id": f"wh-{role.replace(' ', '-')}-{branch}",
        "ticket_id": hall.tickets[branch],
    }
    if "{version}" in path:
        # The audio of ticket A001's call to the role's counter, in the branch's default words.
        counter = await ok(
            await client.get(
                f"/api/v1/branches/{branch}/counters/{values['counter']}", headers=ADMIN
            )
        )
        values["number"] = "A001"
        values["version"] = audio_version(announcement("A001", counter["name"]), rate=1.0)
    if "{token_id}" in path:
        # A fresh kiosk token of the target branch to revoke.
        body = {"role": "kiosk", "branch": branch, "label": "to revoke"}
        created = await ok(await client.post("/api/v1/tokens", json=body, headers=ADMIN), 201)
        values["token_id"] = created["id"]
    return path.format(**values)


def _expected(role: str, rule: Rule, branch: str) -> str:
    if role in BAD_CREDENTIALS:
        return "401"
    if role == "admin":
        return "allowed"
    if role == "monitor":
        monitor_may = (Action.READ_METRICS, Action.READ_EVENT_SCHEMA)
        return "allowed" if rule.action in monitor_may else "403"
    if role not in rule.roles:
        return "403"
    return "allowed" if branch == OWN or not rule.branch_scoped else "403"


@pytest.mark.parametrize("role", ROLES + BAD_CREDENTIALS)
async def test_role_matrix(role: str, client: httpx.AsyncClient) -> None:
    hall = await _prepare(client)
    headers = hall.tokens[role]
    if role == "clerk":
        # The clerk works at their counter: signed in there (SPEC §2: "a clerk signed in at
        # the counter"); signed in again before each action, since `close` signs them out.
        sign_in = f"/api/v1/branches/{OWN}/counters/{_counter(role)}/open"
        await ok(await client.post(sign_in, headers=headers))
    mismatches: list[str] = []
    checked = 0
    for (method, path), rule in EXPECTED.items():
        for branch in (OWN, OTHER):
            url = await _url(client, path, role, branch, hall)
            if role == "clerk" and path.startswith(C + "/") and branch == OWN:
                await ok(await client.post(sign_in, headers=headers))
            response = await client.request(
                method, url, json=_body(rule, branch, hall), params=rule.query, headers=headers
            )
            checked += 1
            expected = _expected(role, rule, branch)
            status = response.status_code
            if expected == "allowed":
                good = status in rule.ok
            else:
                good = status == int(expected)
                if good:
                    assert_problem(response, status)
            if not good:
                want = sorted(rule.ok) if expected == "allowed" else expected
                mismatches.append(
                    f"{method} {url} ({branch}): expected {want}, got {status}: "
                    + response.text[:200]
                )
    assert checked == 2 * len(EXPECTED)
    assert not mismatches, f"{role}: " + "\n".join(mismatches)


@pytest.mark.parametrize("role", ROLES + BAD_CREDENTIALS)
async def test_public_routes_answer_every_credential_alike(
    role: str, client: httpx.AsyncClient
) -> None:
    hall = await _prepare(client)
    for (method, path), (statuses, body) in PUBLIC.items():
        for branch in (OWN, OTHER):
            url = path.format(branch=branch, code=hall.codes[branch])
            response = await client.request(method, url, json=body, headers=hall.tokens[role])
            assert response.status_code in statuses, (role, method, url, response.text)


async def test_a_clerk_operates_only_the_counter_they_are_signed_in_at(
    client: httpx.AsyncClient,
) -> None:
    """The other half of "one staff member": a clerk of the right branch, at the wrong counter."""
    hall = await _prepare(client)
    b = f"/api/v1/branches/{OWN}"
    s2 = {"role": "clerk", "branch": OWN, "staff": "s2"}
    await ok(
        await client.put(f"{b}/staff/s2", json={"name": "李娜", "role": "clerk"}, headers=ADMIN),
        201,
    )
    created = await ok(await client.post("/api/v1/tokens", json=s2, headers=ADMIN), 201)
    other_clerk = bearer(created["token"])
    clerk = hall.tokens["clerk"]
    mine, theirs = _counter("clerk"), _counter("manager")
    await ok(await client.post(f"{b}/counters/{mine}/open", headers=clerk))
    await ok(await client.post(f"{b}/counters/{theirs}/open", headers=other_clerk))
    actions = [p for (m, p) in EXPECTED if m == "POST" and p.startswith(C + "/")]
    assert len(actions) == 11
    for path in actions:
        action = path.rsplit("/", 1)[1]
        body = _body(EXPECTED[("POST", path)], OWN, hall)
        url = f"{b}/counters/{theirs}/{action}"
        response = await client.post(url, json=body, headers=clerk)
        if action == "open":
            # Signing in where someone else is signed in is a conflict, not a permission.
            assert_problem(response, 409, contains="signed in")
        else:
            assert_problem(response, 403, contains="not signed in")
