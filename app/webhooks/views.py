"""The webhooks API (SPEC §8), admin only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from app.auth.dependencies import WebhookAdmin
from app.core.codes import CODE_PATTERN, CODE_RULE
from app.core.database import SessionDep
from app.core.errors import API_PROBLEMS, problem_responses
from app.webhooks import service as webhooks
from app.webhooks.schemas import DeliveryList, WebhookCreated, WebhookIn, WebhookList, WebhookOut

router = APIRouter(
    prefix="/api/v1/webhooks", tags=["webhooks"], responses=problem_responses(*API_PROBLEMS)
)

WebhookId = Annotated[str, Path(pattern=CODE_PATTERN, max_length=32, description=CODE_RULE)]


@router.get("", response_model=WebhookList)
async def list_webhooks(session: SessionDep, _: WebhookAdmin) -> WebhookList:
    """Every webhook, without its secret."""
    return WebhookList(webhooks=await webhooks.list_webhooks(session))


@router.put(
    "/{webhook_id}", response_model=WebhookCreated, responses={201: {"model": WebhookCreated}}
)
async def put_webhook(
    webhook_id: WebhookId,
    body: WebhookIn,
    request: Request,
    response: Response,
    session: SessionDep,
    _: WebhookAdmin,
) -> WebhookCreated:
    """Create (201) or update (200). Without `secret`, a new webhook gets one, shown in this
    answer only; an update without one keeps its secret. `enabled: true` resumes delivery
    where it stopped."""
    answer, created = await webhooks.put_webhook(
        session, webhook_id, body, request.app.state.clock.now()
    )
    response.status_code = 201 if created else 200
    return answer


@router.get("/{webhook_id}", response_model=WebhookOut)
async def get_webhook(webhook_id: WebhookId, session: SessionDep, _: WebhookAdmin) -> WebhookOut:
    return webhooks.webhook_out(await webhooks.get_webhook(session, webhook_id))


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: WebhookId, session: SessionDep, _: WebhookAdmin) -> Response:
    """Stop and forget a webhook, its cursors and its delivery log."""
    await webhooks.delete_webhook(session, webhook_id)
    return Response(status_code=204)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList)
async def list_deliveries(
    webhook_id: WebhookId,
    session: SessionDep,
    _: WebhookAdmin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryList:
    """The latest delivery attempts, newest first: each event's `<branch>:<seq>`, its type, the
    attempt's number, and the endpoint's status code or the error."""
    return DeliveryList(deliveries=await webhooks.recent_deliveries(session, webhook_id, limit))
