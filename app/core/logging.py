"""Logging: one line per request, with no query string (websocket tokens travel there) and no
bodies (phone numbers travel there)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("hallq.access")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    """A decoded URL path may hold newlines (`%0A`): escape them, so that a request cannot
    forge a log line."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class StripQueryStrings(logging.Filter):
    """uvicorn logs each websocket handshake with its query string, where browsers carry the
    token (`?token=`): keep the path, drop the query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(
            isinstance(arg, str) and "?" in arg for arg in record.args
        ):
            record.args = tuple(
                arg.split("?", 1)[0] + "?…" if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args
            )
        return True


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # uvicorn's own access log prints query strings; ours replaces it.
    logging.getLogger("uvicorn.access").disabled = True
    # httpx logs every request it sends (webhook deliveries) with its URL at INFO: a line per
    # event, and a URL may carry credentials. Deliveries are in /deliveries and the metrics.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, StripQueryStrings) for f in error_log.filters):
        error_log.addFilter(StripQueryStrings())


# Called once a request is answered: (scope, status, seconds).
RequestObserver = Callable[[Scope, int, float], None]


class StatusRecorder:
    """An ASGI `send` that remembers the response status (500 if none was ever started)."""

    def __init__(self, send: Send) -> None:
        self.status = 500
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


class RequestObserverMiddleware:
    """Times every HTTP request and hands (scope, status, seconds) to each observer: the access
    log below, the HTTP metrics (app.metrics.http). One wrapper for all of them."""

    def __init__(self, app: ASGIApp, observers: Sequence[RequestObserver]) -> None:
        self.app = app
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        response = StatusRecorder(send)
        try:
            await self.app(scope, receive, response)
        finally:
            seconds = time.perf_counter() - started
            for observe in self.observers:
                observe(scope, response.status, seconds)


def log_request(scope: Scope, status: int, seconds: float) -> None:
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(
            "%s %s %d %.1fms",
            scope["method"][:16],
            printable(scope["path"][:500]),
            status,
            seconds * 1000,
        )
