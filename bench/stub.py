"""A do-nothing stand-in for the server: the load client's own ceiling.

    python bench/stub.py PORT

An in-memory queue behind the same REST paths the benchmark and the SDK worker use (create,
bulk, claim with `limit`/`wait_ms`/scheduled_at, complete, fail, ack, job and worker
heartbeats, worker register/deregister), on a raw asyncio protocol (uvloop when installed) so
it answers far faster than any real server: whatever rate a workload reaches against it is the
rate of the client code, not of a server. No auth, no persistence, no validation.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import sys
import time
from collections import deque
from datetime import datetime

_ids = itertools.count(1)


class Queue:
    def __init__(self) -> None:
        self.ready: deque[tuple[str, object]] = deque()
        self.delayed: list[tuple[float, str, object]] = []
        self.wakeup = asyncio.Event()

    def add(self, payload: object, scheduled_at: str | None) -> str:
        job_id = f"stub-{next(_ids)}"
        due = datetime.fromisoformat(scheduled_at).timestamp() if scheduled_at else 0.0
        if due > time.time():
            heapq.heappush(self.delayed, (due, job_id, payload))
        else:
            self.ready.append((job_id, payload))
        self.wakeup.set()
        return job_id

    def take(self, limit: int) -> list[tuple[str, object]]:
        now = time.time()
        while self.delayed and self.delayed[0][0] <= now:
            _, job_id, payload = heapq.heappop(self.delayed)
            self.ready.append((job_id, payload))
        out = []
        while self.ready and len(out) < limit:
            out.append(self.ready.popleft())
        return out

    def next_due(self) -> float | None:
        return self.delayed[0][0] if self.delayed else None


QUEUES: dict[str, Queue] = {}


def queue(name: str) -> Queue:
    if name not in QUEUES:
        QUEUES[name] = Queue()
    return QUEUES[name]


def claimed(job_id: str, name: str, payload: object) -> dict[str, object]:
    return {"id": job_id, "queue_name": name, "payload": payload, "retry_count": 0,
            "max_retries": 3, "timeout_seconds": 300, "lease_id": f"lease-{job_id}",
            "lease_expires_at": "2099-01-01T00:00:00Z"}


async def claim(body: dict) -> dict:
    q = queue(body["queue_name"])
    limit = int(body.get("limit", 1))
    deadline = time.monotonic() + int(body.get("wait_ms") or 0) / 1000
    while True:
        jobs = q.take(limit)
        remaining = deadline - time.monotonic()
        if jobs or remaining <= 0:
            return {"jobs": [claimed(i, body["queue_name"], p) for i, p in jobs]}
        due = q.next_due()
        if due is not None:
            remaining = min(remaining, max(0.0, due - time.time()))
        q.wakeup.clear()
        try:
            await asyncio.wait_for(q.wakeup.wait(), remaining)
        except TimeoutError:
            pass


async def route(path: str, body: dict) -> tuple[int, object]:
    p = path.split("?", 1)[0].removeprefix("/api/v1")
    if p == "/jobs":
        return 201, {"id": queue(body["queue_name"]).add(body.get("payload"),
                                                         body.get("scheduled_at")), "created": True}
    if p == "/jobs/bulk":
        q = queue(body["queue_name"])
        ok = [{"index": n, "job_id": q.add(item.get("payload"), item.get("scheduled_at")),
               "created": True} for n, item in enumerate(body["jobs"])]
        return 200, {"succeeded": ok, "failed": [], "total": len(ok),
                     "success_count": len(ok), "failure_count": 0}
    if p == "/jobs/claim":
        return 200, await claim(body)
    if p == "/jobs/ack":
        done = body.get("completed", []) + body.get("failed", [])
        return 200, {"results": [{"job_id": item["job_id"], "success": True} for item in done]}
    if p == "/workers/register":
        return 201, {"id": body.get("worker_id") or f"stub-worker-{next(_ids)}",
                     "queue_name": body.get("queue_name", ""), "lease_duration_secs": 30,
                     "heartbeat_interval_secs": 10}
    if p.startswith("/jobs/") or p.startswith("/workers/"):
        return 200, {"success": True}  # complete, fail, heartbeat, deregister
    if p == "/health":
        return 200, {"status": "healthy"}
    return 404, {"error": "not_found", "message": p}


class Http(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""
        self.busy = False

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        body = self.buf[end + 4:end + 4 + length]
        self.buf = self.buf[end + 4 + length:]
        method, path, _ = head[0].split(" ", 2)
        self.busy = True
        asyncio.ensure_future(self._answer(method, path, body))

    async def _answer(self, method: str, path: str, body: bytes) -> None:
        try:
            status, obj = await route(path, json.loads(body) if body else {})
        except Exception as exc:  # a stub: report, keep serving
            status, obj = 500, {"error": "stub", "message": repr(exc)}
        data = json.dumps(obj).encode()
        self.transport.write(b"HTTP/1.1 %d OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (status, len(data), data))
        self.busy = False
        if self.buf:
            self._next()


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, "127.0.0.1", port)
    print(f"stub listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(main(int(sys.argv[1])))
    except KeyboardInterrupt:
        pass
