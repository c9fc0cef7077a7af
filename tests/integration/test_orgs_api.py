"""Organizations over REST (CONTRACT §7.3) against real PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import Api

ORG_URL = "/api/v1/organizations"


async def scoped_key(api: Api, tenant: dict[str, Any], queues: list[str]) -> str:
    resp = await api.client.post(
        "/api/v1/api-keys", json={"name": "scoped", "queues": queues}, headers=tenant["headers"]
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["key"])


async def test_create_shape_and_token(api: Api) -> None:
    created = await api.create_org("acme-co", name="Acme Co", billing_email="ops@acme.example.com")
    org = created["organization"]
    assert org["slug"] == "acme-co" and org["plan_tier"] == "free"
    assert org["billing_email"] == "ops@acme.example.com"
    assert re.fullmatch(r"whk_[A-Za-z0-9_-]{32}", org["settings"]["webhook_token"])
    key = created["api_key"]
    assert key["name"] == "Initial Admin Key" and key["key"].startswith("sk_test_")
    assert len(key["key"]) == len("sk_test_") + 43
    assert org["created_at"].endswith("Z") and org["updated_at"].endswith("Z")


async def test_create_rejections(api: Api) -> None:
    await api.create_org("taken-slug", billing_email="a@b.example.com")
    cases = [
        ({"name": "Ok name", "slug": "ab"}, 400),
        ({"name": "Ok name", "slug": "Bad_Slug"}, 400),
        ({"name": "Ok name", "slug": "1abc"}, 400),
        ({"name": "Ok name", "slug": "admin"}, 400),
        ({"name": "Ok name", "slug": "a--b"}, 400),
        ({"name": "x", "slug": "fine-slug"}, 400),
        ({"name": "Ok name", "slug": "taken-slug"}, 409),
        ({"name": "Ok name", "slug": "other-slug", "billing_email": "A@B.example.com"}, 409),
        ({"name": "Ok name"}, 422),
        ({"name": "Ok name", "slug": "x-y-z", "billing_email": "not-an-email"}, 400),
        ({"name": "Nul\u0000name", "slug": "nul-slug"}, 400),
        ({"name": "Ok name", "slug": "nul\u0000slug"}, 400),
    ]
    for body, status in cases:
        resp = await api.client.post(ORG_URL, json=body)
        assert resp.status_code == status, (body, resp.text)
        assert resp.json()["code"] in ("VALIDATION_ERROR", "CONFLICT"), resp.text
    resp = await api.client.post(ORG_URL, content=b"", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["code"] == "INVALID_JSON"


async def test_list_get_redaction_and_foreign_404(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    other = await api.create_org()
    listed = (await api.client.get(ORG_URL, headers=h)).json()
    assert [o["id"] for o in listed] == [tenant["org_id"]]
    assert set(listed[0]) == {"id", "name", "slug", "plan_tier", "created_at"}
    full = (await api.client.get(f"{ORG_URL}/{tenant['org_id']}", headers=h)).json()
    assert full["settings"]["webhook_token"].startswith("whk_")
    scoped = await scoped_key(api, tenant, ["emails"])
    red = await api.client.get(f"{ORG_URL}/{tenant['org_id']}", headers=api.as_key(scoped))
    assert red.status_code == 200 and "webhook_token" not in red.json()["settings"]
    foreign = await api.client.get(f"{ORG_URL}/{other['organization']['id']}", headers=h)
    assert foreign.status_code == 404 and foreign.json()["code"] == "NOT_FOUND"
    unknown = await api.client.get(f"{ORG_URL}/nope", headers=h)
    assert unknown.status_code == 404


async def test_update(api: Api, tenant: dict[str, Any]) -> None:
    h, oid = tenant["headers"], tenant["org_id"]
    url = f"{ORG_URL}/{oid}"
    token = (await api.client.get(url, headers=h)).json()["settings"]["webhook_token"]
    resp = await api.client.put(
        url, json={"name": "  Renamed Org ", "settings": {"theme": "dark"}}, headers=h
    )
    assert resp.status_code == 200, resp.text
    org = resp.json()
    assert org["name"] == "Renamed Org"
    assert org["settings"] == {"theme": "dark", "webhook_token": token}
    # a supplied token is ignored: the token is server-owned
    resp = await api.client.put(url, json={"settings": {"webhook_token": "whk_mine"}}, headers=h)
    assert resp.json()["settings"] == {"webhook_token": token}
    await api.create_org(billing_email="used@x.example.com")
    dup = await api.client.put(url, json={"billing_email": "USED@x.example.com"}, headers=h)
    assert dup.status_code == 409 and dup.json()["code"] == "CONFLICT"
    ok = await api.client.put(url, json={"billing_email": "mine@x.example.com"}, headers=h)
    assert ok.json()["billing_email"] == "mine@x.example.com"
    for bad in (
        {"settings": [1, 2]},
        {"settings": None},
        {"settings": {"blob": "x" * 70_000}},
        {"name": "ab"},
        {"name": None},
        {"billing_email": "nope"},
        {"name": "Bad\u0000name"},
        {"settings": {"k": "\u0000"}},
    ):
        resp = await api.client.put(url, json=bad, headers=h)
        assert resp.status_code == 400, (bad, resp.text)
    after = (await api.client.get(url, headers=h)).json()
    assert after["name"] == "Renamed Org" and after["billing_email"] == "mine@x.example.com"
    scoped = await scoped_key(api, tenant, ["q1"])
    denied = await api.client.put(url, json={"name": "Hijack"}, headers=api.as_key(scoped))
    assert denied.status_code == 403 and denied.json()["code"] == "ACCESS_DENIED"


async def test_delete_blocked_then_soft_deleted(api: Api, tenant: dict[str, Any]) -> None:
    h, oid = tenant["headers"], tenant["org_id"]
    job = await api.client.post("/api/v1/jobs", json={"queue_name": "q", "payload": {}}, headers=h)
    blocked = await api.client.delete(f"{ORG_URL}/{oid}", headers=h)
    assert blocked.status_code == 409 and "active jobs" in blocked.json()["message"]
    assert (
        await api.client.delete(f"/api/v1/jobs/{job.json()['id']}", headers=h)
    ).status_code == 204
    async with api.state.pool.acquire() as c:
        await c.execute(
            "INSERT INTO workers (id, organization_id, queue_name, hostname, status) "
            "VALUES ('w-1', $1, 'q', 'host', 'draining')",
            oid,
        )
        await c.execute(
            "INSERT INTO schedules (organization_id, name, cron_expression, queue_name, "
            "payload_template) VALUES ($1, 's', '* * * * *', 'q', '{}')",
            oid,
        )
    blocked = await api.client.delete(f"{ORG_URL}/{oid}", headers=h)
    assert blocked.status_code == 409
    assert "1 active workers, 1 active schedules" in blocked.json()["message"]
    async with api.state.pool.acquire() as c:
        await c.execute("UPDATE workers SET status = 'offline' WHERE organization_id = $1", oid)
        await c.execute("UPDATE schedules SET is_active = false WHERE organization_id = $1", oid)
    scoped = await scoped_key(api, tenant, ["q"])
    denied = await api.client.delete(f"{ORG_URL}/{oid}", headers=api.as_key(scoped))
    assert denied.status_code == 403
    gone = await api.client.delete(f"{ORG_URL}/{oid}", headers=h)
    assert gone.status_code == 204 and gone.content == b""
    after = await api.client.get(ORG_URL, headers=h)
    assert after.status_code == 401
    async with api.state.pool.acquire() as c:
        assert (
            await c.fetchval("SELECT plan_tier FROM organizations WHERE id = $1", oid) == "deleted"
        )
        assert (
            await c.fetchval(
                "SELECT count(*) FROM api_keys WHERE organization_id = $1 AND is_active", oid
            )
            == 0
        )


async def test_members(api: Api) -> None:
    created = await api.create_org(billing_email="boss@m.example.com")
    h = api.as_key(created["api_key"]["key"])
    oid = created["organization"]["id"]
    await api.client.post("/api/v1/api-keys", json={"name": "ci", "queues": ["a"]}, headers=h)
    members = (await api.client.get(f"{ORG_URL}/{oid}/members", headers=h)).json()
    assert [(m["name"], m["role"], m["email"]) for m in members] == [
        ("Initial Admin Key", "owner", "boss@m.example.com"),
        ("ci", "member", "boss@m.example.com"),
    ]
    assert members[0]["id"] == members[0]["user_id"] == created["api_key"]["id"]
    bare = await api.create_org()
    bh = api.as_key(bare["api_key"]["key"])
    rows = (
        await api.client.get(f"{ORG_URL}/{bare['organization']['id']}/members", headers=bh)
    ).json()
    assert rows[0]["email"] == ""
    foreign = await api.client.get(f"{ORG_URL}/{oid}/members", headers=bh)
    assert foreign.status_code == 404


async def test_check_and_generate_slug(api: Api) -> None:
    await api.create_org("busy-name")
    check = lambda s: api.client.get(f"{ORG_URL}/check-slug", params={"slug": s})
    assert (await check("free-name")).json() == {"available": True, "valid": True}
    bad = (await check("Bad Slug")).json()
    assert bad["available"] is False and bad["valid"] is False and bad["error"]
    reserved = (await check("admin")).json()
    assert reserved["valid"] is True and reserved["available"] is False
    assert reserved["error"] == "This slug is reserved"
    assert re.fullmatch(r"admin-[0-9a-f]{6}", reserved["suggestion"])
    taken = (await check("busy-name")).json()
    assert taken["available"] is False and re.fullmatch(
        r"busy-name-[0-9a-f]{6}", taken["suggestion"]
    )
    missing = await api.client.get(f"{ORG_URL}/check-slug")
    assert missing.status_code == 400

    gen = lambda n: api.client.post(f"{ORG_URL}/generate-slug", json={"name": n})
    assert (await gen("  My Cool  Company!! ")).json() == {"slug": "my-cool-company"}
    assert (await gen("42 Things")).json() == {"slug": "org-42-things"}
    assert re.fullmatch(r"busy-name-[0-9a-f]{6}", (await gen("Busy Name")).json()["slug"])
    long = (await gen("x" * 150)).json()["slug"]
    assert len(long) == 50
    assert (await gen("Ünïcode ✓")).json()["slug"] == "n-code"
    assert (await gen("!!")).json()["slug"] == "org"
    assert re.fullmatch(r"admin-[0-9a-f]{6}", (await gen("Admin")).json()["slug"])
    for body in ({"name": "   "}, {"name": "y" * 201}):
        assert (await api.client.post(f"{ORG_URL}/generate-slug", json=body)).status_code == 400
    assert (await api.client.post(f"{ORG_URL}/generate-slug", json={})).status_code == 422


async def test_webhook_token_routes(api: Api, tenant: dict[str, Any]) -> None:
    h = tenant["headers"]
    got = (await api.client.get(f"{ORG_URL}/webhook-token", headers=h)).json()
    assert got["webhook_token"].startswith("whk_")
    assert got["webhook_url"] == (
        f"https://api.spooled.cloud/api/v1/webhooks/{tenant['org_id']}/custom"
    )
    new = (await api.client.post(f"{ORG_URL}/webhook-token/regenerate", headers=h)).json()
    assert new["webhook_token"] != got["webhook_token"]
    again = (await api.client.get(f"{ORG_URL}/webhook-token", headers=h)).json()
    assert again["webhook_token"] == new["webhook_token"]
    assert got["token"] == got["webhook_token"] and new["token"] == new["webhook_token"]  # R4
    # CONTRACT §21 R3: clear removes the token (200); confirm: false is refused
    refused = await api.client.post(
        f"{ORG_URL}/webhook-token/clear", json={"confirm": False}, headers=h
    )
    assert refused.status_code == 400 and refused.json()["code"] == "BAD_REQUEST"
    assert "confirm" in refused.json()["message"]
    assert (await api.client.get(f"{ORG_URL}/webhook-token", headers=h)).json() == again
    clear = await api.client.post(
        f"{ORG_URL}/webhook-token/clear", json={"confirm": True}, headers=h
    )
    assert clear.status_code == 200, clear.text
    assert clear.json() == {"webhook_token": None, "token": None, "webhook_url": got["webhook_url"]}
    assert (await api.client.get(f"{ORG_URL}/webhook-token", headers=h)).json() == clear.json()
    org = (await api.client.get(f"{ORG_URL}/{tenant['org_id']}", headers=h)).json()
    assert "webhook_token" not in org["settings"]
    # no body at all (older SDKs) clears too, and regenerate brings a token back
    again_clear = await api.client.post(f"{ORG_URL}/webhook-token/clear", headers=h)
    assert again_clear.status_code == 200 and again_clear.json()["webhook_token"] is None
    back = (await api.client.post(f"{ORG_URL}/webhook-token/regenerate", headers=h)).json()
    assert back["webhook_token"].startswith("whk_")
    scoped = await scoped_key(api, tenant, ["q1"])
    for method, path in (("GET", "webhook-token"), ("POST", "webhook-token/regenerate"),
                         ("POST", "webhook-token/clear")):
        resp = await api.client.request(method, f"{ORG_URL}/{path}", headers=api.as_key(scoped))
        assert resp.status_code == 403 and resp.json()["code"] == "ACCESS_DENIED"
