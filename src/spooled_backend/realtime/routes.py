"""Realtime doors: WebSocket `/api/v1/ws` and SSE `/api/v1/events…` (CONTRACT §14).

SSE refusals happen before the stream starts and are the contract's JSON errors (401 bad
credentials, 400 bad filter, 403 queue out of scope, 429 at the organization's stream cap).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, WebSocket
from starlette.responses import Response

from spooled_backend.core.deps import state_of
from spooled_backend.core.openapi import KEY, doc, document_websocket
from spooled_backend.realtime import sse, ws
from spooled_backend.realtime.auth import (
    authenticate_stream,
    check_capacity,
    credential_of,
    parse_filters,
)

router = APIRouter(prefix="/api/v1", tags=["realtime"])

_CREDENTIALS = (
    "Credentials (CONTRACT §4.4), in order: `Authorization: Bearer`, `?token=` (access JWT or "
    "API key), `?api_key=`. The stream is `: connected`, then `event: <name>` / "
    "`data: {\"type\": …, \"data\": {…}}` frames and keep-alive comments."
)
_SSE = {"content_type": "text/event-stream", "auth": KEY}

document_websocket(
    "/api/v1/ws",
    "Organization events over a WebSocket (CONTRACT §14.2): envelopes `{type, data}`, `Ping` "
    "first and every 30 s; client commands `{\"cmd\": \"Subscribe\"|\"Unsubscribe\"|\"Ping\", "
    "\"queue\"?, \"job_id\"?}` in any letter case. A refused handshake closes with 4000 + "
    "the HTTP status below (4400, 4401, 4403, 4429) and the reason.",
    query=("token", "api_key", "queue", "job_id", "events"),
)


@router.websocket("/ws")
async def websocket_events(websocket: WebSocket) -> None:
    """Organization events over a WebSocket (CONTRACT §14.2)."""
    await ws.serve(websocket)


@router.get("/events", **doc(None, errors=(400, 403), description=_CREDENTIALS
                              + " Query: `queue`, `job_id`, `events` (comma list).", **_SSE))
async def organization_events(request: Request) -> Response:
    """The organization's events (filtered), plus `system.health` every 10 s."""
    state = state_of(request)
    credential = credential_of(request.headers, request.query_params)
    auth = await authenticate_stream(state, credential)
    request.state.auth = auth  # the access-log line names the organization
    filters = parse_filters(auth, request.query_params)
    check_capacity(state, auth.organization_id, "sse")
    sub = sse.subscriber(state, auth, filters)
    await state.events.subscribe(sub)
    return _stream(state, sse.org_events(state, sub, credential), sub)


@router.get("/events/jobs/{job_id}", **doc(None, description=_CREDENTIALS, **_SSE))
async def job_events(job_id: str, request: Request) -> Response:
    """`job.status` on each change of one job; ends after a terminal status."""
    state = state_of(request)
    credential = credential_of(request.headers, request.query_params)
    auth = await authenticate_stream(state, credential)
    request.state.auth = auth  # the access-log line names the organization
    check_capacity(state, auth.organization_id, "sse")
    return _stream(state, sse.job_events(state, auth, credential, job_id), comment="keepalive")


@router.get("/events/queues/{queue_name}", **doc(None, description=_CREDENTIALS, **_SSE))
async def queue_events(queue_name: str, request: Request) -> Response:
    """`queue.stats` of one queue every 5 s."""
    state = state_of(request)
    credential = credential_of(request.headers, request.query_params)
    auth = await authenticate_stream(state, credential)
    request.state.auth = auth  # the access-log line names the organization
    return _stream(state, sse.queue_events(state, auth, credential, queue_name))


def _stream(state: Any, content: Any, sub: Any = None, comment: str = "ping") -> Response:
    return sse.EventStream(content, sub, state.settings.realtime_sse_keepalive_secs, comment,
                           unsubscribe=state.events.unsubscribe)
