"""REST routes for API keys (CONTRACT §6 #27–31, §7.5). All are unrestricted-key only (key*)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from spooled_backend.api_keys import service
from spooled_backend.api_keys.schemas import ApiKey, ApiKeyCreated, CreateApiKey, UpdateApiKey
from spooled_backend.core.body import parse_body
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.openapi import UNRESTRICTED, doc
from spooled_backend.core.responses import JSONBody, empty_response, json_response

router = APIRouter(prefix="/api/v1", tags=["api-keys"])


@router.get("/api-keys", **doc(list[ApiKey], auth=UNRESTRICTED))
async def list_api_keys(conn: Conn, auth: Auth) -> JSONBody:
    """`[ApiKey]` of the caller's org, revoked included, newest first, ≤100. 403 scoped keys."""
    auth.require_unrestricted()
    return json_response(await service.list_keys(conn, auth.organization_id))


@router.post(
    "/api-keys", status_code=201,
    **doc(ApiKeyCreated, body=CreateApiKey, auth=UNRESTRICTED),
)
async def create_api_key(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """201 `{id, key, name, created_at, expires_at, queues}`; the raw key is shown only here.

    400 bad name/queues/rate_limit/expires_at or unknown fields; 403 scoped caller;
    429 QUOTA_EXCEEDED (`api_keys` cap).
    """
    auth.require_unrestricted()
    body = await parse_body(request, CreateApiKey)
    created = await service.create_key(conn, state.settings, auth, body, default_queues=[])
    return json_response(created, status=201)


@router.get("/api-keys/{key_id}", **doc(ApiKey, errors=(404,), auth=UNRESTRICTED))
async def get_api_key(key_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """ApiKey; 404 unknown or another organization's key."""
    auth.require_unrestricted()
    return json_response(await service.get_key(conn, auth.organization_id, key_id))


@router.put(
    "/api-keys/{key_id}", **doc(ApiKey, body=UpdateApiKey, errors=(404,), auth=UNRESTRICTED)
)
async def update_api_key(
    key_id: str, request: Request, state: State, conn: Conn, auth: Auth
) -> JSONBody:
    """Update `name`, `queues`, `rate_limit` (1–10000), `is_active`, `expires_at` → ApiKey."""
    auth.require_unrestricted()
    body = await parse_body(request, UpdateApiKey)
    return json_response(await service.update_key(conn, state.settings, auth, key_id, body))


@router.delete(
    "/api-keys/{key_id}", status_code=204, **doc(None, errors=(404,), auth=UNRESTRICTED)
)
async def revoke_api_key(key_id: str, conn: Conn, auth: Auth) -> Response:
    """204: soft revoke; the key fails authentication from the next request on."""
    auth.require_unrestricted()
    await service.revoke_key(conn, auth.organization_id, key_id)
    return empty_response()
