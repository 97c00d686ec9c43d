"""The ASGI application, built by `create_app()` (uvicorn: `--factory app.main:create_app`;
importing this module builds nothing). Routers are mounted here, in one place."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from app.accuracy.writer import QuoteWriter
from app.announcements.engine import SpeechEngine
from app.announcements.views import router as announcements_router
from app.auth.seen import SeenTracker
from app.branches.views import router as branches_router
from app.business_day.views import router as business_day_router
from app.core.clock import Clock, SystemClock
from app.core.config_cache import ConfigCache
from app.core.database import create_engine, create_sessionmaker
from app.core.errors import install_error_handlers
from app.core.health import router as health_router
from app.core.limits import RequestGuardMiddleware
from app.core.logging import RequestObserverMiddleware, configure_logging, log_request
from app.core.settings import Settings, get_settings
from app.counters.views import router as counters_router
from app.desk.views import router as desk_router
from app.events.notifier import EventNotifier, notifying_session_class
from app.events.shared_reads import SharedReads
from app.events.views import router as events_router
from app.hall.views import router as queue_router
from app.housekeeping.service import start_housekeeping, stop_task
from app.metrics.collector import MetricsCollector
from app.metrics.http import record_http_request, start_process_metrics
from app.metrics.views import router as metrics_router
from app.notices.views import router as notices_router
from app.public.limits import PublicGate
from app.public.views import router as public_router
from app.reports.views import router as reports_router
from app.staffing.views import router as staffing_router
from app.stream.hub import EventHub
from app.stream.presence import new_process_id, run_presence
from app.stream.views import ClientLimits
from app.stream.views import router as stream_router
from app.tickets.views import router as tickets_router
from app.tokens.views import router as tokens_router
from app.web.views import router as web_router
from app.webhooks.delivery import WebhookDispatcher
from app.webhooks.schemas import check_secret, check_url
from app.webhooks.sms import RelaySettings, configure_sms_relay
from app.webhooks.views import router as webhooks_router

log = logging.getLogger("hallq")


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Whatever has started is stopped again, in reverse order, also when a later step of
        # the start-up fails: no connection or task outlives a failed start.
        async with AsyncExitStack() as started:
            _start_database(app, settings, started)
            _start_stream(app, settings, started)
            _start_background_tasks(app, settings, started)
            _start_speech(app, settings, started)
            # Start-up's objects live as long as the process: frozen, full collections skip them
            # (docs/performance.md, gc.freeze). Only once: tests start many apps in one process.
            if not gc.get_freeze_count():
                gc.collect()
                gc.freeze()
            yield

    app = FastAPI(
        title="hallq",
        version="1.0.0",
        summary="Queue and ticketing for customer service halls",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock or SystemClock()
    app.state.public_gate = PublicGate(
        settings.public_rate_per_minute,
        settings.public_concurrency,
        settings.public_queue,
        settings.trusted_networks,
    )
    install_error_handlers(app)
    app.add_middleware(RequestObserverMiddleware, observers=[log_request, record_http_request])
    # Outermost: refuse oversized bodies before anything reads them.
    app.add_middleware(RequestGuardMiddleware, max_body_bytes=settings.max_body_bytes)
    for router in ROUTERS:
        app.include_router(router)
    return app


ROUTERS = (
    health_router,
    metrics_router,
    tokens_router,
    branches_router,
    tickets_router,
    counters_router,
    business_day_router,
    desk_router,
    queue_router,
    notices_router,
    announcements_router,
    reports_router,
    staffing_router,
    stream_router,
    events_router,
    public_router,
    webhooks_router,
    web_router,
)


def _start_database(app: FastAPI, settings: Settings, started: AsyncExitStack) -> None:
    """The engine, the configuration cache, and sessions whose committed events the process's
    notifier (one connection of its own) sends to every process."""
    engine = create_engine(settings)
    started.push_async_callback(engine.dispose)
    app.state.engine = engine
    app.state.config_cache = ConfigCache(ttl_s=settings.config_cache_s)
    notifier = EventNotifier(settings.listen_url, connect_timeout_s=settings.db_connect_timeout_s)
    notifier.start()
    started.push_async_callback(notifier.close)
    app.state.notifier = notifier
    app.state.sessionmaker = create_sessionmaker(
        engine, app.state.config_cache, notifying_session_class(notifier)
    )
    app.state.seen = SeenTracker(app.state.sessionmaker)
    started.push_async_callback(app.state.seen.close)
    # The wait quotes of the tickets this process issues, written in batches (docs/accuracy.md);
    # closed before the engine, so that the last ones are written.
    app.state.quotes = QuoteWriter(
        app.state.sessionmaker,
        flush_s=settings.estimate_quote_flush_s,
        autocommit=not settings.statements_need_transaction,
    )
    app.state.quotes.start()
    started.push_async_callback(app.state.quotes.close)


def _start_stream(app: FastAPI, settings: Settings, started: AsyncExitStack) -> None:
    """One LISTEN connection per process receives every process's events and configuration
    changes, and fans them out to this process's screens."""
    hub = EventHub(
        settings.listen_url,
        app.state.sessionmaker,
        queue_size=settings.stream_queue_size,
        connect_timeout_s=settings.db_connect_timeout_s,
        sweep_s=settings.stream_sweep_s,
        config_cache=app.state.config_cache,
    )
    hub.start()
    started.push_async_callback(hub.close)
    app.state.hub = hub
    app.state.stream_limits = ClientLimits()
    app.state.shared_reads = SharedReads(app.state.config_cache, settings.shared_read_s)


def _start_background_tasks(app: FastAPI, settings: Settings, started: AsyncExitStack) -> None:
    start_process_metrics()
    app.state.metrics_collector = MetricsCollector(
        app.state.sessionmaker,
        app.state.clock,
        settings.metrics_cache_s,
        histograms_by_branch=settings.metrics_histograms == "branch",
        catch_up_events=settings.metrics_catch_up_events,
    )
    started.push_async_callback(app.state.metrics_collector.close)
    presence = asyncio.create_task(
        run_presence(
            app.state.sessionmaker,
            app.state.hub,
            app.state.clock,
            new_process_id(),
            settings.stream_presence_interval_s,
        )
    )
    started.push_async_callback(stop_task, presence)
    housekeeping = start_housekeeping(
        app.state.sessionmaker, app.state.clock, settings.alerts_interval_s, settings.history_days
    )
    started.push_async_callback(stop_task, housekeeping)
    _start_webhooks(app, settings, started)
    started.push_async_callback(stop_task, _start_sms_relay(app, settings))


def sms_relay_settings(settings: Settings) -> RelaySettings | None:
    """The relay the environment names, checked by the webhooks' own rules (a bad URL or secret
    stops the start with the reason)."""
    if not settings.sms_url:
        return None
    if settings.sms_secret is None:
        raise RuntimeError("HALLQ_SMS_URL is set but HALLQ_SMS_SECRET is not")
    try:
        return RelaySettings(
            url=check_url(settings.sms_url),
            secret=check_secret(settings.sms_secret.get_secret_value()),
        )
    except ValueError as exc:
        raise RuntimeError(f"HALLQ_SMS_URL / HALLQ_SMS_SECRET: {exc}") from None


def _start_sms_relay(app: FastAPI, settings: Settings) -> asyncio.Task[None]:
    """Make the SMS relay what the environment says, once the database answers."""
    relay = sms_relay_settings(settings)

    async def apply() -> None:
        while True:
            try:
                async with app.state.sessionmaker() as session:
                    await configure_sms_relay(session, relay, app.state.clock.now())
                return
            except Exception as exc:  # the database may not answer yet
                log.warning("SMS relay not configured yet: %s", type(exc).__name__)
                await asyncio.sleep(5)

    return asyncio.create_task(apply())


def _start_webhooks(app: FastAPI, settings: Settings, started: AsyncExitStack) -> None:
    """Webhook delivery, off the request path: woken by the stream's LISTEN connection
    whenever any process commits an event, and by its own timer for retries."""
    if not settings.webhook_delivery:
        return
    dispatcher = WebhookDispatcher(
        # Its claims are session-level advisory locks: straight to PostgreSQL, never through
        # a transaction pooler (HALLQ_LISTEN_DATABASE_URL).
        settings.listen_url,
        app.state.clock,
        poll_s=settings.webhook_poll_s,
        timeout_s=settings.webhook_timeout_s,
        backoff_s=settings.webhook_backoff_s,
        disable_after_s=settings.webhook_disable_after_s,
        connect_timeout_s=settings.db_connect_timeout_s,
    )
    app.state.hub.watch(dispatcher.wake)
    dispatcher.start()
    started.push_async_callback(dispatcher.close)
    app.state.webhooks = dispatcher


def _start_speech(app: FastAPI, settings: Settings, started: AsyncExitStack) -> None:
    """The speech engine that renders announcements as audio, with this process's cache."""
    speech = SpeechEngine(
        settings.speech_engine,
        timeout_s=settings.speech_timeout_s,
        concurrency=settings.speech_concurrency,
        cache_bytes=int(settings.speech_cache_mb * 2**20),
    )
    started.push_async_callback(speech.close)
    app.state.speech = speech
