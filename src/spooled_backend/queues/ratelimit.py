"""Per-queue claim rate limit, enforced in PostgreSQL across every replica.

`queue_config.rate_limit` is a rate in **jobs per second** handed out by claims for that queue
(CONTRACT §9.1 stores it; the original never enforced it). We enforce it with a token bucket
kept on the queue's own config row:

* capacity (burst) = `rate_limit` jobs, i.e. one second's worth; a fresh bucket is full;
* refill = `rate_limit` tokens per second of wall-clock time (`clock_timestamp()`, read after
  the row lock is held, so a claim that waited on the lock never refills backwards);
* a claim locks the row (`FOR NO KEY UPDATE`), refills, caps its `LIMIT` at the whole tokens
  available, and spends exactly one token per job it actually handed out — idle polls of an
  empty queue cost nothing.

The row lock lives inside the claim statement itself (one round trip, committed together with
the leased jobs), so any number of app instances on one database together hand out at most
`rate_limit × seconds + rate_limit` jobs in any window. A queue without a rate limit (no config
row, or `rate_limit IS NULL`) takes no lock: its claim pays one extra probe of the
`(organization_id, queue_name)` unique index and nothing else.

The fragments below are spliced into `jobs.queries.CLAIM_JOBS`, which binds `$1` org id,
`$2` queue name and `$3` the requested limit, and names its UPDATE … RETURNING CTE `claimed`.
"""

from __future__ import annotations

# Locks and refills the bucket of a rate-limited queue; empty for every other queue.
# `refill.tokens` = whole + fractional jobs available now (0 .. rate_limit).
BUCKET_CTES = """rate_bucket AS MATERIALIZED (
    SELECT c.id, c.enabled, c.rate_limit::float8 AS rate, c.rate_tokens, c.rate_refilled_at
    FROM queue_config c
    WHERE c.organization_id = $1 AND c.queue_name = $2 AND c.rate_limit IS NOT NULL
    FOR NO KEY UPDATE
), rate_refill AS MATERIALIZED (
    SELECT b.id, b.enabled, t.at,
           LEAST(b.rate, COALESCE(b.rate_tokens, b.rate) + b.rate * GREATEST(0::float8,
                 EXTRACT(EPOCH FROM t.at - COALESCE(b.rate_refilled_at, t.at))::float8)) AS tokens
    FROM rate_bucket b CROSS JOIN LATERAL (SELECT clock_timestamp() AS at) t
)"""

# The claim's LIMIT: the requested count, capped by whole tokens for a rate-limited queue.
ALLOWANCE = """LEAST($3, COALESCE(
    (SELECT CASE WHEN enabled THEN GREATEST(floor(tokens), 0)::int ELSE 0 END FROM rate_refill),
    $3))"""

# Spends one token per job handed out and records the refill time.
SPEND_CTE = """rate_spend AS (
    UPDATE queue_config c
    SET rate_tokens = GREATEST(r.tokens - (SELECT count(*) FROM claimed), 0::float8),
        rate_refilled_at = r.at
    FROM rate_refill r WHERE c.id = r.id
)"""


def burst_for(rate_limit: int) -> int:
    """Bucket capacity for a queue limited to `rate_limit` jobs per second (one second's worth)."""
    return max(1, rate_limit)


def max_handed_out(rate_limit: int, seconds: float) -> float:
    """Upper bound on jobs all replicas together hand out in `seconds` for a `rate_limit`
    jobs/second queue: a full burst plus the refill over the window."""
    return burst_for(rate_limit) + rate_limit * seconds
