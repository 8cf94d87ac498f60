# syntax=docker/dockerfile:1
# Multi-stage: build a wheel and a pinned virtualenv, then run it as a non-root user.
# The base is pinned to what CI tests (.ci/run: Python 3.12.1 with Debian 12's SQLite 3.40): an unpinned
# tag moves to new Python and Debian releases, and with them the SQLite that Python links.
ARG PYTHON_IMAGE=python:3.12.1-slim-bookworm
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY apis ./apis
COPY system_apis ./system_apis
COPY process_apis ./process_apis
COPY experience_apis ./experience_apis
COPY contracts ./contracts
COPY sandboxes ./sandboxes
RUN python -m venv /opt/stratum \
 && /opt/stratum/bin/pip install --upgrade pip \
 && /opt/stratum/bin/pip wheel --no-deps --wheel-dir /wheels . \
 && /opt/stratum/bin/pip install -c constraints.txt /wheels/*.whl

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/stratum/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STRATUM_HOST=0.0.0.0 \
    STRATUM_PORT=8000 \
    STRATUM_DATA_DIR=/var/lib/stratum
RUN useradd --system --uid 10001 --home-dir /var/lib/stratum --create-home stratum
COPY --from=build /opt/stratum /opt/stratum
USER stratum
WORKDIR /var/lib/stratum
# The embedded run database (SQLite) and the dev issuer's keys live here; keep it on a volume.
VOLUME ["/var/lib/stratum"]
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2).status != 200)"
# As built this is the embedded demo (dev issuer, sandboxes, SQLite). A real deployment sets
# STRATUM_PROFILE=production and the settings that profile demands (README.md, "Running in production"):
# STRATUM_OAUTH_ISSUER, STRATUM_OAUTH_TOKEN_URL, STRATUM_PROCESS_CLIENT, STRATUM_EXPERIENCE_CLIENT,
# STRATUM_MOUNT_SANDBOXES=false, STRATUM_REDIS_URL, STRATUM_WORKFLOWS__DATABASE_URL, and each vendor's
# BASE_URL (NetSuite: ACCOUNT and TIME_ZONE) and credentials; missing any, the container exits at once with
# status 2 and lists them all.
# Workflow workers run the same image with the command `stratum worker` (PostgreSQL and Redis required).
CMD ["stratum", "serve"]
