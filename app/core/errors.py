"""RFC 9457 problem details for every error the API returns.

Handlers turn our own `Problem` exceptions, Starlette's HTTP errors (404, 405...), request
validation errors and database outages into `application/problem+json`. Nothing a client sends
should reach the last-resort 500 handler; if something does, the client learns nothing internal.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("hallq.errors")

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "/problems/"


class Problem(Exception):
    """An error the client should see. `slug` names the problem type (`/problems/<slug>`)."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", f"{what} does not exist", title="Not found")


def conflict(slug: str, detail: str, **extensions: Any) -> Problem:
    return Problem(409, slug, detail, **extensions)


def unprocessable(slug: str, detail: str, **extensions: Any) -> Problem:
    return Problem(422, slug, detail, **extensions)


# The OpenAPI description of a problem body, for the `responses` of routes and routers: every
# error the API returns has this shape (extensions such as `errors` may follow).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}

_PROBLEM_DESCRIPTIONS = {
    400: "the request body is not valid JSON",
    401: "no valid bearer token",
    403: "the token's role or branch may not do this",
    404: "no such branch, business type, counter, staff member, ticket or token",
    409: "the request conflicts with the current state",
    413: "the request body is too large",
    422: "the request is not valid",
    429: "too many requests; retry after Retry-After seconds",
    503: "the database is not reachable right now; retry after Retry-After seconds",
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for routes that may answer these statuses with a problem+json body."""
    return {
        status: {
            "description": _PROBLEM_DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
        for status in statuses
    }


# What every authenticated API route may answer, besides its own success and conflicts.
API_PROBLEMS = (400, 401, 403, 404, 413, 422, 503)


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(request.url.path if request is not None else None),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def _where_and_why(loc: list[str], msg: str) -> str:
    """`body.special_hours: ranges ... overlap`: the field and pydantic's message (which names
    the rule, not the input), so a form can show the detail as it is."""
    return f"{'.'.join(loc)}: {msg.removeprefix('Value error, ')}"


def _validation_problem(exc: RequestValidationError) -> Problem:
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return Problem(
                400,
                "invalid-json",
                "the request body is not valid JSON",
                title="Malformed request body",
            )
        # Never echo the input back: it may hold a phone number or a token.
        loc = [str(part) for part in err.get("loc", ())]
        errors.append({"loc": loc, "msg": err.get("msg", "invalid"), "type": err.get("type")})
    where = "; ".join(_where_and_why(e["loc"], e["msg"]) for e in errors[:5]) or "request"
    return Problem(
        422,
        "validation-error",
        f"the request is not valid: {where}",
        title="Invalid request",
        errors=errors,
    )


_DB_UNAVAILABLE = Problem(
    503,
    "database-unavailable",
    "the database is not reachable right now; retry shortly",
    title="Service unavailable",
    headers={"Retry-After": "2"},
)

# PostgreSQL text cannot hold a NUL character (SQLSTATE 22021; 22P05: not representable in the
# database's encoding). A name or comment with one is the client's error, not a 500.
_UNSTORABLE_TEXT = Problem(
    422,
    "invalid-text",
    "the request contains a character that cannot be stored (e.g. NUL, \\u0000)",
    title="Invalid request",
)


def _sqlstate(exc: BaseException) -> object:
    """The SQLSTATE of the database error SQLAlchemy wrapped, if any."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def _is_unstorable_text(exc: BaseException) -> bool:
    return _sqlstate(exc) in {"22021", "22P05"}


# deadlock_detected, serialization_failure: PostgreSQL undid the transaction because it ran
# into a simultaneous one. Nothing was changed; the same request again will go through.
_COLLIDED = Problem(
    409,
    "concurrent-change",
    "the request ran into a simultaneous change and was undone; nothing changed, retry it",
    title="Conflict",
)


def _collided(exc: BaseException) -> bool:
    return _sqlstate(exc) in {"40P01", "40001"}


def is_connection_error(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OSError | ConnectionError):
        return True
    # SQLAlchemy wraps asyncpg's errors (sometimes twice): look down the chain of causes.
    seen: BaseException | None = getattr(exc, "orig", None) or exc
    for _ in range(4):
        if seen is None:
            break
        if isinstance(seen, _CONNECTION_ERRORS):
            return True
        sqlstate = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(sqlstate, str) and (
            sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# The server's errors carry their SQLSTATE (below); asyncpg's own client errors (connection
# closed, another operation running) have none, as SQLAlchemy's InterfaceError above counts them.
_CONNECTION_ERRORS = (asyncpg.InterfaceError,)
# Class 08 (connection exceptions) and: admin_shutdown, crash_shutdown, cannot_connect_now
# (starting up or shutting down), too_many_connections.
_UNAVAILABLE_SQLSTATES = {"57P01", "57P02", "57P03", "53300"}


def install_error_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
        if status == 404 and detail == "Not Found":
            detail = f"no such resource: {request.url.path}"
        elif status == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        slug = HTTPStatus(status).phrase.lower().replace(" ", "-")
        problem = Problem(status, slug, detail, headers=dict(exc.headers or {}))
        return problem_response(problem, request)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(_validation_problem(exc), request)

    async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
        if is_connection_error(exc):
            logger.warning("database unavailable: %s", type(exc).__name__)
            return problem_response(_DB_UNAVAILABLE, request)
        if _is_unstorable_text(exc):
            return problem_response(_UNSTORABLE_TEXT, request)
        if _collided(exc):
            logger.warning("transaction undone by the database: %s", type(exc).__name__)
            return problem_response(_COLLIDED, request)
        return await on_unexpected(request, exc)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        if is_connection_error(exc):
            logger.warning("database unavailable: %s", type(exc).__name__)
            return problem_response(_DB_UNAVAILABLE, request)
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        problem = Problem(
            500, "internal-error", "the server failed to handle the request; it has been logged"
        )
        return problem_response(problem, request)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(DBAPIError, on_database_error)
    app.add_exception_handler(PoolTimeoutError, on_database_error)
    app.add_exception_handler(OSError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected)
