"""In-process fan-out: the subscribers (WebSocket and SSE clients) of this process and the
filters that decide what each one receives (CONTRACT §14.1 delivery filter).

Each subscriber owns a bounded queue. Delivery never waits: when a subscriber's queue is full
(a client that does not read), it is marked `overflowed`, its queue is replaced by a single
`Error` event and its connection is closed by its own sender task, so a slow client costs at
most `queue_size` events of memory and never slows down anyone else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from spooled_backend.core.context import AuthContext
from spooled_backend.observability import metrics
from spooled_backend.realtime.envelope import (
    CONTROL,
    UNSCOPED_WORKER_EVENTS,
    Event,
    control_event,
)

log = structlog.get_logger(__name__)

DEFAULT_QUEUE_SIZE = 1024
# Internal, never sent: "re-validate your credentials now" (a key was revoked somewhere).
RECHECK = "_Recheck"
SLOW_CLIENT_MESSAGE = "Client is not reading events fast enough; disconnecting"


@dataclass
class Filters:
    """What a subscriber asked for: one queue, one job, a set of variants (None = all)."""

    queue: str | None = None
    job_id: str | None = None
    types: frozenset[str] | None = None


@dataclass(eq=False)
class Subscriber:
    """One connected client. `auth` is re-validated while it streams (realtime/auth.py)."""

    org_id: str
    auth: AuthContext
    filters: Filters
    kind: str  # "ws" or "sse"
    queue_size: int = DEFAULT_QUEUE_SIZE
    overflowed: bool = False
    closed: bool = False
    queue: asyncio.Queue[Event] = field(init=False)
    dropped: asyncio.Event = field(init=False)  # set on overflow: the sender closes the client

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.queue_size)
        self.dropped = asyncio.Event()

    def wants(self, event: Event) -> bool:
        """Scope first (a scoped key never sees other queues nor queue-less worker events),
        then the client's own queue / job / event-type filters."""
        kind = event.type
        if kind in CONTROL:
            return True
        auth = self.auth
        if not auth.unrestricted:
            if kind in UNSCOPED_WORKER_EVENTS:
                return False
            if event.queue_name is not None and not auth.can_access_queue(event.queue_name):
                return False
        f = self.filters
        if f.types is not None and kind not in f.types:
            return False
        if kind == "SystemHealth":
            return True
        if f.queue is not None and event.queue_name != f.queue:
            return False
        if f.job_id is not None and event.job_id != f.job_id:
            return False
        return True

    def offer(self, event: Event) -> None:
        """Queue `event` without waiting; on overflow drop the backlog for one Error event."""
        if self.overflowed or self.closed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(control_event("Error", message=SLOW_CLIENT_MESSAGE))
            self.dropped.set()
            metrics.REALTIME_SLOW_CLIENTS_DROPPED.inc()
            log.warning("realtime client dropped: not reading", kind=self.kind, org_id=self.org_id,
                        queue_size=self.queue_size)


class Hub:
    """This process's subscribers by organization, with per-organization caps per kind."""

    def __init__(self, on_last: Callable[[str], object] | None = None) -> None:
        self._by_org: dict[str, set[Subscriber]] = {}
        self._on_last = on_last

    def has(self, org_id: str) -> bool:
        return org_id in self._by_org

    def orgs(self) -> list[str]:
        return list(self._by_org)

    def count(self, org_id: str, kind: str) -> int:
        return sum(1 for s in self._by_org.get(org_id, ()) if s.kind == kind)

    def total(self) -> int:
        return sum(len(s) for s in self._by_org.values())

    def all(self) -> list[Subscriber]:
        return [s for subs in self._by_org.values() for s in subs]

    def add(self, sub: Subscriber) -> bool:
        """Register; True when `sub` is the organization's first subscriber here."""
        subs = self._by_org.get(sub.org_id)
        first = subs is None
        if subs is None:
            subs = self._by_org[sub.org_id] = set()
        subs.add(sub)
        metrics.REALTIME_CONNECTIONS.inc()
        return first

    def remove(self, sub: Subscriber) -> None:
        sub.closed = True
        subs = self._by_org.get(sub.org_id)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        metrics.REALTIME_CONNECTIONS.dec()
        if not subs:
            del self._by_org[sub.org_id]
            if self._on_last is not None:
                self._on_last(sub.org_id)

    def dispatch(self, event: Event) -> None:
        """Offer `event` to every subscriber of its organization that wants it."""
        for sub in tuple(self._by_org.get(event.org_id, ())):
            if sub.wants(event):
                sub.offer(event)

    def poke(self, matches: Callable[[Subscriber], bool]) -> int:
        """Ask the matching subscribers to re-validate their credentials now."""
        poked = 0
        for sub in self.all():
            if matches(sub):
                sub.offer(Event(sub.org_id, RECHECK, {}))
                poked += 1
        return poked

    def broadcast(self, event: Event, kinds: tuple[str, ...] = ("ws", "sse")) -> None:
        """A process-level event (SystemHealth) to every subscriber that wants it."""
        for sub in self.all():
            if sub.kind in kinds and sub.wants(event):
                sub.offer(event)
