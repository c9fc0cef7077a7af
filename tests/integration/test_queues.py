"""Queues over REST against real PostgreSQL (CONTRACT §7.8, §9.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import Api
from tests.integration.jobs_support import (
    RFC3339_Z,
    ack,
    assert_error,
    claim,
    create_job,
    get_job,
    scoped_key,
    set_plan,
)

Q = "/api/v1/queues"


async def put_config(api: Api, h: dict[str, str], name: str, **body: Any) -> dict[str, Any]:
    resp = await api.client.put(f"{Q}/{name}/config", json=body, headers=h)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def test_list_merges_configured_and_implicit_queues_sorted(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    await create_job(api, h, queue_name="zeta")
    await create_job(api, h, queue_name="alpha.v2")
    await put_config(api, h, "middle", max_retries=7, rate_limit=50)
    async with api.state.pool.acquire() as c:
        await c.execute(
            """INSERT INTO schedules (organization_id, name, cron_expression, queue_name,
                                      payload_template) VALUES ($1, 's', '0 * * * *', 'sched-q', '{}')""",
            tenant["org_id"],
        )
    resp = await api.client.get(Q, headers=h)
    assert resp.status_code == 200
    assert resp.json() == [
        {
            "queue_name": "alpha.v2",
            "max_retries": 3,
            "default_timeout": 300,
            "rate_limit": None,
            "enabled": True,
        },
        {
            "queue_name": "middle",
            "max_retries": 7,
            "default_timeout": 300,
            "rate_limit": 50,
            "enabled": True,
        },
        {
            "queue_name": "sched-q",
            "max_retries": 3,
            "default_timeout": 300,
            "rate_limit": None,
            "enabled": True,
        },
        {
            "queue_name": "zeta",
            "max_retries": 3,
            "default_timeout": 300,
            "rate_limit": None,
            "enabled": True,
        },
    ]


async def test_list_is_capped_at_100(api: Api, tenant: dict[str, Any]) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute(
            """INSERT INTO queue_config (organization_id, queue_name)
               SELECT $1, 'q' || lpad(i::text, 3, '0') FROM generate_series(1, 105) i""",
            tenant["org_id"],
        )
    names = [q["queue_name"] for q in (await api.client.get(Q, headers=tenant["headers"])).json()]
    assert names == [f"q{i:03d}" for i in range(1, 101)]


async def test_get_implicit_then_configured_queue(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await create_job(api, h, queue_name="emails.high")
    implicit = (await api.client.get(f"{Q}/emails.high", headers=h)).json()
    assert implicit["id"] == "implicit:emails.high"
    assert implicit["organization_id"] == tenant["org_id"]
    assert implicit["settings"] == {"implicit": True}
    assert (implicit["max_retries"], implicit["default_timeout"], implicit["enabled"]) == (
        3,
        300,
        True,
    )
    assert RFC3339_Z.match(implicit["created_at"]) and RFC3339_Z.match(implicit["updated_at"])

    cfg = await put_config(api, h, "emails.high", default_timeout=60, settings={"team": "growth"})
    assert cfg["id"] != "implicit:emails.high" and cfg["queue_name"] == "emails.high"
    got = (await api.client.get(f"{Q}/emails.high", headers=h)).json()
    assert got == cfg
    assert (
        got["default_timeout"] == 60
        and got["max_retries"] == 3
        and got["settings"] == {"team": "growth"}
    )

    missing = await api.client.get(f"{Q}/never-used", headers=h)
    assert_error(missing, 404, "NOT_FOUND")


async def test_config_upsert_keeps_omitted_fields_and_merges_settings(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    first = await put_config(api, h, "billing", max_retries=5, settings={"a": 1, "b": 2})
    assert (
        first["default_timeout"] == 300 and first["enabled"] is True and first["rate_limit"] is None
    )
    second = await put_config(
        api,
        h,
        "billing",
        default_timeout=90,
        rate_limit=250000,
        settings={"b": 3, "c": 4},
        queue_name="ignored",
    )
    assert second["id"] == first["id"] and second["queue_name"] == "billing"
    assert second["max_retries"] == 5 and second["default_timeout"] == 90
    assert second["rate_limit"] == 100000  # clamped (CONTRACT §7.8)
    assert second["settings"] == {"a": 1, "b": 3, "c": 4}
    third = await put_config(api, h, "billing", rate_limit=None, enabled=False)
    assert third["rate_limit"] is None and third["enabled"] is False and third["max_retries"] == 5
    # The rate bucket columns never leak into the wire object.
    assert set(third) == {
        "id",
        "organization_id",
        "queue_name",
        "max_retries",
        "default_timeout",
        "rate_limit",
        "enabled",
        "settings",
        "created_at",
        "updated_at",
    }


async def test_queue_defaults_apply_to_new_jobs(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await put_config(api, h, "slow", max_retries=9, default_timeout=1234)
    job = await get_job(api, h, await create_job(api, h, queue_name="slow"))
    assert (job["max_retries"], job["timeout_seconds"]) == (9, 1234)
    explicit = await get_job(
        api, h, await create_job(api, h, queue_name="slow", max_retries=1, timeout_seconds=5)
    )
    assert (explicit["max_retries"], explicit["timeout_seconds"]) == (1, 5)
    other = await get_job(api, h, await create_job(api, h, queue_name="plain"))
    assert (other["max_retries"], other["timeout_seconds"]) == (3, 300)


async def test_paused_queue_hands_out_nothing_until_resumed(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h, queue_name="pq")
    resp = await api.client.post(f"{Q}/pq/pause", json={"reason": "maintenance"}, headers=h)
    assert resp.status_code == 200
    body = resp.json()
    assert body["queue_name"] == "pq" and body["paused"] is True and body["reason"] == "maintenance"
    assert RFC3339_Z.match(body["paused_at"])
    assert await claim(api, h, queue="pq", limit=10) == []
    # enqueue still works while paused
    await create_job(api, h, queue_name="pq")
    cfg = (await api.client.get(f"{Q}/pq", headers=h)).json()
    assert cfg["enabled"] is False
    assert cfg["settings"] == {
        "paused": True,
        "paused_at": body["paused_at"],
        "paused_reason": "maintenance",
    }

    # pausing again keeps the original paused_at
    again = (await api.client.post(f"{Q}/pq/pause", json={}, headers=h)).json()
    assert again["paused_at"] == body["paused_at"] and again["reason"] == "maintenance"

    async with api.state.pool.acquire() as c:  # pretend it was paused 42 s ago
        await c.execute(
            "UPDATE queue_config SET settings = settings || jsonb_build_object('paused_at', $2::text) "
            "WHERE organization_id = $1 AND queue_name = 'pq'",
            tenant["org_id"],
            (datetime.now(UTC) - timedelta(seconds=42)).isoformat(),
        )
    resumed = await api.client.post(f"{Q}/pq/resume", headers=h)
    assert resumed.status_code == 200
    assert resumed.json()["queue_name"] == "pq" and resumed.json()["resumed"] is True
    assert 42 <= resumed.json()["paused_duration_secs"] <= 45
    cfg = (await api.client.get(f"{Q}/pq", headers=h)).json()
    assert cfg["enabled"] is True and cfg["settings"] == {"paused": False}
    claimed = await claim(api, h, queue="pq", limit=10)
    assert job_id in [j["id"] for j in claimed] and len(claimed) == 2

    # enabling through the config endpoint is a resume too
    await api.client.post(f"{Q}/pq/pause", json={"reason": "again"}, headers=h)
    cfg = await put_config(api, h, "pq", enabled=True, settings={"note": 1})
    assert cfg["enabled"] is True and cfg["settings"] == {"paused": False, "note": 1}


async def test_pause_keeps_processing_jobs_running(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h, queue_name="run")
    [job] = await claim(api, h, queue="run")
    assert (await api.client.post(f"{Q}/run/pause", json={}, headers=h)).status_code == 200
    done = await ack(api, h, job_id, "complete", worker_id="w1", lease_id=job["lease_id"])
    assert done.status_code == 200


async def test_pause_body_variants_and_unknown_queue(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await create_job(api, h, queue_name="pv")
    # the SDK sends {} or {reason}; an empty body is also accepted (optional body)
    empty = await api.client.post(
        f"{Q}/pv/pause", content=b"", headers={**h, "Content-Type": "application/json"}
    )
    assert empty.status_code == 200 and "reason" not in empty.json()
    assert_error(await api.client.post(f"{Q}/nope/pause", json={}, headers=h), 404, "NOT_FOUND")
    assert_error(await api.client.post(f"{Q}/nope/resume", headers=h), 404, "NOT_FOUND")
    assert_error(
        await api.client.post(f"{Q}/pv/pause", json={"reason": "x" * 501}, headers=h),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(
        await api.client.post(f"{Q}/pv/pause", json={"reason": 5}, headers=h),
        422,
        "VALIDATION_ERROR",
    )
    assert_error(
        await api.client.post(f"{Q}/pv/pause", content=b"{bad", headers=h), 400, "INVALID_JSON"
    )
    # resume of a never-paused (implicit) queue: nothing to undo
    resumed = await api.client.post(f"{Q}/pv2/resume", headers=h)
    assert_error(resumed, 404, "NOT_FOUND")
    await create_job(api, h, queue_name="pv2")
    assert (await api.client.post(f"{Q}/pv2/resume", headers=h)).json() == {
        "queue_name": "pv2",
        "resumed": True,
        "paused_duration_secs": 0,
    }


async def test_pause_tolerates_junk_paused_at_in_settings(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await put_config(
        api, h, "junk", enabled=False, settings={"paused_at": "not a time", "paused_reason": 7}
    )
    resumed = await api.client.post(f"{Q}/junk/resume", headers=h)
    assert resumed.status_code == 200 and resumed.json()["paused_duration_secs"] == 0


async def test_stats_fields_and_values(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    ids = [await create_job(api, h, queue_name="st", max_retries=0) for _ in range(4)]
    await create_job(
        api, h, queue_name="st", scheduled_at=(datetime.now(UTC) + timedelta(hours=1)).isoformat()
    )
    jobs = await claim(api, h, queue="st", limit=3)
    await ack(api, h, jobs[0]["id"], "complete", worker_id="w1", lease_id=jobs[0]["lease_id"])
    await ack(api, h, jobs[1]["id"], "fail", worker_id="w1", lease_id=jobs[1]["lease_id"])
    async with api.state.pool.acquire() as c:
        await c.execute(
            "UPDATE jobs SET started_at = completed_at - interval '250 milliseconds' WHERE id = $1",
            jobs[0]["id"],
        )
        await c.execute(
            "UPDATE jobs SET created_at = now() - interval '90 seconds' WHERE id = $1", ids[3]
        )
        await c.execute(
            """INSERT INTO workers (id, organization_id, queue_name, queue_names, hostname, status)
               VALUES ('w-st-1', $1, 'st', ARRAY['st'], 'h', 'healthy'),
                      ('w-st-2', $1, 'st', ARRAY['st'], 'h', 'degraded'),
                      ('w-other', $1, 'other', ARRAY['other'], 'h', 'healthy')""",
            tenant["org_id"],
        )
    stats = (await api.client.get(f"{Q}/st/stats", headers=h)).json()
    assert stats == {
        "queue_name": "st",
        "pending_jobs": 1,
        "processing_jobs": 1,
        "completed_jobs_24h": 1,
        "failed_jobs_24h": 1,
        "avg_processing_time_ms": stats["avg_processing_time_ms"],
        "max_job_age_seconds": stats["max_job_age_seconds"],
        "active_workers": 1,
    }
    assert abs(stats["avg_processing_time_ms"] - 250.0) < 1.0
    assert 90 <= stats["max_job_age_seconds"] <= 95
    empty = (await api.client.get(f"{Q}/unused/stats", headers=h)).json()
    assert empty["pending_jobs"] == 0 and empty["avg_processing_time_ms"] is None
    assert empty["max_job_age_seconds"] is None and empty["active_workers"] == 0


async def test_delete_rules(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    # configured queue with an active job: 409; after it finishes only the config goes
    job_id = await create_job(api, h, queue_name="dq")
    await put_config(api, h, "dq", max_retries=1)
    assert_error(await api.client.delete(f"{Q}/dq", headers=h), 409, "CONFLICT")
    [job] = await claim(api, h, queue="dq")
    await ack(api, h, job_id, "complete", worker_id="w1", lease_id=job["lease_id"])
    resp = await api.client.delete(f"{Q}/dq", headers=h)
    assert resp.status_code == 204 and resp.content == b""
    # config gone, finished jobs keep the queue implicit; deleting it now needs delete_jobs
    assert (await api.client.get(f"{Q}/dq", headers=h)).json()["id"] == "implicit:dq"
    conflict = assert_error(await api.client.delete(f"{Q}/dq", headers=h), 409, "CONFLICT")
    assert "delete_jobs=true" in conflict["message"]
    assert (await get_job(api, h, job_id))["status"] == "completed"
    assert_error(await api.client.delete(f"{Q}/ghost", headers=h), 404, "NOT_FOUND")
    assert_error(
        await api.client.delete(f"{Q}/ghost?delete_jobs=true", headers=h), 404, "NOT_FOUND"
    )


async def test_delete_with_jobs_removes_jobs_dlq_rows_and_config(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    await put_config(api, h, "purge.me", max_retries=0)
    dead = await create_job(api, h, queue_name="purge.me")
    [job] = await claim(api, h, queue="purge.me")
    await ack(api, h, dead, "fail", worker_id="w1", lease_id=job["lease_id"])
    await create_job(api, h, queue_name="purge.me")
    keep = await create_job(api, h, queue_name="keep")
    async with api.state.pool.acquire() as c:
        assert (
            await c.fetchval("SELECT count(*) FROM dead_letter_queue WHERE queue_name = 'purge.me'")
            == 1
        )
    resp = await api.client.delete(f"{Q}/purge.me?delete_jobs=true", headers=h)
    assert resp.status_code == 204
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM jobs WHERE queue_name = 'purge.me'") == 0
        assert (
            await c.fetchval("SELECT count(*) FROM dead_letter_queue WHERE queue_name = 'purge.me'")
            == 0
        )
        assert (
            await c.fetchval("SELECT count(*) FROM queue_config WHERE queue_name = 'purge.me'") == 0
        )
    assert_error(await api.client.get(f"{Q}/purge.me", headers=h), 404, "NOT_FOUND")
    assert (await get_job(api, h, keep))["status"] == "pending"


async def test_delete_of_schedule_only_queue_is_conflict(api: Api, tenant: dict[str, Any]) -> None:
    async with api.state.pool.acquire() as c:
        await c.execute(
            """INSERT INTO schedules (organization_id, name, cron_expression, queue_name,
                                      payload_template) VALUES ($1, 's', '0 * * * *', 'cron-q', '{}')""",
            tenant["org_id"],
        )
    h = tenant["headers"]
    assert (await api.client.get(f"{Q}/cron-q", headers=h)).json()["id"] == "implicit:cron-q"
    assert_error(
        await api.client.delete(f"{Q}/cron-q?delete_jobs=true", headers=h), 409, "CONFLICT"
    )


async def test_new_queue_config_is_charged_to_max_queues(api: Api) -> None:
    created = await api.create_org()  # free plan: max_queues = 2
    org_id, h = created["organization"]["id"], api.as_key(created["api_key"]["key"])
    await create_job(api, h, queue_name="one")
    await put_config(api, h, "two", max_retries=1)
    await put_config(api, h, "two", max_retries=2)  # existing queue: free
    await put_config(api, h, "one", max_retries=2)  # implicit queue gaining a config: free
    resp = await api.client.put(f"{Q}/three/config", json={"max_retries": 1}, headers=h)
    body = assert_error(resp, 429, "QUOTA_EXCEEDED")
    assert body["resource"] == "queues" and body["limit"] == 2 and body["current"] == 2
    assert "retry-after" not in resp.headers
    async with api.state.pool.acquire() as c:
        assert (
            await c.fetchval("SELECT count(*) FROM queue_config WHERE organization_id = $1", org_id)
            == 2
        )
    await set_plan(api, org_id, "enterprise")
    await put_config(api, h, "three", max_retries=1)


async def test_scoped_key_sees_and_touches_only_its_queues(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    await create_job(api, h, queue_name="mine")
    await create_job(api, h, queue_name="theirs")
    scoped = await scoped_key(api, tenant["org_id"], ["mine", "new-mine"])
    names = [q["queue_name"] for q in (await api.client.get(Q, headers=scoped)).json()]
    assert names == ["mine"]
    assert (await api.client.get(f"{Q}/mine", headers=scoped)).status_code == 200
    assert_error(await api.client.get(f"{Q}/theirs", headers=scoped), 404, "NOT_FOUND")
    assert_error(await api.client.get(f"{Q}/theirs/stats", headers=scoped), 404, "NOT_FOUND")
    assert_error(
        await api.client.put(f"{Q}/theirs/config", json={"max_retries": 1}, headers=scoped),
        403,
        "ACCESS_DENIED",
    )
    assert_error(
        await api.client.post(f"{Q}/theirs/pause", json={}, headers=scoped), 403, "ACCESS_DENIED"
    )
    assert_error(await api.client.post(f"{Q}/theirs/resume", headers=scoped), 403, "ACCESS_DENIED")
    assert_error(
        await api.client.delete(f"{Q}/theirs?delete_jobs=true", headers=scoped),
        403,
        "ACCESS_DENIED",
    )
    assert (await put_config(api, scoped, "new-mine", rate_limit=3))["rate_limit"] == 3
    assert (await api.client.get(f"{Q}/theirs", headers=h)).json()["enabled"] is True


async def test_other_organization_never_sees_or_changes_our_queues(
    api: Api, tenant: dict[str, Any]
) -> None:
    h = tenant["headers"]
    job_id = await create_job(api, h, queue_name="secret")
    await put_config(api, h, "secret", max_retries=8, settings={"token": "s3cr3t"})
    other = await api.create_org()
    oh = api.as_key(other["api_key"]["key"])
    assert (await api.client.get(Q, headers=oh)).json() == []
    assert_error(await api.client.get(f"{Q}/secret", headers=oh), 404, "NOT_FOUND")
    stats = (await api.client.get(f"{Q}/secret/stats", headers=oh)).json()
    assert stats["pending_jobs"] == 0 and stats["max_job_age_seconds"] is None
    assert_error(await api.client.post(f"{Q}/secret/pause", json={}, headers=oh), 404, "NOT_FOUND")
    assert_error(await api.client.post(f"{Q}/secret/resume", headers=oh), 404, "NOT_FOUND")
    assert_error(
        await api.client.delete(f"{Q}/secret?delete_jobs=true", headers=oh), 404, "NOT_FOUND"
    )
    # their own config of the same name is a separate queue
    theirs = await put_config(api, oh, "secret", max_retries=1)
    assert theirs["organization_id"] == other["organization"]["id"] and theirs["settings"] == {}
    ours = (await api.client.get(f"{Q}/secret", headers=h)).json()
    assert (
        ours["max_retries"] == 8
        and ours["settings"] == {"token": "s3cr3t"}
        and ours["enabled"] is True
    )
    assert (await get_job(api, h, job_id))["status"] == "pending"


async def test_bad_input_answers_contract_4xx(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    await create_job(api, h, queue_name="ok")
    bad_names = [
        ".dot-first",
        "-dash",
        "has space",
        "x" * 101,
        "semi;colon",
        "nul%00",
        "%E2%9C%93bad*",
    ]
    for name in bad_names:
        for method, path in [
            ("GET", f"{Q}/{name}"),
            ("GET", f"{Q}/{name}/stats"),
            ("POST", f"{Q}/{name}/resume"),
            ("DELETE", f"{Q}/{name}"),
        ]:
            resp = await api.client.request(method, path, headers=h)
            assert_error(resp, 400, "VALIDATION_ERROR")
        resp = await api.client.put(f"{Q}/{name}/config", json={"max_retries": 1}, headers=h)
        assert_error(resp, 400, "VALIDATION_ERROR")
    cases: list[tuple[Any, int, str]] = [
        ({"max_retries": 101}, 400, "VALIDATION_ERROR"),
        ({"max_retries": -1}, 400, "VALIDATION_ERROR"),
        ({"default_timeout": 0}, 400, "VALIDATION_ERROR"),
        ({"default_timeout": 86401}, 400, "VALIDATION_ERROR"),
        ({"rate_limit": 0}, 400, "VALIDATION_ERROR"),
        ({"rate_limit": 1.5}, 422, "VALIDATION_ERROR"),
        ({"max_retries": "3"}, 422, "VALIDATION_ERROR"),
        ({"enabled": "yes"}, 422, "VALIDATION_ERROR"),
        ({"settings": [1, 2]}, 422, "VALIDATION_ERROR"),
        ({"settings": {"big": "x" * 70000}}, 400, "VALIDATION_ERROR"),
        ({"settings": {"nul": "a\u0000b"}}, 400, "VALIDATION_ERROR"),
        ([1, 2], 422, "VALIDATION_ERROR"),
    ]
    for body, status, code in cases:
        assert_error(await api.client.put(f"{Q}/ok/config", json=body, headers=h), status, code)
    assert_error(
        await api.client.put(
            f"{Q}/ok/config", content=b"", headers={**h, "Content-Type": "application/json"}
        ),
        400,
        "INVALID_JSON",
    )
    assert_error(
        await api.client.put(f"{Q}/ok/config", content=b"{", headers=h), 400, "INVALID_JSON"
    )
    assert_error(
        await api.client.put(f"{Q}/ok/config", content=b'{"max_retries": NaN}', headers=h),
        400,
        "INVALID_JSON",
    )
    assert_error(
        await api.client.delete(f"{Q}/ok?delete_jobs=maybe", headers=h), 400, "VALIDATION_ERROR"
    )
    assert_error(await api.client.get(Q), 401, "UNAUTHORIZED")
    async with api.state.pool.acquire() as c:
        assert await c.fetchval("SELECT count(*) FROM queue_config") == 0
