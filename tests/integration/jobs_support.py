"""Helpers shared by the job test modules (test_jobs_*.py, test_loops.py, test_claim_concurrency.py)."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import httpx

from spooled_backend.organizations.service import create_api_key
from tests.conftest import Api

RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


async def create_job(api: Api, headers: dict[str, str], **body: Any) -> str:
    """POST /jobs with defaults (queue `q1`, payload `{"n": 1}`); returns the new id."""
    body.setdefault("queue_name", "q1")
    body.setdefault("payload", {"n": 1})
    resp = await api.client.post("/api/v1/jobs", json=body, headers=headers)
    assert resp.status_code == 201, resp.text
    job_id: str = resp.json()["id"]
    return job_id


async def claim(
    api: Api, headers: dict[str, str], queue: str = "q1", worker: str = "w1", limit: int = 1,
    lease: int = 30,
) -> list[dict[str, Any]]:
    resp = await api.client.post(
        "/api/v1/jobs/claim",
        json={"queue_name": queue, "worker_id": worker, "limit": limit, "lease_duration_secs": lease},
        headers=headers,
    )
    assert resp.status_code == 200, resp.text
    jobs: list[dict[str, Any]] = resp.json()["jobs"]
    return jobs


async def get_job(api: Api, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    resp = await api.client.get(f"/api/v1/jobs/{job_id}", headers=headers)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def ack(
    api: Api, headers: dict[str, str], job_id: str, action: str, **body: Any
) -> httpx.Response:
    """POST /jobs/{id}/{complete|fail|heartbeat} with the given body."""
    if action == "fail":
        body.setdefault("error", "boom")
    return await api.client.post(f"/api/v1/jobs/{job_id}/{action}", json=body, headers=headers)


def assert_error(
    resp: httpx.Response, status: int, code: str, detail_code: str | None = None
) -> dict[str, Any]:
    """The contract error body (CONTRACT §3.1): JSON `{code, message, details?}`."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = resp.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    if "details" in body:
        assert isinstance(body["details"], (list, dict))
        if isinstance(body["details"], list):
            for item in body["details"]:
                assert set(item) >= {"field", "message", "code"}, item
    if detail_code is not None:
        assert body["details"][0]["code"] == detail_code, body
    return body


async def table_fingerprint(pool: asyncpg.Pool) -> tuple[Any, ...]:
    """Everything a job endpoint could change, as one comparable value ("nothing stored changed")."""
    async with pool.acquire() as c:
        jobs = await c.fetchval(
            "SELECT md5(coalesce(string_agg(to_jsonb(j)::text, '|' ORDER BY id), '')) FROM jobs j"
        )
        history = await c.fetchval("SELECT count(*) FROM job_history")
        dlq = await c.fetchval("SELECT count(*) FROM dead_letter_queue")
        deps = await c.fetchval("SELECT count(*) FROM job_dependencies")
    return jobs, history, dlq, deps


async def scoped_key(api: Api, org_id: str, queues: list[str]) -> dict[str, str]:
    """A queue-scoped API key row inserted directly; returns its request headers."""
    async with api.state.pool.acquire() as c:
        raw, _ = await create_api_key(c, api.state.settings, org_id, "scoped", queues)
    return api.as_key(raw)


async def set_plan(api: Api, org_id: str, tier: str) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET plan_tier = $2 WHERE id = $1", org_id, tier)
