"""`GET /metrics`: the SPEC §4 metrics, derived from the database, plus process and HTTP
request metrics. See docs/metrics.md."""
