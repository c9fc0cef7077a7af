# syntax=docker/dockerfile:1
# Spooled backend: multi-stage image (build a venv, copy it into a slim non-root runtime).
#   docker build -t spooled-backend:latest .
#   docker run -p 8080:8080 -p 9090:9090 -p 50051:50051 -e DATABASE_URL=... spooled-backend:latest
# scripts/check-dockerfile runs the build stage's steps as plain shell (no Docker engine needed).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/spooled
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv "$VIRTUAL_ENV" \
 && "$VIRTUAL_ENV/bin/pip" install --no-cache-dir ".[otel]" \
 && "$VIRTUAL_ENV/bin/spooled-backend" --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
# curl: the deployment guide's compose health check runs `curl -f http://localhost:8080/health`.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 spooled \
 && useradd --system --uid 10001 --gid spooled --home-dir /var/lib/spooled-backend --create-home spooled
COPY --from=build /opt/spooled /opt/spooled
ENV PATH=/opt/spooled/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8080 \
    METRICS_PORT=9090 \
    GRPC_PORT=50051 \
    JSON_LOGS=true \
    SPOOLED_DATA_DIR=/var/lib/spooled-backend
USER 10001:10001
WORKDIR /var/lib/spooled-backend
EXPOSE 8080 9090 50051
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
  CMD ["sh", "-c", "curl -fsS \"http://127.0.0.1:${PORT}/health\" > /dev/null || exit 1"]
ENTRYPOINT ["spooled-backend"]
CMD ["serve"]
