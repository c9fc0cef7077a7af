"""The benchmark's queue over the real REST API (plain httpx, keep-alive connections).

One `httpx.AsyncClient` per connection, lent out per request: a single client with a large
shared pool costs ~3× more client CPU per request at 32 concurrent requests (httpcore's pool
bookkeeping), which on a 2-core machine is taken straight from the server under test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Self

import httpx


class HttpQueue:
    """create / claim / complete as the SDK sends them (CONTRACT §7.6); raises on any non-2xx."""

    def __init__(self, base_url: str, api_key: str, connections: int) -> None:
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._clients = [
            httpx.AsyncClient(base_url=f"{base_url}/api/v1", headers=headers, timeout=30.0,
                              limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
            for _ in range(connections)
        ]
        self._free: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for client in self._clients:
            self._free.put_nowait(client)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self._clients:
            await client.aclose()

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[httpx.AsyncClient]:
        client = await self._free.get()
        try:
            yield client
        finally:
            self._free.put_nowait(client)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        async with self._client() as client:
            resp = await client.post(path, json=body)
        if not resp.is_success:
            raise RuntimeError(f"POST {path} → {resp.status_code} {resp.text}")
        return resp.json()

    async def create(self, queue: str, payload: dict[str, object]) -> str:
        return str((await self._post("/jobs", {"queue_name": queue, "payload": payload}))["id"])

    async def claim(self, queue: str, worker: str, limit: int) -> list[tuple[str, str]]:
        body = await self._post("/jobs/claim", {"queue_name": queue, "worker_id": worker,
                                                "limit": limit, "lease_duration_secs": 60})
        return [(j["id"], j["lease_id"]) for j in body["jobs"]]

    async def complete(self, job_id: str, worker: str, lease: str) -> None:
        await self._post(f"/jobs/{job_id}/complete",
                         {"worker_id": worker, "lease_id": lease, "result": {"ok": True}})
