"""`AsyncSpooledClient` (README "Async Client") against the real server."""

from __future__ import annotations

import asyncio

from spooled.async_client import AsyncSpooledClient
from spooled.errors import ConflictError

from tests.e2e.conftest import Tenant


async def test_async_client_concurrent_create_claim_complete(tenant: Tenant) -> None:
    async with AsyncSpooledClient(api_key=tenant.key, base_url=tenant.base_url) as client:
        results = await asyncio.gather(*[
            client.jobs.create({"queue_name": "tasks", "payload": {"n": i}}) for i in range(10)
        ])
        assert len({r.id for r in results}) == 10 and all(r.created for r in results)

        dup = await client.jobs.create({"queue_name": "tasks", "payload": {"n": 0},
                                        "idempotency_key": "async-once"})
        again = await client.jobs.create({"queue_name": "tasks", "payload": {"n": 99},
                                          "idempotency_key": "async-once"})
        assert (again.id, again.created, dup.created) == (dup.id, False, True)

        page = await client.jobs.list({"queue_name": "tasks", "limit": 5})
        assert len(page) == 5 and page.has_more is True
        assert (await client.jobs.get_stats()).pending == 11

        claimed = (await client.jobs.claim({"queue_name": "tasks", "worker_id": "aw",
                                            "limit": 11})).jobs
        assert len(claimed) == 11
        acks = await asyncio.gather(*[
            client.jobs.complete(j.id, {"worker_id": "aw", "lease_id": j.lease_id,
                                        "result": {"double": 2 * j.payload["n"]}})
            for j in claimed
        ])
        assert all(a.success for a in acks)
        try:
            await client.jobs.complete(claimed[0].id, {"worker_id": "aw",
                                                       "lease_id": claimed[0].lease_id})
        except ConflictError as exc:
            assert "already completed" in exc.message.lower()
        else:
            raise AssertionError("a replayed complete must be 409")

        statuses = await client.jobs.batch_status([r.id for r in results])
        assert {s.status for s in statuses} == {"completed"}
        job = await client.jobs.get(results[3].id)
        assert job.result == {"double": 6}
        stats = await client.jobs.get_stats()
        assert (stats.completed, stats.pending, stats.total) == (11, 0, 11)
        assert (await client.health.get()).database is True
