from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.auth.dependencies import Configurer, PrincipalDep, QueueReader
from app.auth.permissions import Action, check_allowed
from app.branches import service as branches
from app.branches.schemas import (
    BranchConfigOut,
    BranchIn,
    BranchOut,
    BranchSummary,
    ServiceIn,
    ServiceOut,
    StaffIn,
    StaffOut,
)
from app.core.codes import BranchCode, ServiceCode, StaffCode
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses

router = APIRouter(
    prefix="/api/v1/branches",
    tags=["configuration"],
    responses=problem_responses(*API_PROBLEMS, 409),
)


def _created_status(response: Response, created: bool) -> None:
    response.status_code = 201 if created else 200


@router.get("", response_model=list[BranchSummary])
async def get_branches(session: SessionDep, principal: PrincipalDep) -> list[BranchSummary]:
    """The branches the caller configures: every one for an admin, a manager's own."""
    if principal.is_admin:
        return await branches.list_branches(session, None)
    check_allowed(principal, Action.CONFIGURE, principal.branch)
    return await branches.list_branches(session, principal.branch)


@router.put("/{branch}", response_model=BranchOut, responses={201: {"model": BranchOut}})
async def put_branch(
    branch: BranchCode,
    body: BranchIn,
    request: Request,
    response: Response,
    session: SessionDep,
    _: Configurer,
) -> BranchOut:
    """Create or update a branch (201 created, 200 updated)."""
    created = await branches.put_branch(session, branch, body, request.app.state.clock.now())
    _created_status(response, created)
    return branches.branch_out(await branches.get_branch(session, branch))


@router.get("/{branch}", response_model=BranchConfigOut)
async def get_branch(
    branch: BranchCode, request: Request, session: SessionDep, _: QueueReader
) -> BranchConfigOut:
    """The branch with its business types (what a kiosk needs to draw its buttons)."""
    config = await branches.branch_config(session, branch)
    config.sms = bool(request.app.state.settings.sms_url)
    return config


@router.put(
    "/{branch}/services/{service}",
    response_model=ServiceOut,
    responses={201: {"model": ServiceOut}},
)
async def put_service(
    branch: BranchCode,
    service: ServiceCode,
    body: ServiceIn,
    request: Request,
    response: Response,
    session: SessionDep,
    _: Configurer,
) -> ServiceOut:
    """Create or update a business type (201 created, 200 updated)."""
    created = await branches.put_service(
        session, branch, service, body, request.app.state.clock.now()
    )
    _created_status(response, created)
    return branches.service_out(await branches.get_service(session, branch, service))


@router.get("/{branch}/staff", response_model=list[StaffOut])
async def get_staff(branch: BranchCode, session: SessionDep, _: Configurer) -> list[StaffOut]:
    """The branch's staff with their roles (the config lists them without)."""
    return await branches.list_staff(session, branch)


@router.put(
    "/{branch}/staff/{staff}", response_model=StaffOut, responses={201: {"model": StaffOut}}
)
async def put_staff(
    branch: BranchCode,
    staff: StaffCode,
    body: StaffIn,
    request: Request,
    response: Response,
    session: SessionDep,
    _: Configurer,
) -> StaffOut:
    """Create or update a staff member (201 created, 200 updated)."""
    created = await branches.put_staff(session, branch, staff, body, request.app.state.clock.now())
    _created_status(response, created)
    return StaffOut(code=staff, name=body.name, role=body.role, number=body.number)
