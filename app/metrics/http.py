"""HTTP request metrics, and the part of the exposition that is per process.

With several uvicorn workers behind one port a scrape lands on any one worker, so the request
metrics must be shared: when `PROMETHEUS_MULTIPROC_DIR` is set (devtools/run.py sets it for
`HALLQ_WORKERS` > 1), prometheus_client writes every worker's values to files in that
directory and a scrape adds them up (`MultiProcessCollector`). It chooses this mode when it is
first imported, so the variable must be in the environment before the workers start.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess
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


# In multiprocess mode a scrape cannot collect the other workers' process metrics, so each
# worker writes its own into gauges that prometheus_client keeps per process (`pid` label,
# 'liveall'). Not in the default registry: its ProcessCollector has the same names.
PROCESS_METRICS_EVERY_S = 5.0
_process_gauges: dict[str, Gauge] = {}


def write_process_metrics() -> None:
    """This process's process_* values (prometheus_client's ProcessCollector: Linux only)."""
    for family in ProcessCollector(registry=None).collect():
        for sample in family.samples:
            gauge = _process_gauges.get(sample.name)
            if gauge is None:
                gauge = Gauge(
                    sample.name, family.documentation, registry=None, multiprocess_mode="liveall"
                )
                _process_gauges[sample.name] = gauge
            gauge.set(sample.value)


def _keep_writing_process_metrics() -> None:
    while True:
        time.sleep(PROCESS_METRICS_EVERY_S)
        try:
            write_process_metrics()
        except Exception:  # a bad read must not stop this worker's metrics for good
            log.warning("process metrics not written", exc_info=True)


_writer: threading.Thread | None = None


def start_process_metrics() -> None:
    """With several workers (multiprocess mode), this worker writes its process metrics now
    and every few seconds while it runs; once per process (the app's start-up calls it)."""
    global _writer
    if _writer is not None or not multiprocess_mode():
        return
    write_process_metrics()
    _writer = threading.Thread(
        target=_keep_writing_process_metrics, name="hallq-process-metrics", daemon=True
    )
    _writer.start()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _SharedMetrics(Collector):
    """Every worker's files (MultiProcessCollector), less the process metrics of workers that
    have exited, whose files it removes (prometheus_client's `mark_process_dead`): nothing runs
    as a worker exits, since uvicorn stops it by raising the stop signal again (or it crashed)."""

    def collect(self) -> Iterable[Metric]:
        running: dict[str, bool] = {}

        def kept(sample: Sample) -> bool:
            pid = sample.labels.get("pid")
            if pid is None:
                return True
            if pid not in running:
                running[pid] = _running(int(pid))
            return running[pid]

        every_worker = MultiProcessCollector(registry=None)  # type: ignore[no-untyped-call]
        for family in every_worker.collect():  # type: ignore[no-untyped-call]
            family.samples = [sample for sample in family.samples if kept(sample)]
            yield family
        for pid, alive in running.items():
            if not alive:
                with contextlib.suppress(OSError):  # another worker may have removed them
                    multiprocess.mark_process_dead(int(pid))  # type: ignore[no-untyped-call]


def exposition_registry(families: Iterable[Metric]) -> CollectorRegistry:
    """`families` (the hallq_* metrics) and this server's own metrics: HTTP requests (summed
    over workers) and process metrics. Single process: everything in the default registry
    (process, platform, GC and HTTP metrics)."""
    registry = CollectorRegistry()
    registry.register(_ListCollector(families))
    if multiprocess_mode():
        write_process_metrics()  # this worker's, fresh; the others' are a few seconds old
        registry.register(_SharedMetrics())
    else:
        _warn_if_workers_do_not_share()
        registry.register(_ListCollector(REGISTRY.collect()))
    return registry
