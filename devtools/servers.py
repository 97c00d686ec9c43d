"""hallq server processes outside the image: the uvicorn command line that `make run`, the tests
and the benchmark all run (the Dockerfile spells the same options out), and a server process on
a loopback port with its log, which the tests and the benchmark start and wait for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[1]

# The ASGI application: a factory, so that importing app.main builds nothing (uvicorn calls it
# with no arguments, once per worker process).
UVICORN_APP = "app.main:create_app"
# uvicorn options every hallq server runs with (make run, tests, bench; the Dockerfile spells
# them out). No permessage-deflate: stream messages are a few hundred bytes, and compressing
# each for each of a thousand screens cost a fifth of a server's CPU in the fan-out (B3).
UVICORN_OPTIONS = ["--factory", "--no-access-log", "--ws-per-message-deflate", "false"]


def uvicorn_argv(host: str, port: int | str, workers: int | str, graceful_s: int) -> list[str]:
    """The command line of one hallq server process (make run, the tests' and the bench's
    servers)."""
    return [
        sys.executable, "-m", "uvicorn", UVICORN_APP,
        "--host", host, "--port", str(port), "--workers", str(workers), *UVICORN_OPTIONS,
        "--timeout-graceful-shutdown", str(graceful_s),
    ]  # fmt: skip


def spawn_server(
    database_url: str,
    admin_token: str,
    *,
    port: int,
    log: IO[bytes],
    workers: int = 1,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start one hallq server on 127.0.0.1:`port` (our environment, `database_url`,
    `admin_token`, then `env`), its output in `log`; `wait_ready` waits for it."""
    process_env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "HALLQ_ADMIN_TOKEN": admin_token,
        **(env or {}),
    }
    argv = [*uvicorn_argv("127.0.0.1", port, workers, graceful_s=5), *extra_args]
    return subprocess.Popen(argv, env=process_env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


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
