"""The official async SDK (`spooled==1.6.0`) against the in-process app: worker registration,
heartbeat, listing, and the worker's graceful drain ending in deregister (CONTRACT §19 #12)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from spooled import AsyncSpooledClient
from spooled.worker.async_worker import AsyncSpooledWorker

from tests.conftest import Api
from tests.integration.jobs_support import create_job, get_job
from tests.integration.test_workers import worker_row


@asynccontextmanager
async def sdk_client(api: Api, key: str) -> AsyncIterator[AsyncSpooledClient]:
    """An AsyncSpooledClient whose HTTP goes to the in-process app (same ASGI transport)."""
    client = AsyncSpooledClient(api_key=key, base_url="http://test")
    http: Any = client._http
    http._client = httpx.AsyncClient(
        transport=api.client._transport,
        headers=http._build_default_headers(),
        timeout=10.0,
    )
    try:
        yield client
    finally:
        await client.close()


async def test_sdk_worker_calls(api: Api, tenant: dict[str, Any]) -> None:
    async with sdk_client(api, tenant["key"]) as client:
        reg = await client.workers.register(
            {
                "queue_name": "sdk-q",
                "hostname": "sdk-host",
                "worker_id": "sdk-w",
                "metadata": {"a": 1},
            }
        )
        assert (reg.id, reg.queue_name, reg.heartbeat_interval_secs) == ("sdk-w", "sdk-q", 10)
        await client.workers.heartbeat("sdk-w", {"current_jobs": 2, "status": "degraded"})
        worker = await client.workers.get("sdk-w")
        assert (worker.status, worker.current_jobs, worker.max_concurrency) == ("degraded", 2, 5)
        assert worker.jobs_processed == 0 and worker.metadata == {"a": 1}
        [summary] = await client.workers.list()
        assert (summary.id, summary.hostname, summary.current_jobs) == ("sdk-w", "sdk-host", 2)
        await client.workers.deregister("sdk-w")
        assert (await client.workers.get("sdk-w")).status == "offline"


async def test_sdk_worker_drains_running_jobs_then_deregisters(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    job_ids = [await create_job(api, h, queue_name="drain-q", payload={"i": i}) for i in range(2)]
    started = asyncio.Event()
    release = asyncio.Event()
    async with sdk_client(api, tenant["key"]) as client:
        worker = AsyncSpooledWorker(
            client,
            "drain-q",
            concurrency=2,
            poll_interval=0.05,
            worker_id="drainer",
            shutdown_timeout=10,
        )

        @worker.process
        async def handle(ctx: Any) -> dict[str, Any]:
            started.set()
            await release.wait()
            return {"done": ctx.payload["i"]}

        runner = asyncio.create_task(worker.start())
        await asyncio.wait_for(started.wait(), 10)
        for _ in range(100):  # both jobs leased
            if worker.active_job_count == 2:
                break
            await asyncio.sleep(0.05)
        assert (await worker_row(api, "drainer"))["status"] == "healthy"
        stopping = asyncio.create_task(worker.stop())
        await asyncio.sleep(0.2)  # stop() is now waiting for the running handlers
        release.set()
        await asyncio.wait_for(stopping, 20)
        await asyncio.wait_for(runner, 20)
    for i, job_id in enumerate(job_ids):
        job = await get_job(api, h, job_id)
        assert (job["status"], job["result"]) == ("completed", {"done": i})
    row = await worker_row(api, "drainer")
    assert (row["status"], row["jobs_processed"]) == ("offline", 2)
