"""Jobs over REST against real PostgreSQL (in-process app)."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api


async def create(api: Api, tenant: dict[str, Any], **body: Any) -> dict[str, Any]:
    body.setdefault("queue_name", "q1")
    body.setdefault("payload", {"n": 1})
    resp = await api.client.post("/api/v1/jobs", json=body, headers=tenant["headers"])
    assert resp.status_code in (200, 201), resp.text
    return resp.json()


async def test_create_get_claim_complete(api: Api, tenant: dict[str, Any]) -> None:
    created = await create(api, tenant, payload={"job_type": "email", "to": "x"}, priority=5)
    assert created["created"] is True
    h = tenant["headers"]
    job = (await api.client.get(f"/api/v1/jobs/{created['id']}", headers=h)).json()
    assert job["status"] == "pending" and job["priority"] == 5 and job["max_retries"] == 3
    assert job["timeout_seconds"] == 300 and job["payload"] == {"job_type": "email", "to": "x"}

    claim = await api.client.post(
        "/api/v1/jobs/claim", json={"queue_name": "q1", "worker_id": "w1", "limit": 5}, headers=h
    )
    assert claim.status_code == 200
    jobs = claim.json()["jobs"]
    assert [j["id"] for j in jobs] == [created["id"]]
    lease = jobs[0]["lease_id"]

    done = await api.client.post(
        f"/api/v1/jobs/{created['id']}/complete",
        json={"worker_id": "w1", "lease_id": lease, "result": {"ok": True}},
        headers=h,
    )
    assert done.status_code == 200 and done.json() == {"success": True}
    replay = await api.client.post(
        f"/api/v1/jobs/{created['id']}/complete",
        json={"worker_id": "w1", "lease_id": lease, "result": {"ok": True}},
        headers=h,
    )
    assert replay.status_code == 409
    assert replay.json()["code"] == "CONFLICT"
    assert "already completed" in replay.json()["message"]
    job = (await api.client.get(f"/api/v1/jobs/{created['id']}", headers=h)).json()
    assert job["status"] == "completed" and job["result"] == {"ok": True}
    assert job["lease_id"] is None

    history = await api.client.get(f"/api/v1/jobs/{created['id']}/history", headers=h)
    assert [e["event_type"] for e in history.json()] == ["created", "claimed", "completed"]
    assert history.headers["x-has-more"] == "false"


async def test_request_id_echoed_and_generated(api: Api) -> None:
    resp = await api.client.get("/api/v1/jobs", headers={"X-Request-Id": "abc-123"})
    assert resp.status_code == 401
    assert resp.headers["x-request-id"] == "abc-123"
    assert resp.json()["code"] == "UNAUTHORIZED"
    resp = await api.client.get("/health")
    assert len(resp.headers["x-request-id"]) == 36


async def test_wrong_key_is_401_invalid_api_key(api: Api) -> None:
    resp = await api.client.get("/api/v1/jobs", headers=api.as_key("sp_test_" + "x" * 43))
    assert resp.status_code == 401
    assert resp.json() == {"code": "UNAUTHORIZED", "message": "Invalid API key"}
