"""The one settings object. Environment variables carry the `HALLQ_` prefix, except
`DATABASE_URL`, which keeps the name every PostgreSQL tool and platform already uses."""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HALLQ_", extra="ignore")

    database_url: str = Field(
        default="",
        validation_alias=AliasChoices("DATABASE_URL", "HALLQ_DATABASE_URL"),
        description="postgresql+asyncpg://user:password@host:port/database",
    )
    # The LISTEN connection and the event notifier's, straight to PostgreSQL when DATABASE_URL
    # goes through a pooler in transaction mode (docs/operations.md); empty: DATABASE_URL.
    listen_database_url: str = Field(default="", description="postgresql+asyncpg://…")
    admin_token: SecretStr | None = Field(
        default=None, description="Accepted as an admin token; unset means no built-in admin."
    )
    # Few connections, none opened on demand: more concurrent transactions than cores only
    # queue on the same row locks (the branch's event counter), and overflow connections cost a
    # handshake each (docs/performance.md).
    db_pool_size: int = Field(default=5, ge=1, le=200)
    db_max_overflow: int = Field(default=0, ge=0, le=200)
    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    # Requests give up on the database after this long and answer 503 instead of hanging.
    db_command_timeout_s: float = Field(default=10.0, gt=0)
    # PostgreSQL's plan_cache_mode for hallq's connections. Every statement is prepared once
    # per connection with the branch as a parameter, and the generic plan suits every branch;
    # `auto` may re-plan on every execution (docs/decisions.md) and restores PostgreSQL's choice.
    # `server`: send none (a pooler refuses unknown start-up parameters; set it on the role).
    db_plan_cache_mode: Literal["force_generic_plan", "auto", "force_custom_plan", "server"] = (
        "force_generic_plan"
    )
    # Prepared statements cached per connection (asyncpg's and SQLAlchemy's). 0 behind PgBouncer
    # before 1.21 in transaction mode, which does not track them (docs/operations.md).
    db_statement_cache_size: int = Field(default=100, ge=0, le=10000)
    # Used to estimate waits before a business type has any service history of its own.
    default_service_time_s: int = Field(default=300, ge=1)
    # Recent service times that the estimate averages over, per business type.
    estimate_history: int = Field(default=50, ge=1, le=1000)
    # The lobby stream (app/stream): per-client buffer of events before it is resynchronised
    # with a snapshot, how far back `since` replays, keepalive and stalled-send limits.
    stream_queue_size: int = Field(default=256, ge=1, le=100_000)
    stream_replay_limit: int = Field(default=20_000, ge=0)
    stream_keepalive_s: float = Field(default=15.0, gt=0)
    stream_send_timeout_s: float = Field(default=30.0, gt=0)
    # A branch's queue view, and today's report figures, are read once for the requests of this
    # many seconds while no event or configuration change happened (app/events/shared_reads.py);
    # 0: every request reads.
    shared_read_s: float = Field(default=1.0, ge=0, le=60)
    stream_max_clients_per_token: int = Field(default=500, ge=1)
    # How often this process reports its stream clients for hallq_stream_clients.
    stream_presence_interval_s: float = Field(default=5.0, gt=0)
    # How often each process's listener checks that no committed event went unnotified (a
    # process died between commit and notify): such an event reaches screens within two sweeps.
    stream_sweep_s: float = Field(default=1.0, gt=0, le=60)
    # How often alerts are evaluated (and phones of finished days erased); 0 turns the
    # background task off in this process (other processes still run it).
    alerts_interval_s: float = Field(default=5.0, ge=0)
    # GET /metrics without a token (only where the network keeps it private); otherwise a
    # monitor or admin token is needed.
    metrics_public: bool = False
    # Each process writes the wait quotes of the tickets it issues (for the estimate's measured
    # accuracy, docs/accuracy.md) in batches this many seconds apart; 0: only when it stops.
    estimate_quote_flush_s: float = Field(default=0.2, ge=0, le=60)
    # A process answers scrapes within this many seconds of its last database read from cache.
    metrics_cache_s: float = Field(default=1.5, ge=0, le=60)
    # The histograms' `branch` label: per branch (`branch`, SPEC §4's default) or summed over
    # all branches as branch="_all" (`all`), for a fleet whose Prometheus cannot hold a
    # histogram per branch (docs/metrics.md says what each costs).
    metrics_histograms: Literal["branch", "all"] = "branch"
    # Events of the log a scrape counts at most while a new process catches up on the history;
    # the rest is counted in the background, and the counters and histograms are left out of
    # the scrapes until it is (docs/metrics.md).
    metrics_catch_up_events: int = Field(default=50_000, ge=1)
    # Tokens, branches and business types are cached per process and dropped when any process
    # changes them (app/core/config_cache.py); an entry is kept at most this long. 0: no cache.
    config_cache_s: float = Field(default=60.0, ge=0, le=3600)
    # Tickets one token (a kiosk, a clerk) may issue per minute; 0 means no limit. The admin
    # token is never limited.
    issue_rate_per_minute: int = Field(default=60, ge=0)
    # Largest request body accepted (bytes); bigger ones get 413.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Announcements rendered as audio (app/announcements, docs/announcements.md): the espeak-ng
    # command (a name on PATH or a path), how long one render may take, how many engine
    # processes run at once per server process, and the per-process cache of rendered audio.
    speech_engine: str = Field(default="espeak-ng", min_length=1)
    speech_timeout_s: float = Field(default=10.0, gt=0, le=120)
    speech_concurrency: int = Field(default=2, ge=1, le=64)
    speech_cache_mb: float = Field(default=32.0, ge=0, le=4096)
    # The customer's phone (SPEC §9, docs/phone.md). The base URL printed in the tickets' QR
    # codes (`<public URL>/t/<code>`); empty: the base URL of the request (the kiosk's own).
    public_url: str = Field(default="", max_length=200)
    # Requests a minute per client address on the public routes (no token); 0: no limit.
    public_rate_per_minute: int = Field(default=60, ge=0)
    # Reverse proxies whose `X-Forwarded-For` names the client: comma-separated addresses or
    # networks (`10.0.0.1, 10.1.0.0/16`). Empty (the default): the header is never believed,
    # and the client is the address the connection comes from.
    trusted_proxies: str = Field(default="", max_length=2000)
    # Public requests a process works on at once (each may use a database connection); more
    # wait, and past `public_queue` waiting they get 503: the public can never take the
    # connections kiosks and clerks need.
    public_concurrency: int = Field(default=2, ge=1, le=100)
    public_queue: int = Field(default=50, ge=0, le=10_000)
    # Webhooks (app/webhooks, docs/webhooks.md): whether this process delivers (others still
    # do), how often it looks for due retries and missed notifications, and how long an
    # endpoint has to answer.
    webhook_delivery: bool = True
    webhook_poll_s: float = Field(default=1.0, gt=0, le=60)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    # The waits after a webhook's 1st, 2nd, ... failure (the last repeats), and how long it
    # may fail before it is disabled (SPEC §8: about 5 s, 30 s, 2 min, 10 min, 1 h; 24 h).
    webhook_backoff_s: tuple[float, ...] = Field(default=(5, 30, 120, 600, 3600), min_length=1)
    webhook_disable_after_s: float = Field(default=24 * 3600, gt=0)
    # The SMS relay (SPEC §9, app/webhooks/sms.py): the operator's SMS gateway, sent texts for
    # `ticket.near` and `ticket.called`, signed with the `whsec_` secret like a webhook.
    sms_url: str = Field(default="", max_length=2000)
    sms_secret: SecretStr | None = None
    log_level: str = "INFO"
    # Tickets and events of business days older than this are removed (docs/operations.md,
    # "Retention"); 0 keeps everything.
    history_days: int = Field(default=400, ge=0, le=36500)
    # text: one line per record; json: JSON lines for a log shipper (docs/operations.md).
    log_format: Literal["text", "json"] = "text"

    @property
    def statements_need_transaction(self) -> bool:
        """No statement cache means a transaction pooler: a statement prepared outside a
        transaction may run on another server connection, so none runs outside one."""
        return self.db_statement_cache_size == 0

    @property
    def listen_url(self) -> str:
        """Where the process LISTENs and NOTIFYs: never through a transaction pooler."""
        return self.listen_database_url or self.database_url

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
            raise ValueError("HALLQ_PUBLIC_URL must be an http:// or https:// base URL")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for entry in value.split(","):
            if entry.strip():
                try:
                    ipaddress.ip_network(entry.strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        f"HALLQ_TRUSTED_PROXIES: {entry.strip()!r} is no address or network"
                    ) from None
        return value

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(
            ipaddress.ip_network(entry.strip(), strict=False)
            for entry in self.trusted_proxies.split(",")
            if entry.strip()
        )

    @field_validator("database_url", "listen_database_url")
    @classmethod
    def _asyncpg_driver(cls, value: str) -> str:
        # Accept plain postgres:// URLs as platforms hand them out; we always talk asyncpg.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+asyncpg://" + value[len(prefix) :]
        if value and not value.startswith("postgresql+asyncpg://"):
            raise ValueError("DATABASE_URL must be a postgresql+asyncpg:// URL")
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
