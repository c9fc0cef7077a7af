"""Prometheus metrics of CONTRACT §16 with their labels: queue (and organization behind a
setting), method / route template / status class on requests; bounded label sets."""

from __future__ import annotations

import itertools
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from spooled_backend.observability import metrics
from spooled_backend.scheduler import recovery
from tests.conftest import Api
from tests.integration.jobs_support import ack, claim, create_job

_n = itertools.count()


async def scrape(api: Api) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = await api.client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_job_counters_and_duration_by_queue(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    queue = f"mq{next(_n)}"
    before = await scrape(api)
    ok = await create_job(api, h, queue_name=queue)
    bad = await create_job(api, h, queue_name=queue, max_retries=0)
    jobs = await claim(api, h, queue=queue, limit=2)
    by_id = {j["id"]: j for j in jobs}
    await ack(api, h, ok, "complete", worker_id="w1", lease_id=by_id[ok]["lease_id"])
    await ack(api, h, bad, "fail", worker_id="w1", lease_id=by_id[bad]["lease_id"], error="boom")
    after = await scrape(api)
    labels = {"queue": queue, "organization": ""}
    for name, delta in [("spooled_jobs_enqueued_total", 2), ("spooled_jobs_completed_total", 1),
                        ("spooled_jobs_failed_total", 1), ("spooled_jobs_deadlettered_total", 1),
                        ("spooled_job_duration_seconds_count", 1)]:
        assert value(after, name, **labels) - value(before, name, **labels) == delta, name
    retry = await api.client.post(f"/api/v1/jobs/{bad}/retry", headers=h)
    assert retry.status_code == 200, retry.text
    assert value(await scrape(api), "spooled_jobs_retried_total", **labels) == 1


async def test_request_metrics_use_route_template_and_status_class(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    before = await scrape(api)
    missing = "00000000-0000-0000-0000-000000000000"
    for _ in range(3):
        assert (await api.client.get(f"/api/v1/jobs/{missing}", headers=h)).status_code == 404
    assert (await api.client.get("/no/such/path/123")).status_code == 404
    after = await scrape(api)
    tmpl = {"method": "GET", "route": "/api/v1/jobs/{job_id}", "status": "4xx"}
    assert value(after, "spooled_api_requests_total", **tmpl) - value(
        before, "spooled_api_requests_total", **tmpl) == 3
    unmatched = {"method": "GET", "route": "unmatched", "status": "4xx"}
    assert value(after, "spooled_api_requests_total", **unmatched) >= 1
    hist = {"method": "GET", "route": "/api/v1/jobs/{job_id}"}
    assert value(after, "spooled_api_request_duration_seconds_count", **hist) >= 3
    # no raw path or id ever becomes a label value
    assert not any(missing in str(key) or "/no/such" in str(key) for key in after)


async def test_queue_gauges_per_queue_and_cleared_when_empty(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    qa, qb = f"ga{next(_n)}", f"gb{next(_n)}"
    for _ in range(2):
        await create_job(api, h, queue_name=qa)
    job_b = await create_job(api, h, queue_name=qb)
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE jobs SET created_at = now() - interval '400 s' WHERE queue_name = $1", qa)
        await recovery.refresh_gauges(c)
    s = await scrape(api)
    assert value(s, "spooled_jobs_pending", queue=qa, organization="") == 2
    assert value(s, "spooled_jobs_pending", queue=qb, organization="") == 1
    assert 399 < value(s, "spooled_job_max_age_seconds", queue=qa, organization="") < 460
    [claimed] = await claim(api, h, queue=qb)
    assert claimed["id"] == job_b
    async with api.state.pool.acquire() as c:
        await recovery.refresh_gauges(c)
        s = await scrape(api)  # while `c` is checked out of the pool
    assert value(s, "spooled_jobs_pending", queue=qb, organization="") == 0
    assert value(s, "spooled_jobs_processing", queue=qb, organization="") == 1
    assert ("spooled_workers_healthy", frozenset()) in s
    assert value(s, "spooled_database_connections_active") >= 1


async def test_organization_label_behind_setting_and_label_cap(api: Api) -> None:
    try:
        metrics.configure(organization_label=True, max_queue_labels=len(metrics._Labels.seen) + 1)
        metrics.JOBS_ENQUEUED.inc(queue="capped-first", organization="org-a")
        metrics.JOBS_ENQUEUED.inc(queue="capped-second", organization="org-a")
        metrics.JOBS_ENQUEUED.inc(queue="capped-third", organization="org-b")
        s = await scrape(api)
        assert value(s, "spooled_jobs_enqueued_total", queue="capped-first", organization="org-a") == 1
        assert value(s, "spooled_jobs_enqueued_total", queue="_other", organization="org-a") == 1
        assert value(s, "spooled_jobs_enqueued_total", queue="_other", organization="org-b") == 1
        assert not any("capped-second" in str(k) or "capped-third" in str(k) for k in s)
    finally:
        metrics.configure()
