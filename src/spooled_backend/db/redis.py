"""The Redis client for REDIS_URL: a single server, Redis Sentinel or Redis Cluster, each with
redis-py's own support (docs/deployment-guide.md, "Redis scaling").

Forms:
* `redis://[:password@]host:6379/0`, `rediss://…` (TLS), `unix:///path.sock` — one server.
* `redis+sentinel://[:password@]host1:26379,host2:26379/<service>[/<db>]` — the master of
  `<service>` found through the sentinels (failover followed by redis-py's SentinelConnectionPool).
  The password authenticates to the Redis servers; add `?sentinel_password=…` if the
  sentinels need one too.
* `redis+cluster://[:password@]host1:6379,host2:6379` — a Redis Cluster (startup nodes).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import Redis

SENTINEL = "redis+sentinel"
CLUSTER = "redis+cluster"


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for item in netloc.rpartition("@")[2].split(","):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item.strip(), "", "")
        hosts.append((host or item.strip(), int(port) if port else default_port))
    return hosts


def _password(netloc: str) -> str | None:
    if "@" not in netloc:
        return None
    userinfo = netloc.rpartition("@")[0]
    return unquote(userinfo.partition(":")[2] or userinfo) or None


def parse_redis_url(url: str) -> dict[str, Any]:
    """`{kind: single|sentinel|cluster, hosts, service, db, password, query}` (tests, doctor)."""
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == SENTINEL:
        segments = [s for s in parts.path.split("/") if s]
        if not segments:
            raise ValueError("redis+sentinel:// URLs need the service name: …/<service>[/<db>]")
        return {"kind": "sentinel", "hosts": _hosts(parts.netloc, 26379), "service": segments[0],
                "db": int(segments[1]) if len(segments) > 1 else 0,
                "password": _password(parts.netloc), "query": query}
    if parts.scheme == CLUSTER:
        return {"kind": "cluster", "hosts": _hosts(parts.netloc, 6379), "service": None, "db": 0,
                "password": _password(parts.netloc), "query": query}
    return {"kind": "single", "hosts": [], "service": None, "db": 0, "password": None,
            "query": query}


def redis_from_url(url: str, **options: Any) -> Any:
    """A redis.asyncio client (Redis, a Sentinel master client, or RedisCluster)."""
    spec = parse_redis_url(url)
    if spec["kind"] == "sentinel":
        from redis.asyncio.sentinel import Sentinel

        sentinel_kwargs = {"socket_connect_timeout": options.get("socket_connect_timeout", 2)}
        if "sentinel_password" in spec["query"]:
            sentinel_kwargs["password"] = spec["query"]["sentinel_password"]
        sentinel = Sentinel(spec["hosts"], sentinel_kwargs=sentinel_kwargs)
        options.pop("max_connections", None)
        return sentinel.master_for(spec["service"], redis_class=Redis, db=spec["db"],
                                   password=spec["password"], **options)
    if spec["kind"] == "cluster":
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in spec["hosts"]]
        return RedisCluster(startup_nodes=nodes, password=spec["password"], **options)
    return Redis.from_url(url, **options)
