"""Removing history older than `HALLQ_HISTORY_DAYS` (docs/operations.md, "Retention")."""
