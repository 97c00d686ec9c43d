"""A real HTTP endpoint on loopback for webhook tests: uvicorn serving a small ASGI app in the
test's own event loop, recording every request it answers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn

from devtools.embedded_postgres import free_port


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    @property
    def event(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


Responder = Callable[[dict[str, str], bytes], Awaitable[int]]


async def answer_ok(_headers: dict[str, str], _body: bytes) -> int:
    return 204


class Receiver:
    """`respond` decides each answer's status (and may take its time); `received` lists the
    requests answered, in the order they were answered. `stop()` then `start()` takes the
    endpoint down and up again on the same port."""

    def __init__(self, respond: Responder = answer_ok) -> None:
        self.respond = respond
        self.received: list[Received] = []
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx, in order."""
        return [r for r in self.received if 200 <= r.status < 300]

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status = await self.respond(headers, body)
        self.received.append(Received(headers, body, status))
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def start(self) -> None:
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._server = self._task = None


@contextlib.asynccontextmanager
async def receiving(respond: Responder = answer_ok) -> AsyncIterator[Receiver]:
    receiver = Receiver(respond)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def wait_for(
    condition: Callable[[], bool], timeout: float = 20, what: str = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
