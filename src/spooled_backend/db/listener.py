"""One LISTEN connection per process, shared by everything that waits on PostgreSQL NOTIFY.

`Listener` owns a single dedicated asyncpg connection (not from the pool: LISTEN is session
state, and PgBouncer in transaction mode cannot carry it, so it connects with
`DATABASE_DIRECT_URL` when that is set). Consumers register a callback per channel; the
listener fans each notification out to every callback of its channel. Nobody opens a connection
per waiting request.

The connection reconnects by itself (backoff 0.05 s → 2 s) after a database restart, a
`pg_terminate_backend` or a network cut, re-issues `LISTEN` for every channel, and then calls the
`on_reconnect` hooks: notifications sent while it was down are lost, so a consumer that must
not miss one (a waiting claim, a cache) re-checks its state there.

API (all on the event loop that started the listener):

    listener = Listener(dsn)
    await listener.start()                        # first connect (raises if the DB is down)
    unsubscribe = await listener.subscribe("jobs_ready", callback)   # callback(payload: str)
    listener.on_reconnect(hook)                   # hook() after every reconnect
    listener.connected                            # True while LISTEN is in force
    await listener.wait_connected(timeout)        # bool
    unsubscribe()                                 # drops the callback (UNLISTEN when last)
    await listener.stop()

Callbacks and hooks are plain functions, called on the event loop; they must not block (start a
task for anything slow). An exception in one is logged and does not reach the others.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger(__name__)

Callback = Callable[[str], None]
Hook = Callable[[], None]

HEALTH_CHECK_SECS = 5.0
MIN_BACKOFF_SECS = 0.05
MAX_BACKOFF_SECS = 2.0


def listen_dsn(database_url: str, direct_url: str | None) -> str:
    """The DSN the listener must use: `DATABASE_DIRECT_URL` when set (PgBouncer cannot LISTEN)."""
    dsn = direct_url or database_url
    return dsn.replace("postgresql+asyncpg://", "postgresql://", 1)


def quote_channel(channel: str) -> str:
    """`channel` as a quoted SQL identifier (LISTEN takes no bind parameter)."""
    return '"' + channel.replace('"', '""') + '"'


class Listener:
    """The process's single LISTEN connection and its channel → callbacks registry."""

    def __init__(self, dsn: str, *, health_check_secs: float = HEALTH_CHECK_SECS) -> None:
        self._dsn = dsn
        self._health_check_secs = health_check_secs
        self._callbacks: dict[str, list[Callback]] = {}
        self._hooks: list[Hook] = []
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self.reconnects = 0  # how many times the connection was re-established (tests, metrics)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def start(self) -> None:
        """Connect once (errors propagate: the app should not start without its database), then
        keep the connection alive in a background task."""
        await self._connect()
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="pg-listener")

    async def stop(self) -> None:
        self._stopping = True
        self._lost.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._close()

    async def subscribe(self, channel: str, callback: Callback) -> Callable[[], None]:
        """Call `callback(payload)` for every NOTIFY on `channel`; returns the unsubscriber.

        The first subscriber of a channel issues LISTEN now when connected (else at reconnect).
        """
        callbacks = self._callbacks.setdefault(channel, [])
        first = not callbacks
        callbacks.append(callback)
        if first and self._conn is not None and not self._conn.is_closed():
            try:
                await self._conn.add_listener(channel, self._dispatch)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                log.warning("LISTEN failed; will retry on reconnect", channel=channel,
                            error=str(exc))
                self._lost.set()

        def unsubscribe() -> None:
            registered = self._callbacks.get(channel)
            if registered is None or callback not in registered:
                return
            registered.remove(callback)
            if not registered:
                del self._callbacks[channel]
                conn = self._conn
                if conn is not None and not conn.is_closed():
                    task = asyncio.get_running_loop().create_task(self._unlisten(conn, channel))
                    task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

        return unsubscribe

    def on_reconnect(self, hook: Hook) -> Callable[[], None]:
        """Call `hook()` after every reconnect (not after the first connect)."""
        self._hooks.append(hook)
        return lambda: self._hooks.remove(hook) if hook in self._hooks else None

    # internals ----------------------------------------------------------------------------

    async def _unlisten(self, conn: asyncpg.Connection, channel: str) -> None:
        if channel in self._callbacks:  # re-subscribed meanwhile
            return
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            await conn.remove_listener(channel, self._dispatch)

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for callback in tuple(self._callbacks.get(channel, ())):
            try:
                callback(payload)
            except Exception as exc:  # noqa: BLE001 - one consumer must not break the others
                log.warning("listener callback failed", channel=channel, error=str(exc))

    def _on_termination(self, _conn: object) -> None:
        self._connected.clear()
        self._lost.set()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(
            self._dsn, server_settings={"application_name": "spooled-backend-listener"}
        )
        try:
            conn.add_termination_listener(self._on_termination)
            for channel in list(self._callbacks):
                await conn.add_listener(channel, self._dispatch)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self._lost.clear()
        self._connected.set()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        self._connected.clear()
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 2)
            except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                conn.terminate()

    async def _healthy(self) -> bool:
        conn = self._conn
        if conn is None or conn.is_closed():
            return False
        try:
            await asyncio.wait_for(conn.execute("SELECT 1"), self._health_check_secs)
        except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            return False
        return True

    async def _supervise(self) -> None:
        while not self._stopping:
            # Wait for a lost connection, checking it every few seconds (a half-open TCP
            # connection after a network cut raises no termination callback).
            try:
                await asyncio.wait_for(self._lost.wait(), self._health_check_secs)
            except TimeoutError:
                if await self._healthy():
                    continue
            if self._stopping:
                return
            log.warning("LISTEN connection lost; reconnecting")
            self._connected.clear()
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None
            backoff = MIN_BACKOFF_SECS
            while not self._stopping:
                try:
                    await self._connect()
                    break
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError,
                        TimeoutError) as exc:
                    log.debug("listener reconnect failed", error=str(exc))
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_SECS)
            if self._stopping:
                return
            self.reconnects += 1
            log.info("LISTEN connection re-established", reconnects=self.reconnects)
            for hook in tuple(self._hooks):
                try:
                    hook()
                except Exception as exc:  # noqa: BLE001 - see _dispatch
                    log.warning("listener reconnect hook failed", error=str(exc))
