"""PgBouncer (Debian's `pgbouncer`, installed by `.ci/run`) in transaction mode in front of a
test database, for tests/test_pooler.py."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import make_url

from devtools.embedded_postgres import free_port
from tests.browser import require

PGBOUNCER = Path(os.environ.get("HALLQ_PGBOUNCER", "/usr/sbin/pgbouncer"))


@contextlib.contextmanager
def pgbouncer(database_url: str) -> Iterator[str]:
    """Yields the URL of `database_url` through a PgBouncer in transaction mode."""
    if not PGBOUNCER.exists():
        require(f"no PgBouncer at {PGBOUNCER} (Debian/Ubuntu: `apt-get install pgbouncer`)")
    url = make_url(database_url)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hallq-pgbouncer-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # PgBouncer drops root for `nobody`, who must read its files
        ini = root / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"hallq = host={url.host} port={url.port or 5432} dbname={url.database} "
            f"user={url.username} password={url.password or ''}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            "auth_type = any\npool_mode = transaction\n"
            "max_client_conn = 400\ndefault_pool_size = 6\n"
            # asyncpg sends this one at start-up; PgBouncer 1.18 knows no others beyond the
            # usual (hallq sends no plan_cache_mode through a pooler: `server`).
            "ignore_startup_parameters = extra_float_digits\n"
        )
        ini.chmod(0o644)
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        process = subprocess.Popen(
            [str(PGBOUNCER), *user, str(ini)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            _wait_listening(port, process)
            yield url.set(host="127.0.0.1", port=port, database="hallq").render_as_string(
                hide_password=False
            )
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
            if process.stdout is not None:
                process.stdout.close()


def _wait_listening(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"PgBouncer exited: {output[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("PgBouncer did not listen within 10 s")
