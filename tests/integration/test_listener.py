"""The process's single LISTEN connection (db/listener.py): fan-out, unsubscribe, reconnect after
the backend is terminated, DATABASE_DIRECT_URL, one connection however many waiters."""

from __future__ import annotations

import asyncio

import asyncpg

from spooled_backend.db.listener import Listener, listen_dsn
from tests.conftest import Api, make_settings

LISTENER_APP = "spooled-backend-listener"


async def _notify(dsn: str, channel: str, payload: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_notify($1, $2)", channel, payload)
    finally:
        await conn.close()


async def _listener_backends(dsn: str) -> list[int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
            LISTENER_APP,
        )
    finally:
        await conn.close()
    return [r["pid"] for r in rows]


async def _received(queue: asyncio.Queue[str], timeout: float = 5) -> str:
    return await asyncio.wait_for(queue.get(), timeout)


async def test_fans_out_to_every_callback_of_a_channel(db_url: str) -> None:
    listener = Listener(db_url)
    await listener.start()
    try:
        a: asyncio.Queue[str] = asyncio.Queue()
        b: asyncio.Queue[str] = asyncio.Queue()
        other: asyncio.Queue[str] = asyncio.Queue()
        await listener.subscribe("chan_a", a.put_nowait)
        unsubscribe_b = await listener.subscribe("chan_a", b.put_nowait)
        await listener.subscribe("chan-other", other.put_nowait)
        await _notify(db_url, "chan_a", "one")
        assert await _received(a) == "one"
        assert await _received(b) == "one"
        assert other.empty()
        await _notify(db_url, "chan-other", "x")  # channel names needing quotes work too
        assert await _received(other) == "x"

        unsubscribe_b()
        await _notify(db_url, "chan_a", "two")
        assert await _received(a) == "two"
        await asyncio.sleep(0.05)
        assert b.empty()
    finally:
        await listener.stop()


async def test_a_failing_callback_does_not_stop_the_others(db_url: str) -> None:
    listener = Listener(db_url)
    await listener.start()
    try:
        got: asyncio.Queue[str] = asyncio.Queue()

        def broken(_payload: str) -> None:
            raise RuntimeError("boom")

        await listener.subscribe("c", broken)
        await listener.subscribe("c", got.put_nowait)
        await _notify(db_url, "c", "p")
        assert await _received(got) == "p"
    finally:
        await listener.stop()


async def test_reconnects_after_the_backend_is_terminated(db_url: str) -> None:
    listener = Listener(db_url, health_check_secs=0.5)
    await listener.start()
    try:
        got: asyncio.Queue[str] = asyncio.Queue()
        reconnected = asyncio.Event()
        listener.on_reconnect(reconnected.set)
        await listener.subscribe("jobs", got.put_nowait)
        (pid,) = await _listener_backends(db_url)

        admin = await asyncpg.connect(db_url)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()

        await asyncio.wait_for(reconnected.wait(), 10)
        assert listener.connected
        assert listener.reconnects == 1
        (new_pid,) = await _listener_backends(db_url)
        assert new_pid != pid
        # LISTEN was re-issued on the new connection.
        await _notify(db_url, "jobs", "after-restart")
        assert await _received(got) == "after-restart"
        # A channel subscribed after the reconnect works as well.
        late: asyncio.Queue[str] = asyncio.Queue()
        await listener.subscribe("late", late.put_nowait)
        await _notify(db_url, "late", "hi")
        assert await _received(late) == "hi"
    finally:
        await listener.stop()


async def test_many_waiters_share_one_connection(db_url: str) -> None:
    listener = Listener(db_url)
    await listener.start()
    try:
        queues = [asyncio.Queue[str]() for _ in range(50)]
        for q in queues:
            await listener.subscribe("shared", q.put_nowait)
        assert len(await _listener_backends(db_url)) == 1
        await _notify(db_url, "shared", "all")
        for q in queues:
            assert await _received(q) == "all"
    finally:
        await listener.stop()
    assert await _listener_backends(db_url) == []


def test_listen_dsn_prefers_the_direct_url() -> None:
    pooled = "postgresql+asyncpg://u@pgbouncer:6432/db"
    direct = "postgresql+asyncpg://u@postgres:5432/db"
    assert listen_dsn(pooled, direct) == "postgresql://u@postgres:5432/db"
    assert listen_dsn(pooled, None) == "postgresql://u@pgbouncer:6432/db"


async def test_app_listener_connects_with_database_direct_url(db_url: str) -> None:
    from spooled_backend.app import create_app

    direct = db_url.replace("127.0.0.1", "localhost")
    settings = make_settings(db_url, database_direct_url=direct)
    app = create_app(settings, db_url, run_loops=False)
    async with app.router.lifespan_context(app):
        state = app.state.services
        assert state.listener is not None and state.listener.connected
        assert state.listener._dsn == direct  # noqa: SLF001 - the DSN is the point of the test
        conn = await asyncpg.connect(db_url)
        try:
            addr = await conn.fetchval(
                "SELECT client_addr::text FROM pg_stat_activity WHERE application_name = $1 "
                "AND datname = current_database()",
                LISTENER_APP,
            )
        finally:
            await conn.close()
        assert addr is not None  # connected over TCP to the direct host


async def test_app_exposes_one_listener(api: Api, db_url: str) -> None:
    assert api.state.listener is not None and api.state.listener.connected
    assert len(await _listener_backends(db_url)) == 1
