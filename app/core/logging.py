"""Logging: one line per request, with no query string (websocket tokens travel there) and no
bodies (phone numbers travel there); as text, or as JSON lines for a log shipper
(`HALLQ_LOG_FORMAT=json`)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("hallq.access")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# A ticket's code is the key to its public routes (SPEC §9): paths that carry one are logged
# with its first four characters only, enough to tell requests apart, not to use them.
_TICKET_CODE_IN_PATH = re.compile(r"^(/t/|/api/v1/public/tickets/)([^/]{1,4})[^/]*")


def redacted(path: str) -> str:
    return _TICKET_CODE_IN_PATH.sub(r"\1\2…", path)


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


# What an access-log record carries besides its message (`extra=`), for the JSON lines.
ACCESS_FIELDS = ("request_id", "method", "route", "branch", "status", "duration_ms")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the access fields where the
    record has them, and the exception's text. Never the query string or a body: the records
    are the same as in text form."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in ACCESS_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLineFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if log_format == "json":
        # uvicorn's own lines (start-up, errors) go through the same handler, as JSON too.
        uvicorn_log = logging.getLogger("uvicorn")
        uvicorn_log.handlers = [handler]
        uvicorn_log.propagate = False
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


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id_of(scope: Scope) -> str:
    """The caller's `X-Request-ID` when it is a plain token (a proxy's), else a new one."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given: str = bytes(value).decode("latin-1")
            if _REQUEST_ID.match(given):
                return given
            break
    return uuid.uuid4().hex[:16]


class StatusRecorder:
    """An ASGI `send` that remembers the response status (500 if none was ever started) and
    answers with the request's id (`X-Request-ID`)."""

    def __init__(self, send: Send, request_id: str) -> None:
        self.status = 500
        self._send = send
        self._request_id = request_id.encode()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message = {
                **message,
                "headers": [*message.get("headers", ()), (b"x-request-id", self._request_id)],
            }
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
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        response = StatusRecorder(send, request_id)
        try:
            await self.app(scope, receive, response)
        finally:
            seconds = time.perf_counter() - started
            for observe in self.observers:
                observe(scope, response.status, seconds)


def log_request(scope: Scope, status: int, seconds: float) -> None:
    if access_log.isEnabledFor(logging.INFO):
        method = scope["method"][:16]
        route = getattr(scope.get("route"), "path", None)  # the template, once routed
        branch = scope.get("path_params", {}).get("branch")
        access_log.info(
            "%s %s %d %.1fms",
            method,
            printable(redacted(scope["path"][:500])),
            status,
            seconds * 1000,
            extra={
                "request_id": scope.get("state", {}).get("request_id"),
                "method": method,
                "route": route,
                "branch": branch if isinstance(branch, str) else None,
                "status": status,
                "duration_ms": round(seconds * 1000, 1),
            },
        )
