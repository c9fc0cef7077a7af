"""Where counters live: one Redis script call per request (shared by all replicas), or the
process's memory (degraded mode). Both implement the same all-or-nothing check: every rule of
the request is evaluated and, only when all allow, every rule is charged — a 429 spends nothing.

Token buckets use GCRA (one timestamp per key: the "theoretical arrival time"); fixed windows
use a counter that expires with its window. Times are milliseconds; Redis uses its own clock
(TIME), so replicas with skewed clocks still agree.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis

from spooled_backend.ratelimit.rules import Rule

# KEYS: one per rule. ARGV: kind (0 bucket, 1 window), limit, period_ms per rule.
# Returns now_ms followed by allowed, remaining, reset_after_ms, retry_after_ms per rule.
CHECK_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {now}
local writes = {}
local all = true
for i = 1, #KEYS do
    local kind = tonumber(ARGV[i * 3 - 2])
    local limit = tonumber(ARGV[i * 3 - 1])
    local period = tonumber(ARGV[i * 3])
    if kind == 0 then
        local interval = period / limit
        local tat = tonumber(redis.call('GET', KEYS[i]) or now)
        if tat < now then tat = now end
        local new_tat = tat + interval
        local allow_at = new_tat - period
        if now < allow_at then
            all = false
            table.insert(out, 0); table.insert(out, 0)
            table.insert(out, math.ceil(tat - now)); table.insert(out, math.ceil(allow_at - now))
        else
            writes[i] = new_tat
            table.insert(out, 1); table.insert(out, math.floor((now - allow_at) / interval))
            table.insert(out, math.ceil(new_tat - now)); table.insert(out, 0)
        end
    else
        local count = tonumber(redis.call('GET', KEYS[i]) or '0')
        local ttl = redis.call('PTTL', KEYS[i])
        if ttl < 0 then ttl = period end
        if count + 1 > limit then
            all = false
            table.insert(out, 0); table.insert(out, 0)
            table.insert(out, ttl); table.insert(out, ttl)
        else
            writes[i] = true
            table.insert(out, 1); table.insert(out, limit - count - 1)
            table.insert(out, ttl); table.insert(out, 0)
        end
    end
end
if all then
    for i = 1, #KEYS do
        local kind = tonumber(ARGV[i * 3 - 2])
        if kind == 0 then
            redis.call('SET', KEYS[i], string.format('%.3f', writes[i]), 'PX',
                       math.max(1, math.ceil(writes[i] - now)))
        else
            if redis.call('INCR', KEYS[i]) == 1 then
                redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[i * 3]))
            end
        end
    end
end
return out
"""


@dataclass(frozen=True)
class Outcome:
    """Raw result for one rule (milliseconds relative to `now_ms`)."""

    allowed: bool
    remaining: int
    reset_after_ms: float
    retry_after_ms: float
    now_ms: float


def _argv(rules: list[tuple[Rule, str]]) -> list[float | int]:
    argv: list[float | int] = []
    for rule, _ in rules:
        argv += [0 if rule.kind == "bucket" else 1, rule.limit, math.ceil(rule.period_secs * 1000)]
    return argv


class RedisStore:
    """The shared store: one EVALSHA per request, whatever the number of rules."""

    def __init__(self, redis: Redis) -> None:
        self.script = redis.register_script(CHECK_SCRIPT)

    async def check(self, rules: list[tuple[Rule, str]]) -> list[Outcome]:
        keys = [rule.key(identity) for rule, identity in rules]
        raw = await self.script(keys=keys, args=_argv(rules))
        now = float(raw[0])
        return [
            Outcome(bool(raw[1 + 4 * i]), int(raw[2 + 4 * i]), float(raw[3 + 4 * i]),
                    float(raw[4 + 4 * i]), now)
            for i in range(len(rules))
        ]


class MemoryStore:
    """This process's counters (no Redis, or Redis down with fail-open). Same semantics as the
    script; bounded: expired entries are swept as the map grows."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._values: dict[str, tuple[float, float]] = {}  # key → (value, expires_at_ms)
        self._max = max_entries

    def _get(self, key: str, now: float) -> tuple[float, float] | None:
        entry = self._values.get(key)
        if entry is None or entry[1] <= now:
            return None
        return entry

    def _sweep(self, now: float) -> None:
        if len(self._values) < self._max:
            return
        for key in [k for k, (_, exp) in self._values.items() if exp <= now]:
            del self._values[key]
        while len(self._values) >= self._max:  # still full: drop the oldest insertions
            self._values.pop(next(iter(self._values)))

    async def check(self, rules: list[tuple[Rule, str]]) -> list[Outcome]:
        now = time.time() * 1000
        out: list[Outcome] = []
        writes: list[tuple[str, float, float]] = []
        for rule, identity in rules:
            key = rule.key(identity)
            period = rule.period_secs * 1000
            entry = self._get(key, now)
            if rule.kind == "bucket":
                interval = period / rule.limit
                tat = max(entry[0] if entry else now, now)
                new_tat = tat + interval
                allow_at = new_tat - period
                if now < allow_at:
                    out.append(Outcome(False, 0, tat - now, allow_at - now, now))
                else:
                    writes.append((key, new_tat, new_tat))
                    out.append(Outcome(True, math.floor((now - allow_at) / interval),
                                       new_tat - now, 0, now))
            else:
                count, expires = entry if entry else (0.0, now + period)
                ttl = expires - now
                if count + 1 > rule.limit:
                    out.append(Outcome(False, 0, ttl, ttl, now))
                else:
                    writes.append((key, count + 1, expires))
                    out.append(Outcome(True, int(rule.limit - count - 1), ttl, 0, now))
        if all(o.allowed for o in out):
            self._sweep(now)
            for key, value, expires in writes:
                self._values[key] = (value, expires)
        return out
