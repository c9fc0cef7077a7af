"""The official async SDK's queue and dashboard calls against the in-process app (CONTRACT
§7.8, §7.15; docs/sdk-wire-notes.md §4.1, §4.5)."""

from __future__ import annotations

from typing import Any

import pytest
from spooled.errors import ConflictError, NotFoundError

from tests.conftest import Api
from tests.integration.jobs_support import create_job
from tests.integration.test_workers_sdk import sdk_client


async def test_sdk_queue_calls(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await create_job(api, h, queue_name="sdk.orders")
    async with sdk_client(api, tenant["key"]) as client:
        [summary] = await client.queues.list()
        assert (summary.queue_name, summary.enabled, summary.rate_limit) == (
            "sdk.orders",
            True,
            None,
        )
        implicit = await client.queues.get("sdk.orders")
        assert implicit.id == "implicit:sdk.orders" and implicit.settings == {"implicit": True}
        cfg = await client.queues.update_config(
            "sdk.orders", {"max_retries": 6, "rate_limit": 40, "settings": {"owner": "ops"}}
        )
        assert (cfg.max_retries, cfg.rate_limit, cfg.settings) == (6, 40, {"owner": "ops"})
        stats = await client.queues.get_stats("sdk.orders")
        assert (stats.pending_jobs, stats.active_workers, stats.avg_processing_time_ms) == (
            1,
            0,
            None,
        )
        paused = await client.queues.pause("sdk.orders")  # body {}
        assert paused.paused is True and paused.reason is None
        paused = await client.queues.pause("sdk.orders", reason="deploy")
        assert paused.reason == "deploy"
        resumed = await client.queues.resume("sdk.orders")  # no body
        assert resumed.resumed is True and resumed.paused_duration_secs >= 0
        with pytest.raises(NotFoundError):
            await client.queues.pause("no.such.queue")
        with pytest.raises(ConflictError):
            await client.queues.delete("sdk.orders")
        await client.queues.delete("sdk.orders", delete_jobs=True)
        assert await client.queues.list() == []

        board = await client.dashboard.get()
        assert (
            board.jobs.total == 0
            and board.queues == []
            and board.system.database_status == "healthy"
        )
