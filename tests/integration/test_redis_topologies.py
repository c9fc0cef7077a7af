"""REDIS_URL naming Redis Sentinel or Redis Cluster (db/redis.py, redis-py's own support), on
real redis-server processes: a sentinel monitoring the session's Redis, a one-node cluster."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest
import redis

from spooled_backend.app import connect_redis
from spooled_backend.db.redis import parse_redis_url
from tests.conftest import _api, make_settings
from tests.support import RedisServer, free_port


def _wait(port: int, check: str = "PING") -> redis.Redis:
    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.execute_command(check)
            return client
        except redis.ConnectionError:
            import time

            time.sleep(0.05)
    raise RuntimeError(f"redis on {port} did not start")


@pytest.fixture(scope="module")
def sentinel(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    workdir = tmp_path_factory.mktemp("sentinel")
    port = free_port()
    conf = workdir / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                    f"sentinel monitor spooled 127.0.0.1 {redis_server.port} 1\n")
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    workdir = tmp_path_factory.mktemp("cluster")
    port = free_port()
    proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port),
                             "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--dir", str(workdir),
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = _wait(port)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        for _ in range(200):
            if b"cluster_state:ok" in client.execute_command("CLUSTER", "INFO"):
                break
            import time

            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_url_forms() -> None:
    spec = parse_redis_url("redis+sentinel://:s3cret@h1:26379,h2/mymaster/2?sentinel_password=x")
    assert spec["kind"] == "sentinel" and spec["hosts"] == [("h1", 26379), ("h2", 26379)]
    assert (spec["service"], spec["db"], spec["password"]) == ("mymaster", 2, "s3cret")
    assert spec["query"] == {"sentinel_password": "x"}
    assert parse_redis_url("redis+cluster://a:7000,b:7001")["hosts"] == [("a", 7000), ("b", 7001)]
    assert parse_redis_url("redis://localhost:6379/0")["kind"] == "single"
    with pytest.raises(ValueError, match="service name"):
        parse_redis_url("redis+sentinel://h1:26379")


async def test_sentinel_master_serves_the_app(sentinel: int, db_url: str) -> None:
    settings = make_settings(db_url, redis_url=f"redis+sentinel://127.0.0.1:{sentinel}/spooled/0")
    client = await connect_redis(settings)
    assert client is not None
    try:
        await client.set("spooled:sentinel-probe", "1")
        assert await client.get("spooled:sentinel-probe") == b"1"
    finally:
        await client.aclose()
    async for api in _api(settings, db_url):
        health = (await api.client.get("/health")).json()
        assert health["cache"] is True


async def test_cluster_client(cluster: int, db_url: str) -> None:
    settings = make_settings(db_url, redis_url=f"redis+cluster://127.0.0.1:{cluster}")
    client = await connect_redis(settings)
    assert client is not None
    try:
        await client.set("spooled:cluster-probe", "1")
        assert await client.get("spooled:cluster-probe") == b"1"
    finally:
        await client.aclose()
