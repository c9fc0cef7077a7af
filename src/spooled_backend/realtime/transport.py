"""Carrying events between processes: Redis pub/sub when Redis is up, PostgreSQL NOTIFY when not.

Wire: the envelope JSON plus `"origin": <process id>` (a process ignores its own echo, having
delivered to its own subscribers already), on `org:<org_id>:events` for both Redis and
PostgreSQL (a quoted channel identifier). Each process listens with one connection of each kind
it uses: the shared LISTEN connection (db/listener.py) and one Redis pub/sub connection, both
reconnecting by themselves; it subscribes to an organization's channel only while it has a
subscriber of that organization.

Interest: a process announces on `spooled_rt_interest` (PostgreSQL, whatever the event
transport) which organizations it has subscribers for, when it gets the first one and every
`REFRESH_SECS`; others remember that for `TTL_SECS`. Producers send an event to other
processes only when some process has announced interest in its organization, so the job hot
path makes no round trip at all while nobody watches. A process that starts or reconnects
says `hello` and the others re-announce at once.

Outgoing events are batched by one sender task: all events queued since its last round trip go
out in one Redis pipeline or one `pg_notify` statement. A failed Redis publish falls back to
NOTIFY; a failed NOTIFY is logged and dropped (never fails a request: it already committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections import deque
from collections.abc import Callable

import asyncpg
import structlog
from redis.asyncio import Redis

from spooled_backend.observability import metrics

log = structlog.get_logger(__name__)

INTEREST_CHANNEL = "spooled_rt_interest"
REFRESH_SECS = 30.0
TTL_SECS = 75.0
MAX_OUTBOX = 10_000
MAX_BATCH = 500
MAX_NOTIFY_BYTES = 7900
NOTIFY_BATCH = "SELECT count(pg_notify(c, p)) FROM unnest($1::text[], $2::text[]) AS t(c, p)"


def channel_of(org_id: str) -> str:
    """`org:<org_id>:events` (CONTRACT §14.1); hashed when longer than PostgreSQL's 63 bytes."""
    name = f"org:{org_id}:events"
    if len(name.encode()) <= 63:
        return name
    return "org:" + hashlib.sha256(org_id.encode()).hexdigest()[:40] + ":events"


def with_origin(envelope: str, origin: str) -> str:
    """The envelope text with `"origin"` appended (it is a JSON object ending in `}`)."""
    return envelope[:-1] + ',"origin":"' + origin + '"}'


class Interest:
    """Organizations with subscribers in other processes, each until an expiry (monotonic)."""

    def __init__(self) -> None:
        self._remote: dict[str, float] = {}

    def remote(self, org_id: str) -> bool:
        expiry = self._remote.get(org_id)
        if expiry is None:
            return False
        if expiry < time.monotonic():
            del self._remote[org_id]
            return False
        return True

    def orgs(self) -> list[str]:
        now = time.monotonic()
        return [org for org, expiry in self._remote.items() if expiry >= now]

    def note(self, orgs: list[str]) -> None:
        expiry = time.monotonic() + TTL_SECS
        for org in orgs:
            self._remote[org] = expiry


class Transport:
    """The cross-process half of the bus. `deliver(org_id, envelope_text)` is called for every
    event another process sent to an organization this process is subscribed to."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        redis: Redis | None,
        listener: object | None,
        deliver: Callable[[str, str], None],
        local_orgs: Callable[[], list[str]],
    ) -> None:
        self.origin = uuid.uuid4().hex[:16]
        self.pool = pool
        self.redis = redis
        self.listener = listener  # db.listener.Listener (typed loosely: optional in tests)
        self.interest = Interest()
        self._deliver = deliver
        self._local_orgs = local_orgs
        self._outbox: deque[tuple[str, str]] = deque()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._pg_unsubs: dict[str, Callable[[], None]] = {}
        self._redis_channels: set[str] = set()
        self._channel_orgs: dict[str, str] = {}
        self._pubsub: object | None = None
        self._stopping = False
        self._announce_soon: asyncio.TimerHandle | None = None
        self.redis_connected = redis is not None

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.listener is not None:
            await self.listener.subscribe(INTEREST_CHANNEL, self._on_interest)  # type: ignore[attr-defined]
            self.listener.on_reconnect(self._on_listener_reconnect)  # type: ignore[attr-defined]
        self._tasks.append(loop.create_task(self._send_loop(), name="realtime:outbox"))
        self._tasks.append(loop.create_task(self._refresh_loop(), name="realtime:interest"))
        if self.redis is not None:
            self._tasks.append(loop.create_task(self._redis_loop(), name="realtime:redis"))
        await self._notify([(INTEREST_CHANNEL, self._interest_message(hello=True))])

    async def stop(self) -> None:
        self._stopping = True
        await self.flush()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for unsub in self._pg_unsubs.values():
            unsub()
        self._pg_unsubs.clear()

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait (bounded) until the outbox is empty."""
        deadline = time.monotonic() + timeout
        while self._outbox and time.monotonic() < deadline and self._tasks:
            self._wake.set()
            await asyncio.sleep(0.01)

    # producing ------------------------------------------------------------------------------

    def wanted(self, org_id: str) -> bool:
        return self.interest.remote(org_id)

    def send(self, org_id: str, envelope: str) -> None:
        """Queue one event for the other processes (non-blocking; oldest dropped when full)."""
        if len(self._outbox) >= MAX_OUTBOX:
            self._outbox.popleft()
            metrics.REALTIME_EVENTS_DROPPED.inc()
        self._outbox.append((org_id, with_origin(envelope, self.origin)))
        self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(MAX_BATCH, len(self._outbox)))]
                await self._send_batch(batch)

    async def _send_batch(self, batch: list[tuple[str, str]]) -> None:
        items = [(channel_of(org), text) for org, text in batch]
        if self.redis is not None and self.redis_connected:
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, text in items:
                        pipe.publish(channel, text)
                    await pipe.execute()
                metrics.REDIS_OPERATIONS.inc()
                return
            except Exception as exc:  # noqa: BLE001 - fall back to NOTIFY, never raise
                log.warning("realtime Redis publish failed; using PostgreSQL NOTIFY",
                            error=str(exc))
        await self._notify(items)

    async def _notify(self, items: list[tuple[str, str]]) -> None:
        items = [(c, t) for c, t in items if len(t.encode()) <= MAX_NOTIFY_BYTES]
        if not items:
            return
        try:
            async with self.pool.acquire() as conn:
                await conn.fetchval(NOTIFY_BATCH, [c for c, _ in items], [t for _, t in items])
        except Exception as exc:  # noqa: BLE001 - the state change already committed
            metrics.REALTIME_EVENTS_DROPPED.inc(len(items))
            log.warning("realtime NOTIFY failed; events dropped", events=len(items),
                        error=str(exc))

    # consuming ------------------------------------------------------------------------------

    async def watch(self, org_id: str) -> None:
        """Start receiving `org_id`'s events from other processes and announce the interest
        (awaited: once this returns, the other processes are being told)."""
        channel = channel_of(org_id)
        self._channel_orgs[channel] = org_id
        if org_id not in self._pg_unsubs and self.listener is not None:
            self._pg_unsubs[org_id] = await self.listener.subscribe(  # type: ignore[attr-defined]
                channel, lambda payload, org=org_id: self._on_message(org, payload)
            )
        if self.redis is not None and channel not in self._redis_channels:
            self._redis_channels.add(channel)
            pubsub = self._pubsub
            if pubsub is not None:
                with contextlib.suppress(Exception):
                    await pubsub.subscribe(channel)  # type: ignore[attr-defined]
        await self._notify([(INTEREST_CHANNEL, self._interest_message(orgs=[org_id]))])

    def unwatch(self, org_id: str) -> None:
        unsub = self._pg_unsubs.pop(org_id, None)
        if unsub is not None:
            unsub()
        channel = channel_of(org_id)
        self._channel_orgs.pop(channel, None)
        if channel in self._redis_channels:
            self._redis_channels.discard(channel)
            pubsub = self._pubsub
            if pubsub is not None:
                task = asyncio.get_running_loop().create_task(self._redis_unsubscribe(channel))
                task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _redis_unsubscribe(self, channel: str) -> None:
        pubsub = self._pubsub
        if pubsub is not None and channel not in self._redis_channels:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe(channel)  # type: ignore[attr-defined]

    def _on_message(self, org_id: str, payload: str) -> None:
        if f'"origin":"{self.origin}"' in payload[-48:]:
            return  # our own event, already delivered locally
        self._deliver(org_id, payload)

    # interest -------------------------------------------------------------------------------

    def _interest_message(self, orgs: list[str] | None = None, hello: bool = False) -> str:
        body: dict[str, object] = {"origin": self.origin, "have": orgs or []}
        if hello:
            body["hello"] = True
        return json.dumps(body, separators=(",", ":"))

    def _on_interest(self, payload: str) -> None:
        try:
            body = json.loads(payload)
        except ValueError:
            return
        if not isinstance(body, dict) or body.get("origin") == self.origin:
            return
        have = body.get("have")
        if isinstance(have, list):
            self.interest.note([o for o in have if isinstance(o, str)])
        if body.get("hello"):
            self._schedule_announce()

    def _on_listener_reconnect(self) -> None:
        """Notifications were lost while disconnected: ask everyone to re-announce."""
        task = asyncio.get_running_loop().create_task(self._hello())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _hello(self) -> None:
        await self._notify([(INTEREST_CHANNEL, self._interest_message(hello=True))])
        await self.announce_all()

    def _schedule_announce(self) -> None:
        if self._announce_soon is not None:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._announce_soon = None
            task = loop.create_task(self.announce_all())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

        self._announce_soon = loop.call_later(0.05, fire)

    async def announce_all(self) -> None:
        """Announce every organization with local subscribers, in NOTIFY-sized chunks."""
        orgs = self._local_orgs()
        chunk: list[str] = []
        messages: list[tuple[str, str]] = []
        size = 0
        for org in orgs:
            if size + len(org) + 3 > MAX_NOTIFY_BYTES - 100:
                messages.append((INTEREST_CHANNEL, self._interest_message(orgs=chunk)))
                chunk, size = [], 0
            chunk.append(org)
            size += len(org) + 3
        if chunk:
            messages.append((INTEREST_CHANNEL, self._interest_message(orgs=chunk)))
        if messages:
            await self._notify(messages)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECS)
            await self.announce_all()

    # Redis subscriber -----------------------------------------------------------------------

    async def _redis_loop(self) -> None:
        """One pub/sub connection; reconnects (backoff up to 2 s) and re-subscribes."""
        assert self.redis is not None
        backoff = 0.05
        keepalive = "spooled:rt:keepalive"
        while not self._stopping:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(keepalive, *self._redis_channels)
                self._pubsub = pubsub
                if not self.redis_connected:
                    log.info("realtime Redis subscriber reconnected")
                self.redis_connected = True
                backoff = 0.05
                last_ping = time.monotonic()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "message":
                        self._on_redis_message(message["channel"], message["data"])
                    if time.monotonic() - last_ping > 10.0:
                        await asyncio.wait_for(pubsub.ping(), 5.0)
                        last_ping = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect on any failure
                if self.redis_connected:
                    log.warning("realtime Redis subscriber lost; reconnecting", error=str(exc))
                self.redis_connected = False
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _on_redis_message(self, channel: bytes | str, data: bytes | str) -> None:
        name = channel.decode() if isinstance(channel, bytes) else channel
        text = data.decode() if isinstance(data, bytes) else data
        org_id = self._channel_orgs.get(name)
        if org_id is not None:
            self._on_message(org_id, text)
