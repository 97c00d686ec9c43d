"""The Grafana dashboard (deploy/grafana/hallq.json): every PromQL expression in it, evaluated by
a real Prometheus (Debian's `prometheus`, installed by `.ci/run`) that scrapes two hallq
processes during a scenario with known numbers, answers, and with those numbers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.accuracy.service import ERROR_BUCKETS
from devtools.embedded_postgres import free_port
from devtools.servers import ServerProcess
from tests.browser import require
from tests.db import ROOT
from tests.helpers import ADMIN
from tests.servers import running_servers

pytestmark = pytest.mark.multiprocess

DASHBOARD = ROOT / "deploy" / "grafana" / "hallq.json"
B = "/api/v1/branches/gr01"


def dashboard_queries() -> dict[str, str]:
    """Panel title (and target) -> its expression, as Grafana would send it for branch gr01."""
    board = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} [{target['refId']}]": target["expr"].replace("$branch", "gr01")
        for panel in board["panels"]
        for target in panel["targets"]
    }


@contextlib.contextmanager
def prometheus(servers: list[ServerProcess]) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        require("no Prometheus (Debian/Ubuntu: `apt-get install prometheus`)")
    assert binary is not None
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hallq-prometheus-") as tmp:
        config = Path(tmp) / "prometheus.yml"
        targets = [s.url.removeprefix("http://") for s in servers]
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "evaluation_interval": "1s",
                    },
                    "scrape_configs": [
                        {"job_name": "hallq", "static_configs": [{"targets": targets}]}
                    ],
                }
            )
        )
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_ready(base, process)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            if process.stderr is not None:
                process.stderr.close()


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    """Until Prometheus answers queries: it says 503 while its storage starts (slow on a busy
    machine)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/-/ready", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError(f"Prometheus at {base} never became ready")


async def _query(http: httpx.AsyncClient, base: str, expr: str) -> list[dict[str, Any]]:
    response = await http.get(f"{base}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (expr, body)
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _values(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {r["metric"].get(label, ""): float(r["value"][1]) for r in result}


async def _scraped(http: httpx.AsyncClient, prom: str, expr: str, instances: int = 2) -> None:
    """Until `expr` holds on `instances` instances (a scrape of each has seen the state)."""
    for _ in range(120):
        if len(await _query(http, prom, expr)) >= instances:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"Prometheus never saw {expr}")


async def _scenario(http: httpx.AsyncClient, url: str, prom: str) -> list[float]:
    """Known numbers: 5 tickets of a and 3 of b; counter 1 (a) serves two of a; counter 2 stays
    closed. Waiting then: a 3, b 3. Returns the two errors of the estimate (actual wait until
    the call - the wait quoted at issue) of a."""
    for path, body in [
        ("", {"name": "gr01", "timezone": "Asia/Shanghai"}),
        ("/services/a", {"name": "A", "prefix": "A"}),
        ("/services/b", {"name": "B", "prefix": "B"}),
        ("/counters/1", {"name": "1", "services": ["a"]}),
        ("/counters/2", {"name": "2", "services": ["b"]}),
    ]:
        assert (await http.put(f"{url}{B}{path}", json=body, headers=ADMIN)).status_code == 201
    # Scraped at zero first (twice), as a hall is before its first customer.
    issued_a = 'hallq_tickets_issued_total{branch="gr01",service="a",priority="normal"}'
    await _scraped(http, prom, f"count_over_time({issued_a}[5m]) >= 2")
    quoted: dict[str, int] = {}
    for service, count in (("a", 5), ("b", 3)):
        for _ in range(count):
            r = await http.post(f"{url}{B}/tickets", json={"service": service}, headers=ADMIN)
            assert r.status_code == 201, r.text
            quoted[r.json()["id"]] = r.json()["estimated_wait_s"]
    assert (await http.post(f"{url}{B}/counters/1/open", headers=ADMIN)).status_code == 200
    errors = []
    for _ in range(2):
        for action in ("next", "start", "complete"):
            r = await http.post(f"{url}{B}/counters/1/{action}", headers=ADMIN)
            assert r.status_code == 200, r.text
            if action == "next":
                ticket = r.json()["ticket"]
                waited = datetime.fromisoformat(ticket["called_at"]) - datetime.fromisoformat(
                    ticket["issued_at"]
                )
                errors.append(waited.total_seconds() - quoted[ticket["id"]])
    # ... and after it, on both processes, long enough that increase() and rate(), which
    # extrapolate from the samples they have, are within a few percent of the truth.
    await _scraped(http, prom, 'hallq_tickets_finished_total{branch="gr01",outcome="done"} == 2')
    # Both quotes were written (by the issuing process's writer, before or after the calls).
    errors_a = 'hallq_estimate_error_seconds_bucket{branch="gr01",service="a",le="+Inf"}'
    await _scraped(http, prom, f"{errors_a} == 2")
    await asyncio.sleep(10)
    return errors


async def test_every_dashboard_query_answers_with_the_halls_numbers(database_url):
    env = {"HALLQ_METRICS_PUBLIC": "true", "HALLQ_METRICS_CACHE_S": "0"}
    with running_servers(database_url, 2, env=env) as servers, prometheus(servers) as prom:
        async with httpx.AsyncClient(timeout=15) as http:
            errors = await _scenario(http, servers[0].url, prom)
            answers: dict[str, list[dict[str, Any]]] = {}
            deadline = time.monotonic() + 30
            for title, expr in dashboard_queries().items():
                while not (answers.get(title)) and time.monotonic() < deadline:
                    answers[title] = await _query(http, prom, expr)
                    if not answers[title]:
                        await asyncio.sleep(0.5)
                assert answers[title], f"{title}: no data for {expr}"
    a = {title.split(" ", 1)[0]: result for title, result in answers.items()}
    assert _values(a["排队人数"], "service") == {"a": 3.0, "b": 3.0}
    assert _values(a["窗口"], "state") == {"open": 1, "closed": 1, "paused": 0, "closing": 0}
    issued = _values(a["取号量"], "service")
    assert issued["a"] == pytest.approx(5, rel=0.15) and issued["b"] == pytest.approx(3, rel=0.15)
    finished = _values(a["办结与过号"], "outcome")
    assert finished["done"] == pytest.approx(2, rel=0.15) and finished["no_show"] == 0
    assert 0 < _values(a["等候时间"], "service")["a"] <= 30  # waits of seconds: the first bucket
    assert _values(a["10"], "")[""] == 1.0  # everyone called within ten minutes
    assert 0 <= _values(a["办理时长"], "service")["a"] < 30
    assert {v for v in _values(a["告警"], "kind").values()} == {0.0}
    up = [r for title, r in answers.items() if title.startswith("进程与数据库")]
    assert [float(r[0]["value"][1]) for r in up] == [2.0, 1.0]
    assert sum(_values(a["请求量"], "status").values()) > 0
    # Routes asked in the last five minutes have a latency; the others none (NaN).
    latencies = [v for v in _values(a["请求延迟"], "route").values() if not math.isnan(v)]
    assert latencies and all(v > 0 for v in latencies)
    # The estimate's error: quantiles of the two errors of a, as Prometheus interpolates them
    # in their buckets; the share within five minutes of the quote.
    error_panel = next(title for title in answers if title.startswith("预计等候误差"))[:-4]
    for ref, q in (("A", 0.5), ("B", 0.9)):
        by_service = _values(answers[f"{error_panel} [{ref}]"], "service")
        assert by_service["a"] == pytest.approx(_bucket_quantile(q, errors, ERROR_BUCKETS))
        assert math.isnan(by_service["b"])  # nothing of b called
    within = sum(-300 < e <= 300 for e in errors) / len(errors)
    assert _values(a["5分钟内预计准确率"], "")[""] == pytest.approx(within)


def _bucket_quantile(q: float, values: list[float], bounds: tuple[float, ...]) -> float:
    """Prometheus' histogram_quantile over the classic buckets `values` fall in: the bucket
    where the rank lies, linearly interpolated from its lower bound (0 for the first, unless
    its upper bound is not above 0: then that bound)."""
    cumulative = [sum(v <= b for v in values) for b in bounds] + [len(values)]
    rank = q * len(values)
    b = next(i for i, c in enumerate(cumulative) if c >= rank)
    if b == len(bounds):
        return bounds[-1]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start = bounds[b - 1] if b > 0 else 0.0
    below = cumulative[b - 1] if b > 0 else 0
    return start + (bounds[b] - start) * (rank - below) / (cumulative[b] - below)
