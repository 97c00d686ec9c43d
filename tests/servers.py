"""Real uvicorn server processes on one database, for tests where several processes matter."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

from devtools.embedded_postgres import free_port
from devtools.servers import ServerProcess, spawn_server, wait_ready
from tests.helpers import ADMIN_TOKEN


def start_server(
    database_url: str,
    *,
    env: dict[str, str] | None = None,
    workers: int = 1,
    port: int | None = None,
) -> ServerProcess:
    port = port or free_port()
    log = tempfile.NamedTemporaryFile(prefix=f"hallq-{port}-", suffix=".log", delete=False)  # noqa: SIM115
    process = spawn_server(
        database_url,
        ADMIN_TOKEN,
        port=port,
        log=log,
        workers=workers,
        # No housekeeping round unless a test asks (alerts add events to the history).
        env={"HALLQ_ALERTS_INTERVAL_S": "0", **(env or {})},
        # Longer than httpx's 5 s keep-alive: the server closing an idle connection just as the
        # client reuses it would fail a request with ReadError.
        extra_args=["--timeout-keep-alive", "30"],
    )
    return ServerProcess(port=port, process=process, log=log)


@contextlib.contextmanager
def running_servers(
    database_url: str, n: int = 2, *, env: dict[str, str] | None = None, workers: int = 1
) -> Iterator[list[ServerProcess]]:
    """Start `n` uvicorn processes on one database; stop them (and show their logs on failure)."""
    servers = [start_server(database_url, env=env, workers=workers) for _ in range(n)]
    try:
        for server in servers:
            wait_ready(server)
        yield servers
    except BaseException:
        for server in servers:  # the servers' side of a failure, in the test's output
            print(f"--- server on port {server.port} ---\n{server.output()[-6000:]}")
        raise
    finally:
        for server in servers:
            server.stop()
            server.log.close()
            with contextlib.suppress(OSError):
                os.unlink(server.log.name)
