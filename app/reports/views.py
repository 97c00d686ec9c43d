from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.auth.dependencies import ReportReader
from app.core.codes import BranchCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.reports import service as reports
from app.reports.schemas import DailyReport, ReportFormat

router = APIRouter(prefix="/api/v1", tags=["reports"], responses=problem_responses(*API_PROBLEMS))

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"


@router.get(
    "/branches/{branch}/reports/daily",
    response_model=DailyReport,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "the report as JSON, or with format=csv as a CSV attachment",
        }
    },
)
async def daily_report(
    branch: BranchCode,
    request: Request,
    session: SessionDep,
    _: ReportReader,
    day: Annotated[
        str | None,
        Query(
            alias="date",
            pattern=DATE_PATTERN,
            description="business day as YYYY-MM-DD in the branch's timezone (default: today)",
        ),
    ] = None,
    format: Annotated[ReportFormat, Query(description="json (default) or csv")] = "json",
) -> DailyReport | Response:
    """Per business type, counter and clerk: issued, served, no-shows, cancels, transfers,
    waits, service times, share within target, ratings; counters' utilisation; the same day
    last week; waits hour by hour. Definitions: docs/reports.md."""
    report = await reports.daily_report(session, branch, day, request.app.state.clock.now())
    if format == "csv":
        filename = f"hallq-{branch}-{report.date.isoformat()}.csv"
        return Response(
            reports.report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return report
