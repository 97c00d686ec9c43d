from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from app.auth.dependencies import RegionReportReader, ReportReader, TallyReader
from app.auth.permissions import Role, forbidden
from app.core.codes import BranchCode, StaffCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.reports import exports, period, service
from app.reports.schemas import (
    BranchesReport,
    DailyReport,
    PeriodReport,
    ReportFormat,
    StaffTally,
)

router = APIRouter(prefix="/api/v1", tags=["reports"], responses=problem_responses(*API_PROBLEMS))

DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
FORMAT = Query(description="json (default), csv (UTF-8 with a BOM) or xlsx (a sheet per table)")
# The files a report may also answer with (`format`).
FILE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            exports.XLSX_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
        "description": "the report as JSON, or with format=csv or xlsx as an attachment",
    }
}

FromDate = Annotated[
    str,
    Query(
        alias="from",
        pattern=DATE_PATTERN,
        description="first business day, YYYY-MM-DD in the branch's timezone",
    ),
]
ToDate = Annotated[
    str,
    Query(
        alias="to",
        pattern=DATE_PATTERN,
        description="last business day (included), YYYY-MM-DD; at most 366 days after `from`",
    ),
]


def _file(tables: list[exports.Table], format: ReportFormat, name: str) -> Response:
    if format == "csv":
        return Response(
            exports.to_csv(tables[0]),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(
        exports.to_xlsx(tables),
        media_type=exports.XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
    )


@router.get(
    "/branches/{branch}/reports/daily", response_model=DailyReport, responses=FILE_RESPONSES
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
    format: Annotated[ReportFormat, FORMAT] = "json",
) -> DailyReport | Response:
    """Per business type, counter and clerk: issued, served, no-shows, cancels, transfers,
    expiries, waits, service times, share within target, ratings and satisfaction; counters'
    utilisation, clerks' time signed in; the same day last week; waits hour by hour.
    Definitions: docs/reports.md."""
    state = request.app.state
    report = await service.daily_report(session, branch, day, state.clock.now(), state.shared_reads)
    if format == "json":
        return report
    name = f"hallq-{branch}-{report.date.isoformat()}"
    return _file(exports.daily_tables(report), format, name)


@router.get(
    "/branches/{branch}/reports/period", response_model=PeriodReport, responses=FILE_RESPONSES
)
async def period_report(
    branch: BranchCode,
    request: Request,
    session: SessionDep,
    _: ReportReader,
    first: FromDate,
    last: ToDate,
    format: Annotated[ReportFormat, FORMAT] = "json",
) -> PeriodReport | Response:
    """The daily report's rows over business days `from` to `to` (averages weighted by their
    counts, the 90th percentile over every wait), the days one by one, and the total.
    Definitions: docs/reports.md."""
    now = request.app.state.clock.now()
    report = await period.period_report(
        session, branch, first, last, now, request.app.state.shared_reads
    )
    if format == "json":
        return report
    name = f"hallq-{branch}-{report.from_.isoformat()}-{report.to.isoformat()}"
    return _file(exports.period_tables(report), format, name)


@router.get("/reports/branches", response_model=BranchesReport, responses=FILE_RESPONSES)
async def branches_report(
    request: Request,
    session: SessionDep,
    _: RegionReportReader,
    first: FromDate,
    last: ToDate,
    format: Annotated[ReportFormat, FORMAT] = "json",
) -> BranchesReport | Response:
    """Admin: one row per branch over business days `from` to `to`, each as the total of its
    period report. Definitions: docs/reports.md."""
    now = request.app.state.clock.now()
    report = await period.branches_report(session, first, last, now)
    if format == "json":
        return report
    name = f"hallq-branches-{report.from_.isoformat()}-{report.to.isoformat()}"
    return _file(exports.branches_tables(report), format, name)


@router.get("/branches/{branch}/reports/staff/{staff}", response_model=StaffTally)
async def staff_tally(
    branch: BranchCode,
    staff: StaffCode,
    request: Request,
    session: SessionDep,
    principal: TallyReader,
    day: Annotated[
        str | None,
        Query(
            alias="date",
            pattern=DATE_PATTERN,
            description="business day as YYYY-MM-DD in the branch's timezone (default: today)",
        ),
    ] = None,
) -> StaffTally:
    """A clerk's own row of the day's report: the clerk console's tally. A clerk reads their
    own only; a manager (or admin) anyone's."""
    if principal.role is Role.CLERK and principal.staff != staff:
        raise forbidden("a clerk token may read its own clerk's figures only")
    now = request.app.state.clock.now()
    return await service.staff_tally(
        session, branch, staff, day, now, request.app.state.shared_reads
    )
