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
(the notification clock) before the claim statement, and `wait` returns at once when a
notification for the queue arrived since that no waiting claimer took (the job it announced
committed after the claim's snapshot, so the claim could not see it). Each notification goes to
at most `count` claimers — woken waiters first, then claimers whose claim was in flight — never
to every claimer in flight: at 200 jobs/s with 8 consumers cycling, handing each notification to
all of them made ~1.6 empty claims per job (a herd that loaded the server and doubled the
pickup latency). A claimer handed a notification claims again even past its deadline; one
cancelled in between passes it on.

The earliest due time of a queue is read from the database (`NEXT_DUE`) after an empty claim
only when this process does not know it yet: after that query every later due job reaches the
timer through its notification, until the timer fires or the listener reconnects.

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
MAX_MISSED = 16  # notifications kept per queue for claimers in flight (older ones merged)


class ClaimWakeups:
    """Waiting claimers per (organization, queue) and the timers of their due jobs."""

    def __init__(self) -> None:
        self._waiters: dict[Key, deque[asyncio.Future[bool]]] = {}
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}
        self._clock = 0  # notifications seen (all queues); a ticket is a reading of it
        self._last: dict[Key, int] = {}  # clock of each queue's latest notification
        # Notifications no waiter took: [clock, claimers still owed], oldest first.
        self._missed: dict[Key, deque[list[int]]] = {}
        self._forgotten = 0  # tickets older than this predate a reset of `_last`: re-check
        self._due_known: dict[Key, int] = {}  # queue → `_due_epoch` generation it was read at
        self._due_epoch = 0  # bumped when a timer fires or every timer is dropped

    @property
    def waiting(self) -> int:
        return sum(len(q) for q in self._waiters.values())

    def ticket(self, org_id: str, queue_name: str) -> int:
        """Take before the claim statement; pass to `wait` after an empty claim."""
        return self._clock

    async def wait(self, org_id: str, queue_name: str, timeout: float,
                   ticket: int | None = None) -> bool:
        """Sleep until woken or `timeout` seconds pass; True when woken (at once when the queue
        was notified since `ticket` and no waiting claimer took that notification)."""
        if timeout <= 0:
            return False
        key = (org_id, queue_name)
        if ticket is not None and self._take_missed(key, ticket):
            return True
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        expiry = loop.call_later(timeout, _settle, future, False)
        queue = self._waiters.setdefault(key, deque())
        queue.append(future)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.result():
                self.wake(org_id, queue_name, 1)  # woken, then cancelled: pass it on
            raise
        finally:
            expiry.cancel()
            try:
                queue.remove(future)
            except ValueError:
                pass
            if not queue and self._waiters.get(key) is queue:
                del self._waiters[key]

    def _take_missed(self, key: Key, ticket: int) -> bool:
        """Hand the claimer one notification that arrived after `ticket` and is still owed."""
        if ticket < self._forgotten:
            return True
        if self._last.get(key, -1) <= ticket:
            return False
        missed = self._missed.get(key)
        if not missed:
            return False
        for entry in missed:
            if entry[0] > ticket and entry[1] > 0:
                entry[1] -= 1
                if entry[1] == 0:
                    missed.remove(entry)
                    if not missed:
                        del self._missed[key]
                return True
        return False

    def wake(self, org_id: str, queue_name: str, count: int = 1) -> int:
        """Wake up to `count` waiters of the queue (oldest first); returns how many. What no
        waiter took is owed to claimers whose claim is in flight (`wait` with an older ticket)."""
        key = (org_id, queue_name)
        self._clock += 1
        if len(self._last) > 100_000:  # bounded: a forgotten queue only costs an extra claim
            self._last.clear()
            self._missed.clear()
            self._forgotten = self._clock
        self._last[key] = self._clock
        woken = self._wake_waiters(key, count)
        if woken < count:
            missed = self._missed.setdefault(key, deque())
            missed.append([self._clock, count - woken])
            if len(missed) > MAX_MISSED:  # merge the oldest into the next: never fewer owed
                oldest = missed.popleft()
                missed[0][1] = min(missed[0][1] + oldest[1], 1 << 30)
        return woken

    def _wake_waiters(self, key: Key, count: int) -> int:
        woken = 0
        for future in self._waiters.get(key, ()):
            if woken >= count:
                break
            if not future.done():
                future.set_result(True)
                woken += 1
        return woken

    def wake_all(self) -> None:
        """Every waiter, and every claimer whose claim is in flight, re-checks (listener
        reconnect: notifications may have been lost; shutdown)."""
        for key in list(self._waiters):
            self._wake_waiters(key, 1 << 30)
        self._clock += 1
        self._forgotten = self._clock
        self._due_known.clear()
        self._due_epoch += 1

    def due_known(self, org_id: str, queue_name: str) -> bool:
        """True when the queue's earliest due time is already on a timer (or there is none):
        an empty claim can skip `NEXT_DUE`."""
        return self._due_known.get((org_id, queue_name)) == self._due_epoch

    def due_generation(self) -> int:
        """Read before `NEXT_DUE`; pass to `set_due` with its answer."""
        return self._due_epoch

    def set_due(self, org_id: str, queue_name: str, due_epoch: float | None,
                generation: int) -> None:
        """`NEXT_DUE`'s answer (None: no job due later): arm the timer, and remember it unless
        a timer fired since the query started (its snapshot may miss jobs notified meanwhile)."""
        if due_epoch is not None:
            self.wake_at(org_id, queue_name, due_epoch)
        if generation == self._due_epoch:
            if len(self._due_known) > 100_000:
                self._due_known.clear()
            self._due_known[(org_id, queue_name)] = generation

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
        # Later due jobs of the queue had no timer of their own: the next empty claim reads
        # NEXT_DUE again.
        self._due_known.pop(key, None)
        self._due_epoch += 1
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


def _settle(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)
