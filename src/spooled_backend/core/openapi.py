"""The OpenAPI document: one helper per route decorator, one pass that finishes the document.

Request bodies are parsed by hand (core/body.py: the contract's 400/413/415/422 rules), so
FastAPI cannot see them; `doc()` tells the document what each route takes, answers and refuses:

    from spooled_backend.core.openapi import KEY, doc

    @router.post("/jobs", status_code=201,
                 **doc(CreateJobResponse, body=CreateJob, errors=(400, 403, 413, 422, 429)))

* the first argument is the 2xx body model (`list[Model]` for arrays, None for 204/empty);
* `body=` the pydantic model the route parses with `parse_body` / `parse_optional_body`
  (`body_required=False` for the optional ones);
* `errors=` the statuses the route itself can answer; `auth=` adds its own (401, and 403 for
  unrestricted-key routes) and the security requirement; every `/api/v1` route also gets 429
  unless `rate_limited=False`. All error statuses share the contract's error body (§3).
* `auth=` one of NONE, KEY (API key or access JWT), UNRESTRICTED (key*), JWT, ADMIN
  (`X-Admin-Key`), METRICS, WEBHOOK_TOKEN (`X-Webhook-Token`), STRIPE.

WebSocket routes are not HTTP operations; describe them with `document_websocket(path, ...)`
(a GET answering 101). `tests/integration/test_openapi.py` fails for any mounted route without
`doc()` and says what to add.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

MARK = "x-spooled"  # set by doc() on the route, removed from the published document
_MODEL_REF = "x-spooled-model:"
ERROR_REF = "#/components/schemas/ErrorBody"

NONE, KEY, UNRESTRICTED, JWT, ADMIN = "none", "key", "key*", "jwt", "admin"
METRICS, WEBHOOK_TOKEN, STRIPE = "metrics", "webhook_token", "stripe"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "ApiKey": {
        "type": "http", "scheme": "bearer", "bearerFormat": "API key (sk_live_… / sk_test_…)",
        "description": "An organization API key as `Authorization: Bearer <key>`.",
    },
    "Jwt": {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "An access token from `POST /api/v1/auth/login` (never a refresh token).",
    },
    "AdminKey": {
        "type": "apiKey", "in": "header", "name": "X-Admin-Key",
        "description": "The server's `ADMIN_API_KEY`.",
    },
    "MetricsToken": {
        "type": "http", "scheme": "bearer",
        "description": "`METRICS_TOKEN`, when set; `/metrics` is open otherwise.",
    },
    "WebhookToken": {
        "type": "apiKey", "in": "header", "name": "X-Webhook-Token",
        "description": "The organization's incoming-webhook token (`whk_…`).",
    },
    "StripeSignature": {
        "type": "apiKey", "in": "header", "name": "Stripe-Signature",
        "description": "Stripe's webhook signature over the raw body.",
    },
}

_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    NONE: [],
    KEY: [{"ApiKey": []}, {"Jwt": []}],
    UNRESTRICTED: [{"ApiKey": []}, {"Jwt": []}],
    JWT: [{"Jwt": []}],
    ADMIN: [{"AdminKey": []}],
    METRICS: [{}, {"MetricsToken": []}],
    WEBHOOK_TOKEN: [{"WebhookToken": []}],
    STRIPE: [{"StripeSignature": []}],
}

ERROR_TEXT = {
    400: "Invalid input: a field rule failed (`VALIDATION_ERROR`, with `details`), malformed or "
         "empty JSON (`INVALID_JSON`), or a business rule (`BAD_REQUEST`)",
    401: "Missing or invalid credentials (`UNAUTHORIZED`, `AUTHENTICATION_FAILED`; admin routes: "
         "`MISSING_ADMIN_KEY`, `INVALID_ADMIN_KEY`, `ADMIN_NOT_CONFIGURED`)",
    403: "Not allowed (`ACCESS_DENIED`: queue scope, unrestricted-key-only action; "
         "`FEATURE_DISABLED`: plan feature off)",
    404: "Not found, or outside the key's scope (`NOT_FOUND`)",
    409: "Conflict: wrong state or duplicate (`CONFLICT`), or lost lease (`LEASE_EXPIRED`)",
    413: "Payload or body too large (`PAYLOAD_TOO_LARGE`)",
    415: "A JSON body sent without a JSON content type (`UNSUPPORTED_MEDIA_TYPE`)",
    422: "Body of the wrong shape: missing field or wrong type (`VALIDATION_ERROR`, detail codes "
         "`missing_field`, `invalid_type`)",
    429: "Rate limit (`RATE_LIMIT_EXCEEDED`, with `Retry-After`) or plan quota (`QUOTA_EXCEEDED`)",
    431: "Request header fields too large",
    503: "Service unavailable here (`SERVICE_UNAVAILABLE`), e.g. no Redis or no Stripe",
}


class ErrorDetail(BaseModel):
    field: str
    message: str
    code: str


class ErrorBody(BaseModel):
    """Every 4xx/5xx body (CONTRACT §3.1). Extra fields (quota, rate-limit, plan) may follow."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="UPPER_SNAKE machine code, e.g. VALIDATION_ERROR")
    message: str
    details: list[ErrorDetail] | dict[str, Any] | None = None
    error: str | None = Field(None, description="legacy lower-case tag, when present")


_BODY_MODELS: dict[str, type[BaseModel]] = {}
_WEBSOCKETS: dict[str, dict[str, Any]] = {}


def _model_ref(model: type[BaseModel]) -> dict[str, str]:
    key = f"{model.__module__}.{model.__qualname__}"
    _BODY_MODELS[key] = model
    return {"$ref": _MODEL_REF + key}


def error_responses(statuses: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries with the shared error body for each status."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        entry: dict[str, Any] = {"model": ErrorBody, "description": ERROR_TEXT.get(status, "Error")}
        if status == 429:
            entry["headers"] = {"Retry-After": {
                "description": "Seconds to wait (rate limits only; absent on quota errors)",
                "schema": {"type": "integer"},
            }}
        out[status] = entry
    return out


def doc(
    response: Any = None,
    *,
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    errors: Iterable[int] = (),
    auth: str = KEY,
    rate_limited: bool = True,
    content_type: str | None = None,
    raw_body: str | None = None,
    description: str | None = None,
    also: dict[int, tuple[Any, str]] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for a route decorator (rules in the module docstring).

    `content_type` documents a non-JSON success body (e.g. `text/plain` for /metrics);
    `raw_body` documents a non-model request body by media type (e.g. the Stripe webhook);
    `also` documents other success statuses: `{200: (Model, "when …")}`."""
    if auth not in _SECURITY:
        raise ValueError(f"unknown auth {auth!r}")
    statuses = set(errors)
    if auth != NONE:
        statuses.add(401)
    if auth == UNRESTRICTED:
        statuses.add(403)
    if rate_limited:
        statuses.add(429)
    if body is not None:
        statuses.update((400, 413, 415, 422))
    extra: dict[str, Any] = {MARK: {"auth": auth}, "security": _SECURITY[auth]}
    if body is not None:
        extra["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": _model_ref(body)}},
        }
    elif raw_body is not None:
        statuses.update((400, 413))
        extra["requestBody"] = {"required": True, "content": {raw_body: {"schema": {}}}}
    responses = error_responses(statuses)
    for status, (model, text) in (also or {}).items():
        responses[status] = {"model": model, "description": text}
    out: dict[str, Any] = {"responses": responses, "openapi_extra": extra}
    if content_type is not None:
        out["response_class"] = _text_response(content_type)
        out["response_model"] = None
    else:
        out["response_model"] = response
    if description is not None:
        out["description"] = description
    return out


def _text_response(media_type: str) -> type:
    from starlette.responses import Response

    return type("DocumentedResponse", (Response,), {"media_type": media_type})


def document_websocket(path: str, summary: str, *, auth: str = KEY, query: Iterable[str] = ()) -> None:
    """Describe a WebSocket route as a GET answering 101 (OpenAPI has no WebSocket operation)."""
    params = [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
              for q in query]
    statuses = {400, 403, 429} | ({401} if auth != NONE else set())
    _WEBSOCKETS[path] = {
        "get": {
            "summary": summary,
            "operationId": "websocket_" + path.strip("/").replace("/", "_").replace("{", "").replace("}", ""),
            "parameters": params,
            "security": _SECURITY[auth],
            "responses": {
                "101": {"description": "Switching protocols: a WebSocket carrying event envelopes"},
                **{str(s): {"description": ERROR_TEXT[s], "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ErrorBody"}}}} for s in sorted(statuses)},
            },
        }
    }


def _replace_refs(node: Any, refs: dict[str, str]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_MODEL_REF):
            return {"$ref": refs[ref[len(_MODEL_REF):]]}
        return {k: _replace_refs(v, refs) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_refs(v, refs) for v in node]
    return node


def build_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus request bodies, error bodies, security schemes and WebSockets."""
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes,
        servers=[{"url": "/"}],
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    models = list(_BODY_MODELS.items())
    key_map, defs = models_json_schema(
        [(m, "validation") for _, m in models], ref_template="#/components/schemas/{model}"
    )
    for name, schema in defs.get("$defs", {}).items():
        if name in schemas and schemas[name] != schema:
            raise RuntimeError(
                f"OpenAPI: two different schemas are named {name!r} (a request model and a "
                f"response model?); rename one of the classes"
            )
        schemas[name] = schema
    refs = {key: key_map[(m, "validation")]["$ref"] for key, m in models}
    for path, ops in document.get("paths", {}).items():
        for op in ops.values():
            op.pop(MARK, None)
            responses = op.get("responses", {})
            for status, entry in responses.items():
                if status[0] in "45" and "application/json" not in entry.get("content", {}):
                    # routes with a text body (e.g. /metrics): errors are still JSON
                    entry["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
            default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
            if default_422.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
                # FastAPI's own query/path validation answers 400 here (core/handlers.py)
                del responses["422"]
                responses.setdefault("400", {
                    "description": ERROR_TEXT[400],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
                })
    document = _replace_refs(document, refs)
    document["paths"].update(_WEBSOCKETS)
    schemas = document["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and f'"#/components/schemas/{unused}"' not in _dumps(document["paths"]):
            del schemas[unused]
    document["components"]["securitySchemes"] = SECURITY_SCHEMES
    return document


def _dumps(value: Any) -> str:
    import json

    return json.dumps(value)


def install(app: FastAPI) -> None:
    """Serve the finished document at `app.openapi_url` (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def undocumented_routes(app: FastAPI) -> list[str]:
    """Mounted HTTP routes without `doc()`, each with what to add (used by the test)."""
    missing = []
    for route in app.routes:
        if isinstance(route, APIRoute) and route.include_in_schema:
            if not (route.openapi_extra or {}).get(MARK):
                methods = ",".join(sorted(route.methods - {"HEAD"}))
                where = f"{route.endpoint.__module__}.{route.endpoint.__name__}"
                missing.append(
                    f"{methods} {route.path} ({where}): add "
                    f"`**doc(ResponseModel, body=RequestModel, errors=(...), auth=KEY)` from "
                    f"spooled_backend.core.openapi to its decorator"
                )
    return missing


class Out(BaseModel):
    """Base of documented response bodies: the listed fields, more may follow."""

    model_config = ConfigDict(extra="allow")


class Success(Out):
    success: bool


class Empty(Out):
    """`{}`"""
