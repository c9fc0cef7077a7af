"""REDIS_URL naming Redis Sentinel or Redis Cluster (db/redis.py, redis-py's own support), on
real redis-server processes: a sentinel monitoring the session's Redis, a one-node cluster."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from spooled_backend.app import connect_redis
from spooled_backend.db.redis import parse_redis_url
from tests.conftest import _api, make_settings
from tests.support import RedisServer, free_port


def _start(args_for_port: Callable[[int], list[str]]) -> tuple[subprocess.Popen[bytes], int]:
    """Start redis-server on a free port and wait for PING; a port taken between `free_port()`
    and the bind (the server then exits) is retried on another one."""
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", *args_for_port(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.ping()
                return proc, port
            except redis.ConnectionError:
                time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=10)
    raise RuntimeError("redis-server did not start")


@pytest.fixture(scope="module")
def sentinel(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    workdir = tmp_path_factory.mktemp("sentinel")

    def args(port: int) -> list[str]:
        conf = workdir / f"sentinel-{port}.conf"
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                        f"sentinel monitor spooled 127.0.0.1 {redis_server.port} 1\n")
        return [str(conf), "--sentinel"]

    proc, port = _start(args)
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    workdir = tmp_path_factory.mktemp("cluster")
    proc, port = _start(lambda port: [
        "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
        "--cluster-config-file", f"nodes-{port}.conf", "--dir", str(workdir), "--save", "",
        "--appendonly", "no"])
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        deadline = time.monotonic() + 30
        while b"cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
            assert time.monotonic() < deadline, "one-node cluster never became ok"
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
