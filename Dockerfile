# syntax=docker/dockerfile:1
# hallq production image: slim, non-root, no build tools in the final stage.
# Migrations are a separate step:   docker run --rm -e DATABASE_URL=... hallq alembic upgrade head
# The service:                      docker run -e DATABASE_URL=... -e HALLQ_ADMIN_TOKEN=... -p 8000:8000 hallq

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml ./
# Only the runtime dependencies (not the embedded PostgreSQL, not the test tools): the image
# always talks to an external PostgreSQL through DATABASE_URL.
RUN python -m venv /opt/venv \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml','rb'))['project']['dependencies']))" > requirements.txt \
 && /opt/venv/bin/pip install -r requirements.txt

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HALLQ_WORKERS=2 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/hallq-prometheus
# espeak-ng renders the announcements as audio (docs/announcements.md); its voices come in the
# Debian package, nothing is downloaded at run time. Not pinned (DL3008): Debian's security
# updates replace the version a pin would name.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 hallq \
 && useradd --system --uid 10001 --gid hallq --home-dir /app --shell /usr/sbin/nologin hallq
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root alembic.ini ./
COPY --chown=root:root migrations ./migrations
COPY --chown=root:root app ./app
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
# Several uvicorn workers per container; --proxy-headers because it runs behind a proxy.
# The workers share HTTP request metrics through PROMETHEUS_MULTIPROC_DIR (docs/metrics.md),
# emptied at each start.
CMD ["sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec uvicorn --factory app.main:create_app --host 0.0.0.0 --port 8000 --workers \"$HALLQ_WORKERS\" --proxy-headers --forwarded-allow-ips='*' --no-access-log --ws-per-message-deflate false --timeout-graceful-shutdown 20"]
