from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from app.auth.dependencies import StaffingReader
from app.core.codes import BranchCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.staffing import service
from app.staffing.schemas import StaffingPlan, WhatIf

router = APIRouter(
    prefix="/api/v1/branches", tags=["staffing"], responses=problem_responses(*API_PROBLEMS)
)

PlanDate = Annotated[
    str | None,
    Query(
        alias="date",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="YYYY-MM-DD in the branch's timezone, up to a year ahead (default: today)",
    ),
]


@router.get("/{branch}/staffing", response_model=StaffingPlan)
async def staffing_plan(
    branch: BranchCode,
    request: Request,
    session: SessionDep,
    _: StaffingReader,
    day: PlanDate = None,
) -> StaffingPlan:
    """How many counters to open, hour by hour: arrivals forecast from the same weekday of the
    last `staffing_weeks` weeks, and the fewest counters whose expected share of customers
    called within target reaches `service_level_pct`. Definitions: docs/staffing.md."""
    return await service.staffing_plan(
        session,
        branch,
        day,
        request.app.state.clock.now(),
        float(request.app.state.settings.default_service_time_s),
    )


@router.get("/{branch}/staffing/what-if", response_model=WhatIf)
async def staffing_what_if(
    branch: BranchCode,
    request: Request,
    session: SessionDep,
    _: StaffingReader,
    hour: Annotated[
        str,
        Query(pattern=r"^([01]\d|2[0-3]):00$", description="an opening hour of the date, HH:00"),
    ],
    counters: Annotated[
        int, Query(ge=1, le=1000, description="counters open, at most the branch's counters")
    ],
    day: PlanDate = None,
) -> WhatIf:
    """The expected share within target in one hour of the plan with this many counters open
    (the first of the hour's opening order) instead of the recommended ones."""
    return await service.staffing_what_if(
        session,
        branch,
        day,
        hour,
        counters,
        request.app.state.clock.now(),
        float(request.app.state.settings.default_service_time_s),
    )
