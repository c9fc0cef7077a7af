"""The realtime event bus (realtime/bus.py): after-commit publishing, two "processes" (two app
instances with their own listener and bus) on one database, over Redis and over NOTIFY,
interest gating (no round trip while nobody watches), trimming to the NOTIFY cap, filters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from spooled_backend.core.context import AuthContext
from spooled_backend.realtime.envelope import MAX_ENVELOPE_BYTES, Event, build_event
from spooled_backend.realtime.hub import Filters, Subscriber
from tests.conftest import Api, _api, make_settings
from tests.integration.jobs_support import claim, create_job
from tests.support import RedisServer


async def next_event(sub: Subscriber, kind: str, timeout: float = 5.0) -> Event:
    """The next event of type `kind` in `sub`'s queue (others are skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            event = await sub.queue.get()
            if event.type == kind:
                return event


async def register(api: Api, org_id: str, **auth_fields: Any) -> Subscriber:
    filters = auth_fields.pop("filters", Filters())
    sub = Subscriber(org_id, AuthContext(org_id, "k", **auth_fields), filters, "ws")
    await api.state.events.subscribe(sub)
    return sub


@pytest_asyncio.fixture(params=["redis", "notify"])
async def pair(
    request: pytest.FixtureRequest, db_url: str, redis_server: RedisServer
) -> AsyncIterator[tuple[Api, Api]]:
    """Two app instances on the same database: with Redis, or without (PostgreSQL NOTIFY)."""
    redis_url = redis_server.url if request.param == "redis" else None
    settings = make_settings(db_url, redis_url=redis_url)
    async for a in _api(settings, db_url):
        async for b in _api(settings, db_url):
            yield a, b


async def _enterprise_org(api: Api) -> tuple[str, dict[str, str]]:
    created = await api.create_org()
    org_id = created["organization"]["id"]
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE organizations SET plan_tier = 'enterprise' WHERE id = $1", org_id)
    return org_id, api.as_key(created["api_key"]["key"])


async def test_event_from_another_process_reaches_a_subscriber(pair: tuple[Api, Api]) -> None:
    a, b = pair
    org_id, headers = await _enterprise_org(a)
    sub = await register(a, org_id)
    # b learns of a's interest through the announcement a awaited when subscribing.
    async with asyncio.timeout(5):
        while not b.state.events.wanted(org_id):
            await asyncio.sleep(0.01)
    job_id = await create_job(b, headers, queue_name="emails")
    created = await next_event(sub, "JobCreated")
    assert created.data["job_id"] == job_id and created.data["queue_name"] == "emails"
    envelope = json.loads(created.text)
    assert envelope["type"] == "JobCreated" and "origin" not in envelope
    assert envelope["data"]["timestamp"].endswith("Z")
    [job] = await claim(b, headers, queue="emails")
    started = await next_event(sub, "JobStatusChange")
    assert (started.data["old_status"], started.data["new_status"]) == ("pending", "processing")
    resp = await b.client.post(
        f"/api/v1/jobs/{job_id}/complete",
        json={"worker_id": "w1", "lease_id": job["lease_id"], "result": {"ok": True}},
        headers=headers,
    )
    assert resp.status_code == 200, resp.text
    completed = await next_event(sub, "JobCompleted")
    assert completed.data["result"] == {"ok": True} and completed.data["duration_ms"] >= 0
    # Published once: the local subscriber of the producing process sees no echo either.
    local = await register(b, org_id)
    await create_job(b, headers, queue_name="emails")
    await next_event(local, "JobCreated")
    await asyncio.sleep(0.3)
    assert local.queue.empty()


async def test_nothing_leaves_while_nobody_watches(api: Api, tenant: dict[str, Any]) -> None:
    transport = api.state.events.transport
    assert transport is not None
    await create_job(api, tenant["headers"])
    assert not api.state.events.wanted(tenant["org_id"])
    assert not transport._outbox


async def test_events_wait_for_the_commit_and_die_with_a_rollback(
    api: Api, tenant: dict[str, Any]
) -> None:
    from spooled_backend.core import tenancy

    sub = await register(api, tenant["org_id"])
    bus = api.state.events
    for committed in (False, True):
        pending = tenancy.open_after_commit()
        bus.job_created(tenant["org_id"], f"j-{committed}", "q1", 0, "pending")
        assert sub.queue.empty()  # not before the commit
        tenancy.close_after_commit(pending, committed)
    assert [e.job_id for e in _drain(sub)] == ["j-True"]


def test_oversized_events_are_trimmed_under_the_notify_cap() -> None:
    big = build_event("o", "JobCompleted", {"job_id": "j", "queue_name": "q", "duration_ms": 1,
                                            "result": {"blob": "x" * 100_000}})
    assert len(big.text.encode()) <= MAX_ENVELOPE_BYTES
    assert big.data["result_truncated"] is True and "result" not in big.data
    failed = build_event("o", "JobFailed", {"job_id": "j", "queue_name": "q", "retry_count": 1,
                                            "error": "é" * 50_000})
    assert len(failed.text.encode()) <= MAX_ENVELOPE_BYTES
    assert failed.data["error_truncated"] is True and failed.data["job_id"] == "j"


async def test_scope_and_filters(api: Api, tenant: dict[str, Any]) -> None:
    org = tenant["org_id"]
    scoped = await register(api, org, queues=("emails",))
    by_job = await register(api, org, filters=Filters(job_id="j-1"))
    by_type = await register(api, org, filters=Filters(types=frozenset({"JobCompleted"})))
    bus = api.state.events
    bus.job_created(org, "j-1", "emails", 0, "pending")
    bus.job_created(org, "j-2", "reports", 0, "pending")
    bus.worker_heartbeat(org, "w-1", "healthy")
    bus.worker_registered(org, "w-2", "reports")
    bus.job_completed(org, "j-1", "emails", 5, None)
    seen = {
        name: [(e.type, e.job_id or e.data.get("worker_id")) for e in _drain(sub)]
        for name, sub in (("scoped", scoped), ("by_job", by_job), ("by_type", by_type))
    }
    assert seen["scoped"] == [("JobCreated", "j-1"), ("JobCompleted", "j-1"),
                              ("JobStatusChange", "j-1")]
    assert seen["by_job"] == [("JobCreated", "j-1"), ("JobCompleted", "j-1"),
                              ("JobStatusChange", "j-1")]
    assert seen["by_type"] == [("JobCompleted", "j-1")]


def _drain(sub: Subscriber) -> list[Event]:
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


async def test_a_full_queue_drops_the_subscriber_with_an_error(api: Api, tenant: dict[str, Any]) -> None:
    org = tenant["org_id"]
    sub = Subscriber(org, AuthContext(org, "k"), Filters(), "sse", queue_size=8)
    await api.state.events.subscribe(sub)
    for i in range(50):
        api.state.events.job_created(org, f"j-{i}", "q", 0, "pending")
    assert sub.overflowed
    [error] = _drain(sub)
    assert error.type == "Error" and "not reading" in error.data["message"]


async def test_openapi_documents_the_realtime_routes(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    for path in ("/api/v1/events", "/api/v1/events/jobs/{job_id}", "/api/v1/events/queues/{queue_name}"):
        content = spec["paths"][path]["get"]["responses"]["200"]["content"]
        assert list(content) == ["text/event-stream"], path
    assert "101" in spec["paths"]["/api/v1/ws"]["get"]["responses"]


async def test_queue_stats_are_published_for_watched_organizations_on_change(
    api: Api, tenant: dict[str, Any]
) -> None:
    from spooled_backend.core import tenancy
    from spooled_backend.realtime.tasks import QueueStatsPublisher

    publisher = QueueStatsPublisher(api.state.events)

    async def run_once() -> int:
        pending = tenancy.open_after_commit()
        async with api.state.pool.acquire() as conn:
            count = await publisher.run(conn)
        tenancy.close_after_commit(pending, True)
        return count

    await create_job(api, tenant["headers"], queue_name="stats-q")
    assert await run_once() == 0  # nobody watches: not even a query
    sub = await register(api, tenant["org_id"], filters=Filters(types=frozenset({"QueueStats"})))
    await create_job(api, tenant["headers"], queue_name="stats-q")
    assert await run_once() == 1
    [stats] = _drain(sub)
    assert stats.data["queue_name"] == "stats-q"
    assert (stats.data["pending"], stats.data["processing"], stats.data["completed"],
            stats.data["failed"]) == (2, 0, 0, 0)
    assert await run_once() == 0  # unchanged: nothing new
    await claim(api, tenant["headers"], queue="stats-q")
    assert await run_once() == 1
    assert _drain(sub)[0].data["processing"] == 1
