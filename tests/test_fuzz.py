"""Fuzzing the HTTP API with schemathesis, against the app's own OpenAPI schema (SPEC §2, issue 8).

Every operation of the schema gets schema-valid and schema-invalid requests (path, query,
headers, body) from hypothesis, with the admin token and with the lower roles of a prepared
branch, in process through the ASGI app and a real PostgreSQL. Path parameters are often pinned
to things that exist (branch `hz01`, its business types, counters, staff, tickets in every state,
a token), so the requests get past "not found" into the handlers.

What must hold for every response:
- never a 5xx;
- every 4xx is `application/problem+json` with `type`, `title`, `status` and `detail`;
- the status code is documented for the operation, the content type is one the schema names, and
  the body and headers match the schema;
- schema-invalid input is refused, schema-valid input is not refused for being malformed (400,
  413; a 422 may still come from a business rule the schema cannot express, e.g. an unknown
  business type).

The budget is bounded (`BUDGET`: examples per operation and generation mode, most for the roles
that get furthest into the handlers) and the run is deterministic (`derandomize`): the same
requests every time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.core.transport import Response
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.clock import ManualClock
from app.core.settings import Settings
from app.main import create_app
from tests.helpers import (
    ADMIN,
    ADMIN_TOKEN,
    assert_problem,
    bearer,
    issue,
    make_token,
    ok,
    setup_branch,
)

# Examples per operation and generation mode, by role.
BUDGET = {"admin": 25, "manager": 15, "clerk": 15, "kiosk": 10, "display": 8}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]

CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            # Schema-valid input may still break a business rule (an unknown business type, a
            # transfer without a target, a date too far back): 422 with a problem is right there.
            # What it must never get is a 400/413 (malformed) or a 5xx. An announcement's audio
            # under a version that is not the current one redirects to the current (307).
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "307", "401", "403", "404", "409", "422", "429"]
            },
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "422"]
            },
        }
    }
)

# The websocket stream and the pages are not in the schema; say so, should that change.
NOT_FUZZED_PREFIXES = ("/display/", "/kiosk/", "/counter/", "/dashboard/", "/static/")

PROBLEM_FIELDS = {"type": str, "title": str, "status": int, "detail": str}

# Body fields that name things: a schema-valid random code names nothing, so half the positive
# cases get one that exists in hz01 (a ticket actually issued, a transfer that can happen).
REALISTIC_FIELDS: dict[str, list[Any]] = {
    "service": ["a", "b", "v"],
    "counter": ["1", "2", "9"],
    "services": [["a", "b"], ["v", "a"], ["b"]],
    "branch": ["hz01"],
    "staff": ["s1", "s2"],
}


@dataclass
class Hall:
    """What the prepared branch holds, to pin path parameters to."""

    tokens: dict[str, Mapping[str, str]]
    tickets: dict[str, str]  # ticket status -> id
    victim_token: str
    codes: dict[str, str] = field(default_factory=dict)  # ticket id -> its code (SPEC §9)
    pinned: list[dict[str, str]] = field(default_factory=list)


def _ok(response: requests.Response, *statuses: int) -> Any:
    assert response.status_code in statuses, (response.status_code, response.text)
    return response.json() if response.content else None


def _prepare_hall(client: asgi.ASGIClient) -> Hall:
    """Branch hz01 (three business types, three counters, clerks and a manager) with tickets
    in every state, a second branch sh02, and a token of every role."""

    def put(path: str, body: dict[str, Any]) -> None:
        _ok(client.put(path, json=body, headers=ADMIN), 200, 201)

    for code in ("hz01", "sh02"):
        # Remote join open in hz01, so that the public join gets past its 404.
        join = {"enabled": code == "hz01", "daily_limit": 100_000}
        put(
            f"/api/v1/branches/{code}",
            {"name": f"Branch {code}", "timezone": "Asia/Shanghai", "online_join": join},
        )
        for svc, prefix in (("a", "A"), ("b", "B"), ("v", "V")):
            put(f"/api/v1/branches/{code}/services/{svc}", {"name": svc, "prefix": prefix})
        for ctr, services in (("1", ["a", "b"]), ("2", ["b", "a"]), ("9", ["v", "a"])):
            put(f"/api/v1/branches/{code}/counters/{ctr}", {"name": ctr, "services": services})
        for person, role in (("s1", "clerk"), ("s2", "clerk"), ("m1", "manager")):
            put(f"/api/v1/branches/{code}/staff/{person}", {"name": person, "role": role})

    def token(role: str, **scope: str) -> tuple[str, dict[str, str]]:
        created = _ok(
            client.post("/api/v1/tokens", json={"role": role, **scope}, headers=ADMIN), 201
        )
        return created["id"], bearer(created["token"])

    tokens = {
        "admin": ADMIN,
        "manager": token("manager", branch="hz01", staff="m1")[1],
        "clerk": token("clerk", branch="hz01", staff="s1")[1],
        "kiosk": token("kiosk", branch="hz01")[1],
        "display": token("display", branch="hz01")[1],
        "monitor": token("monitor")[1],
    }
    clerk2 = token("clerk", branch="hz01", staff="s2")[1]
    victim_token, _ = token("kiosk", branch="hz01", label="to be revoked by the fuzzer")

    codes: dict[str, str] = {}

    def issue(service: str, **fields: str) -> str:
        body = {"service": service, **fields}
        path = "/api/v1/branches/hz01/tickets"
        ticket = _ok(client.post(path, json=body, headers=tokens["kiosk"]), 201)
        codes[str(ticket["id"])] = ticket["code"]
        return str(ticket["id"])

    def act(counter: str, action: str, headers: Mapping[str, str]) -> Any:
        path = f"/api/v1/branches/hz01/counters/{counter}/{action}"
        return _ok(client.post(path, headers=headers), 200, 204)

    tickets: dict[str, str] = {}
    for _ in range(3):
        issue("a")
    issue("b", priority="vip", phone="13812345678")
    act("1", "open", tokens["clerk"])
    act("2", "open", clerk2)
    # done: called, served, completed
    tickets["done"] = act("1", "next", tokens["clerk"])["ticket"]["id"]
    act("1", "start", tokens["clerk"])
    act("1", "complete", tokens["clerk"])
    # no_show
    tickets["no_show"] = act("2", "next", clerk2)["ticket"]["id"]
    act("2", "no-show", clerk2)
    # serving at counter 2, called at counter 1
    tickets["serving"] = act("2", "next", clerk2)["ticket"]["id"]
    act("2", "start", clerk2)
    tickets["called"] = act("1", "next", tokens["clerk"])["ticket"]["id"]
    cancelled = issue("a")
    _ok(client.post(f"/api/v1/tickets/{cancelled}/cancel", headers=tokens["kiosk"]), 200)
    tickets["cancelled"] = cancelled
    for _ in range(3):
        tickets["waiting"] = issue("a", priority="special")
    # A webhook to read and change (its endpoint is down: deliveries fail and are logged).
    put("/api/v1/webhooks/relay", {"url": "http://127.0.0.1:9/hook"})
    return Hall(tokens=tokens, tickets=tickets, victim_token=victim_token, codes=codes)


def _pinned_path_parameters(hall: Hall) -> list[dict[str, str]]:
    """A few sets of path parameters naming things that exist in hz01."""
    statuses = sorted(hall.tickets)
    counters = ["1", "2", "9"]
    services = ["a", "b", "v"]
    return [
        {
            "branch": "hz01",
            "service": services[i % 3],
            "counter": counters[i % 3],
            "staff": ["s1", "s2", "m1"][i % 3],
            "ticket_id": hall.tickets[statuses[i % len(statuses)]],
            "code": hall.codes[hall.tickets[statuses[i % len(statuses)]]],
            "token_id": hall.victim_token,
            "webhook_id": "relay",
        }
        for i in range(len(statuses))
    ]


def _strategy(operation: Any, mode: GenerationMode, hall: Hall) -> Any:
    """Half the cases with generated path parameters, half with path parameters pinned to what
    exists in hz01 (when something else is left to break in negative mode)."""
    generated = operation.as_strategy(generation_mode=mode)
    names = set(operation.path_parameters.schema["properties"])
    pinnable = bool(operation.body) or bool(operation.query.schema["properties"])
    pinnable = pinnable or bool(operation.headers.schema["properties"])
    if not names or (mode.is_negative and not pinnable):
        # With every path parameter pinned there would be nothing left to make invalid.
        return generated
    pinned = [
        operation.as_strategy(
            generation_mode=mode,
            path_parameters={name: value for name, value in params.items() if name in names},
        )
        for params in hall.pinned
    ]
    return st.one_of(generated, st.one_of(pinned))


def _problem_failure(response: Response) -> str | None:
    """Every 4xx (and any 5xx, should one slip through) is an RFC 9457 problem."""
    if response.status_code < 400:
        return None
    content_type = ",".join(response.headers.get("content-type", []))
    if not content_type.startswith("application/problem+json"):
        return f"{response.status_code} with content type {content_type!r}, not a problem"
    try:
        body = response.json()
    except ValueError:  # includes JSONDecodeError
        return f"{response.status_code}: the problem body is not JSON"
    if not isinstance(body, dict):
        return f"{response.status_code}: the problem body is not an object"
    for name, kind in PROBLEM_FIELDS.items():
        if not isinstance(body.get(name), kind):
            return f"{response.status_code}: the problem has no {kind.__name__} {name!r}"
    if body["status"] != response.status_code:
        return f"{response.status_code}: the problem says status {body['status']}"
    if not body["detail"]:
        return f"{response.status_code}: the problem has an empty detail"
    return None


@dataclass
class Findings:
    """Failures, one per (operation, what failed), with one request that shows it."""

    seen: dict[tuple[str, str], str] = field(default_factory=dict)
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, operation: str, kind: str, detail: str) -> None:
        self.seen.setdefault((operation, kind), detail)

    def report(self) -> str:
        lines = [f"{len(self.seen)} distinct failures:"]
        for (operation, kind), detail in sorted(self.seen.items()):
            lines.append(f"- {operation}: {kind}\n    {detail[:1500]}")
        return "\n".join(lines)


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    hall: Hall,
    headers: Mapping[str, str],
    client: asgi.ASGIClient,
    findings: Findings,
    max_examples: int,
) -> None:
    label = operation.label

    def exercise(case: Any, data: st.DataObject) -> None:
        if mode.is_positive and isinstance(case.body, dict) and data.draw(st.booleans()):
            for name, choices in REALISTIC_FIELDS.items():
                if name in case.body:
                    case.body[name] = data.draw(st.sampled_from(choices))
        # Copies: schemathesis adds the case's own headers to the mapping it is given, and
        # these dicts (ADMIN among them) are shared with every other test module.
        curl = case.as_curl_command(headers=dict(headers))
        findings.requests += 1
        try:
            response = case.call(session=client, headers=dict(headers))
        except Exception as exc:
            # The ASGI transport re-raises what the app did not handle: a 500 in production.
            findings.add(label, f"unhandled {type(exc).__name__}", f"{exc}\n    {curl}")
            return
        findings.statuses[response.status_code] = findings.statuses.get(response.status_code, 0) + 1
        problem = _problem_failure(response)
        if problem is not None:
            findings.add(label, "problem+json", f"{problem}\n    {curl}\n    {response.text[:300]}")
        try:
            case.validate_response(response, checks=CHECKS, headers=dict(headers))
        except FailureGroup as group:
            for failure in group.exceptions:
                assert isinstance(failure, Failure)
                findings.add(
                    label,
                    f"{failure.title} [{response.status_code}]",
                    f"{failure.message}\n    {curl}\n    {response.text[:300]}",
                )

    test = hypothesis_settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )(given(case=_strategy(operation, mode, hall), data=st.data())(exercise))
    # A negative case needs something to break; some operations have nothing.
    with contextlib.suppress(Unsatisfiable):
        test()


@pytest.fixture
def settings(database_url: str) -> Settings:
    # The fuzzer is one client address: the public routes' per-address limit (tests/test_phone.py)
    # would answer it 429 after a minute's 60 requests and hide the handlers.
    return Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        alerts_interval_s=0,
        public_rate_per_minute=0,
    )


@pytest.fixture
def hall_app(settings: Settings, clock: ManualClock) -> Iterator[tuple[Any, asgi.ASGIClient]]:
    """The app, started in schemathesis's ASGI event loop, and a client to it."""
    app: Any = create_app(settings, clock)
    try:
        with asgi.get_client(app) as client:
            yield app, client
    finally:
        # Dispose the engine before the test database is dropped.
        asgi.shutdown_lifespans()


@pytest.mark.parametrize("role", list(BUDGET))
def test_fuzz_api(role: str, hall_app: tuple[Any, asgi.ASGIClient]) -> None:
    app, client = hall_app
    started = time.monotonic()
    hall = _prepare_hall(client)
    hall.pinned = _pinned_path_parameters(hall)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)

    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    paths = {operation.path for operation in operations}
    assert "/api/v1/branches/{branch}/tickets" in paths
    assert "/api/v1/public/tickets/{code}" in paths
    assert not [p for p in paths if p.startswith(NOT_FUZZED_PREFIXES) or p.endswith("/stream")]

    findings = Findings()
    headers = hall.tokens[role]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, hall, headers, client, findings, BUDGET[role])

    elapsed = time.monotonic() - started
    print(  # shown with -s: what the budget bought
        f"\n{role}: {findings.requests} requests over {len(operations)} operations in "
        f"{elapsed:.1f}s; statuses {dict(sorted(findings.statuses.items()))}"
    )
    assert findings.requests >= len(operations) * BUDGET[role]
    assert not findings.seen, findings.report()


# -- what the fuzzer found, pinned down ---------------------------------------------------------


async def test_repeating_a_counter_action_with_a_customer_at_the_counter(client: Any) -> None:
    """Pausing a paused counter (or resuming an open one, opening it again) while it has a
    ticket answered 500: the no-op path rolled back, expiring the ticket it then serialised."""
    await setup_branch(client, staff={"s1": {"name": "王芳", "role": "clerk"}})
    clerk = await make_token(client, "clerk", "hz01", "s1")
    await issue(client)
    counter = "/api/v1/branches/hz01/counters/1"
    await ok(await client.post(f"{counter}/open", headers=clerk))
    called = await ok(await client.post(f"{counter}/next", headers=clerk))
    await ok(await client.post(f"{counter}/open", headers=clerk))
    for action in ("pause", "pause", "resume", "resume"):
        body = await ok(await client.post(f"{counter}/{action}", headers=clerk))
        assert body["ticket"]["id"] == called["ticket"]["id"]
        assert body["ticket"]["status"] == "called"
    await ok(await client.post(f"{counter}/close", headers=clerk))
    body = await ok(await client.post(f"{counter}/close", headers=clerk))
    assert body["counter"]["state"] == "closing" and body["ticket"]["status"] == "called"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/branches/hz01/services/a", {"name": "综合\u0000", "prefix": "A"}),
        ("/api/v1/branches/hz01/staff/s9", {"name": "\u0000", "role": "clerk"}),
        ("/api/v1/branches/hz01/counters/1", {"name": "1\u0000", "services": ["a"]}),
        ("/api/v1/branches/hz01", {"name": "x\u0000", "timezone": "Asia/Shanghai"}),
    ],
)
async def test_a_nul_character_is_a_422_not_a_500(client: Any, path: str, body: Any) -> None:
    """PostgreSQL text cannot hold NUL; the database's refusal was an unhandled 500."""
    await setup_branch(client)
    assert_problem(await client.put(path, json=body, headers=ADMIN), 422, contains="NUL")
    # Nothing was half-written, and the branch still works.
    await ok(await client.get("/api/v1/branches/hz01", headers=ADMIN))
