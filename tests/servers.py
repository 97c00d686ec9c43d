"""Real uvicorn server processes on one database, for tests where several processes matter."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from devtools.embedded_postgres import free_port
from devtools.run import uvicorn_argv
from tests.db import ROOT
from tests.helpers import ADMIN_TOKEN


@dataclass
class ServerProcess:
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        self.stop(signal.SIGKILL)


def start_server(
    database_url: str,
    *,
    env: dict[str, str] | None = None,
    workers: int = 1,
    port: int | None = None,
) -> ServerProcess:
    port = port or free_port()
    log = tempfile.NamedTemporaryFile(prefix=f"hallq-{port}-", suffix=".log", delete=False)  # noqa: SIM115
    process_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HALLQ_ADMIN_TOKEN": ADMIN_TOKEN,
        # Alerts only where a test asks for them (they add events to the history).
        "HALLQ_ALERTS_INTERVAL_S": "0",
        **(env or {}),
    }
    argv = [
        *uvicorn_argv("127.0.0.1", port, workers, graceful_s=5),
        # Longer than httpx's 5 s keep-alive: the server closing an idle connection just as the
        # client reuses it would fail a request with ReadError.
        "--timeout-keep-alive", "30",
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, env=process_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    return ServerProcess(port=port, process=process, log=log)


def wait_ready(server: ServerProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server on {server.port} exited:\n{server.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"server on {server.port} not ready after {timeout}s:\n{server.output()}")


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
