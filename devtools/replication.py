"""A primary and a streaming standby from the embedded PostgreSQL binaries, for the failover
test and its figure (B8, docs/operations.md): `pg_basebackup`, synchronous or asynchronous
replication, a hard stop of the primary and the standby's promotion."""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

from devtools.embedded_postgres import SUPERUSER, SYSTEM_USER, EmbeddedPostgres, postgres_bin_dir

STANDBY_NAME = "hallq_standby"


@dataclass
class ReplicatedPostgres:
    """`primary` streams to `standby`; `url(db)` names both, for a client that follows the
    read-write one (`target_session_attrs=read-write`)."""

    primary: EmbeddedPostgres
    standby: EmbeddedPostgres

    @classmethod
    def start(cls, root: Path, *, synchronous: bool) -> ReplicatedPostgres:
        settings = {
            "wal_level": "replica",
            "max_wal_senders": "5",
            # Speed for a throw-away server; the copy's safety is the standby's, not the disk's.
            "fsync": "off",
            "synchronous_commit": "on",
            "synchronous_standby_names": f"'{STANDBY_NAME}'" if synchronous else "''",
        }
        primary = EmbeddedPostgres(root / "primary", settings=settings, delete_on_stop=True)
        primary.start()
        conninfo = (
            f"host=127.0.0.1 port={primary.port} user={SUPERUSER} "
            f"password={primary.password} application_name={STANDBY_NAME}"
        )
        # Promoted, the standby has no standby of its own: it must not wait for one.
        standby_settings = {**settings, "synchronous_standby_names": "''", "hot_standby": "on"}
        standby = EmbeddedPostgres(
            root / "standby",
            settings={**standby_settings, "primary_conninfo": f"'{conninfo}'"},
            delete_on_stop=True,
        )
        standby.prepare_data_dir(primary.password)
        standby.run_as_owner(
            [
                str(postgres_bin_dir() / "pg_basebackup"),
                *("-D", str(standby.pgdata), "-X", "stream", "-c", "fast"),
                "-d",
                conninfo,
            ]
        )
        signal = standby.pgdata / "standby.signal"
        signal.touch()
        if os.geteuid() == 0:
            user = pwd.getpwnam(SYSTEM_USER)
            os.chown(signal, user.pw_uid, user.pw_gid)
        standby.start()
        return cls(primary, standby)

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        hosts = "&".join(f"host=127.0.0.1:{server.port}" for server in (self.primary, self.standby))
        return (
            f"{driver}://{SUPERUSER}:{self.primary.password}@/{database}"
            f"?{hosts}&target_session_attrs=read-write"
        )

    def crash_primary(self) -> None:
        """Stop the primary as a crash would: no checkpoint, no goodbye to the clients."""
        self.primary.pg_ctl("-w", "-t", "30", "-m", "immediate", "stop")

    def promote_standby(self) -> None:
        self.standby.pg_ctl("-w", "-t", "60", "promote")

    def stop(self) -> None:
        for server in (self.standby, self.primary):
            server.stop()
        shutil.rmtree(self.primary.data_dir.parent, ignore_errors=True)
