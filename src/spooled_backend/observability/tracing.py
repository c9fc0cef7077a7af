"""OpenTelemetry tracing, the optional extra `pip install 'spooled-backend[otel]'`.

Enabled by `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP over gRPC, e.g. `http://localhost:4317`, the
docker-compose Jaeger); the service name is `OTEL_SERVICE_NAME` (default `spooled-backend`).
Spans: one server span per HTTP request (named `METHOD /route/{template}`), one per database
call (asyncpg instrumentation), and the job lifecycle — `job.enqueue`, `job.claim`, then
`job.complete` or `job.fail` — all in the trace of the request that enqueued the job: the
enqueue span's W3C `traceparent` is stored in `jobs.traceparent` and the claim and the
acknowledgement continue that trace (each also links to its own request's span). gRPC servicers
wrap their calls with `server_span` (the hook for when the gRPC server exists).

Disabled (the default, or the extra not installed) it costs one module-attribute check per call
site: `if tracing.ENABLED:` guards every hook, and nothing is imported.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import structlog

log = structlog.get_logger(__name__)

ENABLED = False
TRACER_NAME = "spooled_backend"
_provider: Any = None
_tracer: Any = None
_propagator: Any = None

SET_TRACEPARENT = "UPDATE jobs SET traceparent = $3 WHERE organization_id = $1 AND id = ANY($2::text[])"
GET_TRACEPARENTS = (
    "SELECT id, traceparent FROM jobs WHERE organization_id = $1 AND id = ANY($2::text[])"
)


def configure_tracing(
    endpoint: str | None, service_name: str, version: str = "", exporter: Any = None
) -> bool:
    """Turn tracing on when `endpoint` (or a test `exporter`) is given. Returns ENABLED.

    Logs a warning and stays off when the `otel` extra is missing.
    """
    global ENABLED, _provider, _tracer, _propagator
    if ENABLED or (endpoint is None and exporter is None):
        return ENABLED
    try:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        log.warning("OTEL_EXPORTER_OTLP_ENDPOINT is set but OpenTelemetry is not installed: "
                    "pip install 'spooled-backend[otel]'; tracing stays off")
        return False
    resource = Resource.create({"service.name": service_name, "service.version": version})
    provider = TracerProvider(resource=resource)
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = endpoint is not None and endpoint.startswith("http://")
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint,
                                                                        insecure=insecure)))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    AsyncPGInstrumentor().instrument(tracer_provider=provider)
    _provider, _propagator = provider, TraceContextTextMapPropagator()
    _tracer = provider.get_tracer(TRACER_NAME)
    ENABLED = True
    log.info("tracing enabled", endpoint=endpoint, service_name=service_name)
    return True


def shutdown_tracing() -> None:
    """Flush and stop (process exit, tests)."""
    global ENABLED, _provider, _tracer
    if not ENABLED:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    AsyncPGInstrumentor().uninstrument()
    _provider.shutdown()
    ENABLED, _provider, _tracer = False, None, None


def asgi_middleware() -> tuple[type, dict[str, Any]] | None:
    """(middleware class, options) for the HTTP server spans, or None when disabled."""
    if not ENABLED:
        return None
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    return OpenTelemetryMiddleware, {"tracer_provider": _provider,
                                     "exclude_spans": ["receive", "send"]}


def name_http_span(method: str, route: str | None) -> None:
    """Rename the current server span to `METHOD /route/{template}` once routing is known."""
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.update_name(f"{method} {route or 'unmatched'}")
        if route:
            span.set_attribute("http.route", route)


@contextlib.contextmanager
def server_span(name: str, **attributes: Any) -> Iterator[Any]:
    """A server span for a non-HTTP entry point (gRPC methods); a no-op when disabled."""
    if not ENABLED:
        yield None
        return
    from opentelemetry.trace import SpanKind

    with _tracer.start_as_current_span(name, kind=SpanKind.SERVER, attributes=attributes) as span:
        yield span


def _attrs(org_id: str, queue: str | None, job_id: str, **extra: Any) -> dict[str, Any]:
    out = {"spooled.organization_id": org_id, "spooled.job_id": job_id, **extra}
    if queue is not None:
        out["spooled.queue"] = queue
    return out


async def job_enqueued(conn: Any, org_id: str, queue: str, job_ids: Sequence[str]) -> None:
    """`job.enqueue` span(s) under the current request; their traceparent stored on the jobs.
    A bulk enqueue shares one span (and one trace) for all its jobs."""
    if not job_ids:
        return
    from opentelemetry import trace

    attrs = _attrs(org_id, queue, job_ids[0], **{"spooled.job_count": len(job_ids)})
    with _tracer.start_as_current_span("job.enqueue", kind=trace.SpanKind.PRODUCER,
                                       attributes=attrs):
        carrier: dict[str, str] = {}
        _propagator.inject(carrier)
        await conn.execute(SET_TRACEPARENT, org_id, list(job_ids), carrier.get("traceparent"))


async def _parents(conn: Any, org_id: str, job_ids: Sequence[str]) -> dict[str, Any]:
    rows = await conn.fetch(GET_TRACEPARENTS, org_id, list(job_ids))
    return {r["id"]: _propagator.extract({"traceparent": r["traceparent"]})
            for r in rows if r["traceparent"]}


def _span(name: str, parent: Any, attrs: dict[str, Any], start: datetime | None = None) -> None:
    """A finished span in the job's trace (`parent` context), linked to the current span."""
    from opentelemetry import trace

    current = trace.get_current_span().get_span_context()
    links = [trace.Link(current)] if current.is_valid else []
    start_ns = int(start.timestamp() * 1e9) if start is not None else None
    span = _tracer.start_span(name, context=parent, kind=trace.SpanKind.CONSUMER,
                              attributes=attrs, links=links, start_time=start_ns)
    span.end()


async def jobs_claimed(conn: Any, org_id: str, jobs: Sequence[dict[str, Any]], worker_id: str) -> None:
    """One `job.claim` span per claimed job, in the trace its enqueue started."""
    if not jobs:
        return
    parents = await _parents(conn, org_id, [j["id"] for j in jobs])
    for job in jobs:
        _span("job.claim", parents.get(job["id"]), _attrs(
            org_id, job.get("queue_name"), job["id"], **{
                "spooled.worker_id": worker_id, "spooled.attempt": job.get("retry_count", 0) + 1}))


async def job_finished(
    conn: Any, org_id: str, job_id: str, queue: str | None, outcome: str,
    started_at: datetime | None = None, **extra: Any,
) -> None:
    """`job.complete` / `job.fail` spanning the run (claim → acknowledgement)."""
    parents = await _parents(conn, org_id, [job_id])
    attrs = _attrs(org_id, queue, job_id, **{f"spooled.{k}": v for k, v in extra.items()
                                             if v is not None})
    _span(f"job.{outcome}", parents.get(job_id), attrs, start=started_at)
