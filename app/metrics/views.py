"""`GET /metrics` in the Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from app.auth.dependencies import get_principal
from app.auth.permissions import Action, check_allowed
from app.core.errors import is_connection_error, problem_responses
from app.core.settings import Settings
from app.metrics.collector import MetricsCollector
from app.metrics.http import exposition_registry

router = APIRouter(tags=["operations"])


async def _check_access(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.metrics_public:
        return
    # A session of its own (not SessionDep): no connection is held during the refresh.
    async with request.app.state.sessionmaker() as session:
        principal = await get_principal(request, session)
    check_allowed(principal, Action.READ_METRICS, None)


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_PLAIN_0_0_4: {}}, "description": "Prometheus text format"},
        **problem_responses(401, 403, 503),
    },
)
async def metrics(request: Request) -> Response:
    """The SPEC §4 metrics (from the database, the same on every process), HTTP request and
    process metrics. Needs a monitor or admin token unless HALLQ_METRICS_PUBLIC=true."""
    await _check_access(request)
    collector: MetricsCollector = request.app.state.metrics_collector
    try:
        hall = await collector.exposition()
        up = 1
    except Exception as exc:
        # The database is out of reach: the process still answers (its HTTP and process
        # metrics), so an alert can tell "database unreachable" from "process down".
        if not is_connection_error(exc):
            raise
        hall, up = b"", 0
    # Text-format blocks of whole families concatenate into one exposition.
    body = hall + generate_latest(exposition_registry([_database_up(up)]))
    return Response(body, media_type=CONTENT_TYPE_PLAIN_0_0_4)


def _database_up(value: int) -> Metric:
    up = GaugeMetricFamily(
        "hallq_database_up",
        "1 when this process read the hall's metrics from PostgreSQL for this scrape, 0 when "
        "the database was out of reach.",
    )
    up.add_metric([], value)
    return up
