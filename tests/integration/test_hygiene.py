"""Request hygiene (CONTRACT §1–§3): security headers, CORS, body limit, API version, request
id, gzip, timeout, 404/405 bodies, and the one-transaction-per-request rule."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from starlette.responses import StreamingResponse

from spooled_backend.config import Settings
from spooled_backend.core.deps import Auth, Conn
from spooled_backend.core.errors import Conflict
from spooled_backend.core.tenancy import after_commit
from tests.conftest import Api, make_settings
from tests.integration.auth_support import bearer, enterprise_org, instance

SECURITY = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "x-xss-protection": "1; mode=block",
    "referrer-policy": "strict-origin-when-cross-origin",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "permissions-policy": "accelerometer=(), camera=(), geolocation=(), microphone=()",
}
MIB = 1024 * 1024


def assert_security_headers(resp: httpx.Response, hsts: bool = False) -> None:
    for name, value in SECURITY.items():
        assert resp.headers.get(name) == value, (resp.request.url, name)
    assert ("strict-transport-security" in resp.headers) is hsts
    assert resp.headers.get("x-request-id")


async def test_security_headers_on_every_kind_of_response(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    responses = [
        await api.client.get("/health"),
        await api.client.get("/api/v1/jobs", headers=h),
        await api.client.get("/api/v1/jobs"),  # 401
        await api.client.get("/api/v1/nope", headers=h),  # 404
        await api.client.patch("/api/v1/jobs", headers=h),  # 405
        await api.client.post("/api/v1/jobs", content=b"{", headers={**h, "Content-Type": "application/json"}),
        await api.client.post("/api/v1/jobs", content=b"x", headers={**h, "Content-Length": str(6 * MIB)}),
        await api.client.get("/api/v1/jobs", headers={**h, "X-API-Version": "2"}),
        await api.client.options("/api/v1/jobs", headers={
            "Origin": "https://example.com", "Access-Control-Request-Method": "POST"}),
    ]
    assert [r.status_code for r in responses] == [200, 200, 401, 404, 405, 400, 413, 400, 200]
    for resp in responses:
        assert_security_headers(resp)


async def test_hsts_only_when_enabled(settings: Settings, db_url: str) -> None:
    async with instance(settings.model_copy(update={"enable_hsts": True}), db_url) as api:
        resp = await api.client.get("/health")
        assert_security_headers(resp, hsts=True)
        assert resp.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"


async def test_404_and_405_contract_bodies(api: Api, tenant: dict[str, Any]) -> None:
    resp = await api.client.get("/api/v1/definitely/not/here", headers=tenant["headers"])
    assert resp.status_code == 404
    assert resp.json() == {"code": "NOT_FOUND", "message": "No route matches this path"}
    resp = await api.client.put("/api/v1/jobs/stats", headers=tenant["headers"])
    assert resp.status_code == 405
    assert resp.json() == {"code": "METHOD_NOT_ALLOWED", "message": "Method not allowed"}
    # no trailing-slash redirects (the SDK does not follow them)
    resp = await api.client.get("/api/v1/jobs/", headers=tenant["headers"])
    assert resp.status_code == 404


async def test_cors_development_allows_any_origin(api: Api, tenant: dict[str, Any]) -> None:
    pre = await api.client.options("/api/v1/jobs", headers={
        "Origin": "https://anything.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "*"
    resp = await api.client.get("/api/v1/jobs", headers={**tenant["headers"], "Origin": "https://x.example"})
    assert resp.headers["access-control-allow-origin"] == "*"
    assert "X-RateLimit-Remaining" in resp.headers["access-control-expose-headers"]


async def test_cors_production_never_reflects_arbitrary_origins(db_url: str) -> None:
    prod = make_settings(db_url, rust_env="production",
                         cors_allowed_origins="https://dash.example.com,https://ops.example.com")
    async with instance(prod, db_url) as api:
        good = await api.client.options("/api/v1/jobs", headers={
            "Origin": "https://dash.example.com", "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization,x-admin-key"})
        assert good.status_code == 200
        assert good.headers["access-control-allow-origin"] == "https://dash.example.com"
        assert "DELETE" in good.headers["access-control-allow-methods"]
        evil = await api.client.options("/api/v1/jobs", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert evil.status_code == 400
        assert "access-control-allow-origin" not in evil.headers
        simple = await api.client.get("/health", headers={"Origin": "https://evil.example"})
        assert simple.status_code == 200 and "access-control-allow-origin" not in simple.headers
        ok = await api.client.get("/health", headers={"Origin": "https://ops.example.com"})
        assert ok.headers["access-control-allow-origin"] == "https://ops.example.com"
        odd_header = await api.client.options("/api/v1/jobs", headers={
            "Origin": "https://dash.example.com", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "x-unlisted"})
        assert odd_header.status_code == 400


async def jobs_count(api: Api, org_id: str) -> int:
    async with api.state.pool.acquire() as c:
        return int(await c.fetchval("SELECT count(*) FROM jobs WHERE organization_id = $1", org_id))


async def test_body_limit_on_content_length_and_on_streamed_bodies(api: Api, tenant: dict[str, Any]) -> None:
    h = {**tenant["headers"], "Content-Type": "application/json"}
    big = b'{"queue_name":"q","payload":"' + b"x" * (5 * MIB) + b'"}'
    declared = await api.client.post("/api/v1/jobs", content=big, headers=h)
    assert declared.status_code == 413
    assert declared.json()["code"] == "PAYLOAD_TOO_LARGE" and declared.json()["limit"] == 5 * MIB

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 256 * 1024):
            yield big[start:start + 256 * 1024]

    streamed = await api.client.post("/api/v1/jobs", content=chunks(), headers=h)
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413 and streamed.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert await jobs_count(api, tenant["org_id"]) == 0
    # just under the cap is parsed normally (then refused by the 1 MiB payload rule: 413 too,
    # but with the plan fields) — the body limit is not the only gate
    under = await api.client.post(
        "/api/v1/jobs", json={"queue_name": "q", "payload": {"x": "y" * 1000}}, headers=tenant["headers"]
    )
    assert under.status_code == 201


async def test_json_content_type_rules(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    wrong = await api.client.post("/api/v1/jobs", content=b'{"queue_name":"q","payload":{}}',
                                  headers={**h, "Content-Type": "text/plain"})
    assert wrong.status_code == 415 and wrong.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    empty = await api.client.post("/api/v1/jobs", content=b"", headers={**h, "Content-Type": "application/json"})
    assert empty.status_code == 400 and empty.json()["code"] == "INVALID_JSON"
    # GET with a JSON content type and an empty body is fine (the SDK always sends it)
    listed = await api.client.get("/api/v1/jobs", headers={**h, "Content-Type": "application/json"})
    assert listed.status_code == 200


async def test_api_version_header(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    for value in ("1", " 1 ", "x" * 17, "1;2", "v1 beta", "\u00e9"):
        raw = {**h, "X-API-Version": value} if value.isascii() else h
        resp = await api.client.get("/api/v1/jobs", headers=raw)
        assert resp.status_code == 200, value
        assert resp.headers["x-api-version"] == "1"
    for value in ("2", "0", "1.1", "v2"):
        resp = await api.client.get("/api/v1/jobs", headers={**h, "X-API-Version": value})
        assert resp.status_code == 400, value
        assert resp.json()["code"] == "BAD_REQUEST" and value in resp.json()["message"]
    assert "x-api-version" not in (await api.client.get("/health")).headers


async def test_request_id_echo_or_generate(api: Api) -> None:
    echoed = await api.client.get("/health", headers={"X-Request-Id": "abc-123.x:y"})
    assert echoed.headers["x-request-id"] == "abc-123.x:y"
    for bad in ("has space", "x" * 200, "<script>"):
        resp = await api.client.get("/health", headers={"X-Request-Id": bad})
        assert resp.headers["x-request-id"] != bad and len(resp.headers["x-request-id"]) == 36


async def test_gzip_for_large_bodies_only(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    bulk = {"queue_name": "q", "jobs": [{"payload": {"n": i, "pad": "p" * 40}} for i in range(60)]}
    assert (await api.client.post("/api/v1/jobs/bulk", json=bulk, headers=h)).status_code == 200
    big = await api.client.get("/api/v1/jobs?limit=60", headers={**h, "Accept-Encoding": "gzip"})
    assert big.status_code == 200 and big.headers["content-encoding"] == "gzip"
    assert len(big.json()) == 60  # httpx decompressed it
    assert int(big.headers["content-length"]) < len(big.content)
    small = await api.client.get("/api/v1/jobs/stats", headers={**h, "Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers
    plain = await api.client.get("/api/v1/jobs?limit=60", headers={**h, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert gzip.compress(plain.content)  # same document, uncompressed


def slow_routes(app: FastAPI) -> None:
    @app.post("/api/v1/_test/slow-write")
    async def slow_write(conn: Conn, auth: Auth) -> dict[str, Any]:
        await conn.execute(
            "INSERT INTO queue_config (organization_id, queue_name) VALUES ($1, 'slow')",
            auth.organization_id,
        )
        await asyncio.sleep(5)
        return {"done": True}

    @app.get("/api/v1/_test/stream")
    async def stream() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            for i in range(4):
                yield f"chunk {i}\n".encode()
                await asyncio.sleep(0.25)

        return StreamingResponse(body(), media_type="text/event-stream")


async def test_timeout_408_rolls_back_and_spares_streams(settings: Settings, db_url: str) -> None:
    # The organization is made under the normal timeout: only the slow route is under test.
    async with instance(settings, db_url) as setup:
        org = await enterprise_org(setup)
    quick = settings.model_copy(update={"request_timeout_secs": 0.5})
    async with instance(quick, db_url, slow_routes) as api:
        resp = await api.client.post("/api/v1/_test/slow-write", headers=bearer(org["key"]))
        assert resp.status_code == 408
        assert resp.json() == {"code": "REQUEST_TIMEOUT",
                               "message": "Request did not complete within 0.5 seconds"}
        assert_security_headers(resp)
        async with api.state.pool.acquire() as c:
            assert await c.fetchval("SELECT count(*) FROM queue_config WHERE queue_name = 'slow'") == 0
        streamed = await api.client.get("/api/v1/_test/stream")
        assert streamed.status_code == 200 and streamed.text.count("chunk") == 4


def transaction_routes(app: FastAPI) -> None:
    @app.post("/api/v1/_test/write-then-fail")
    async def write_then_fail(conn: Conn, auth: Auth) -> dict[str, Any]:
        await conn.execute(
            "INSERT INTO queue_config (organization_id, queue_name) VALUES ($1, 'partial')",
            auth.organization_id,
        )
        after_commit(lambda: app.state.side_effects.append("published"))
        raise Conflict("refused after a write")

    @app.post("/api/v1/_test/write-and-publish")
    async def write_and_publish(conn: Conn, auth: Auth) -> dict[str, Any]:
        await conn.execute(
            "INSERT INTO queue_config (organization_id, queue_name) VALUES ($1, 'kept')",
            auth.organization_id,
        )
        after_commit(lambda: app.state.side_effects.append("published"))
        assert app.state.side_effects == []  # not before the commit
        return {"ok": True}

    @app.post("/api/v1/_test/swallow-db-error")
    async def swallow(conn: Conn, auth: Auth) -> dict[str, Any]:
        await conn.execute(
            "INSERT INTO queue_config (organization_id, queue_name) VALUES ($1, 'lost')",
            auth.organization_id,
        )
        try:  # a bug: catching a database error outside a savepoint
            await conn.execute("SELECT 1/0")
        except asyncpg.DivisionByZeroError:
            app.state.side_effects.append("swallowed")
        return {"ok": True}

    @app.post("/api/v1/_test/spawn")
    async def spawn(conn: Conn, auth: Auth) -> dict[str, Any]:
        async def later() -> None:  # inherits the request's context, runs after it ended
            await asyncio.sleep(0.2)
            after_commit(lambda: app.state.side_effects.append("late"))

        app.state.tasks.append(asyncio.create_task(later()))
        return {"ok": True}

    app.state.side_effects = []
    app.state.tasks = []


async def test_one_transaction_per_request(settings: Settings, db_url: str) -> None:
    async with instance(settings, db_url, transaction_routes) as api:
        org = await enterprise_org(api)
        h = bearer(org["key"])
        app_state = api.client._transport.app.state  # type: ignore[attr-defined]
        failed = await api.client.post("/api/v1/_test/write-then-fail", headers=h)
        assert failed.status_code == 409
        kept = await api.client.post("/api/v1/_test/write-and-publish", headers=h)
        assert kept.status_code == 200
        assert app_state.side_effects == ["published"]  # once: the failed request published nothing
        swallowed = await api.client.post("/api/v1/_test/swallow-db-error", headers=h)
        assert swallowed.status_code == 500 and swallowed.json()["code"] == "INTERNAL_ERROR"
        assert app_state.side_effects == ["published", "swallowed"]
        assert (await api.client.post("/api/v1/_test/spawn", headers=h)).status_code == 200
        await asyncio.gather(*app_state.tasks)
        assert app_state.side_effects == ["published", "swallowed", "late"]
        async with api.state.pool.acquire() as c:
            names = await c.fetch("SELECT queue_name FROM queue_config ORDER BY 1")
        assert [r["queue_name"] for r in names] == ["kept"]
