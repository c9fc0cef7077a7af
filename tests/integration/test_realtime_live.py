"""Realtime through a real uvicorn server in this process, with settings a test can shorten:
back-pressure (a client that never reads is dropped, memory stays flat, others are not
slowed), per-organization caps, pings and keep-alives, credential re-checks, maximum life,
no database connection held by idle streams, and reconnection after a database or Redis
restart.

The listening socket gets an 8 KiB send buffer (inherited by accepted sockets) so that a
stalled client fills the kernel's buffers after a few kilobytes instead of megabytes; the
server code path is the one `spooled-backend serve` runs.
"""

from __future__ import annotations

import asyncio
import json
import resource
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from spooled_backend.app import create_app
from spooled_backend.config import Settings
from spooled_backend.core.state import AppState
from tests.conftest import make_settings
from tests.support import RedisServer


@dataclass
class Live:
    base_url: str
    state: AppState
    http: httpx.AsyncClient

    def ws(self, query: str) -> str:
        return self.base_url.replace("http://", "ws://") + "/api/v1/ws?" + query

    async def org(self) -> tuple[str, str, str]:
        """A new enterprise organization: (org id, API key, API key id)."""
        slug = f"rt-{id(self)}-{len(self.state.events.hub.orgs())}-{asyncio.get_running_loop().time():.6f}"
        slug = slug.replace(".", "")[:40]
        resp = await self.http.post("/api/v1/organizations", json={"name": "RT " + slug, "slug": slug})
        assert resp.status_code == 201, resp.text
        body = resp.json()
        org_id = body["organization"]["id"]
        async with self.state.pool.acquire() as c:
            await c.execute("UPDATE organizations SET plan_tier = 'enterprise' WHERE id = $1", org_id)
        return org_id, body["api_key"]["key"], body["api_key"]["id"]


@asynccontextmanager
async def live_server(settings: Settings, db_url: str) -> AsyncIterator[Live]:
    app = create_app(settings, settings.database_url or db_url, run_loops=False)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=1))
    server.capture_signals = lambda: _no_signals()  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(30):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            yield Live(base, app.state.services, http)
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextmanager
def _no_signals() -> Iterator[None]:
    yield


def fast(db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "realtime_ws_ping_secs": 0.3,
        "realtime_sse_keepalive_secs": 0.3,
        "realtime_auth_recheck_secs": 0.5,
        "realtime_health_secs": 0.4,
        "realtime_job_poll_secs": 0.3,
        "realtime_queue_stats_secs": 0.3,
    }
    values.update(overrides)
    return make_settings(db_url, **values)


async def recv_json(sock: Any, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        return json.loads(await sock.recv())  # type: ignore[no-any-return]


async def until_type(sock: Any, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await sock.recv())
            if frame["type"] == kind:
                return frame  # type: ignore[no-any-return]


async def stalled_websocket(base_url: str, key: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket handshake on a socket with a tiny receive buffer; afterwards never read
    (the stream reader stops reading from the socket once its small buffer is full)."""
    host, port = base_url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    writer.write(
        f"GET /api/v1/ws?token={key} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def test_a_client_that_never_reads_is_dropped_and_memory_stays_flat(db_url: str) -> None:
    async with live_server(fast(db_url, realtime_subscriber_queue_size=256), db_url) as live:
        org, key, _ = await live.org()
        bus, hub = live.state.events, live.state.events.hub
        _, writer = await stalled_websocket(live.base_url, key)
        [stalled] = hub.all()
        async with ws_connect(live.ws(f"token={key}")) as healthy:
            await until_type(healthy, "Ping")
            [reading] = [sub for sub in hub.all() if sub is not stalled]
            last_seen: list[str] = []

            async def read_all() -> None:
                async for message in healthy:
                    # Only job events: a periodic Ping arriving after the last event (a slow
                    # run) must not overwrite what was seen.
                    data = json.loads(message).get("data") or {}
                    if "job_id" in data:
                        last_seen[:] = [data["job_id"]]

            reader = asyncio.create_task(read_all())
            payload = "x" * 2000

            async def produce(prefix: str, count: int) -> None:
                for i in range(count):
                    bus.job_failed(org, f"{prefix}-{i}", "flood", payload, i, "pending")
                    # Paced by the reading client (on a loaded machine it shares this loop
                    # with the producer): the stalled one never sets the pace.
                    while reading.queue.qsize() > 100:
                        await asyncio.sleep(0.001)

            await produce("first", 2000)  # ~9 MB of events for a client that reads nothing
            async with asyncio.timeout(10):
                while hub.count(org, "ws") != 1:
                    await asyncio.sleep(0.05)
            assert stalled.overflowed and not reading.overflowed
            before = rss_mib()
            await produce("later", 3000)  # ~13 MB more: nothing accumulates for it
            growth = rss_mib() - before
            assert growth < 8, f"RSS grew {growth:.1f} MiB"
            async with asyncio.timeout(60):  # the reading client was not held back
                while last_seen != ["later-2999"]:
                    await asyncio.sleep(0.05)
            assert hub.count(org, "ws") == 1 and not reading.overflowed
            reader.cancel()
        writer.transport.abort()


async def test_a_slow_sse_client_is_cut_off(db_url: str) -> None:
    async with live_server(fast(db_url, realtime_subscriber_queue_size=64), db_url) as live:
        org, key, _ = await live.org()
        hub = live.state.events.hub
        host, port = live.base_url.removeprefix("http://").split(":")
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.setblocking(False)
        await asyncio.get_running_loop().sock_connect(raw, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=raw, limit=1024)
        writer.write(f"GET /api/v1/events?api_key={key} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        await reader.readuntil(b"\r\n\r\n")
        async with asyncio.timeout(5):
            while hub.count(org, "sse") != 1:
                await asyncio.sleep(0.02)
        for i in range(3000):
            live.state.events.job_failed(org, f"j{i}", "q", "e" * 2000, 0, "pending")
            if i % 100 == 0:
                await asyncio.sleep(0)
        async with asyncio.timeout(20):
            while hub.count(org, "sse") != 0:
                await asyncio.sleep(0.05)
        writer.transport.abort()


async def test_pings_keepalives_and_health(db_url: str) -> None:
    async with live_server(fast(db_url), db_url) as live:
        _, key, _ = await live.org()
        async with ws_connect(live.ws(f"api_key={key}")) as sock:
            first = await recv_json(sock)
            assert first["type"] == "Ping"
            assert (await until_type(sock, "Ping", timeout=2))["type"] == "Ping"  # periodic
        async with live.http.stream("GET", f"/api/v1/events?token={key}") as resp:
            seen: list[str] = []
            async with asyncio.timeout(5):
                async for line in resp.aiter_lines():
                    seen.append(line)
                    if ": ping" in seen and line.startswith("data: {\"type\":\"SystemHealth"):
                        break
            assert seen[0] == ": connected"
            data = next(json.loads(x[6:]) for x in seen if x.startswith("data: "))
            assert data["type"] == "SystemHealth"
            assert data["data"]["database"] is True and data["data"]["redis"] is False


async def test_connection_caps_per_organization(db_url: str) -> None:
    async with live_server(fast(db_url, realtime_max_connections_per_org=2), db_url) as live:
        org, key, _ = await live.org()
        _, other_key, _ = await live.org()
        async with ws_connect(live.ws(f"token={key}")) as a, ws_connect(live.ws(f"token={key}")) as b:
            await recv_json(a)
            await recv_json(b)
            async with ws_connect(live.ws(f"token={key}")) as third:
                with pytest.raises(ConnectionClosed) as info:
                    await third.recv()
            assert info.value.rcvd is not None and info.value.rcvd.code == 4429
            assert "limit 2" in info.value.rcvd.reason
            async with ws_connect(live.ws(f"token={other_key}")) as fine:  # per organization
                assert (await recv_json(fine))["type"] == "Ping"
        streams = [live.http.stream("GET", f"/api/v1/events?api_key={key}") for _ in range(3)]
        r1 = await streams[0].__aenter__()
        r2 = await streams[1].__aenter__()
        r3 = await streams[2].__aenter__()
        try:
            assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 429)
            await r3.aread()
            assert r3.json()["code"] == "RATE_LIMIT_EXCEEDED"
        finally:
            for s in streams:
                await s.__aexit__(None, None, None)


async def test_revoked_key_ends_streams(db_url: str) -> None:
    async with live_server(fast(db_url), db_url) as live:
        _, admin_key, _ = await live.org()
        created = await live.http.post("/api/v1/api-keys", json={"name": "doomed"},
                                       headers={"Authorization": f"Bearer {admin_key}"})
        assert created.status_code == 201, created.text
        doomed, doomed_id = created.json()["key"], created.json()["id"]
        async with ws_connect(live.ws(f"token={doomed}")) as sock, \
                live.http.stream("GET", f"/api/v1/events?api_key={doomed}") as stream:
            await recv_json(sock)
            lines = stream.aiter_lines()
            assert await anext(lines) == ": connected"
            resp = await live.http.delete(f"/api/v1/api-keys/{doomed_id}",
                                          headers={"Authorization": f"Bearer {admin_key}"})
            assert resp.status_code == 204
            error = await until_type(sock, "Error", timeout=5)
            assert "revoked" in error["data"]["message"]
            with pytest.raises(ConnectionClosed) as info:
                await until_type(sock, "never", timeout=5)
            assert info.value.rcvd is not None and info.value.rcvd.code == 4401
            rest = []
            async with asyncio.timeout(5):
                async for line in lines:
                    rest.append(line)
            assert "event: error" in rest  # then the stream ended


async def test_sse_streams_end_after_their_maximum_life(db_url: str) -> None:
    async with live_server(fast(db_url, realtime_sse_max_life_secs=0.8), db_url) as live:
        _, key, _ = await live.org()
        async with asyncio.timeout(5):
            for path in ("/api/v1/events", "/api/v1/events/queues/q1"):
                async with live.http.stream("GET", f"{path}?api_key={key}") as resp:
                    lines = [line async for line in resp.aiter_lines()]
                assert lines[0] == ": connected", path


async def test_idle_streams_hold_no_database_connection(db_url: str) -> None:
    async with live_server(fast(db_url, realtime_auth_recheck_secs=60), db_url) as live:
        _, key, _ = await live.org()
        pool = live.state.pool
        sockets = [await ws_connect(live.ws(f"token={key}")) for _ in range(10)]
        streams = [live.http.stream("GET", f"/api/v1/events?api_key={key}") for _ in range(10)]
        try:
            for sock in sockets:
                await recv_json(sock)
            for s in streams:
                resp = await s.__aenter__()
                assert resp.status_code == 200
            await asyncio.sleep(0.5)
            assert pool.get_size() - pool.get_idle_size() == 0
            assert live.state.events.hub.total() == 20
        finally:
            for sock in sockets:
                await sock.close()
            for s in streams:
                await s.__aexit__(None, None, None)


async def test_cross_process_delivery_survives_a_database_connection_loss(db_url: str) -> None:
    settings = fast(db_url)
    async with live_server(settings, db_url) as a, live_server(settings, db_url) as b:
        org, key, _ = await a.org()
        async with ws_connect(a.ws(f"token={key}")) as sock:
            await recv_json(sock)
            listener = a.state.listener
            assert listener is not None
            reconnects = listener.reconnects
            admin = await asyncpg.connect(db_url)
            try:
                await admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'spooled-backend-listener' AND datname = current_database()"
                )
            finally:
                await admin.close()
            async with asyncio.timeout(10):
                while listener.reconnects == reconnects or not listener.connected:
                    await asyncio.sleep(0.05)
                while not b.state.events.wanted(org):  # re-announced after the reconnect
                    await asyncio.sleep(0.05)
            resp = await b.http.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}},
                                     headers={"Authorization": f"Bearer {key}"})
            assert resp.status_code == 201
            created = await until_type(sock, "JobCreated", timeout=5)
            assert created["data"]["job_id"] == resp.json()["id"]


async def test_redis_subscriber_reconnects_after_a_redis_restart(
    db_url: str, tmp_path: Any
) -> None:
    redis = RedisServer(tmp_path)
    port = redis.port
    settings = fast(db_url, redis_url=redis.url)
    try:
        async with live_server(settings, db_url) as a, live_server(settings, db_url) as b:
            org, key, _ = await a.org()
            async with ws_connect(a.ws(f"token={key}")) as sock:
                await recv_json(sock)
                redis.stop()
                transport = a.state.events.transport
                assert transport is not None
                async with asyncio.timeout(10):
                    while transport.redis_connected:
                        await asyncio.sleep(0.05)
                redis = _restart_redis(tmp_path, port)
                async with asyncio.timeout(10):
                    while not transport.redis_connected:
                        await asyncio.sleep(0.05)
                    while not (b.state.events.transport and b.state.events.transport.redis_connected):
                        await asyncio.sleep(0.05)
                    while not b.state.events.wanted(org):
                        await asyncio.sleep(0.05)
                resp = await b.http.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}},
                                         headers={"Authorization": f"Bearer {key}"})
                assert resp.status_code == 201
                created = await until_type(sock, "JobCreated", timeout=5)
                assert created["data"]["job_id"] == resp.json()["id"]
    finally:
        redis.stop()


def _restart_redis(tmp_path: Any, port: int) -> RedisServer:
    server = RedisServer.__new__(RedisServer)
    import shutil
    import subprocess
    import time

    import redis as redis_sync

    server.port = port
    server.proc = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
         "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis_sync.Redis(port=port)
    for _ in range(100):
        try:
            if client.ping():
                break
        except redis_sync.ConnectionError:
            time.sleep(0.05)
    return server


async def test_a_revocation_notice_ends_streams_at_once(db_url: str) -> None:
    """`spooled_auth_revoked` (`k:<key id>`, sent by the key table's trigger on revocation)
    makes the key's streams re-validate now, long before the periodic re-check."""
    async with live_server(fast(db_url, realtime_auth_recheck_secs=600), db_url) as live:
        _, admin_key, _ = await live.org()
        headers = {"Authorization": f"Bearer {admin_key}"}
        created = (await live.http.post("/api/v1/api-keys", json={"name": "d"}, headers=headers)).json()
        async with ws_connect(live.ws(f"token={created['key']}")) as sock, \
                live.http.stream("GET", f"/api/v1/events?api_key={created['key']}") as stream:
            await recv_json(sock)
            lines = stream.aiter_lines()
            assert await anext(lines) == ": connected"
            resp = await live.http.delete(f"/api/v1/api-keys/{created['id']}", headers=headers)
            assert resp.status_code == 204
            async with live.state.pool.acquire() as conn:
                await conn.execute("SELECT pg_notify('spooled_auth_revoked', $1)", "k:" + created["id"])
            error = await until_type(sock, "Error", timeout=3)
            assert "revoked" in error["data"]["message"]
            rest = []
            async with asyncio.timeout(3):
                async for line in lines:
                    rest.append(line)
            assert "event: error" in rest
