"""Realtime costs of the real server (`spooled-backend serve`, embedded PostgreSQL): memory per
idle SSE connection, and event latency from commit to client, with and without Redis.

* Memory: opens `--connections` idle `GET /api/v1/events` streams on one process and reports
  the server's RSS growth per connection (after a warm-up of 20 streams), also for WebSockets.
* Latency: a WebSocket client on server A; jobs are created one at a time on A (same process)
  and on a second server B on the same database (cross-process: Redis pub/sub with Redis,
  PostgreSQL NOTIFY without). Latency = client receive time − the event's `timestamp`, which
  the bus stamps right after the transaction commits (same machine clock). The round trip from
  sending the POST to receiving the event is shown too.

    python -m bench.realtime [--connections 1000] [--events 300]

Not a test: it prints a table. On a shared machine the figures are noisy; compare the rows of
one run with each other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from websockets.asyncio.client import connect as ws_connect

from spooled_backend.db.bootstrap import EMBEDDED_DATABASE
from tests.e2e.server import ServerProcess
from tests.support import RedisServer

ENV = {
    "DEFAULT_PLAN_TIER": "enterprise",
    "API_KEY_BCRYPT_COST": "4",
    "REALTIME_MAX_CONNECTIONS_PER_ORG": "100000",
    "RUST_LOG": "warning",
}


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (pct in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def org_key(base_url: str, slug: str) -> str:
    resp = httpx.post(f"{base_url}/api/v1/organizations", json={"name": slug, "slug": slug})
    resp.raise_for_status()
    return str(resp.json()["api_key"]["key"])


async def open_sse(host: str, port: int, key: str) -> asyncio.StreamWriter:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /api/v1/events?api_key={key} HTTP/1.1\r\nHost: {host}\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    await reader.readuntil(b"\r\n\r\n")
    await reader.readuntil(b": connected")
    return writer


async def memory(server: ServerProcess, key: str, connections: int) -> dict[str, float]:
    assert server.proc is not None
    host, port = "127.0.0.1", server.port
    pid = server.proc.pid
    out: dict[str, float] = {}
    warm = [await open_sse(host, port, key) for _ in range(20)]
    await asyncio.sleep(1)
    before = rss_mib(pid)
    streams: list[asyncio.StreamWriter] = []
    for i in range(0, connections, 50):
        streams += await asyncio.gather(*(open_sse(host, port, key)
                                          for _ in range(min(50, connections - i))))
    await asyncio.sleep(3)  # idle: keep-alives only
    after = rss_mib(pid)
    out["sse_kib_per_conn"] = (after - before) * 1024 / connections
    out["sse_rss_before_mib"], out["sse_rss_after_mib"] = before, after
    for w in streams + warm:
        w.close()
    await asyncio.sleep(2)
    ws_url = f"ws://{host}:{port}/api/v1/ws?api_key={key}"
    before = rss_mib(pid)
    sockets = []
    for _ in range(0, connections, 50):
        batch = await asyncio.gather(*(ws_connect(ws_url) for _ in range(50)))
        for sock in batch:
            await sock.recv()
        sockets += batch
    await asyncio.sleep(3)
    out["ws_kib_per_conn"] = (rss_mib(pid) - before) * 1024 / len(sockets)
    await asyncio.gather(*(s.close() for s in sockets))
    return out


def parse_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def latency(watch: ServerProcess, produce: ServerProcess, key: str,
                  events: int) -> tuple[list[float], list[float]]:
    """(commit→client ms, POST sent→client ms) for `events` jobs created on `produce`."""
    commit_ms: list[float] = []
    round_ms: list[float] = []
    url = f"ws://127.0.0.1:{watch.port}/api/v1/ws?api_key={key}"
    async with ws_connect(url) as sock, httpx.AsyncClient(
        base_url=produce.base_url, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        await sock.recv()  # Ping
        await asyncio.sleep(0.5)  # the producer has heard of this subscriber
        for i in range(events + 20):
            sent = time.time()
            resp = await http.post("/api/v1/jobs", json={"queue_name": "lat", "payload": {"i": i}})
            job_id = resp.json()["id"]
            while True:
                frame = json.loads(await asyncio.wait_for(sock.recv(), 10))
                if frame["type"] == "JobCreated" and frame["data"]["job_id"] == job_id:
                    got = time.time()
                    break
            if i >= 20:  # warm-up
                commit_ms.append((got - parse_ts(frame["data"]["timestamp"])) * 1000)
                round_ms.append((got - sent) * 1000)
            await asyncio.sleep(0.005)
    return commit_ms, round_ms


async def publish_cost(calls: int = 100_000) -> tuple[float, float]:
    """ns per `events.job_created(...)` in-process: nobody watching (the job hot path's usual
    case), and with one local subscriber (envelope built, serialized, queued)."""
    from spooled_backend.core.context import AuthContext
    from spooled_backend.realtime.bus import EventBus
    from spooled_backend.realtime.hub import Filters, Subscriber

    bus = EventBus(None)
    start = time.perf_counter()
    for i in range(calls):
        bus.job_created("org-1", "job", "q", 0, "pending")
    idle_ns = (time.perf_counter() - start) / calls * 1e9
    sub = Subscriber("org-1", AuthContext("org-1", "k"), Filters(), "ws", queue_size=calls + 1)
    await bus.subscribe(sub)
    start = time.perf_counter()
    for i in range(calls):
        bus.job_created("org-1", "job", "q", 0, "pending")
    watched_ns = (time.perf_counter() - start) / calls * 1e9
    return idle_ns, watched_ns


def embedded_dsn(server: ServerProcess) -> str:
    port = server.pid_file.read_text().splitlines()[3].strip()
    return f"postgresql://postgres@127.0.0.1:{port}/{EMBEDDED_DATABASE}"


async def run_mode(root: Path, redis: RedisServer | None, args: argparse.Namespace,
                   rows: list[tuple[str, ...]], mem: dict[str, dict[str, float]]) -> None:
    label = "redis" if redis else "no redis"
    a = ServerProcess(root / f"a-{label}", redis_url=redis.url if redis else None, env=dict(ENV))
    a.start()
    b = ServerProcess(root / f"b-{label}", redis_url=redis.url if redis else None,
                      env=dict(ENV, DATABASE_URL=embedded_dsn(a)),
                      command=a.command + ["--no-migrate"])
    b.start()
    try:
        key = org_key(a.base_url, f"bench-{label.replace(' ', '')}")
        for where, producer in (("same process", a), ("other process", b)):
            commit_ms, round_ms = await latency(a, producer, key, args.events)
            rows.append((label, where, f"{percentile(commit_ms, 50):.2f}",
                         f"{percentile(commit_ms, 99):.2f}", f"{percentile(round_ms, 50):.2f}",
                         f"{percentile(round_ms, 99):.2f}"))
        if args.connections:
            mem[label] = await memory(a, key, args.connections)
    finally:
        b.stop()
        a.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args()
    rows: list[tuple[str, ...]] = []
    mem: dict[str, dict[str, float]] = {}
    idle_ns, watched_ns = await publish_cost()
    with tempfile.TemporaryDirectory(prefix="bench-rt-") as tmp:
        root = Path(tmp)
        redis = RedisServer(root)
        try:
            await run_mode(root, redis, args, rows, mem)
        finally:
            redis.stop()
        await run_mode(root, None, args, rows, mem)
    print(f"\nPublish cost per job event in the request: nobody watching {idle_ns:.0f} ns, "
          f"one local subscriber {watched_ns / 1000:.1f} µs (no database or Redis round trip "
          "in the request either way; cross-process sends are batched after the commit)")
    print(f"\nEvent latency, {args.events} JobCreated events (ms)")
    head = ("mode", "producer", "commit→client p50", "p99", "POST→client p50", "p99")
    print(" | ".join(head))
    for row in rows:
        print(" | ".join(row))
    for label, figures in mem.items():
        print(f"\nIdle connections ({label}), {args.connections} per kind on one process:")
        print(f"  SSE: {figures['sse_kib_per_conn']:.1f} KiB per connection "
              f"(RSS {figures['sse_rss_before_mib']:.0f} → {figures['sse_rss_after_mib']:.0f} MiB)")
        print(f"  WebSocket: {figures['ws_kib_per_conn']:.1f} KiB per connection")


if __name__ == "__main__":
    asyncio.run(main())
