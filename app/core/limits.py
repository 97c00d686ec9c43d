"""Request guards for every HTTP request: a body size limit and the security headers the API's
responses carry (the pages add their own Content-Security-Policy, see app.web)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PROBLEM_JSON, Problem

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class BodyTooLarge(Exception):
    pass


def _problem_413(limit: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    problem = Problem(
        413,
        "body-too-large",
        f"the request body is larger than {limit} bytes",
        title="Content Too Large",
    )
    body = json.dumps(problem.body()).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *SECURITY_HEADERS,
    ]
    return headers, body


class RequestGuardMiddleware:
    """Refuses bodies over `max_body_bytes` with 413, whether announced by Content-Length or
    streamed in chunks, before the application reads them; adds security headers."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await self._refuse(send)
                return
        received = 0
        too_large = False
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal replaced
            if too_large:
                # Whatever the application made of the cut-off body, the answer is 413.
                if not replaced:
                    replaced = True
                    await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            if not replaced:
                replaced = True
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        headers, body = _problem_413(self.max_body_bytes)
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
