"""An alert as the queue view and the alert events show it."""

from __future__ import annotations

from app.events.catalog import AlertView


class AlertOut(AlertView):
    """An active alert (SPEC §1)."""
