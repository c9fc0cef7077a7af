"""Every metric named by the alert rules and the Grafana dashboard exists in a live /metrics
scrape of the server (the guide's names, CONTRACT §16), with the labels they group by."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from spooled_backend.scheduler import recovery
from tests.conftest import Api
from tests.integration.jobs_support import ack, claim, create_job

ROOT = Path(__file__).resolve().parents[2]
METRIC = re.compile(r"\bspooled_[a-z_]+")
GUIDE_NAMES = {
    "spooled_jobs_pending", "spooled_jobs_processing", "spooled_job_max_age_seconds",
    "spooled_jobs_enqueued_total", "spooled_jobs_completed_total", "spooled_jobs_failed_total",
    "spooled_jobs_retried_total", "spooled_jobs_deadlettered_total", "spooled_workers_active",
    "spooled_workers_healthy", "spooled_api_requests_total",
    "spooled_api_request_duration_seconds_bucket", "spooled_job_duration_seconds_bucket",
    "spooled_database_connections_active", "spooled_redis_operations_total",
}


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((ROOT / "docker/prometheus/spooled-rules.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    dash = json.loads((ROOT / "docker/grafana/dashboards/spooled-overview.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


async def test_rules_and_dashboard_metrics_exist_in_a_live_scrape(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    ok = await create_job(api, h, queue_name="names")
    bad = await create_job(api, h, queue_name="names", max_retries=0)
    leases = {j["id"]: j["lease_id"] for j in await claim(api, h, queue="names", limit=2)}
    await ack(api, h, ok, "complete", worker_id="w1", lease_id=leases[ok])
    await ack(api, h, bad, "fail", worker_id="w1", lease_id=leases[bad])
    assert (await api.client.post(f"/api/v1/jobs/{bad}/retry", headers=h)).status_code == 200
    async with api.state.pool.acquire() as c:
        await recovery.refresh_gauges(c)
    text = (await api.client.get("/metrics")).text
    samples = {s.name: s.labels for f in text_string_to_metric_families(text) for s in f.samples}
    named = {m for e in rule_exprs() + dashboard_exprs() for m in METRIC.findall(e)}
    assert len(named) >= 12
    assert named - samples.keys() == set(), "named by rules/dashboard but not exported"
    assert GUIDE_NAMES - samples.keys() == set()
    # the labels the rules and panels group by are there
    assert {"queue", "organization"} <= samples["spooled_jobs_failed_total"].keys()
    assert {"method", "route", "status"} <= samples["spooled_api_requests_total"].keys()
    assert "le" in samples["spooled_api_request_duration_seconds_bucket"]
