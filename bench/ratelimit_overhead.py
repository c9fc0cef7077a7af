"""Added latency of the rate limiter per request (CONTRACT §12.4): p50 must stay under 1 ms.

Times the exact calls a request makes — `enforce_tenant` (organization bucket, plus the API-key
bucket when the key has its own `rate_limit`) and the per-IP public bucket of the middleware —
against the in-process store and against a real local redis-server, and prints a table.
A bare Redis PING is timed as the reference for one loopback round trip on this machine.

    python -m bench.ratelimit_overhead [--iterations 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from redis.asyncio import Redis

from spooled_backend.config import Settings
from spooled_backend.core.context import AuthContext
from spooled_backend.ratelimit import rules
from spooled_backend.ratelimit.limiter import RateLimiter
from spooled_backend.ratelimit.tenant import enforce_tenant
from tests.support import RedisServer


def settings() -> Settings:
    return Settings(_env_file=None, database_url="postgresql://unused/x")  # type: ignore[call-arg]


async def timed(fn: Callable[[int], Awaitable[object]], iterations: int) -> list[float]:
    for i in range(200):  # warm-up: scripts loaded, connections open
        await fn(i)
    samples = []
    for i in range(iterations):
        start = time.perf_counter()
        await fn(i)
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def row(name: str, samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return (f"| {name:<50} | {q[49]:>8.0f} | {q[89]:>8.0f} | {q[98]:>8.0f} | "
            f"{statistics.fmean(samples):>8.0f} |")


async def scenarios(limiter: RateLimiter, label: str, iterations: int) -> list[str]:
    cfg = settings()
    # 2000 distinct orgs so buckets never fill up (we time the allowed path, the common one)
    plain = [AuthContext(organization_id=f"org-{i}", api_key_id=f"key-{i}", plan_tier="enterprise")
             for i in range(2000)]
    keyed = [AuthContext(organization_id=f"korg-{i}", api_key_id=f"kkey-{i}",
                         plan_tier="enterprise", rate_limit=10_000) for i in range(2000)]
    public = rules.public_ip(100, 200)
    out = [
        row(f"{label}: organization bucket", await timed(
            lambda i: enforce_tenant(limiter, cfg, plain[i % 2000]), iterations)),
        row(f"{label}: organization + API-key bucket", await timed(
            lambda i: enforce_tenant(limiter, cfg, keyed[i % 2000]), iterations)),
        row(f"{label}: public per-IP bucket", await timed(
            lambda i: limiter.hit(public, f"10.0.{i % 250}.{i % 7}"), iterations)),
    ]
    return out


async def main(iterations: int) -> None:
    lines = [
        f"Rate limiter added latency per request, microseconds ({iterations} requests each)",
        "",
        f"| {'scenario':<50} | {'p50':>8} | {'p90':>8} | {'p99':>8} | {'mean':>8} |",
        f"|{'-' * 52}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 10}|",
    ]
    lines += await scenarios(RateLimiter(None, fail_closed=False), "in-process", iterations)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp))
        try:
            redis = Redis.from_url(server.url)
            limiter = RateLimiter(redis, fail_closed=False)
            lines.append(row("reference: one Redis PING round trip", await timed(
                lambda i: redis.ping(), iterations)))
            lines += await scenarios(limiter, "redis (loopback)", iterations)
            assert limiter.mode == "redis", "Redis path was not used"
            await redis.aclose()
        finally:
            server.stop()
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=3000)
    asyncio.run(main(parser.parse_args().iterations))
