"""OpenTelemetry (the `otel` extra): a job's spans share one trace from enqueue to completion;
HTTP server spans named by route template; database spans; nothing when disabled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spooled_backend.observability import tracing
from tests.conftest import Api, _api, make_settings
from tests.integration.jobs_support import ack, claim, create_job


@pytest_asyncio.fixture
async def traced(db_url: str) -> AsyncIterator[tuple[Api, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing(None, "spooled-test", "0", exporter=exporter)
    try:
        async for api in _api(make_settings(db_url), db_url):
            yield api, exporter
    finally:
        tracing.shutdown_tracing()


async def _tenant(api: Api) -> dict[str, str]:
    created = await api.create_org()
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET plan_tier = 'enterprise' WHERE id = $1",
                        created["organization"]["id"])
    return api.as_key(created["api_key"]["key"])


async def test_job_spans_share_one_trace(traced: tuple[Api, InMemorySpanExporter]) -> None:
    api, exporter = traced
    h = await _tenant(api)
    job_id = await create_job(api, h, queue_name="traced")
    other = await create_job(api, h, queue_name="traced", max_retries=0)
    jobs = {j["id"]: j for j in await claim(api, h, queue="traced", limit=2)}
    assert (await ack(api, h, job_id, "complete", worker_id="w1",
                      lease_id=jobs[job_id]["lease_id"])).status_code == 200
    assert (await ack(api, h, other, "fail", worker_id="w1",
                      lease_id=jobs[other]["lease_id"])).status_code == 200
    spans = exporter.get_finished_spans()

    def of(job: str) -> dict[str, Any]:
        return {s.name: s for s in spans if s.attributes.get("spooled.job_id") == job}

    mine = of(job_id)
    assert set(mine) == {"job.enqueue", "job.claim", "job.complete"}
    assert len({s.context.trace_id for s in mine.values()}) == 1
    enqueue = mine["job.enqueue"]
    # the enqueue span is a child of the POST /api/v1/jobs server span
    http = {s.context.span_id: s for s in spans if s.name.startswith("POST ")}
    assert http[enqueue.parent.span_id].name == "POST /api/v1/jobs"
    assert mine["job.claim"].parent.span_id == enqueue.context.span_id
    assert mine["job.complete"].parent.span_id == enqueue.context.span_id
    # … and linked to the claim / complete requests, which have traces of their own
    claim_link = mine["job.claim"].links[0].context
    assert http[claim_link.span_id].name == "POST /api/v1/jobs/claim"
    assert claim_link.trace_id != enqueue.context.trace_id
    assert mine["job.complete"].attributes["spooled.worker_id"] == "w1"
    failed = of(other)
    assert set(failed) == {"job.enqueue", "job.claim", "job.fail"}
    assert len({s.context.trace_id for s in failed.values()}) == 1
    assert failed["job.fail"].attributes["spooled.new_status"] == "deadletter"
    assert failed["job.enqueue"].context.trace_id != enqueue.context.trace_id
    assert any(s.attributes.get("db.system") == "postgresql" for s in spans)
    assert any(s.name == "POST /api/v1/jobs/{job_id}/complete" for s in spans), [s.name for s in spans if s.kind.name == "SERVER"]


async def test_bulk_enqueue_shares_one_trace(traced: tuple[Api, InMemorySpanExporter]) -> None:
    api, exporter = traced
    h = await _tenant(api)
    resp = await api.client.post("/api/v1/jobs/bulk", headers=h, json={
        "queue_name": "bulk", "jobs": [{"payload": {"i": i}} for i in range(3)]})
    assert resp.status_code in (200, 201), resp.text
    ids = [r["job_id"] for r in resp.json()["succeeded"]]
    await claim(api, h, queue="bulk", limit=3)
    claims = [s for s in exporter.get_finished_spans() if s.name == "job.claim"]
    assert {s.attributes["spooled.job_id"] for s in claims} == set(ids)
    [enqueue] = [s for s in exporter.get_finished_spans() if s.name == "job.enqueue"]
    assert {s.context.trace_id for s in claims} == {enqueue.context.trace_id}


async def test_disabled_writes_no_traceparent(api: Api, tenant: dict[str, Any]) -> None:
    assert not tracing.ENABLED
    job_id = await create_job(api, tenant["headers"])
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT traceparent FROM jobs WHERE id = $1", job_id) is None


def test_missing_endpoint_keeps_tracing_off() -> None:
    assert tracing.configure_tracing(None, "x") is False
    assert tracing.asgi_middleware() is None
    with tracing.server_span("grpc.Claim") as span:
        assert span is None
