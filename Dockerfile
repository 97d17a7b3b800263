# syntax=docker/dockerfile:1
# Build: the locked environment into /app/.venv. Run: a slim image, non-root, `ekms serve`.
#
# The image binds REST and gRPC on 0.0.0.0 (a container is reached through its interfaces), so
# `ekms serve` refuses to start with the auto-generated dev JWT secret: give it a real token
# source (EKMS_JWT_JWKS_URL or EKMS_JWT_PUBLIC_KEY_FILE, or EKMS_JWT_HS256_SECRET for a test).
# REST TLS (EKMS_HTTP_TLS_*) and gRPC TLS (EKMS_GRPC_TLS_*) are opt-in: without them both ports
# speak plaintext, which is only right behind a TLS-terminating mesh or on a trusted network.
# Metrics stay on 127.0.0.1:9464 unless EKMS_METRICS_HOST says otherwise (deploy/ sets it).
# Pinned: the exact Python patch release and Debian release, and an exact uv (bump them together
# with uv.lock; a digest pin, python:...@sha256:..., is stricter still where a registry mirror
# is at hand to read it from).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_VERSION=0.13.8
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# The server installs from this source tree (editable, as `uv sync` does), never as a wheel: it
# is not published as one (hatch_build.py). The client package, clients/python, is a workspace
# member: the server imports its generated ekms.v1 code. Runtime dependencies only.
COPY pyproject.toml uv.lock README.md hatch_build.py ./
COPY clients/python/pyproject.toml clients/python/README.md ./clients/python/
RUN uv sync --frozen --no-dev --no-install-workspace
COPY clients/python/src ./clients/python/src
COPY app ./app
COPY migrations ./migrations
COPY proto ./proto
RUN uv sync --frozen --no-dev

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 ekms \
 && useradd --system --uid 10001 --gid ekms --home-dir /app --shell /usr/sbin/nologin ekms
WORKDIR /app
COPY --from=build --chown=root:root /app /app
# The data directory (SQLite, local root key, dev secret) is private to the ekms user.
RUN install -d -m 0700 -o ekms -g ekms /var/lib/ekms
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    EKMS_DATA_DIR=/var/lib/ekms \
    EKMS_HTTP_HOST=0.0.0.0 \
    EKMS_GRPC_HOST=0.0.0.0
USER 10001:10001
# REST, gRPC, metrics (the last one only reachable once EKMS_METRICS_HOST is not loopback).
EXPOSE 8080 50051 9464
# GET /livez on EKMS_HTTP_PORT, over https when EKMS_HTTP_TLS_CERT_FILE is set (app/healthcheck.py).
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-m", "app.healthcheck"]
ENTRYPOINT ["ekms"]
CMD ["serve"]
