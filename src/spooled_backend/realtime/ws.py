"""WebSocket `GET /api/v1/ws` (CONTRACT §14.2).

Handshake: credentials and filters are checked before the upgrade is answered. A refused
handshake is accepted and closed at once with close code `4000 + HTTP status` (4400 bad filter,
4401 credentials, 4403 queue out of scope, 4429 organization at its connection cap) and the
reason as close reason, and logged with the same words: browsers cannot read an HTTP denial
body, only the close frame.

Session: a `Ping` event at once and every `REALTIME_WS_PING_SECS`; client commands
`{"cmd": "Subscribe"|"Unsubscribe"|"Ping", "queue"?, "job_id"?}` in any letter case (malformed
or out-of-scope ones are ignored, nothing is acknowledged); credentials re-validated every
`REALTIME_AUTH_RECHECK_SECS` (an `Error` event then close 4401 when they no longer are). A client
whose queue overflows gets an `Error` event (if it can still take one) and close 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from typing import Any

import asyncpg
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from spooled_backend.core.errors import SpooledError
from spooled_backend.core.state import AppState
from spooled_backend.observability.redaction import redact_text
from spooled_backend.realtime.auth import (
    QUEUE_FILTER_RE,
    JOB_FILTER_MAX,
    authenticate_stream,
    check_capacity,
    credential_of,
    parse_filters,
    still_valid,
)
from spooled_backend.realtime.envelope import control_event
from spooled_backend.realtime.hub import RECHECK, SLOW_CLIENT_MESSAGE, Subscriber

log = structlog.get_logger(__name__)

CLOSE_SLOW_CLIENT = 1008
CLOSE_TIMEOUT_SECS = 1.0


def _where(ws: WebSocket) -> dict[str, Any]:
    query = ws.scope.get("query_string", b"").decode("latin-1")
    return {
        "path": ws.url.path,
        "query": redact_text("?" + query) if query else None,
        "client": ws.client.host if ws.client else None,
    }


async def refuse(ws: WebSocket, status: int, reason: str) -> None:
    """Accept, then close with `4000 + status` and `reason` (logged)."""
    code = 4000 + status if 400 <= status < 500 else 1011
    reason = reason.encode()[:120].decode(errors="ignore")
    log.warning("websocket refused", close_code=code, status=status, reason=reason, **_where(ws))
    with contextlib.suppress(Exception):
        await ws.accept()
        await ws.close(code=code, reason=reason)


async def serve(ws: WebSocket) -> None:
    state: AppState = ws.app.state.services
    settings = state.settings
    try:
        credential = credential_of(ws.headers, ws.query_params)
        auth = await authenticate_stream(state, credential)
        filters = parse_filters(auth, ws.query_params)
        check_capacity(state, auth.organization_id, "ws")
    except SpooledError as exc:
        await refuse(ws, exc.status, exc.message)
        return
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        log.warning("websocket auth unavailable", error=str(exc))
        await refuse(ws, 503, "Service unavailable")
        return
    sub = Subscriber(auth.organization_id, auth, filters, "ws",
                     queue_size=settings.realtime_subscriber_queue_size)
    await state.events.subscribe(sub)
    try:
        await ws.accept()
        log.info("websocket connected", org_id=auth.organization_id, **_where(ws))
        sub.offer(control_event("Ping"))
        await _session(ws, sub, state, credential)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        state.events.unsubscribe(sub)


async def _session(ws: WebSocket, sub: Subscriber, state: AppState, credential: str) -> None:
    sender = asyncio.create_task(_send_events(ws, sub, state, credential))
    receiver = asyncio.create_task(_receive_commands(ws, sub))
    ticker = asyncio.create_task(_tick(sub, state, credential))
    dropped = asyncio.create_task(sub.dropped.wait())
    tasks = {sender, receiver, ticker, dropped}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if dropped in done:
        await _last_words(ws, SLOW_CLIENT_MESSAGE, CLOSE_SLOW_CLIENT, "slow client")
        return
    for task in (ticker, sender):
        if task in done and not task.cancelled() and task.exception() is None:
            error = task.result()
            if error is not None:
                log.info("websocket closed: credentials no longer valid", org_id=sub.org_id)
                await _last_words(ws, "Authentication expired or revoked", 4401,
                                  error.message[:120])
                return


async def _last_words(ws: WebSocket, message: str, code: int, reason: str) -> None:
    """An `Error` event and a close frame, each given at most a second (the client may not
    be reading at all)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT_SECS):
            await ws.send_text(control_event("Error", message=message).text)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(CLOSE_TIMEOUT_SECS):
            await ws.close(code=code, reason=reason)


async def _send_events(
    ws: WebSocket, sub: Subscriber, state: AppState, credential: str
) -> SpooledError | None:
    """Send queued events in order; returns the error when a re-check (poke) fails."""
    while True:
        event = await sub.queue.get()
        if sub.overflowed:
            return None
        if event.type == RECHECK:
            error = await still_valid(state, credential)
            if error is not None:
                return error
            continue
        await ws.send_text(event.text)


async def _receive_commands(ws: WebSocket, sub: Subscriber) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None and message.get("bytes"):
            text = message["bytes"].decode("utf-8", errors="ignore")
        if text:
            apply_command(sub, text)


def apply_command(sub: Subscriber, text: str) -> None:
    """Subscribe / Unsubscribe / Ping in any letter case; anything else is ignored."""
    try:
        body = json.loads(text)
    except ValueError:
        return
    if not isinstance(body, dict):
        return
    cmd = body.get("cmd", body.get("type"))
    if not isinstance(cmd, str):
        return
    cmd = cmd.strip().lower()
    queue = body.get("queue") if isinstance(body.get("queue"), str) else None
    job_id = body.get("job_id") if isinstance(body.get("job_id"), str) else None
    f = sub.filters
    if cmd == "ping":
        sub.offer(control_event("Ping"))
    elif cmd == "subscribe":
        if queue:
            if QUEUE_FILTER_RE.match(queue) and sub.auth.can_access_queue(queue):
                f.queue = queue
            else:
                return  # out of scope or malformed: silently ignored (CONTRACT §14.2)
        if job_id and len(job_id) <= JOB_FILTER_MAX:
            f.job_id = job_id
    elif cmd == "unsubscribe":
        if not queue and not job_id:
            f.queue = f.job_id = None
        if queue and queue == f.queue:
            f.queue = None
        if job_id and job_id == f.job_id:
            f.job_id = None


async def _tick(sub: Subscriber, state: AppState, credential: str) -> SpooledError:
    """Pings, and the periodic credential check; returns the error that ends the session."""
    settings = state.settings
    loop = asyncio.get_running_loop()
    ping_every = settings.realtime_ws_ping_secs
    check_every = settings.realtime_auth_recheck_secs
    next_ping = loop.time() + ping_every
    next_check = loop.time() + check_every * (0.75 + random.random() / 4)
    while True:
        await asyncio.sleep(max(0.0, min(next_ping, next_check) - loop.time()))
        now = loop.time()
        if now >= next_ping:
            sub.offer(control_event("Ping"))
            next_ping = now + ping_every
        if now >= next_check:
            error = await still_valid(state, credential)
            if error is not None:
                return error
            next_check = now + check_every
