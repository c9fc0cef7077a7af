"""The two rate-limit stores give the same answers (GCRA buckets, fixed windows, all-or-nothing),
and the client-IP rules of CONTRACT §12.4."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from spooled_backend.ratelimit import rules
from spooled_backend.ratelimit.clientip import client_ip
from spooled_backend.ratelimit.limiter import RateLimiter
from spooled_backend.ratelimit.stores import MemoryStore, RedisStore
from tests.support import RedisServer

_ids = itertools.count()


@pytest_asyncio.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_server: RedisServer) -> AsyncIterator[object]:
    if request.param == "memory":
        yield MemoryStore()
        return
    client = Redis.from_url(redis_server.url)
    try:
        yield RedisStore(client)
    finally:
        await client.aclose()


def ident() -> str:
    return f"id-{next(_ids)}"


async def test_token_bucket(store: MemoryStore | RedisStore) -> None:
    rule = rules.token_bucket("t:bucket", "organization", rps=1, burst=3)
    who = ident()
    results = [(await store.check([(rule, who)]))[0] for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [r.remaining for r in results[:3]] == [2, 1, 0]
    # the next token comes in ~1 s; the bucket is full again ~3 s after the first hit
    assert 900 <= results[3].retry_after_ms <= 1000
    assert 2900 <= results[2].reset_after_ms <= 3000


async def test_fixed_window(store: MemoryStore | RedisStore) -> None:
    rule = rules.per_minute("t:window", "api_key", 2)
    who = ident()
    results = [(await store.check([(rule, who)]))[0] for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert [r.remaining for r in results[:2]] == [1, 0]
    assert 59_000 <= results[2].retry_after_ms <= 60_000


async def test_all_or_nothing(store: MemoryStore | RedisStore) -> None:
    roomy = rules.token_bucket("t:roomy", "organization", rps=1, burst=100)
    tight = rules.per_minute("t:tight", "api_key", 1)
    a, b = ident(), ident()
    first = await store.check([(roomy, a), (tight, b)])
    assert [o.allowed for o in first] == [True, True] and first[0].remaining == 99
    second = await store.check([(roomy, a), (tight, b)])
    assert [o.allowed for o in second] == [True, False]
    # the denied request charged nothing: the roomy bucket still has 99 (plus refill)
    alone = (await store.check([(roomy, a)]))[0]
    assert alone.allowed and alone.remaining == 98


async def test_limiter_decisions_and_headers() -> None:
    limiter = RateLimiter(None, fail_closed=True)  # no Redis configured: memory, never "unavailable"
    rule = rules.per_minute("t:dec", "ip", 1)
    ok = await limiter.hit(rule, "x")
    denied = await limiter.hit(rule, "x")
    assert limiter.mode == "memory"
    assert ok.allowed and not denied.allowed and not denied.unavailable
    names = [n for n, _ in denied.header_pairs()]
    assert names == ["X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
                     "X-RateLimit-Scope", "Retry-After"]
    assert denied.reset >= ok.reset and 59 <= denied.retry_after <= 60
    body = denied.error_body()
    assert body["code"] == "RATE_LIMIT_EXCEEDED" and body["retry_after_secs"] == denied.retry_after


def scope_with(headers: dict[str, str], peer: str = "127.0.0.9") -> dict[str, object]:
    return {"headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": (peer, 5555)}


@pytest.mark.parametrize(
    ("headers", "trusted", "hops", "expected"),
    [
        ({}, None, 0, "127.0.0.9"),
        ({"X-Client": "203.0.113.5"}, "X-Client", 0, "203.0.113.5"),
        ({"X-Client": "garbage", "X-Real-IP": "203.0.113.6"}, "X-Client", 0, "203.0.113.6"),
        ({"CF-Connecting-IP": "2001:db8::1", "X-Real-IP": "203.0.113.7"}, None, 0, "2001:db8::1"),
        ({"X-Real-IP": "203.0.113.8"}, None, 0, "203.0.113.8"),
        ({"X-Forwarded-For": "198.51.100.1, 10.0.0.2, 10.0.0.3"}, None, 0, "10.0.0.3"),
        ({"X-Forwarded-For": "198.51.100.1, 10.0.0.2, 10.0.0.3"}, None, 2, "198.51.100.1"),
        ({"X-Forwarded-For": "198.51.100.1"}, None, 5, "127.0.0.9"),
        ({"X-Forwarded-For": "not-an-ip"}, None, 0, "127.0.0.9"),
        ({"X-Real-IP": "203.0.113.9:443"}, None, 0, "203.0.113.9"),
        ({"X-Real-IP": "[2001:db8::2]:443"}, None, 0, "2001:db8::2"),
    ],
)
def test_client_ip(headers: dict[str, str], trusted: str | None, hops: int, expected: str) -> None:
    assert client_ip(scope_with(headers), trusted, hops) == expected
