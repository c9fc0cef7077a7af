"""Server-Sent Events (CONTRACT §14.3), framed by `sse-starlette`.

Every stream starts with the comment `: connected`, sends a keep-alive comment every
`REALTIME_SSE_KEEPALIVE_SECS`, ends after `REALTIME_SSE_MAX_LIFE_SECS` (clients reconnect),
re-validates its credentials every `REALTIME_AUTH_RECHECK_SECS` (an `error` event then the end,
when they no longer are), and carries `Cache-Control: no-cache` and `X-Accel-Buffering: no`
(the GZip middleware leaves `text/event-stream` alone). Events are named (`event: job.created`)
with the envelope as `data`. A client that stops reading overflows its queue and is cut off.
Between events a stream holds no database connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import structlog
from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from spooled_backend.core.context import AuthContext
from spooled_backend.core.state import AppState
from spooled_backend.core.tenancy import bind_tenant
from spooled_backend.realtime.auth import QUEUE_FILTER_RE, still_valid
from spooled_backend.realtime.envelope import Event, control_event
from spooled_backend.realtime.hub import RECHECK, Filters, Subscriber

log = structlog.get_logger(__name__)

TERMINAL = frozenset({"completed", "failed", "deadletter", "cancelled"})
SEND_TIMEOUT_SECS = 5.0
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

JOB_STATUS = "SELECT status, queue_name FROM jobs WHERE id = $1 AND (organization_id = $2) IS TRUE"
QUEUE_COUNTS = """
SELECT count(*) FILTER (WHERE status IN ('pending', 'scheduled')) AS pending,
       count(*) FILTER (WHERE status = 'processing') AS processing,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status IN ('failed', 'deadletter')) AS failed
FROM jobs WHERE organization_id = $1 AND queue_name = $2
"""


class EventStream(EventSourceResponse):
    """`EventSourceResponse` with our headers and keep-alive comment. A send that makes no
    progress for `SEND_TIMEOUT_SECS` (a client that stopped reading, whose queue then overflows)
    ends the response; `unsubscribe(sub)` runs however it ends."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], sub: Subscriber | None,
                 keepalive_secs: float, comment: str = "ping",
                 unsubscribe: Callable[[Subscriber], None] | None = None) -> None:
        self.sub = sub
        self.unsubscribe = unsubscribe
        super().__init__(
            content, headers=HEADERS, ping=keepalive_secs,
            ping_message_factory=lambda: ServerSentEvent(comment=comment),
            send_timeout=SEND_TIMEOUT_SECS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            log.warning("event stream closed: client not reading", path=scope.get("path"))
        finally:
            if self.sub is not None and self.unsubscribe is not None:
                self.unsubscribe(self.sub)


def _frame(event: Event) -> ServerSentEvent:
    return ServerSentEvent(data=event.text, event=event.sse_name)


def _error(message: str) -> ServerSentEvent:
    return _frame(control_event("Error", message=message))


class _Clock:
    """Deadlines of one stream: end of life, next credential check, next periodic tick."""

    def __init__(self, state: AppState, tick_secs: float | None) -> None:
        s = state.settings
        self.loop = asyncio.get_running_loop()
        now = self.loop.time()
        self.end = now + s.realtime_sse_max_life_secs
        self.check_every = s.realtime_auth_recheck_secs
        self.next_check = now + self.check_every * (0.75 + random.random() / 4)
        self.tick_secs = tick_secs
        self.next_tick = now + tick_secs if tick_secs else float("inf")

    def wait_secs(self) -> float:
        return max(0.0, min(self.end, self.next_check, self.next_tick) - self.loop.time())

    def ended(self) -> bool:
        return self.loop.time() >= self.end

    def tick_due(self) -> bool:
        if self.loop.time() < self.next_tick:
            return False
        assert self.tick_secs is not None
        self.next_tick = self.loop.time() + self.tick_secs
        return True

    def check_due(self) -> bool:
        if self.loop.time() < self.next_check:
            return False
        self.next_check = self.loop.time() + self.check_every
        return True


async def _next(sub: Subscriber, clock: _Clock) -> Event | None:
    """The next queued event, or None when a deadline came first."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(clock.wait_secs()):
            return await sub.queue.get()
    return None


def subscriber(state: AppState, auth: AuthContext, filters: Filters) -> Subscriber:
    return Subscriber(auth.organization_id, auth, filters, "sse",
                      queue_size=state.settings.realtime_subscriber_queue_size)


async def org_events(
    state: AppState, sub: Subscriber, credential: str
) -> AsyncIterator[ServerSentEvent]:
    """`GET /events`: the organization's events through the bus, plus `system.health`.
    `sub` is registered by the route before the response starts (so a client that has the
    headers misses nothing) and removed when the stream ends (`EventStream`)."""
    try:
        yield ServerSentEvent(comment="connected")
        clock = _Clock(state, state.settings.realtime_health_secs)
        while True:
            event = await _next(sub, clock)
            if event is not None:
                if event.type == RECHECK:
                    if await still_valid(state, credential) is not None:
                        yield _error("Authentication expired or revoked")
                        return
                    continue
                yield _frame(event)
                if sub.overflowed:
                    return
                continue
            if clock.ended():
                return
            if clock.tick_due():
                health = state.events.health_event()
                if sub.wants(health):
                    yield _frame(health)
            if clock.check_due() and await still_valid(state, credential) is not None:
                yield _error("Authentication expired or revoked")
                return
    finally:
        state.events.unsubscribe(sub)


async def _job_row(state: AppState, auth: AuthContext, job_id: str) -> Any:
    async with state.pool.acquire() as conn, conn.transaction():
        await bind_tenant(conn, auth.organization_id, state.tenant_role)
        return await conn.fetchrow(JOB_STATUS, job_id, auth.organization_id)


async def job_events(
    state: AppState, auth: AuthContext, credential: str, job_id: str
) -> AsyncIterator[ServerSentEvent]:
    """`GET /events/jobs/{id}`: `job.status` on each change (polled every
    `REALTIME_JOB_POLL_SECS`, and at once when the bus reports an event of this job), closed
    right after a terminal status; `error` "Job not found" then close for unknown or
    out-of-scope jobs."""
    sub = subscriber(state, auth, Filters(job_id=job_id))
    await state.events.subscribe(sub)  # a wake-up: the status itself is read from the table
    try:
        yield ServerSentEvent(comment="connected")
        clock = _Clock(state, state.settings.realtime_job_poll_secs)
        last = ""
        while True:
            row = await _job_row(state, auth, job_id)
            if row is None or not auth.can_access_queue(row["queue_name"]):
                yield _error("Job not found")
                return
            if row["status"] != last:
                change = control_event("JobStatusChange", job_id=job_id,
                                       queue_name=row["queue_name"], old_status=last,
                                       new_status=row["status"])
                yield _frame(change)
                last = row["status"]
                if last in TERMINAL:
                    return
            while True:
                event = await _next(sub, clock)
                if event is not None:
                    recheck = event.type == RECHECK
                    while not sub.queue.empty():  # coalesce a burst into one poll
                        recheck = sub.queue.get_nowait().type == RECHECK or recheck
                    if recheck and await still_valid(state, credential) is not None:
                        yield _error("Authentication expired or revoked")
                        return
                    if sub.overflowed:
                        sub.overflowed = False
                        sub.dropped.clear()
                    break
                if clock.ended():
                    return
                if clock.check_due() and await still_valid(state, credential) is not None:
                    yield _error("Authentication expired or revoked")
                    return
                if clock.tick_due():
                    break
    finally:
        state.events.unsubscribe(sub)


async def queue_events(
    state: AppState, auth: AuthContext, credential: str, queue_name: str
) -> AsyncIterator[ServerSentEvent]:
    """`GET /events/queues/{name}`: `queue.stats` every `REALTIME_QUEUE_STATS_SECS` (pending
    = pending + scheduled, failed = failed + deadletter, all-time counts). Out of scope: only
    `: connected`, then the end."""
    yield ServerSentEvent(comment="connected")
    if not QUEUE_FILTER_RE.match(queue_name) or not auth.can_access_queue(queue_name):
        return
    clock = _Clock(state, state.settings.realtime_queue_stats_secs)
    while True:
        async with state.pool.acquire() as conn, conn.transaction():
            await bind_tenant(conn, auth.organization_id, state.tenant_role)
            row = await conn.fetchrow(QUEUE_COUNTS, auth.organization_id, queue_name)
        yield _frame(control_event("QueueStats", queue_name=queue_name, **dict(row)))
        while True:
            await asyncio.sleep(clock.wait_secs())
            if clock.ended():
                return
            if clock.check_due() and await still_valid(state, credential) is not None:
                yield _error("Authentication expired or revoked")
                return
            if clock.tick_due():
                break
