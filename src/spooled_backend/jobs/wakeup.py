"""Waking claimers that wait (`wait_ms` on `POST /jobs/claim`, issue 8 point 3).

Migration 0008's triggers send `NOTIFY spooled_jobs_ready, '<org>\\t<queue>\\t<count>\\t<due>'`
once per statement and (organization, queue): `count` jobs became claimable now (inserted
pending, released to pending, dependencies met, queue resumed), or, with `due` (epoch seconds),
that the earliest of them becomes claimable at `due` (scheduled jobs, retries with backoff).
The process's single listener (db/listener.py) hands each to `ClaimWakeups.on_notify`:

* claimable now → wake up to `count` waiting claimers of that queue, oldest first;
* due later → an in-process timer (`loop.call_at`) for the earliest due time per queue wakes one
  claimer then (not the 5 s activation sweep);
* a claimer that took a full batch wakes the next one (there may be more: "baton"), so one
  notification for 100 jobs never strands 99 of them;
* after a listener reconnect every waiter is woken: it re-checks with a claim.

No wake-up is lost between a claimer's empty claim and its going to sleep: it takes a `ticket`
(the queue's notification count) before the claim statement, and `wait` returns at once when a
notification for the queue arrived since (the job it announced committed after the claim's
snapshot, so the claim could not see it).

A wake-up is a hint, never a promise: the woken claimer runs the normal claim (SKIP LOCKED) and
waits again when another one was faster. No database connection is held while waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

import structlog

log = structlog.get_logger(__name__)

CHANNEL = "spooled_jobs_ready"
MAX_WAIT_MS = 30_000

Key = tuple[str, str]  # (organization_id, queue_name)


class ClaimWakeups:
    """Waiting claimers per (organization, queue) and the timers of their due jobs."""

    def __init__(self) -> None:
        self._waiters: dict[Key, deque[asyncio.Future[None]]] = {}
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self._seq: dict[Key, int] = {}  # notifications seen per queue (see `ticket`)

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiters.values())

    def ticket(self, org_id: str, queue_name: str) -> int:
        """Take before the claim statement; pass to `wait` after an empty claim."""
        return self._seq.get((org_id, queue_name), 0)

    async def wait(self, org_id: str, queue_name: str, timeout: float,
                   ticket: int | None = None) -> bool:
        """Sleep until woken or `timeout` seconds pass; True when woken (at once when the queue
        was notified since `ticket`)."""
        if timeout <= 0:
            return False
        key = (org_id, queue_name)
        if ticket is not None and self._seq.get(key, 0) != ticket:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._waiters.setdefault(key, deque())
        queue.append(future)
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            try:
                queue.remove(future)
            except ValueError:
                pass
            if not queue and self._waiters.get(key) is queue:
                del self._waiters[key]

    def wake(self, org_id: str, queue_name: str, count: int = 1) -> int:
        """Wake up to `count` waiters of the queue (oldest first); returns how many."""
        key = (org_id, queue_name)
        self._seq[key] = self._seq.get(key, 0) + 1
        if len(self._seq) > 100_000:  # bounded: a stale ticket only costs one extra claim
            self._seq.clear()
        queue = self._waiters.get(key)
        woken = 0
        if not queue:
            return 0
        for future in list(queue):
            if woken >= count:
                break
            if not future.done():
                future.set_result(None)
                woken += 1
        return woken

    def wake_all(self) -> None:
        for (org_id, queue_name) in list(self._waiters):
            self.wake(org_id, queue_name, 1 << 30)

    def wake_at(self, org_id: str, queue_name: str, due_epoch: float) -> None:
        """Wake one waiter of the queue at `due_epoch` (earliest timer per queue wins)."""
        key = (org_id, queue_name)
        current = self._timers.get(key)
        if current is not None and current[0] <= due_epoch:
            return
        if current is not None:
            current[1].cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, due_epoch - time.time())
        handle = loop.call_at(loop.time() + delay, self._due, key)
        self._timers[key] = (due_epoch, handle)

    def _due(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.wake(key[0], key[1], 1)

    def on_notify(self, payload: str) -> None:
        """Listener callback for CHANNEL (payload format in the module docstring)."""
        parts = payload.split("\t")
        if len(parts) < 2:
            self.wake_all()
            return
        org_id, queue_name = parts[0], parts[1]
        count = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
        due = parts[3] if len(parts) > 3 else ""
        if due:
            try:
                self.wake_at(org_id, queue_name, float(due))
            except ValueError:
                self.wake(org_id, queue_name, 1)
        else:
            self.wake(org_id, queue_name, max(count, 1))

    def close(self) -> None:
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.wake_all()
