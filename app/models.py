"""Every table's model, imported in one place so that Alembic sees the whole schema."""

from app.accuracy.models import EstimateLateError, EstimateQuote
from app.alerts.models import Alert
from app.auth.models import ApiToken
from app.branches.models import Branch, Service, Staff
from app.business_day.models import DayCloseout
from app.core.database import Base
from app.counters.models import Counter
from app.events.models import BranchEvent
from app.housekeeping.models import HousekeepingTurn
from app.notices.models import Notice
from app.public.models import OnlineJoin, PublicRate
from app.reports.models import ReportRollup, ReportRollupDay
from app.stream.models import StreamPresence
from app.tickets.models import IssueKey, IssueRate, Ticket, TicketSequence
from app.webhooks.models import Webhook, WebhookCursor, WebhookDelivery

__all__ = [
    "Alert",
    "ApiToken",
    "Base",
    "Branch",
    "BranchEvent",
    "Counter",
    "DayCloseout",
    "EstimateLateError",
    "EstimateQuote",
    "HousekeepingTurn",
    "IssueKey",
    "IssueRate",
    "Notice",
    "OnlineJoin",
    "PublicRate",
    "ReportRollup",
    "ReportRollupDay",
    "Service",
    "Staff",
    "StreamPresence",
    "Ticket",
    "TicketSequence",
    "Webhook",
    "WebhookCursor",
    "WebhookDelivery",
]
