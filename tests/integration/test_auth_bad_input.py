"""Hostile credentials get a quick 401/400 — never a 5xx, never the slow path (bcrypt)."""

from __future__ import annotations

from typing import Any

import bcrypt
import httpx
import pytest

from tests.conftest import Api
from tests.integration.auth_support import fresh_ip

JOBS = "/api/v1/jobs"


@pytest.fixture
def bcrypt_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts bcrypt verifications (the slow path) made while the test runs."""
    calls: list[int] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(len(password))
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return calls


BAD_BEARERS: list[bytes] = [
    b"Bearer " + b"A" * 100_000,                       # oversized
    b"Bearer " + "sp_test_\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9".encode(),  # non-ASCII
    b"Bearer sp_test_" + b"k" * 90,                    # longer than bcrypt's 72 bytes
    b"Bearer sk_live_" + b"z" * 150,
    b"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bad",  # malformed JWT
    b"Bearer eyJ" + b"x" * 5000,
    b"Bearer eyJ\xff\xfe",
    b"Bearer \x00\x01\x02binary",
    b"Bearer",
    b"Bearer    ",
    b"Basic dXNlcjpwYXNz",
    b"sp_test_no_scheme_at_all_0123456789",
    b"Bearer a b c d",
    b"Bearer short",
]


async def test_bad_bearers_are_401_without_bcrypt(
    api: Api, tenant: dict[str, Any], bcrypt_calls: list[int]
) -> None:
    for value in BAD_BEARERS:
        resp = await api.client.get(JOBS, headers=[(b"authorization", value)])
        assert resp.status_code == 401, (value[:40], resp.text)
        assert resp.json()["code"] == "UNAUTHORIZED"
    # a key that passes the cheap checks but is unknown: one DB lookup, no bcrypt
    unknown = "sp_test_" + "Q" * 43
    assert (await api.client.get(JOBS, headers={"Authorization": f"Bearer {unknown}"})).status_code == 401
    assert bcrypt_calls == []
    # the real key: bcrypt once, then the verified-key cache
    for _ in range(3):
        assert (await api.client.get(JOBS, headers=tenant["headers"])).status_code == 200
    assert len(bcrypt_calls) == 1


async def test_huge_and_many_headers(api: Api, tenant: dict[str, Any]) -> None:
    headers = [(f"x-filler-{i}".encode(), b"v" * 4000) for i in range(100)]
    resp = await api.client.get(JOBS, headers=headers + [(b"authorization", b"Bearer " + b"x" * 60_000)])
    assert resp.status_code == 401
    resp = await api.client.get(JOBS, headers=headers + [(b"authorization", tenant["headers"]["Authorization"].encode())])
    assert resp.status_code == 200
    many_auth = [(b"authorization", b"Bearer nope-nope-nope"), (b"authorization", b"Bearer also-bad-value")]
    assert (await api.client.get(JOBS, headers=many_auth)).status_code == 401


async def test_bad_login_bodies(api: Api, bcrypt_calls: list[int]) -> None:
    cases: list[tuple[Any, int]] = [
        ({"api_key": "sp_test_" + "k" * 100}, 401),     # > 72 bytes: no bcrypt
        ({"api_key": "x" * 50_000}, 401),
        ({"api_key": "sp_test_\u00e9" * 5}, 401),
        ({"api_key": "sp_test_ with spaces in it"}, 401),
        ({"api_key": "short"}, 400),
        ({"api_key": 12345678901}, 422),
        ({"api_key": None}, 422),
        ({}, 422),
        ([], 422),
    ]
    for body, status in cases:
        resp = await api.client.post("/api/v1/auth/login", json=body, headers=fresh_ip())
        assert resp.status_code == status, (str(body)[:60], resp.text)
    bad_json = await api.client.post(
        "/api/v1/auth/login", content=b"{nope", headers={"Content-Type": "application/json", **fresh_ip()}
    )
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "INVALID_JSON"
    assert bcrypt_calls == []


async def test_bad_tokens_on_refresh_validate_and_logout(api: Api) -> None:
    garbage = ["eyJ" + "a" * 10_000, "eyJhbGciOiJub25lIn0.e30.", "x" * 20, "eyJ\u00e9" * 4]
    for token in garbage:
        resp = await api.client.post("/api/v1/auth/refresh", json={"refresh_token": token})
        assert resp.status_code == 401, token[:20]
        resp = await api.client.post("/api/v1/auth/validate", json={"token": token})
        assert resp.status_code == 200 and resp.json()["valid"] is False
    resp = await api.client.post("/api/v1/auth/logout", headers={"Authorization": "Bearer eyJbroken.x.y"})
    assert resp.status_code == 401


async def test_invalid_header_bytes_never_500(api: Api) -> None:
    transport = api.client._transport  # type: ignore[attr-defined]
    request = httpx.Request("GET", "http://test/api/v1/jobs",
                            headers=[(b"authorization", b"Bearer \xc3\x28\xa0\xa1")])
    resp = await transport.handle_async_request(request)
    await resp.aread()
    assert resp.status_code == 401


async def test_concurrent_first_requests_share_one_bcrypt(api: Api, bcrypt_calls: list[int]) -> None:
    """A new key's first requests arriving together pay bcrypt once, not once each."""
    import asyncio

    created = await api.create_org()
    headers = api.as_key(created["api_key"]["key"])
    responses = await asyncio.gather(*(api.client.get(JOBS, headers=headers) for _ in range(10)))
    assert [r.status_code for r in responses] == [200] * 10
    assert len(bcrypt_calls) == 1
