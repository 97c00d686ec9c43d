"""GET /metrics: every SPEC §4 metric against a hand-computed scenario driven through the API,
access control, HTTP request metrics, and two real server processes on one database."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import tempfile
import uuid
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from app.main import create_app
from app.metrics import service as metrics_service
from tests.conftest import T0
from tests.helpers import ADMIN, COUNTERS, assert_problem, issue, make_token, ok, setup_branch
from tests.servers import running_servers

B = "/api/v1/branches/hz01"

# Long targets: the scenario must not raise alerts of its own (hallq_alerts_active is checked
# against rows inserted directly).
SERVICES = {
    "a": {"name": "综合业务", "prefix": "A", "target_wait_s": 3600},
    "b": {"name": "缴费充值", "prefix": "B", "target_wait_s": 3600},
    "v": {"name": "VIP", "prefix": "V", "target_wait_s": 3600},
}
HALL_COUNTERS = {**COUNTERS, "3": {"name": "3", "services": ["b"]}}

SPEC_METRICS = {
    "hallq_waiting_tickets": ("gauge", {"branch", "service"}),
    "hallq_longest_wait_seconds": ("gauge", {"branch", "service"}),
    "hallq_tickets_issued": ("counter", {"branch", "service", "priority"}),
    "hallq_tickets_finished": ("counter", {"branch", "service", "outcome"}),
    "hallq_wait_seconds": ("histogram", {"branch", "service", "priority"}),
    "hallq_service_seconds": ("histogram", {"branch", "service"}),
    "hallq_estimate_error_seconds": ("histogram", {"branch", "service"}),
    "hallq_counters": ("gauge", {"branch", "state"}),
    "hallq_alerts_active": ("gauge", {"branch", "kind"}),
    "hallq_stream_clients": ("gauge", {"branch"}),
    "hallq_webhook_deliveries": ("counter", {"outcome"}),
    "hallq_webhook_backlog": ("gauge", {"webhook"}),
}
# Beside SPEC §4, for operations: whether the process could read the database.
OPERATIONS_METRICS: dict[str, tuple[str, set[str]]] = {"hallq_database_up": ("gauge", set())}
ALL_METRICS = {**SPEC_METRICS, **OPERATIONS_METRICS}
WAIT_BOUNDS = metrics_service.WAIT_BUCKETS
SERVICE_BOUNDS = metrics_service.SERVICE_BUCKETS


@pytest.fixture
def settings(settings):
    """No cache: each scrape reads the database (caching has its own test)."""
    return settings.model_copy(update={"metrics_cache_s": 0})


# -- reading the exposition ---------------------------------------------------------------------


class Scrape:
    """A parsed /metrics answer: `value(sample_name, **labels)` and the families by name."""

    def __init__(self, body: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(body)}
        self.samples = {
            (s.name, frozenset(s.labels.items())): s.value
            for f in self.families.values()
            for s in f.samples
        }

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def series(self, prefix: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return {k: v for k, v in self.samples.items() if k[0].startswith(prefix)}

    def histogram(self, name: str, **labels: str) -> tuple[dict[float, float], float, float]:
        """({le: cumulative count}, count, sum)"""
        buckets = {
            float(dict(lbls)["le"]): v
            for (sample, lbls), v in self.samples.items()
            if sample == f"{name}_bucket" and {k: v2 for k, v2 in lbls if k != "le"} == labels
        }
        return buckets, self.value(f"{name}_count", **labels), self.value(f"{name}_sum", **labels)


def expected_buckets(bounds: tuple[float, ...], values: list[float]) -> dict[float, float]:
    return {
        **{float(b): float(sum(v <= b for v in values)) for b in bounds},
        math.inf: float(len(values)),
    }


def assert_histogram(scrape: Scrape, name: str, bounds, values, **labels: str) -> None:
    buckets, count, total = scrape.histogram(name, **labels)
    assert buckets == expected_buckets(bounds, values), (name, labels, buckets)
    assert count == len(values), (name, labels)
    assert total == pytest.approx(sum(values)), (name, labels)


def counter_samples(scrape: Scrape) -> dict:
    """Every sample of a hallq counter or histogram: none of them may ever go down."""
    return {
        key: v
        for key, v in scrape.samples.items()
        if key[0].startswith(
            (
                "hallq_tickets_",
                "hallq_wait_seconds",
                "hallq_service_seconds",
                "hallq_estimate_error_seconds",
            )
        )
    }


def assert_monotonic(before: Scrape, after: Scrape) -> None:
    old, new = counter_samples(before), counter_samples(after)
    for key, value in old.items():
        assert key in new, f"{key} disappeared"
        assert new[key] >= value, (key, value, new[key])


async def scrape(client, headers=ADMIN) -> Scrape:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return Scrape(response.text)


# -- the hall -----------------------------------------------------------------------------------


async def act(client, counter, action, json=None):
    return await ok(await client.post(f"{B}/counters/{counter}/{action}", headers=ADMIN, json=json))


async def run_scenario(client, clock, checkpoints: list[Scrape] | None = None) -> dict[str, str]:
    """Drive a morning at branch hz01 (times in seconds after T0); returns ticket ids by number.
    With `checkpoints`, scrapes after each step so that monotonicity can be checked."""

    async def at(seconds: float) -> None:
        clock.set(T0 + timedelta(seconds=seconds))
        if checkpoints is not None:
            checkpoints.append(await scrape(client))

    await setup_branch(client, services=SERVICES, counters=HALL_COUNTERS)
    ids = {}
    for second, service, priority in [
        (0, "a", "normal"),  # A001
        (10, "a", "vip"),  # A002
        (20, "b", "normal"),  # B001
        (30, "a", "special"),  # A003
        (40, "v", "vip"),  # V001
        (50, "a", "normal"),  # A004
    ]:
        await at(second)
        ticket = await issue(client, service=service, priority=priority)
        ids[ticket["number"]] = ticket["id"]
    await act(client, "1", "open")
    await act(client, "2", "open")

    await at(100)  # special first: A003 waited 70 s
    assert (await act(client, "1", "next"))["ticket"]["number"] == "A003"
    await at(130)
    await act(client, "1", "start")
    await at(160)  # then vip: A002 waited 150 s
    assert (await act(client, "2", "next"))["ticket"]["number"] == "A002"
    await at(190)
    await act(client, "2", "no-show")
    await at(220)  # A003 served 130 -> 220: 90 s
    await act(client, "1", "complete")
    await at(250)
    await ok(await client.post(f"/api/v1/tickets/{ids['A004']}/cancel", headers=ADMIN))
    await at(300)  # counter 2 prefers b: B001 waited 280 s
    assert (await act(client, "2", "next"))["ticket"]["number"] == "B001"
    await at(360)  # completed without start: 60 s from the call
    await act(client, "2", "complete")
    await at(400)  # A002 turns up again
    await ok(await client.post(f"/api/v1/tickets/{ids['A002']}/requeue", headers=ADMIN))
    await at(420)  # A001 waited 420 s; A002 is held back behind it
    assert (await act(client, "1", "next"))["ticket"]["number"] == "A001"
    await at(480)  # A001 served 60 s (from the call); A002 called a second time
    assert (await act(client, "1", "next"))["ticket"]["number"] == "A002"
    await at(500)
    ids["A005"] = (await issue(client, service="a"))["id"]
    await at(510)
    ids["B002"] = (await issue(client, service="b", priority="special"))["id"]
    await at(540)
    await act(client, "1", "close")  # closing: A002 is still at the counter
    await act(client, "2", "pause", json={"reason": "lunch"})
    await act(client, "9", "open")
    await at(600)
    return ids


async def test_every_spec_metric_matches_a_hand_computed_hall(client, clock, app):
    checkpoints: list[Scrape] = []
    await run_scenario(client, clock, checkpoints)
    # A second branch: labels keep branches apart.
    await setup_branch(client, "hz02", services={"a": SERVICES["a"]}, counters={})
    await issue(client, "hz02", "a")

    now = clock.now()
    async with app.state.sessionmaker() as session:
        await session.execute(
            text(
                "INSERT INTO alerts (branch, kind, subject, service, since, detail, cleared_at) "
                "VALUES ('hz01', 'long_wait', 'v', 'v', :t, 'x', NULL),"
                " ('hz01', 'too_few_counters', '', NULL, :t, 'x', NULL),"
                " ('hz01', 'queue_length', 'a', 'a', :t, 'x', :t),"
                " ('hz02', 'queue_length', 'a', 'a', :t, 'x', NULL)"
            ),
            {"t": now - timedelta(seconds=60)},
        )
        await session.execute(
            text(
                "INSERT INTO stream_processes (process_id, heartbeat_at) VALUES"
                " ('p1', :fresh), ('p2', :edge), ('dead', :stale)"
            ),
            {
                "fresh": now - timedelta(seconds=5),
                "edge": now - timedelta(seconds=30),
                "stale": now - timedelta(seconds=31),
            },
        )
        await session.execute(
            text(
                "INSERT INTO stream_presence (process_id, branch, clients) VALUES"
                " ('p1', 'hz01', 3), ('p2', 'hz01', 4), ('dead', 'hz01', 50), ('p1', 'hz02', 1)"
            )
        )
        await session.commit()

    m = await scrape(client)

    # Exactly the SPEC §4 hallq_* metrics and hallq_database_up, with types and label names.
    hallq = {name: f for name, f in m.families.items() if name.startswith("hallq_")}
    assert {name: f.type for name, f in hallq.items()} == {
        name: kind for name, (kind, _) in ALL_METRICS.items()
    }
    assert m.value("hallq_database_up") == 1
    for name, (_, labels) in ALL_METRICS.items():
        for sample in hallq[name].samples:
            assert set(sample.labels) - {"le"} == labels, (name, sample)

    # Gauges, at T0 + 600 s.
    waiting = {(b, s): 0 for b, s in [("hz01", "a"), ("hz01", "b"), ("hz01", "v"), ("hz02", "a")]}
    waiting |= {("hz01", "a"): 1, ("hz01", "b"): 1, ("hz01", "v"): 1, ("hz02", "a"): 1}
    assert {
        (dict(lbls)["branch"], dict(lbls)["service"]): v
        for (name, lbls), v in m.series("hallq_waiting_tickets").items()
    } == waiting
    # A005 issued at 500, B002 at 510, V001 at 40 (A002, re-queued, is called again).
    assert m.value("hallq_longest_wait_seconds", branch="hz01", service="a") == 100
    assert m.value("hallq_longest_wait_seconds", branch="hz01", service="b") == 90
    assert m.value("hallq_longest_wait_seconds", branch="hz01", service="v") == 560
    assert m.value("hallq_longest_wait_seconds", branch="hz02", service="a") == 0

    for state, n in {"open": 1, "paused": 1, "closing": 1, "closed": 1}.items():
        assert m.value("hallq_counters", branch="hz01", state=state) == n, state
    for state in ("open", "paused", "closing", "closed"):
        assert m.value("hallq_counters", branch="hz02", state=state) == 0

    assert m.value("hallq_alerts_active", branch="hz01", kind="long_wait") == 1
    assert m.value("hallq_alerts_active", branch="hz01", kind="too_few_counters") == 1
    assert m.value("hallq_alerts_active", branch="hz01", kind="queue_length") == 0  # cleared
    assert m.value("hallq_alerts_active", branch="hz02", kind="queue_length") == 1

    # 3 + 4 live clients; the process silent for 31 s is gone.
    assert m.value("hallq_stream_clients", branch="hz01") == 7
    assert m.value("hallq_stream_clients", branch="hz02") == 1

    # Counters: every (service, priority) and (service, outcome) of a configured type exists.
    issued = {
        ("a", "normal"): 3,  # A001, A004, A005
        ("a", "vip"): 1,
        ("a", "special"): 1,
        ("b", "normal"): 1,
        ("b", "special"): 1,
        ("v", "vip"): 1,
    }
    for service in "abv":
        for priority in ("normal", "vip", "special"):
            assert m.value(
                "hallq_tickets_issued_total", branch="hz01", service=service, priority=priority
            ) == issued.get((service, priority), 0), (service, priority)
    assert m.value("hallq_tickets_issued_total", branch="hz02", service="a", priority="normal") == 1

    finished = {("a", "done"): 2, ("a", "no_show"): 1, ("a", "cancelled"): 1, ("b", "done"): 1}
    for service in "abv":
        for outcome in ("done", "no_show", "cancelled"):
            assert m.value(
                "hallq_tickets_finished_total", branch="hz01", service=service, outcome=outcome
            ) == finished.get((service, outcome), 0), (service, outcome)

    # Waits from issue to the FIRST call (A002's second call at 480 does not count again).
    waits = {("a", "special"): [70], ("a", "vip"): [150], ("b", "normal"): [280]}
    waits[("a", "normal")] = [420]
    for service in "abv":
        for priority in ("normal", "vip", "special"):
            assert_histogram(
                m,
                "hallq_wait_seconds",
                WAIT_BOUNDS,
                waits.get((service, priority), []),
                branch="hz01",
                service=service,
                priority=priority,
            )
    # Service: A003 90 s (start -> done), A001 and B001 60 s (call -> done, never started):
    # 60 lands in the le="60" bucket.
    services = {"a": [90, 60], "b": [60], "v": []}
    for service, values in services.items():
        assert_histogram(
            m, "hallq_service_seconds", SERVICE_BOUNDS, values, branch="hz01", service=service
        )

    # Counters and histograms never went down along the way (the no-show stays counted after
    # the ticket was re-queued).
    for before, after in zip(checkpoints, [*checkpoints[1:], m], strict=True):
        assert_monotonic(before, after)


async def test_a_new_process_counts_the_same_history_in_small_chunks(
    client, clock, app, monkeypatch
):
    """A process that starts late reads the whole log, in chunks (here of 2 events), and
    arrives at exactly what a process that watched it all reports."""
    checkpoints: list[Scrape] = []
    await run_scenario(client, clock, checkpoints)
    watched = await scrape(client)

    monkeypatch.setattr(metrics_service, "CATCH_UP_CHUNK", 2)
    late = create_app(app.state.settings, clock)
    async with late.router.lifespan_context(late):
        transport = httpx.ASGITransport(app=late)
        async with httpx.AsyncClient(transport=transport, base_url="http://late.test") as c2:
            fresh = await scrape(c2)
    assert fresh.series("hallq_") == watched.series("hallq_")


async def test_scrapes_are_cached_per_process(client, app, clock):
    await setup_branch(client, services=SERVICES, counters=HALL_COUNTERS)
    cached = create_app(app.state.settings.model_copy(update={"metrics_cache_s": 60}), clock)
    async with cached.router.lifespan_context(cached):
        transport = httpx.ASGITransport(app=cached)
        async with httpx.AsyncClient(transport=transport, base_url="http://c.test") as c2:
            first = await scrape(c2)
            await issue(client)
            second = await scrape(c2)
    labels = {"branch": "hz01", "service": "a"}
    assert first.value("hallq_waiting_tickets", **labels) == 0
    assert second.value("hallq_waiting_tickets", **labels) == 0  # from the cache
    assert (await scrape(client)).value("hallq_waiting_tickets", **labels) == 1  # no cache


async def test_histograms_summed_over_branches_for_a_fleet(client, clock, app):
    """HALLQ_METRICS_HISTOGRAMS=all: the histograms have one series per type (and priority)
    with branch="_all", equal to the sum of the per-branch ones; counters and gauges stay per
    branch."""
    await run_scenario(client, clock)
    await setup_branch(
        client,
        "hz02",
        services={"a": SERVICES["a"]},
        counters={"1": {"name": "1", "services": ["a"]}},
    )
    await issue(client, "hz02", "a")
    clock.advance(45)
    await ok(await client.post("/api/v1/branches/hz02/counters/1/open", headers=ADMIN))
    await ok(await client.post("/api/v1/branches/hz02/counters/1/next", headers=ADMIN))
    per_branch = await scrape(client)

    summed_app = create_app(
        app.state.settings.model_copy(update={"metrics_histograms": "all"}), clock
    )
    async with summed_app.router.lifespan_context(summed_app):
        transport = httpx.ASGITransport(app=summed_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://all.test") as c2:
            summed = await scrape(c2)

    for name in ("hallq_wait_seconds", "hallq_service_seconds", "hallq_estimate_error_seconds"):
        series = summed.series(name)
        assert series and {dict(lbls)["branch"] for _, lbls in series} == {"_all"}
        for (sample, lbls), value in series.items():
            others = {k: v for k, v in lbls if k != "branch"}
            expected = sum(
                v
                for (s2, l2), v in per_branch.series(name).items()
                if s2 == sample and {k: x for k, x in l2 if k != "branch"} == others
            )
            assert value == pytest.approx(expected), (sample, others)
    # Normal waits of both branches add up: hz01's and the one at hz02 (45 s).
    assert summed.value(
        "hallq_wait_seconds_count", branch="_all", service="a", priority="normal"
    ) == (
        per_branch.value("hallq_wait_seconds_count", branch="hz01", service="a", priority="normal")
        + 1
    )
    assert summed.series("hallq_tickets_issued") == per_branch.series("hallq_tickets_issued")
    assert summed.series("hallq_waiting_tickets") == per_branch.series("hallq_waiting_tickets")


# -- access -------------------------------------------------------------------------------------


async def test_metrics_need_a_monitor_or_admin_token(client, app, clock):
    await setup_branch(client, services=SERVICES, counters=HALL_COUNTERS)
    response = await client.get("/metrics")
    assert_problem(response, 401, contains="token")
    assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert_problem(await client.get("/metrics", headers={"Authorization": "Bearer nonsense"}), 401)
    for role in ("kiosk", "display", "manager"):
        headers = await make_token(client, role, "hz01")
        assert_problem(await client.get("/metrics", headers=headers), 403, contains=role)
    monitor = await make_token(client, "monitor")
    assert "hallq_waiting_tickets" in (await scrape(client, monitor)).families
    assert "hallq_waiting_tickets" in (await scrape(client, ADMIN)).families

    public = create_app(app.state.settings.model_copy(update={"metrics_public": True}), clock)
    async with public.router.lifespan_context(public):
        transport = httpx.ASGITransport(app=public)
        async with httpx.AsyncClient(transport=transport, base_url="http://p.test") as c2:
            assert "hallq_waiting_tickets" in (await scrape(c2, headers={})).families


async def test_http_requests_are_counted_by_route_template(client):
    await setup_branch(client, services=SERVICES, counters=HALL_COUNTERS)
    ticket = await issue(client)
    route = "/api/v1/tickets/{ticket_id}"
    labels = {"method": "GET", "route": route, "status": "200"}
    missing = {"method": "GET", "route": route, "status": "404"}
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}

    def count(m: Scrape, lbls: dict[str, str]) -> float:
        return m.samples.get(("http_requests_total", frozenset(lbls.items())), 0.0)

    before = await scrape(client)
    for _ in range(3):
        await ok(await client.get(f"/api/v1/tickets/{ticket['id']}", headers=ADMIN))
    await client.get(f"/api/v1/tickets/{uuid.uuid4()}", headers=ADMIN)
    await client.get("/no/such/path/12345", headers=ADMIN)
    after = await scrape(client)

    assert count(after, labels) - count(before, labels) == 3
    assert count(after, missing) - count(before, missing) == 1
    assert count(after, unmatched) - count(before, unmatched) == 1
    assert not any("12345" in str(key) for key in after.samples)
    _, n, _ = after.histogram("http_request_duration_seconds", **labels)
    assert n == count(after, labels)
    assert after.families["http_request_duration_seconds"].type == "histogram"
    assert "process_cpu_seconds" in after.families  # the usual process metrics


# -- several processes --------------------------------------------------------------------------


async def _scrape_url(http: httpx.AsyncClient, url: str, headers=None) -> Scrape:
    response = await http.get(f"{url}/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    return Scrape(response.text)


def _without_time(m: Scrape) -> dict:
    """The hallq samples that do not depend on the moment of the scrape."""
    return {k: v for k, v in m.series("hallq_").items() if k[0] != "hallq_longest_wait_seconds"}


async def _quotes_written(database_url: str, n: int) -> None:
    """Until the servers' quote writers (app/accuracy/writer.py, a flush every 0.2 s) have
    written `n` quotes: a quote written between two scrapes would change
    hallq_estimate_error_seconds between them."""
    from app.core.database import create_engine
    from app.core.settings import Settings

    engine = create_engine(Settings(database_url=database_url))
    try:
        for _ in range(200):
            async with engine.connect() as conn:
                written = await conn.scalar(
                    text("SELECT count(*) FROM estimate_quotes WHERE quoted_s IS NOT NULL")
                )
            if written >= n:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"only {written} of {n} quotes written")
    finally:
        await engine.dispose()


@pytest.mark.multiprocess
async def test_two_processes_report_the_same_values(database_url):
    env = {"HALLQ_METRICS_PUBLIC": "true", "HALLQ_METRICS_CACHE_S": "0"}
    with running_servers(database_url, 2, env=env) as (one, two):
        async with (
            httpx.AsyncClient(base_url=one.url, timeout=10) as c1,
            httpx.AsyncClient(timeout=10) as http,
        ):
            await setup_branch(c1, services=SERVICES, counters=HALL_COUNTERS)
            empty = await _scrape_url(http, two.url)
            assert (
                empty.value(
                    "hallq_tickets_issued_total", branch="hz01", service="a", priority="normal"
                )
                == 0
            )

            tickets = [await issue(c1, service="a") for _ in range(4)]  # A001..A004
            await act(c1, "1", "open")
            assert (await act(c1, "1", "next"))["ticket"]["number"] == "A001"
            await act(c1, "1", "start")
            assert (await act(c1, "1", "next"))["ticket"]["number"] == "A002"  # A001 done
            await act(c1, "1", "no-show")
            await ok(await c1.post(f"/api/v1/tickets/{tickets[3]['id']}/cancel", headers=ADMIN))
            await issue(c1, service="b", priority="vip")  # B001
            await _quotes_written(database_url, 5)

            first = await _scrape_url(http, two.url)
            assert (
                first.value(
                    "hallq_tickets_issued_total", branch="hz01", service="a", priority="normal"
                )
                == 4
            )
            assert (
                first.value(
                    "hallq_tickets_issued_total", branch="hz01", service="b", priority="vip"
                )
                == 1
            )
            for outcome, n in {"done": 1, "no_show": 1, "cancelled": 1}.items():
                assert (
                    first.value(
                        "hallq_tickets_finished_total", branch="hz01", service="a", outcome=outcome
                    )
                    == n
                )
            assert first.value("hallq_waiting_tickets", branch="hz01", service="a") == 1  # A003
            assert first.value("hallq_waiting_tickets", branch="hz01", service="b") == 1
            assert first.value("hallq_counters", branch="hz01", state="open") == 1
            assert first.value("hallq_counters", branch="hz01", state="closed") == 3
            _, waits, _ = first.histogram(
                "hallq_wait_seconds", branch="hz01", service="a", priority="normal"
            )
            _, services, _ = first.histogram("hallq_service_seconds", branch="hz01", service="a")
            assert (waits, services) == (2, 1)
            # Process 1, which did all of it, says exactly the same.
            assert _without_time(await _scrape_url(http, one.url)) == _without_time(first)

            # More work on process 1: process 2's counters only grow, and agree again.
            await ok(await c1.post(f"/api/v1/tickets/{tickets[1]['id']}/requeue", headers=ADMIN))
            assert (await act(c1, "1", "next"))["ticket"]["number"] == "B001"  # vip first
            assert (await act(c1, "1", "next"))["ticket"]["number"] == "A003"  # A002 held
            assert (await act(c1, "1", "next"))["ticket"]["number"] == "A002"  # second call
            await act(c1, "1", "complete")
            second = await _scrape_url(http, two.url)
            assert_monotonic(first, second)
            for service, outcome, n in [
                ("a", "done", 3),
                ("a", "no_show", 1),
                ("a", "cancelled", 1),
                ("b", "done", 1),
            ]:
                assert (
                    second.value(
                        "hallq_tickets_finished_total",
                        branch="hz01",
                        service=service,
                        outcome=outcome,
                    )
                    == n
                )
            _, waits, _ = second.histogram(
                "hallq_wait_seconds", branch="hz01", service="a", priority="normal"
            )
            assert waits == 3  # A001, A002 (once), A003
            assert second.value("hallq_waiting_tickets", branch="hz01", service="a") == 0
            assert _without_time(await _scrape_url(http, one.url)) == _without_time(second)


def _pids(m: Scrape, name: str) -> set[str]:
    return {dict(lbls)["pid"] for (n, lbls) in m.samples if n == name}


@pytest.mark.multiprocess
async def test_workers_behind_one_port_add_up_their_request_counts(database_url):
    """uvicorn --workers 2 in prometheus_client multiprocess mode: whichever worker answers the
    scrape, it reports the requests of both, and the process metrics each worker writes for
    itself; those of a worker that died are dropped."""
    with tempfile.TemporaryDirectory(prefix="hallq-prom-") as prom_dir:
        env = {"HALLQ_METRICS_PUBLIC": "true", "PROMETHEUS_MULTIPROC_DIR": prom_dir}
        with running_servers(database_url, 1, env=env, workers=2) as (server,):
            # Fresh connections, so that the kernel spreads them over the workers.
            for _ in range(20):
                async with httpx.AsyncClient(timeout=10) as once:
                    assert (await once.get(f"{server.url}/healthz")).status_code == 200
            labels = {"method": "GET", "route": "/healthz", "status": "200"}
            for _ in range(4):
                async with httpx.AsyncClient(timeout=10) as once:
                    m = await _scrape_url(once, server.url)
                assert m.value("http_requests_total", **labels) == 20
            pids = _pids(m, "process_resident_memory_bytes")
            assert len(pids) == 2, pids
            assert str(server.process.pid) not in pids
            assert _pids(m, "process_cpu_seconds_total") == pids
            assert "hallq_waiting_tickets" in m.families
            assert os.listdir(prom_dir)
            # A worker killed (nothing of it runs at exit) is replaced by uvicorn.
            dead = sorted(pids)[0]
            os.kill(int(dead), signal.SIGKILL)
            for _ in range(150):
                await asyncio.sleep(0.2)
                async with httpx.AsyncClient(timeout=10) as once:
                    m = await _scrape_url(once, server.url)
                now = _pids(m, "process_resident_memory_bytes")
                if len(now) == 2 and dead not in now:
                    break
            assert len(now) == 2 and dead not in now, (dead, now)
            assert m.value("http_requests_total", **labels) == 20  # the dead one's count stays
            assert f"gauge_liveall_{dead}.db" not in os.listdir(prom_dir)  # its gauges are gone
