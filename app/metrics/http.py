"""HTTP request metrics, and the part of the exposition that is per process.

With several uvicorn workers behind one port a scrape lands on any one worker, so the request
metrics must be shared: when `PROMETHEUS_MULTIPROC_DIR` is set (devtools/run.py sets it for
`HALLQ_WORKERS` > 1), prometheus_client writes every worker's values to files in that
directory and a scrape adds them up (`MultiProcessCollector`). It chooses this mode when it is
first imported, so the variable must be in the environment before the workers start.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from starlette.types import Scope

from app.metrics.multiproc import MULTIPROC_ENV

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"  # no route: the path itself would let clients invent label values

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status code.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


log = logging.getLogger("hallq.metrics")
_warned = False


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def _warn_if_workers_do_not_share() -> None:
    """uvicorn --workers N spawns the workers with multiprocessing: without the shared
    directory, each reports only the requests it answered itself. Say so, once."""
    global _warned
    if not _warned and not multiprocess_mode() and multiprocessing.parent_process() is not None:
        _warned = True
        log.warning(
            "several workers without %s: http_* metrics cover only the worker that answers "
            "a scrape (see docs/metrics.md)",
            MULTIPROC_ENV,
        )


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


def record_http_request(scope: Scope, status: int, seconds: float) -> None:
    """Counts and times a request by method, route template (`/api/v1/tickets/{id}`, never
    the concrete path) and status (a RequestObserver, see app.core.logging)."""
    method = scope["method"] if scope["method"] in METHODS else "other"
    labels = (method, route_template(scope), str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_DURATION.labels(*labels).observe(seconds)


# -- process metrics ----------------------------------------------------------------------------


class _ListCollector(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


def _worker_pids() -> list[int]:
    """The uvicorn workers of this server: the processes that the same parent spawned with
    multiprocessing (uvicorn --workers). Linux only; elsewhere just this process."""
    me, parent = os.getpid(), os.getppid()
    pids = []
    try:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # exited meanwhile, or not ours to read
            fields = stat.rpartition(")")[2].split()
            if len(fields) > 1 and int(fields[1]) == parent and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
    except OSError:
        return [me]
    return sorted(set(pids) | {me})


def _per_worker_process_metrics() -> Iterator[Metric]:
    """process_* metrics of every worker, told apart by a `pid` label (they cannot be added
    up the way prometheus_client's files add up counters)."""
    merged: dict[str, Metric] = {}
    for pid in _worker_pids():
        collector = ProcessCollector(pid=functools.partial(int, pid), registry=None)
        for family in collector.collect():
            target = merged.setdefault(
                family.name, Metric(family.name, family.documentation, family.type)
            )
            for sample in family.samples:
                labels = {**sample.labels, "pid": str(pid)}
                target.samples.append(Sample(sample.name, labels, sample.value, sample.timestamp))
    yield from merged.values()


def exposition_registry(families: Iterable[Metric]) -> CollectorRegistry:
    """`families` (the hallq_* metrics) and this server's own metrics: HTTP requests (summed
    over workers) and process metrics. Single process: everything in the default registry
    (process, platform, GC and HTTP metrics)."""
    registry = CollectorRegistry()
    registry.register(_ListCollector(families))
    if multiprocess_mode():
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(_ListCollector(_per_worker_process_metrics()))
    else:
        _warn_if_workers_do_not_share()
        registry.register(_ListCollector(REGISTRY.collect()))
    return registry
