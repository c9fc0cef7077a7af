"""Background work of the realtime bus: `QueueStats` envelopes (CONTRACT §14.1).

One replica at a time (the loop's advisory lock) counts, for every organization some process
has realtime subscribers for, each queue's jobs (pending = pending + scheduled, failed = failed
+ deadletter, all-time counts, as `GET /events/queues/{name}` reports them) and publishes a
`QueueStats` event for each queue whose counts changed since its last run. Nobody watching:
no query at all.
"""

from __future__ import annotations

from typing import Any

import asyncpg

QUEUE_COUNTS_BY_ORG = """
SELECT organization_id, queue_name,
       count(*) FILTER (WHERE status IN ('pending', 'scheduled')) AS pending,
       count(*) FILTER (WHERE status = 'processing') AS processing,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status IN ('failed', 'deadletter')) AS failed
FROM jobs WHERE organization_id = ANY($1::text[])
GROUP BY organization_id, queue_name
"""


class QueueStatsPublisher:
    """Remembers the last counts it published, per (organization, queue)."""

    def __init__(self, events: Any) -> None:
        self.events = events  # realtime.bus.EventBus
        self._last: dict[tuple[str, str], tuple[int, int, int, int]] = {}

    async def run(self, conn: asyncpg.Connection) -> int:
        """One pass; returns how many QueueStats events were published."""
        orgs = self.events.watched_orgs()
        if not orgs:
            self._last.clear()
            return 0
        rows = await conn.fetch(QUEUE_COUNTS_BY_ORG, orgs)
        published = 0
        seen: set[tuple[str, str]] = set()
        for row in rows:
            key = (row["organization_id"], row["queue_name"])
            counts = (row["pending"], row["processing"], row["completed"], row["failed"])
            seen.add(key)
            if self._last.get(key) == counts:
                continue
            self._last[key] = counts
            self.events.queue_stats(key[0], key[1], *counts)
            published += 1
        for key in list(self._last):
            if key not in seen:
                del self._last[key]
        return published
