"""hallq server processes for the benchmark, and the setup of the branches it measures.

Each server is `uvicorn --factory app.main:create_app` (devtools/servers.py) on its own free
loopback port, with `workers` worker processes (default 1: see docs/performance.md for why). The
setup goes through the public API with the admin token, like an operator would, and hands out
one token per kiosk, screen group and clerk.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from devtools.embedded_postgres import free_port
from devtools.servers import ServerProcess, spawn_server, wait_ready

SERVICES: dict[str, dict[str, Any]] = {
    "a": {"name": "综合业务 General", "prefix": "A", "target_wait_s": 600, "max_wait_s": 1800},
    "b": {"name": "缴费充值 Payments", "prefix": "B", "target_wait_s": 600, "max_wait_s": 1800},
    "v": {"name": "VIP", "prefix": "V", "target_wait_s": 180, "max_wait_s": 600},
}


class Server(ServerProcess):
    """A benchmarked server: a hallq server process, with its log kept in the results."""

    def worker_processes(self) -> list[psutil.Process]:
        """The processes that serve requests: uvicorn itself with one worker, else its
        worker children (the supervisor only watches them)."""
        parent = psutil.Process(self.process.pid)
        children = parent.children()
        return children or [parent]

    def rss_mb(self) -> list[float]:
        return [p.memory_info().rss / 2**20 for p in self.worker_processes()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        super().stop(sig, timeout)
        self.log.close()


def start_servers(
    database_url: str,
    admin_token: str,
    *,
    count: int,
    workers: int,
    log_dir: Path,
    env: dict[str, str] | None = None,
) -> list[Server]:
    servers = []
    for _ in range(count):
        port = free_port()
        log = (log_dir / f"server-{port}.log").open("wb")
        process = spawn_server(
            database_url, admin_token, port=port, log=log, workers=workers, env=env
        )
        servers.append(Server(port, process, log))
    for server in servers:
        wait_ready(server, timeout=60)
    return servers


# -- branches ----------------------------------------------------------------------------------


@dataclass
class Branch:
    code: str
    kiosk: str = ""
    kiosk_id: str = ""
    displays: list[str] = field(default_factory=list)
    clerks: dict[str, str] = field(default_factory=dict)  # counter code -> clerk token
    clerk_id: str = ""


class Setup:
    """Configures branches through the API (admin token), against the first server."""

    def __init__(self, base_url: str, admin_token: str) -> None:
        self.client = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=30
        )

    def close(self) -> None:
        self.client.close()

    def _ok(self, response: httpx.Response) -> Any:
        if response.status_code >= 300:
            raise RuntimeError(
                f"{response.request.method} {response.request.url.path}: "
                f"{response.status_code} {response.text[:500]}"
            )
        return response.json() if response.content else None

    def token(self, role: str, branch: str, staff: str | None = None) -> tuple[str, str]:
        body: dict[str, Any] = {"role": role, "branch": branch, "label": f"bench {role}"}
        if staff is not None:
            body["staff"] = staff
        created = self._ok(self.client.post("/api/v1/tokens", json=body))
        return str(created["id"]), str(created["token"])

    def branch(
        self,
        code: str,
        counters: dict[str, list[str]],
        *,
        open_counters: bool,
        displays: int = 0,
    ) -> Branch:
        base = f"/api/v1/branches/{code}"
        self._ok(self.client.put(base, json={"name": f"Bench {code}", "timezone": "Asia/Shanghai"}))
        for service, body in SERVICES.items():
            self._ok(self.client.put(f"{base}/services/{service}", json=body))
        branch = Branch(code)
        branch.kiosk_id, branch.kiosk = self.token("kiosk", code)
        for _ in range(displays):
            branch.displays.append(self.token("display", code)[1])
        for counter, profile in counters.items():
            self._ok(
                self.client.put(
                    f"{base}/counters/{counter}", json={"name": counter, "services": profile}
                )
            )
            if open_counters:
                staff = f"s{counter}"
                self._ok(
                    self.client.put(f"{base}/staff/{staff}", json={"name": staff, "role": "clerk"})
                )
                token_id, token = self.token("clerk", code, staff)
                branch.clerk_id = branch.clerk_id or token_id
                branch.clerks[counter] = token
                self._ok(
                    self.client.post(
                        f"{base}/counters/{counter}/open",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                )
        return branch


def profiles(count: int) -> dict[str, list[str]]:
    """`count` counters: every fifth a VIP counter (helping general business), the others
    general or payments first, each helping the other (忙闲调剂)."""
    result = {}
    for i in range(1, count + 1):
        if i % 5 == 0:
            result[str(i)] = ["v", "a"]
        elif i % 2 == 0:
            result[str(i)] = ["b", "a"]
        else:
            result[str(i)] = ["a", "b"]
    return result
