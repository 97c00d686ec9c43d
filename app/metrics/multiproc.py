"""Setting up prometheus_client's multiprocess mode for `uvicorn --workers N` (N > 1).

The workers of one server share a directory (`PROMETHEUS_MULTIPROC_DIR`) where each writes its
HTTP request counters; whichever worker answers a scrape adds them up. The variable must be in
the environment before the workers start (prometheus_client reads it on import), and the
directory must start empty: leftovers from an earlier run would be counted again.
No prometheus_client import here: this runs in the launcher, not in the workers.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess_dir(env: MutableMapping[str, str], workers: int) -> Path | None:
    """For several workers, make sure `env` names an empty metrics directory: a given one is
    emptied, else a temporary one is created. Returns the directory to remove after the
    server stops (None if there is nothing to remove)."""
    if workers <= 1:
        return None
    given = env.get(MULTIPROC_ENV)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return None
    created = Path(tempfile.mkdtemp(prefix="hallq-prometheus-"))
    env[MULTIPROC_ENV] = str(created)
    return created


def remove_multiprocess_dir(path: Path | None) -> None:
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
