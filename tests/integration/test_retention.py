"""Retention sweep (CONTRACT §15): per-organization plan days; only finished rows go; the live
webhook outbox (`pending`) and unfinished jobs stay."""

from __future__ import annotations

from typing import Any

from spooled_backend.scheduler import retention
from tests.conftest import Api
from tests.integration.jobs_support import ack, claim, create_job


async def test_retention_by_plan_days(api: Api) -> None:
    created = await api.create_org()  # free plan: jobs 3 days, history 1 day
    org_id = created["organization"]["id"]
    h = api.as_key(created["api_key"]["key"])
    old_done = await create_job(api, h, queue_name="ret")
    new_done = await create_job(api, h, queue_name="ret")
    leases = {j["id"]: j["lease_id"] for j in await claim(api, h, queue="ret", limit=2)}
    for job_id, lease in leases.items():
        assert (await ack(api, h, job_id, "complete", worker_id="w1", lease_id=lease)).status_code == 200
    old_pending = await create_job(api, h, queue_name="ret")
    pool = api.state.pool
    async with pool.acquire() as c:
        await c.execute("UPDATE jobs SET completed_at = now() - interval '4 days' WHERE id = $1", old_done)
        await c.execute("UPDATE jobs SET completed_at = now() - interval '2 days' WHERE id = $1", new_done)
        await c.execute("UPDATE jobs SET created_at = now() - interval '9 days' WHERE id = $1", old_pending)
        await c.execute("UPDATE job_history SET created_at = now() - interval '2 days' WHERE job_id = $1",
                        new_done)
        hook = await c.fetchval(
            "INSERT INTO outgoing_webhooks (organization_id, name, url, events) "
            "VALUES ($1, 'h', 'https://example.com/h', '{job.completed}') RETURNING id", org_id)
        for status in ("pending", "success", "failed"):
            await c.execute(
                "INSERT INTO outgoing_webhook_deliveries (organization_id, webhook_id, event, payload, "
                "status, created_at) VALUES ($1, $2, 'job.completed', '{}', $3, now() - interval '3 days')",
                org_id, hook, status)
        await c.execute("INSERT INTO webhook_deliveries (organization_id, provider, created_at) "
                        "VALUES ($1, 'github', now() - interval '3 days'), ($1, 'github', now())", org_id)
        await c.execute("INSERT INTO email_login_codes (email, code, expires_at) VALUES "
                        "('a@example.com', '1', now() - interval '1 minute'), ('b@example.com', '2', now() + interval '5 minutes')")
        history_before = await c.fetchval("SELECT count(*) FROM job_history WHERE job_id = $1", new_done)
        async with c.transaction():
            counts: dict[str, Any] = await retention.sweep_retention(c, api.state.settings)
        assert counts["jobs"] == 1 and counts["outgoing_webhook_deliveries"] == 2
        assert counts["webhook_deliveries"] == 1 and counts["email_login_codes"] == 1
        assert counts["job_history"] == history_before > 0
        left = {r["id"] for r in await c.fetch("SELECT id FROM jobs WHERE organization_id = $1", org_id)}
        assert left == {new_done, old_pending}
        assert [r["status"] for r in await c.fetch(
            "SELECT status FROM outgoing_webhook_deliveries WHERE webhook_id = $1", hook)] == ["pending"]
        # an enterprise organization keeps the same ages (90 days)
        await c.execute("UPDATE organizations SET plan_tier = 'enterprise' WHERE id = $1", org_id)
        await c.execute("UPDATE jobs SET completed_at = now() - interval '10 days' WHERE id = $1", new_done)
        async with c.transaction():
            again = await retention.sweep_retention(c, api.state.settings)
        assert again["jobs"] == 0
