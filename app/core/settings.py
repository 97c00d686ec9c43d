"""The one settings object. Environment variables carry the `HALLQ_` prefix, except
`DATABASE_URL`, which keeps the name every PostgreSQL tool and platform already uses."""

from __future__ import annotations

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
    db_plan_cache_mode: Literal["force_generic_plan", "auto", "force_custom_plan"] = (
        "force_generic_plan"
    )
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
    # A process answers scrapes within this many seconds of its last database read from cache.
    metrics_cache_s: float = Field(default=1.5, ge=0, le=60)
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
    log_level: str = "INFO"

    @field_validator("database_url")
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
