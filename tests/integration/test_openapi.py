"""The OpenAPI document (issue 7 §5): valid, complete, and the offline docs pages.

Every mounted route must be documented with `core.openapi.doc()` (request model, response
model, error statuses, security); the failure messages say exactly what to add.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from openapi_spec_validator import validate
from starlette.routing import WebSocketRoute

from spooled_backend.core import apidocs, openapi
from tests.conftest import Api

ERROR_REF = "#/components/schemas/ErrorBody"
WRITE_METHODS = {"post", "put", "patch"}


async def _document(api: Api) -> dict[str, Any]:
    resp = await api.client.get("/openapi.json")
    assert resp.status_code == 200
    doc: dict[str, Any] = resp.json()
    return doc


def _app(api: Api) -> Any:
    return api.client._transport.app  # type: ignore[attr-defined]


def _mounted(api: Api) -> list[tuple[str, str, Any]]:
    out = []
    for route in _app(api).routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            for method in sorted(route.methods - {"HEAD"}):
                out.append((method.lower(), route.path, route))
        elif isinstance(route, WebSocketRoute):
            out.append(("get", route.path, route))
    return out


async def test_document_is_valid_openapi(api: Api) -> None:
    doc = await _document(api)
    validate(doc)  # raises with the first problem
    assert doc["openapi"].startswith("3.")
    assert set(doc["components"]["securitySchemes"]) >= {"ApiKey", "Jwt", "AdminKey"}
    assert doc["components"]["securitySchemes"]["AdminKey"] == {
        "type": "apiKey", "in": "header", "name": "X-Admin-Key",
        "description": "The server's `ADMIN_API_KEY`.",
    }
    # FastAPI's own 422 shape never appears: query errors are our 400 (core/handlers.py)
    assert "HTTPValidationError" not in doc["components"]["schemas"]


async def test_every_mounted_route_is_documented(api: Api) -> None:
    missing = openapi.undocumented_routes(_app(api))
    assert not missing, "Routes without an OpenAPI description:\n" + "\n".join(missing)
    doc = await _document(api)
    absent = []
    for method, path, route in _mounted(api):
        if method not in doc["paths"].get(path, {}):
            hint = (
                "call spooled_backend.core.openapi.document_websocket(path, summary, query=(...))"
                if isinstance(route, WebSocketRoute) else "use **doc(...) on its decorator"
            )
            absent.append(f"{method.upper()} {path}: not in /openapi.json ({hint})")
    assert not absent, "\n".join(absent)


async def test_every_operation_has_responses_errors_and_security(api: Api) -> None:
    doc = await _document(api)
    problems = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            name = f"{method.upper()} {path}"
            responses = op["responses"]
            ok = [s for s in responses if s.startswith("2") or s == "101"]
            if not ok:
                problems.append(f"{name}: no success response; pass the response model to doc()")
            for status in ok:
                body = responses[status].get("content")
                if status not in ("204", "101") and not body:
                    problems.append(f"{name}: {status} has no body schema; doc(ResponseModel, …)")
            for status, entry in responses.items():
                if status[0] in "45":
                    schema = entry.get("content", {}).get("application/json", {}).get("schema", {})
                    if schema.get("$ref") != ERROR_REF:
                        problems.append(f"{name}: {status} must use the ErrorBody schema")
            if "security" not in op:
                problems.append(f"{name}: no security requirement; doc(…, auth=KEY|ADMIN|NONE…)")
            elif op["security"] and "401" not in responses:
                problems.append(f"{name}: authenticated but 401 is not documented")
            if path.startswith("/api/v1/") and "429" not in responses:
                problems.append(f"{name}: 429 (rate limit) not documented")
            body = op.get("requestBody")
            if body is not None and "application/json" in body["content"]:
                model = "$ref" in body["content"]["application/json"]["schema"]
                for status in ("400", "413", "422") if model else ("400", "413"):
                    if status not in responses:
                        problems.append(f"{name}: takes JSON but does not document {status}")
    assert not problems, "\n".join(problems)


async def test_known_operations_carry_their_models(api: Api) -> None:
    doc = await _document(api)
    paths = doc["paths"]
    create = paths["/api/v1/jobs"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateJob"
    }
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobCreated"
    }
    assert set(create["responses"]) >= {"200", "201", "400", "401", "403", "413", "422", "429"}
    assert create["security"] == [{"ApiKey": []}, {"Jwt": []}]
    schema = doc["components"]["schemas"]["CreateJob"]
    assert set(schema["required"]) == {"queue_name", "payload"}
    # null means the default (CONTRACT §21 R13), and the schema says so
    assert schema["properties"]["priority"] == {
        "anyOf": [{"type": "integer", "minimum": -100, "maximum": 100}, {"type": "null"}],
        "default": 0, "title": "Priority",
    }
    complete = doc["components"]["schemas"]["CompleteJob"]
    assert complete["required"] == ["worker_id"]  # lease_id optional (CONTRACT §21 R1)
    listing = paths["/api/v1/jobs"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listing["schema"]["type"] == "array"
    assert listing["schema"]["items"] == {"$ref": "#/components/schemas/JobSummary"}
    admin = paths["/api/v1/admin/organizations"]["get"]
    assert admin["security"] == [{"AdminKey": []}]
    usage = paths["/api/v1/organizations/usage"]["get"]
    assert "403" in usage["responses"]  # unrestricted keys only
    assert paths["/api/v1/auth/login"]["post"]["security"] == []
    assert paths["/api/v1/auth/me"]["get"]["security"] == [{"Jwt": []}]
    assert "204" in paths["/api/v1/jobs/{job_id}"]["delete"]["responses"]
    metrics = paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4; charset=utf-8"]
    worker = doc["components"]["schemas"]["WorkerSummary"]["required"]
    assert {"created_at", "registered_at", "max_concurrent_jobs", "current_job_count"} <= set(worker)
    # the R6 alias is documented too
    assert "get" in paths["/api/v1/auth/email/check"]


async def test_docs_pages_render_from_packaged_assets(api: Api) -> None:
    for page, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        resp = await api.client.get(page)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        assert resp.headers["content-security-policy"] == apidocs.DOCS_CSP
        assert resp.headers["x-frame-options"] == "DENY"
        html = resp.text
        assert f'src="/docs/assets/{asset}"' in html
        assert "http://" not in html and "https://" not in html and "cdn" not in html.lower()
        js = await api.client.get(f"/docs/assets/{asset}")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert len(js.content) > 500_000  # the real bundle, not a stub
    css = await api.client.get("/docs/assets/swagger-ui.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    init = await api.client.get("/docs/assets/swagger-init.js")
    assert '"/openapi.json"' in init.text
    assert (await api.client.get("/docs/assets/../app.py")).status_code == 404
    assert (await api.client.get("/docs/assets/nope.js")).status_code == 404
    # every other response keeps the API's policy
    other = await api.client.get("/openapi.json")
    assert other.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert "script-src 'self'" in apidocs.DOCS_CSP and "http" not in apidocs.DOCS_CSP
