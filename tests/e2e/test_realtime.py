"""Realtime against the real server, with and without Redis (CONTRACT §14): the Python SDK's
WebSocket and SSE clients, the dashboard's handshakes, commands in both letter cases, scope,
refusals with close codes, redacted logs, a second server process on the same database.
(Back-pressure, caps and timers: tests/integration/test_realtime_live.py.)"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets.sync.client as ws_client
from spooled.client import SpooledClient
from spooled.realtime.sse import SSEClient
from spooled.realtime.unified import SubscriptionFilter
from websockets.exceptions import ConnectionClosed

from spooled_backend.db.bootstrap import EMBEDDED_DATABASE
from tests.e2e.conftest import SERVER_ENV, Tenant, stop_cleanly
from tests.e2e.helpers import wait_for
from tests.e2e.server import ServerProcess

WANTED = ("job.created", "job.status_changed", "job.completed")


def ws_url(base_url: str, query: str) -> str:
    return base_url.replace("http://", "ws://") + "/api/v1/ws?" + query


def login(tenant: Tenant) -> str:
    resp = httpx.post(f"{tenant.base_url}/api/v1/auth/login", json={"api_key": tenant.key})
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


def frames(sock: Any, until: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Envelopes received on `sock` until `until(envelopes)` is true (bounded)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while not until(seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"timed out; received {seen!r}")
        seen.append(json.loads(sock.recv(timeout=remaining)))
    return seen


def run_job(client: SpooledClient, queue: str) -> str:
    """Create, claim and complete one job through the SDK; returns its id."""
    job_id = client.jobs.create({"queue_name": queue, "payload": {"n": 1}}).id
    claimed = client.jobs.claim({"queue_name": queue, "worker_id": "rt-worker", "limit": 1})
    [job] = claimed.jobs
    assert job.id == job_id
    client.jobs.complete(job_id, {"worker_id": "rt-worker", "lease_id": job.lease_id,
                                  "result": {"ok": True}})
    return job_id


def lifecycle(events: list[Any], job_id: str) -> list[str]:
    """The SDK event types seen for `job_id`, with the new status for status changes."""
    out = []
    for event in events:
        data = event.data if hasattr(event, "data") else event
        if isinstance(data, dict) and data.get("job_id") == job_id:
            kind = event.type
            out.append(f"{kind}:{data['new_status']}" if kind == "job.status_changed" else kind)
    return out


EXPECTED = ["job.created", "job.status_changed:processing", "job.completed",
            "job.status_changed:completed"]


@pytest.mark.parametrize("kind", ["websocket", "sse"])
def test_sdk_realtime_client_sees_a_job_created_claimed_and_completed(
    client: SpooledClient, kind: str
) -> None:
    """The SDK README's realtime example (`client.realtime(...)`, subscribe to a queue)."""
    realtime = client.realtime(type=kind)  # type: ignore[arg-type]
    events: list[Any] = []
    realtime.on_event(events.append)
    only_emails = SubscriptionFilter(queue="rt-emails")
    if kind == "websocket":
        realtime.connect()
        realtime.subscribe(only_emails)
    else:
        # SSE carries its filter in the URL: connect with it. (Subscribing after connecting
        # makes the SDK reconnect, and its old stream's reader thread then schedules one more
        # reconnect of its own; events published in that gap are lost on the client side.)
        realtime.connect(only_emails)
    try:
        wait_for(lambda: realtime.state.value, lambda s: s == "connected", timeout=10,
                 what="realtime connected")
        if kind == "websocket":  # the Subscribe command is applied once the server's Ping echo
            wait_for(lambda: [e for e in events if e.type == "ping"], bool, timeout=5,
                     what="initial Ping")
        other = client.jobs.create({"queue_name": "rt-other", "payload": {}}).id
        job_id = run_job(client, "rt-emails")
        wait_for(lambda: lifecycle(events, job_id), lambda seen: seen == EXPECTED, timeout=10,
                 what="job lifecycle events")
        assert lifecycle(events, other) == []  # the queue filter holds
        created = next(e for e in events if e.type == "job.created")
        assert created.data["queue_name"] == "rt-emails" and created.timestamp is not None
    finally:
        realtime.disconnect()


def test_sdk_sse_job_stream_ends_after_the_terminal_status(
    client: SpooledClient, tenant: Tenant
) -> None:
    job_id = client.jobs.create({"queue_name": "rt-job", "payload": {}}).id
    sse = SSEClient(tenant.base_url, login(tenant), job_id=job_id, auto_reconnect=False)
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        with sse:
            for event in sse.events():
                seen.append(event.data["new_status"])
        done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_for(lambda: list(seen), lambda s: s == ["pending"], timeout=10, what="first status")
    claimed = client.jobs.claim({"queue_name": "rt-job", "worker_id": "w", "limit": 1}).jobs[0]
    # The stream reads the job's row when woken: a complete sent before that read would make
    # "processing" a state it never sees (flaky under load), so the test waits for it.
    wait_for(lambda: list(seen), lambda s: s == ["pending", "processing"], timeout=10,
             what="processing status")
    client.jobs.complete(job_id, {"worker_id": "w", "lease_id": claimed.lease_id})
    assert done.wait(10), f"job stream did not end; saw {seen}"
    assert seen == ["pending", "processing", "completed"]


def test_dashboard_handshakes(tenant: Tenant) -> None:
    """The dashboard dials `/api/v1/ws?token=<JWT from /auth/login>` from a browser (Origin
    header, no Authorization) and opens SSE with `?token=` (EventSource sends no headers).
    An API key in `?token=` or `?api_key=` is accepted too."""
    jwt = login(tenant)
    origin = {"Origin": "https://dashboard.spooled.cloud"}
    for query in (f"token={jwt}", f"token={tenant.key}", f"api_key={tenant.key}"):
        with ws_client.connect(ws_url(tenant.base_url, query), additional_headers=origin) as sock:
            [ping] = frames(sock, lambda f: len(f) >= 1)
            assert ping["type"] == "Ping" and ping["data"]["timestamp"].endswith("Z")
    job_id = SpooledClient(api_key=tenant.key, base_url=tenant.base_url).jobs.create(
        {"queue_name": "dash", "payload": {}}).id
    for path in (f"/api/v1/events/jobs/{job_id}", "/api/v1/events/queues/dash", "/api/v1/events"):
        with httpx.stream("GET", f"{tenant.base_url}{path}?token={jwt}",
                          headers={**origin, "Accept": "text/event-stream",
                                   "Accept-Encoding": "gzip"}, timeout=10) as resp:
            assert resp.status_code == 200, path
            assert resp.headers["content-type"].startswith("text/event-stream")
            assert resp.headers["cache-control"] == "no-cache"
            assert resp.headers["x-accel-buffering"] == "no"
            assert "content-encoding" not in resp.headers
            lines = (line for line in resp.iter_lines() if line)
            assert next(lines) == ": connected"
            if path != "/api/v1/events":
                event = [next(lines), next(lines)]
                name = "job.status" if "jobs" in path else "queue.stats"
                assert event[0] == f"event: {name}", event
                assert json.loads(event[1].removeprefix("data: "))["data"]["queue_name"] == "dash"


def test_commands_in_either_case(tenant: Tenant) -> None:
    client = tenant.client()
    with ws_client.connect(ws_url(tenant.base_url, f"token={login(tenant)}")) as sock:
        frames(sock, lambda f: len(f) >= 1)  # the initial Ping
        for cmd in ("Ping", "ping", "PING"):
            sock.send(json.dumps({"cmd": cmd}))
            assert frames(sock, lambda f: len(f) >= 1)[0]["type"] == "Ping"
        for cmd in ("Subscribe", "subscribe"):
            sock.send(json.dumps({"cmd": cmd, "queue": f"only-{cmd}"}))
            sock.send(json.dumps({"cmd": "ping"}))  # commands are applied in order
            frames(sock, lambda f: f and f[-1]["type"] == "Ping")
            client.jobs.create({"queue_name": "elsewhere", "payload": {}})
            mine = client.jobs.create({"queue_name": f"only-{cmd}", "payload": {}}).id
            got = frames(sock, lambda f: any(e["type"] == "JobCreated" for e in f))
            assert [e["data"]["job_id"] for e in got if e["type"] == "JobCreated"] == [mine]
        sock.send(json.dumps({"cmd": "UnSubscribe"}))
        sock.send(json.dumps({"cmd": "Ping"}))
        frames(sock, lambda f: f and f[-1]["type"] == "Ping")
        anywhere = client.jobs.create({"queue_name": "elsewhere", "payload": {}}).id
        got = frames(sock, lambda f: any(e["type"] == "JobCreated" for e in f))
        assert got[-1]["data"]["job_id"] == anywhere
        sock.send("not json")
        sock.send(json.dumps({"cmd": "bogus"}))
        sock.send(json.dumps({"cmd": "Ping"}))
        assert frames(sock, lambda f: len(f) >= 1)[0]["type"] == "Ping"


def test_scoped_key_sees_only_its_queues_and_no_worker_events(tenant: Tenant) -> None:
    admin = tenant.client()
    scoped = admin.api_keys.create({"name": "scoped", "queues": ["mine"]}).key
    url = ws_url(tenant.base_url, f"token={scoped}")
    with ws_client.connect(url) as sock:
        frames(sock, lambda f: len(f) >= 1)
        admin.workers.register({"queue_name": "mine", "hostname": "h", "worker_id": "sw-1"})
        admin.workers.heartbeat("sw-1", {"current_jobs": 0})
        admin.jobs.create({"queue_name": "theirs", "payload": {}})
        mine = admin.jobs.create({"queue_name": "mine", "payload": {}}).id
        got = frames(sock, lambda f: any(e["type"] == "JobCreated" for e in f))
        kinds = [e["type"] for e in got]
        assert "WorkerHeartbeat" not in kinds
        assert [e["data"]["job_id"] for e in got if e["type"] == "JobCreated"] == [mine]
    # A queue filter outside the scope is refused with its reason.
    with ws_client.connect(url + "&queue=theirs") as sock, pytest.raises(ConnectionClosed) as info:
        sock.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 4403
    assert "theirs" in info.value.rcvd.reason


def test_refused_handshakes_say_why_and_are_logged(server: ServerProcess, tenant: Tenant) -> None:
    cases = [
        ("token=sp_test_not-a-real-key-0000000000", 4401, "Invalid"),
        ("", 4401, "Missing credentials"),
        (f"api_key={tenant.key}&queue=bad%20name", 4400, "Invalid queue filter"),
    ]
    for query, code, reason in cases:
        with ws_client.connect(ws_url(tenant.base_url, query)) as sock:
            with pytest.raises(ConnectionClosed) as info:
                sock.recv(timeout=5)
        assert info.value.rcvd is not None, query
        assert (info.value.rcvd.code, reason in info.value.rcvd.reason) == (code, True), query
    wait_for(server.output, lambda out: out.count("websocket refused") >= 3, timeout=5,
             what="refusals logged")
    resp = httpx.get(f"{tenant.base_url}/api/v1/events?token=nope")
    assert resp.status_code == 401 and resp.json()["code"] == "UNAUTHORIZED"


def test_tokens_in_query_strings_never_reach_the_logs(server: ServerProcess, tenant: Tenant) -> None:
    jwt = login(tenant)
    with ws_client.connect(ws_url(tenant.base_url, f"token={jwt}")) as sock:
        frames(sock, lambda f: len(f) >= 1)
    with httpx.stream("GET", f"{tenant.base_url}/api/v1/events?api_key={tenant.key}") as resp:
        assert next(resp.iter_lines()) == ": connected"
        resp.close()
    wait_for(server.output, lambda out: "path=/api/v1/events" in out, timeout=5,
             what="access log line of the stream")
    output = server.output()
    assert jwt not in output and jwt.split(".")[2] not in output
    assert tenant.key not in output
    assert "token=[REDACTED]" in output and "api_key=[REDACTED]" in output


# ---- a second server process on the same database ----------------------------------------


def _embedded_dsn(server: ServerProcess) -> str:
    port = server.pid_file.read_text().splitlines()[3].strip()
    return f"postgresql://postgres@127.0.0.1:{port}/{EMBEDDED_DATABASE}"


@pytest.fixture(scope="module")
def peer(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Another `spooled-backend serve` on the first server's database (and its Redis, if any)."""
    env = dict(SERVER_ENV, DATABASE_URL=_embedded_dsn(server))
    second = ServerProcess(tmp_path_factory.mktemp("peer") / "data", redis_url=server.redis_url,
                           env=env, command=server.command + ["--no-migrate"])
    second.start()
    try:
        yield second
    finally:
        if second.proc is not None:
            stop_cleanly(second)


def test_event_from_a_second_process_reaches_a_websocket_of_the_first(
    server: ServerProcess, peer: ServerProcess, tenant: Tenant
) -> None:
    """With Redis the event crosses over pub/sub; without, over PostgreSQL NOTIFY."""
    elsewhere = SpooledClient(api_key=tenant.key, base_url=peer.base_url)
    realtime = tenant.client().realtime(type="websocket")
    events: list[Any] = []
    realtime.on_event(events.append)
    realtime.connect()
    try:
        wait_for(lambda: [e for e in events if e.type == "ping"], bool, timeout=10,
                 what="initial Ping")
        job_id = run_job(elsewhere, "cross")
        wait_for(lambda: lifecycle(events, job_id), lambda seen: seen == EXPECTED, timeout=10,
                 what="events produced by the other process")
        time.sleep(0.3)
        assert lifecycle(events, job_id) == EXPECTED  # each exactly once
    finally:
        realtime.disconnect()
