"""The hallq_* metric families (SPEC §4), refreshed from the database at most every
`metrics_cache_s` seconds per process, and rendered in the text format once per refresh in a
worker thread: at thousands of branches the text is tens of megabytes, and rendering it in the
event loop would hold every other request of the process for seconds (docs/scaling.md)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.clock import Clock
from app.core.vocabulary import Priority
from app.metrics.service import (
    OUTCOMES,
    SERVICE_BUCKETS,
    WAIT_BUCKETS,
    Gauges,
    Histogram,
    LabelKey,
    Totals,
    read_gauges,
)

log = logging.getLogger("hallq.metrics")

# The families counted from the event log: left out until a new process has counted all of it,
# since a partial count would read as a counter reset, and as a burst once complete.
FROM_EVENT_LOG = frozenset({
    "hallq_tickets_issued", "hallq_tickets_finished", "hallq_wait_seconds",
    "hallq_service_seconds", "hallq_estimate_error_seconds",
})  # fmt: skip


class MetricsCollector:
    """One per application (process). Scrapes within `ttl` seconds of the last refresh get
    the cached families; concurrent scrapes share one refresh. A refresh counts at most
    `catch_up_events` events of the log; a background task counts the rest in chunks."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        clock: Clock,
        ttl: float,
        *,
        histograms_by_branch: bool = True,
        catch_up_events: int | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self._ttl = ttl
        self._by_branch = histograms_by_branch
        self._catch_up_events = catch_up_events
        self._lock = asyncio.Lock()
        self._totals = Totals()
        self._caught_up = False
        self._catching_up: asyncio.Task[None] | None = None
        self._text: bytes | None = None
        self._refreshed = 0.0

    def _fresh(self) -> bool:
        return self._text is not None and time.monotonic() - self._refreshed < self._ttl

    async def exposition(self) -> bytes:
        """The hallq_* families in the Prometheus text format."""
        if self._fresh():
            assert self._text is not None
            return self._text
        async with self._lock:
            if not self._fresh():
                gauges = await self._refresh()
                # Under the lock: only a refresh changes the totals, and none runs meanwhile.
                self._text = await asyncio.to_thread(self._render, gauges, self._caught_up)
                self._refreshed = time.monotonic()
            assert self._text is not None
            if not self._caught_up and self._catching_up is None:
                self._catching_up = asyncio.create_task(self._catch_up_in_background())
            return self._text

    def _render(self, gauges: Gauges, caught_up: bool) -> bytes:
        totals = self._totals if self._by_branch else summed_over_branches(self._totals)
        families = build_families(gauges, totals, by_branch=self._by_branch)
        return render(f for f in families if caught_up or f.name not in FROM_EVENT_LOG)

    async def _refresh(self) -> Gauges:
        async with self._sessionmaker() as session:
            # One snapshot for gauges and totals, so that they agree with each other.
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            gauges = await read_gauges(session, self._clock.now())
            # Progress is kept chunk by chunk (each chunk's counts and cursors move together),
            # so a refresh that fails half-way through a long history resumes where it was.
            self._caught_up = await self._totals.catch_up(session, self._catch_up_events)
            await session.rollback()
        return gauges

    async def _catch_up_in_background(self) -> None:
        """Counts the rest of the log a chunk at a time, releasing the lock between chunks so
        that a scrape waits for one chunk at most; the next refresh shows the totals. On an
        error it stops: the next scrape counts on, and starts it again."""
        try:
            while not self._caught_up:
                async with self._lock, self._sessionmaker() as session:
                    self._caught_up = await self._totals.catch_up(session, 1)
                    await session.rollback()
                    self._refreshed = 0.0  # the next scrape reads the database again
        except Exception:
            log.warning("metrics: catching up on the event log failed", exc_info=True)
        finally:
            self._catching_up = None

    async def close(self) -> None:
        if self._catching_up is not None:
            self._catching_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._catching_up


class _Families:
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def render(families: Iterable[Metric]) -> bytes:
    """Metric families in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


ALL_BRANCHES = "_all"


def summed_over_branches(totals: Totals) -> Totals:
    """The totals with every histogram summed over the branches (branch="_all"); counters stay
    per branch."""
    summed = Totals(issued=totals.issued, finished=totals.finished)
    for source, target in (
        (totals.wait, summed.wait),
        (totals.service, summed.service),
        (totals.estimate, summed.estimate),
        (totals.late_estimate, summed.late_estimate),
    ):
        for (_branch, *rest), hist in source.items():
            key = (ALL_BRANCHES, *rest)
            into = target.setdefault(key, Histogram(hist.bounds))
            for i, n in enumerate(hist.counts):
                into.counts[i] += n
            into.total += hist.total
    return summed


def _buckets(hist: Histogram) -> list[tuple[str, float]]:
    return [(_le(bound), float(n)) for bound, n in hist.cumulative()]


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def build_families(g: Gauges, t: Totals, *, by_branch: bool = True) -> list[Metric]:
    """The families of `g` and `t`; with `by_branch` false, `t`'s histograms are already
    summed over branches (summed_over_branches) and their zero series are made for "_all"."""
    waiting = GaugeMetricFamily(
        "hallq_waiting_tickets", "Tickets waiting now.", labels=["branch", "service"]
    )
    longest = GaugeMetricFamily(
        "hallq_longest_wait_seconds",
        "How long the longest-waiting ticket has waited since it was issued (0: none waits).",
        labels=["branch", "service"],
    )
    for key in sorted(g.waiting):
        waiting.add_metric(list(key), g.waiting[key])
        longest.add_metric(list(key), g.longest_wait_s[key])

    issued = CounterMetricFamily(
        "hallq_tickets_issued",
        "Tickets issued, by the business type and priority they were issued for.",
        labels=["branch", "service", "priority"],
    )
    finished = CounterMetricFamily(
        "hallq_tickets_finished",
        "Tickets that ended: done, no_show (a re-queued ticket can end again) or cancelled.",
        labels=["branch", "service", "outcome"],
    )
    wait = HistogramMetricFamily(
        "hallq_wait_seconds",
        "Time from issue to a ticket's first call.",
        labels=["branch", "service", "priority"],
    )
    service = HistogramMetricFamily(
        "hallq_service_seconds",
        "Time from the start of service (or the last call, if never started) to done.",
        labels=["branch", "service"],
    )
    # Every configured business type has its series from the start (at zero), so that rates
    # and increases see the first ticket.
    issued_keys = set(t.issued) | {(b, s, p) for b, s in g.services for p in Priority}
    finished_keys = set(t.finished) | {(b, s, o) for b, s in g.services for o in OUTCOMES}
    for key in sorted(issued_keys):
        issued.add_metric(list(key), t.issued.get(key, 0))
    for key in sorted(finished_keys):
        finished.add_metric(list(key), t.finished.get(key, 0))
    services: set[LabelKey] = (
        set(g.services) if by_branch else {(ALL_BRANCHES, s) for _, s in g.services}
    )
    wait_keys = {(b, s, p) for b, s in services for p in Priority}
    for key in sorted(wait_keys | set(t.wait)):
        hist = t.wait.get(key) or Histogram(WAIT_BUCKETS)
        wait.add_metric(list(key), _buckets(hist), hist.total)
    for skey in sorted(services | set(t.service)):
        hist = t.service.get(skey) or Histogram(SERVICE_BUCKETS)
        service.add_metric(list(skey), _buckets(hist), hist.total)
    estimate_error = _estimate_error_family(services, t)

    counters = GaugeMetricFamily("hallq_counters", "Counters by state.", labels=["branch", "state"])
    for key in sorted(g.counters):
        counters.add_metric(list(key), g.counters[key])
    alerts = GaugeMetricFamily(
        "hallq_alerts_active", "Alerts raised and not yet cleared.", labels=["branch", "kind"]
    )
    for key in sorted(g.alerts):
        alerts.add_metric(list(key), g.alerts[key])
    clients = GaugeMetricFamily(
        "hallq_stream_clients",
        "Stream (websocket) clients connected, over all server processes.",
        labels=["branch"],
    )
    for key in sorted(g.stream_clients):
        clients.add_metric(list(key), g.stream_clients[key])
    return [
        waiting, longest, issued, finished, wait, service, estimate_error, counters, alerts,
        clients, *_webhook_families(g),
    ]  # fmt: skip


def _estimate_error_family(services: set[LabelKey], t: Totals) -> Metric:
    family = HistogramMetricFamily(
        "hallq_estimate_error_seconds",
        "A ticket's wait until its first call minus the wait it was quoted at issue (the "
        "median): positive when the estimate was too short.",
        labels=["branch", "service"],
    )
    for key in sorted(services | set(t.estimate) | set(t.late_estimate)):
        # Buckets only: with negative bounds the sum can go down, which Prometheus would take
        # for a counter reset, so there is no _sum (OpenMetrics; prometheus_client leaves out
        # _count with it: the +Inf bucket is the count).
        family.add_metric(list(key), _buckets(t.estimate_hist(key)), None)
    return family


def _webhook_families(g: Gauges) -> list[Metric]:
    deliveries = CounterMetricFamily(
        "hallq_webhook_deliveries",
        "Webhook delivery attempts: delivered (a 2xx) or failed (any other answer, or none).",
        labels=["outcome"],
    )
    for key in sorted(g.webhook_deliveries):
        deliveries.add_metric(list(key), g.webhook_deliveries[key])
    backlog = GaugeMetricFamily(
        "hallq_webhook_backlog",
        "Events committed in a webhook's branches and not yet delivered to it.",
        labels=["webhook"],
    )
    for key in sorted(g.webhook_backlog):
        backlog.add_metric(list(key), g.webhook_backlog[key])
    return [deliveries, backlog]
