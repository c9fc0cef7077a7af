"""GET /jobs filters, ordering and X-Has-More (CONTRACT §5, §7.6)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tests.conftest import Api
from tests.integration.jobs_support import assert_error, create_job


async def _ids(api: Api, h: dict[str, str], query: str) -> list[str]:
    resp = await api.client.get(f"/api/v1/jobs?{query}", headers=h)
    assert resp.status_code == 200, (query, resp.text)
    return [j["id"] for j in resp.json()]


async def _sql(api: Api, sql: str, *args: Any) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute(sql, *args)


async def test_filters(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    email = await create_job(api, h, queue_name="Mail.Out", payload={"job_type": "SendEmail"},
                             tags=["urgent", "x", "customer:42 / vip"])
    report = await create_job(api, h, queue_name="reports", payload={"job_type": "build_report"},
                              tags={"urgent": True})
    odd = await create_job(api, h, queue_name="reports", payload={"job_type": 5})
    plain = await create_job(api, h, queue_name="misc", payload=[1, 2])
    await _sql(api, "UPDATE jobs SET status = 'failed' WHERE id = $1", odd)
    await _sql(api, "UPDATE jobs SET status = 'deadletter' WHERE id = $1", plain)

    assert set(await _ids(api, h, "queue_name=reports")) == {report, odd}
    assert set(await _ids(api, h, "queue=reports")) == {report, odd}
    assert await _ids(api, h, "queue_name=Mail.Out") == [email]
    assert await _ids(api, h, "queue_name=mail.out") == []
    assert set(await _ids(api, h, "status=pending")) == {email, report}
    assert set(await _ids(api, h, "status=failed%2Cdeadletter")) == {odd, plain}
    assert set(await _ids(api, h, "status=FAILED,deadletter")) == {odd, plain}
    assert set(await _ids(api, h, "tag=urgent")) == {email, report}
    assert await _ids(api, h, "tag=x") == [email]
    assert await _ids(api, h, "tag=none") == []
    assert await _ids(api, h, f"tag={quote('customer:42 / vip')}") == [email]  # any tag text
    assert len(await _ids(api, h, "tag=")) == 4  # empty = no filter
    assert await _ids(api, h, "job_type=build_report") == [report]
    assert await _ids(api, h, "job_type=build") == []
    assert await _ids(api, h, "q=sendemail") == [email]  # job_type substring, case-insensitive
    assert await _ids(api, h, "q=MAIL") == [email]  # queue substring
    assert set(await _ids(api, h, "q=port")) == {report, odd}
    assert await _ids(api, h, f"q={report[:8].upper()}") == [report]  # id prefix
    assert await _ids(api, h, "q=%25") == []  # LIKE wildcards are literal
    assert await _ids(api, h, "q=_") == [report]  # only build_report has an underscore
    assert set(await _ids(api, h, "q=")) == {email, report, odd, plain}
    assert await _ids(api, h, "queue_name=reports&status=pending&tag=urgent&q=build") == [report]


async def test_job_summary_shape(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await create_job(api, h, payload={"job_type": 5})
    await create_job(api, h, payload="text")
    await create_job(api, h, payload={"job_type": "t"})
    rows = (await api.client.get("/api/v1/jobs", headers=h)).json()
    assert [r["job_type"] for r in rows] == ["t", "", ""]
    for row in rows:
        assert set(row) == {"id", "queue_name", "status", "priority", "attempt", "retry_count", "max_retries",
                            "job_type", "last_error", "created_at", "scheduled_at", "started_at", "completed_at"}
        assert row["attempt"] == row["retry_count"] == 0


async def test_created_window(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    ids = [await create_job(api, h) for _ in range(3)]
    for job_id, stamp in zip(ids, ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"),
                             strict=True):
        await _sql(api, "UPDATE jobs SET created_at = $2::text::timestamptz WHERE id = $1", job_id, stamp)
    after = quote("2026-01-02T00:00:00+00:00")
    before = quote("2026-01-03T00:00:00+00:00")
    assert await _ids(api, h, f"created_after={after}") == [ids[2], ids[1]]  # inclusive
    assert await _ids(api, h, f"created_before={before}") == [ids[1], ids[0]]  # exclusive
    assert await _ids(api, h, f"created_after={after}&created_before={before}") == [ids[1]]
    shifted = quote("2026-01-02T02:00:00+02:00")  # the same instant in another offset
    assert await _ids(api, h, f"created_after={shifted}&created_before={before}") == [ids[1]]
    assert await _ids(api, h, "created_after=2026-01-02T00:00:00Z&order_dir=asc") == [ids[1], ids[2]]
    # '+' unencoded becomes a space: the value is then not a timestamp
    assert_error(await api.client.get("/api/v1/jobs?created_after=2026-01-02T00:00:00+00:00", headers=h),
                 400, "VALIDATION_ERROR")


async def test_ordering_whitelist(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    for i, (queue, prio) in enumerate([("b", 3), ("a", -1), ("c", 3), ("a", 7)]):
        await create_job(api, h, queue_name=queue, priority=prio, payload={"i": i})
    for column in ("created_at", "updated_at", "scheduled_at", "completed_at", "priority", "status",
                   "queue_name", "retry_count"):
        for direction in ("asc", "desc", "ASC"):
            resp = await api.client.get(f"/api/v1/jobs?order_by={column}&order_dir={direction}", headers=h)
            assert resp.status_code == 200, (column, direction)
            assert len(resp.json()) == 4
    rows = (await api.client.get("/api/v1/jobs?order_by=priority&order_dir=desc", headers=h)).json()
    assert [r["priority"] for r in rows] == [7, 3, 3, -1]
    rows = (await api.client.get("/api/v1/jobs?order_by=queue_name&order_dir=asc", headers=h)).json()
    assert [r["queue_name"] for r in rows] == ["a", "a", "b", "c"]
    default = (await api.client.get("/api/v1/jobs", headers=h)).json()
    assert [r["created_at"] for r in default] == sorted((r["created_at"] for r in default), reverse=True)


async def test_has_more_boundary_and_paging(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    ids = [await create_job(api, h) for _ in range(5)]
    newest_first = list(reversed(ids))
    cases = [("limit=5", 5, "false"), ("limit=4", 4, "true"), ("limit=6", 5, "false"),
             ("limit=2&offset=3", 2, "false"), ("limit=2&offset=2", 2, "true"), ("offset=5", 0, "false"),
             ("", 5, "false")]
    for query, count, more in cases:
        resp = await api.client.get(f"/api/v1/jobs?{query}", headers=h)
        assert (len(resp.json()), resp.headers["x-has-more"]) == (count, more), query
    seen: list[str] = []
    offset = 0
    while True:
        resp = await api.client.get(f"/api/v1/jobs?limit=2&offset={offset}", headers=h)
        seen += [j["id"] for j in resp.json()]
        if resp.headers["x-has-more"] == "false":
            break
        offset += 2
    assert seen == newest_first
    # the DLQ list pages the same way
    await _sql(api, "UPDATE jobs SET status = 'deadletter'")
    resp = await api.client.get("/api/v1/jobs/dlq?limit=4", headers=h)
    assert len(resp.json()) == 4 and resp.headers["x-has-more"] == "true"
    resp = await api.client.get("/api/v1/jobs/dlq?limit=5", headers=h)
    assert resp.headers["x-has-more"] == "false"


async def test_limit_clamped_to_100(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    body = {"queue_name": "q1", "jobs": [{"payload": i} for i in range(100)]}
    for _ in range(2):
        assert (await api.client.post("/api/v1/jobs/bulk", json=body, headers=h)).status_code == 200
    resp = await api.client.get("/api/v1/jobs?limit=500", headers=h)
    assert len(resp.json()) == 100 and resp.headers["x-has-more"] == "true"
    resp = await api.client.get("/api/v1/jobs", headers=h)
    assert len(resp.json()) == 50 and resp.headers["x-has-more"] == "true"
