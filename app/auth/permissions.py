"""Who may do what: the one table of role permissions, and the check every route uses."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.core.errors import Problem


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    CLERK = "clerk"
    KIOSK = "kiosk"
    DISPLAY = "display"
    MONITOR = "monitor"


class Action(StrEnum):
    CONFIGURE = "configure"
    MANAGE_TOKENS = "manage tokens"
    ISSUE_TICKET = "issue tickets"
    READ_QUEUE = "read the queue"
    READ_TICKET = "read tickets"
    CANCEL_TICKET = "cancel tickets"
    REQUEUE_TICKET = "re-queue tickets"
    RATE_TICKET = "rate tickets"
    OPERATE_COUNTER = "operate counters"
    READ_STREAM = "read the stream"
    READ_REPORTS = "read reports"
    READ_REGION_REPORTS = "read the branches report"
    READ_STAFF_TALLY = "read a clerk's own figures"
    READ_METRICS = "read metrics"
    READ_EVENT_SCHEMA = "read the event schema"
    CLOSE_DAY = "close the business day"
    FIND_TICKETS = "look tickets up"
    PRIORITISE_TICKET = "change a ticket's priority"
    PICK_TICKET = "call a chosen ticket"
    READ_TICKET_NOTES = "read staff notes in a ticket's history"
    HEAR_ANNOUNCEMENTS = "fetch announcements as audio"
    READ_OWN_TOKEN = "read its own token's state"  # noqa: S105 - a name, not a secret
    MANAGE_WEBHOOKS = "manage webhooks"
    READ_STAFFING = "read the staffing plan"


# Branch-scoped roles allowed each action on their own branch (on any, for an action of
# `BRANCHLESS`). Admin may do everything; the monitor role has no branch and may do only
# `MONITOR_ACTIONS`.
BRANCH_ROLES: dict[Action, frozenset[Role]] = {
    Action.CONFIGURE: frozenset({Role.MANAGER}),
    Action.MANAGE_TOKENS: frozenset({Role.MANAGER}),
    # Kiosks and the greeter's tablet issue; staff may issue for a customer at the counter.
    Action.ISSUE_TICKET: frozenset({Role.MANAGER, Role.CLERK, Role.KIOSK}),
    Action.READ_QUEUE: frozenset({Role.MANAGER, Role.CLERK, Role.KIOSK, Role.DISPLAY}),
    Action.READ_TICKET: frozenset({Role.MANAGER, Role.CLERK, Role.KIOSK, Role.DISPLAY}),
    Action.CANCEL_TICKET: frozenset({Role.MANAGER, Role.CLERK, Role.KIOSK}),
    # A no-show who turns up is re-queued by a clerk, the manager or the greeter's tablet.
    Action.REQUEUE_TICKET: frozenset({Role.MANAGER, Role.CLERK, Role.KIOSK}),
    # The evaluation keypad at the counter, or the kiosk, records the customer's rating.
    Action.RATE_TICKET: frozenset({Role.MANAGER, Role.CLERK, Role.KIOSK}),
    Action.OPERATE_COUNTER: frozenset({Role.MANAGER, Role.CLERK}),
    Action.READ_STREAM: frozenset({Role.MANAGER, Role.CLERK, Role.KIOSK, Role.DISPLAY}),
    Action.READ_REPORTS: frozenset({Role.MANAGER}),
    # Every branch side by side (SPEC §10): the admin's, the branch company's, view only.
    Action.READ_REGION_REPORTS: frozenset(),
    # A clerk reads their own tally of the day only (checked by the route); a manager anyone's.
    Action.READ_STAFF_TALLY: frozenset({Role.MANAGER, Role.CLERK}),
    Action.READ_METRICS: frozenset(),
    Action.READ_EVENT_SCHEMA: frozenset({Role.MANAGER, Role.CLERK, Role.KIOSK, Role.DISPLAY}),
    # The duty manager ends the day (日结) and works the service desk (SPEC §5, §6).
    Action.CLOSE_DAY: frozenset({Role.MANAGER}),
    Action.FIND_TICKETS: frozenset({Role.MANAGER, Role.CLERK}),
    Action.PRIORITISE_TICKET: frozenset({Role.MANAGER}),
    # A clerk only where the branch sets `clerks_may_pick` (checked by the call itself).
    Action.PICK_TICKET: frozenset({Role.MANAGER, Role.CLERK}),
    # What staff wrote in a history (a priority change's reason): not for kiosks and screens.
    Action.READ_TICKET_NOTES: frozenset({Role.MANAGER, Role.CLERK}),
    # The server's audio of a call: for the lobby screens, and for whoever reads the stream.
    Action.HEAR_ANNOUNCEMENTS: frozenset({Role.MANAGER, Role.CLERK, Role.KIOSK, Role.DISPLAY}),
    # A device page asks whether it is in service (a kiosk: SPEC §7).
    Action.READ_OWN_TOKEN: frozenset({Role.MANAGER, Role.CLERK, Role.KIOSK, Role.DISPLAY}),
    # Webhooks see every branch's events and hold signing secrets: admin only (SPEC §8).
    Action.MANAGE_WEBHOOKS: frozenset(),
    # How many counters to open, hour by hour (SPEC §11): the duty manager plans the hall.
    Action.READ_STAFFING: frozenset({Role.MANAGER}),
}
BRANCHLESS: frozenset[Action] = frozenset({Action.READ_EVENT_SCHEMA, Action.READ_OWN_TOKEN})
MONITOR_ACTIONS: frozenset[Action] = frozenset({Action.READ_METRICS, Action.READ_EVENT_SCHEMA})

# Roles a manager may hand out, for their own branch only.
MANAGER_GRANTABLE: frozenset[Role] = frozenset({Role.CLERK, Role.KIOSK, Role.DISPLAY})


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token's role and scope."""

    role: Role
    token_id: str
    branch: str | None = None
    staff: str | None = None
    out_of_service: bool = False  # a kiosk set out of service by its manager (SPEC §7)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def forbidden(detail: str) -> Problem:
    return Problem(403, "forbidden", detail, title="Forbidden")


def is_allowed(principal: Principal, action: Action, branch: str | None) -> bool:
    if principal.role is Role.ADMIN:
        return True
    if principal.role is Role.MONITOR:
        return action in MONITOR_ACTIONS
    if principal.role not in BRANCH_ROLES[action]:
        return False
    return action in BRANCHLESS or (branch is not None and principal.branch == branch)


def check_allowed(principal: Principal, action: Action, branch: str | None) -> None:
    """Raise 403 unless `principal` may perform `action` on `branch`."""
    if is_allowed(principal, action, branch):
        return
    if principal.role in (Role.ADMIN, Role.MONITOR) or principal.role not in BRANCH_ROLES[action]:
        raise forbidden(f"a {principal.role} token may not {action}")
    raise forbidden(f"this {principal.role} token belongs to another branch")
