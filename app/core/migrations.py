"""Where hallq's Alembic migrations are, and the one Alembic configuration everything uses.

`alembic upgrade head` from the command line reads alembic.ini in the current directory. In
Python (make run, /readyz, the tests, the benchmark) the configuration comes from
`alembic_config()`, which finds alembic.ini and migrations/ beside the `app` package (the
repository, or /app in the image), whatever the current directory.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = ROOT / "alembic.ini"
MIGRATIONS_DIR = ROOT / "migrations"


def alembic_config(database_url: str | None = None, *, configure_logger: bool = False) -> Config:
    """Alembic's configuration for `database_url` (None: only the scripts are read, e.g. for
    the head revision). `configure_logger`: let migrations/env.py set up logging from
    alembic.ini (the command line's INFO lines); off, the caller's logging stays as it is."""
    if not ALEMBIC_INI.is_file() or not MIGRATIONS_DIR.is_dir():
        raise FileNotFoundError(
            f"hallq's migrations are not beside the app package: expected {ALEMBIC_INI} and "
            f"{MIGRATIONS_DIR}"
        )
    config = Config(str(ALEMBIC_INI))
    # Not relative to the current directory, as alembic.ini's own setting is: env.py imports app.
    config.set_main_option("prepend_sys_path", str(ROOT).replace("%", "%%"))
    if database_url is not None:
        config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = configure_logger
    return config


def upgrade(database_url: str, revision: str = "head", *, configure_logger: bool = False) -> None:
    """`alembic upgrade` of `database_url` to `revision`."""
    command.upgrade(alembic_config(database_url, configure_logger=configure_logger), revision)
