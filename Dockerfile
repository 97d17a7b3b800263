# syntax=docker/dockerfile:1
# Build: the locked environment into /app/.venv. Run: a slim image, non-root, `ekms serve`.
FROM python:3.11-slim AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY app ./app
COPY migrations ./migrations
COPY proto ./proto
RUN uv sync --frozen --no-dev

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 ekms \
 && useradd --system --uid 10001 --gid ekms --home-dir /app --shell /usr/sbin/nologin ekms
WORKDIR /app
COPY --from=build --chown=root:root /app /app
RUN mkdir -p /var/lib/ekms && chown ekms:ekms /var/lib/ekms
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    EKMS_DATA_DIR=/var/lib/ekms \
    EKMS_HTTP_HOST=0.0.0.0 \
    EKMS_GRPC_HOST=0.0.0.0
USER 10001:10001
EXPOSE 8080 50051
HEALTHCHECK --interval=30s --timeout=3s CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["ekms"]
CMD ["serve"]
