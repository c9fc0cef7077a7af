"""Admin REST routes, authenticated by `X-Admin-Key` only (CONTRACT §6 #98–106, §7.14, §4.3).

The SDK also sends its `Authorization` header here; it is ignored (sdk-wire-notes §4.4).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from spooled_backend.admin import service
from spooled_backend.admin.queries import SORT_COLUMNS
from spooled_backend.admin.schemas import (
    AdminCreateOrganization,
    AdminOrgDetail,
    AdminOrgList,
    AdminUpdateOrganization,
    PlatformStats,
)
from spooled_backend.api_keys.schemas import AdminCreateApiKey, ApiKeyCreated
from spooled_backend.auth.admin import require_admin_key
from spooled_backend.core.body import parse_body
from spooled_backend.core.deps import Conn, State, state_of
from spooled_backend.core.errors import ValidationFailed
from spooled_backend.core.jsonvalue import string_problem
from spooled_backend.core.openapi import ADMIN, doc
from spooled_backend.core.pagination import clamp_page
from spooled_backend.core.responses import JSONBody, empty_response, json_response
from spooled_backend.core.validators import parse_uuid_id
from spooled_backend.organizations.schemas import Organization, OrganizationCreated, PlanLimits


async def require_admin(request: Request) -> None:
    """401 MISSING_ADMIN_KEY / INVALID_ADMIN_KEY / ADMIN_NOT_CONFIGURED before anything else."""
    require_admin_key(state_of(request).settings, request.headers.get("x-admin-key"))


router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)])

BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _org_id(value: str) -> str:
    """Organization ids are UUID text: anything else is an unknown organization (404)."""
    return parse_uuid_id(value, "Organization")


def _bool_param(value: str | None, field: str) -> bool:
    if value is None:
        return False
    parsed = BOOL_WORDS.get(value.strip().lower())
    if parsed is None:
        raise ValidationFailed(field, "must be true or false", "invalid_type")
    return parsed


@router.get("/organizations", **doc(AdminOrgList, errors=(400,), auth=ADMIN))
async def list_organizations(
    state: State,
    conn: Conn,
    plan_tier: str | None = None,
    search: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
    sort_by: str | None = None,
    sort_order: str | None = None,
) -> JSONBody:
    """`{organizations, total, limit, offset}`; `limit` 1–100 (50); `sort_by` one of
    created_at/name/slug/plan_tier/updated_at (else 400); `sort_order` asc/desc (desc)."""
    page = clamp_page(limit, offset, default=50, maximum=100)
    column = sort_by or "created_at"
    if column not in SORT_COLUMNS:
        raise ValidationFailed(
            "sort_by", "sort_by must be one of " + ", ".join(SORT_COLUMNS), "enum"
        )
    direction = (sort_order or "desc").lower()
    if direction not in ("asc", "desc"):
        raise ValidationFailed("sort_order", "sort_order must be asc or desc", "enum")
    if plan_tier is not None and plan_tier not in (*service.TIERS, "deleted"):
        raise ValidationFailed("plan_tier", "unknown plan_tier", "enum")
    if search is not None and len(search) > 200:
        raise ValidationFailed("search", "search must be at most 200 characters", "length")
    if search is not None and (problem := string_problem(search)):
        raise ValidationFailed("search", problem, "invalid")
    result = await service.list_organizations(
        conn,
        state.settings,
        plan_tier=plan_tier,
        search=search or None,
        sort_by=column,
        sort_order=direction,
        page=page,
    )
    return json_response(result)


@router.post(
    "/organizations", status_code=201,
    **doc(OrganizationCreated, body=AdminCreateOrganization, errors=(409,), auth=ADMIN),
)
async def create_organization(request: Request, state: State, conn: Conn) -> JSONBody:
    """201 `{organization, api_key}`; 400 bad fields, 409 slug/billing email taken."""
    body = await parse_body(request, AdminCreateOrganization)
    return json_response(await service.create_organization(conn, state.settings, body), status=201)


@router.get("/organizations/{org_id}", **doc(AdminOrgDetail, errors=(404,), auth=ADMIN))
async def get_organization(org_id: str, state: State, conn: Conn) -> JSONBody:
    """Organization + `usage_info`, `api_keys_count`, `total_jobs`; 404."""
    org_id = _org_id(org_id)
    return json_response(await service.get_organization(conn, state.settings, org_id))


@router.patch(
    "/organizations/{org_id}",
    **doc(Organization, body=AdminUpdateOrganization, errors=(404, 409), auth=ADMIN),
)
async def update_organization(org_id: str, request: Request, conn: Conn) -> JSONBody:
    """Organization after the change; 400, 404, 409 (billing email)."""
    org_id = _org_id(org_id)
    body = await parse_body(request, AdminUpdateOrganization)
    return json_response(await service.update_organization(conn, org_id, body))


@router.delete(
    "/organizations/{org_id}", status_code=204, **doc(None, errors=(400, 404), auth=ADMIN)
)
async def delete_organization(org_id: str, conn: Conn, hard_delete: str | None = None) -> Response:
    """204; soft by default, `?hard_delete=true` removes the organization and all its data."""
    org_id = _org_id(org_id)
    await service.delete_organization(conn, org_id, hard=_bool_param(hard_delete, "hard_delete"))
    return empty_response()


@router.post(
    "/organizations/{org_id}/api-keys", status_code=201,
    **doc(ApiKeyCreated, body=AdminCreateApiKey, errors=(404, 409), auth=ADMIN),
)
async def create_api_key(org_id: str, request: Request, state: State, conn: Conn) -> JSONBody:
    """201 `{id, key, name, created_at, expires_at, queues}` (queues default `["*"]`); 404."""
    org_id = _org_id(org_id)
    body = await parse_body(request, AdminCreateApiKey)
    created = await service.create_api_key(conn, state.settings, org_id, body)
    return json_response(created, status=201)


@router.post(
    "/organizations/{org_id}/reset-usage", status_code=204,
    **doc(None, errors=(404,), auth=ADMIN),
)
async def reset_usage(org_id: str, conn: Conn) -> Response:
    """204; today's job counter back to 0. 404."""
    org_id = _org_id(org_id)
    await service.reset_usage(conn, org_id)
    return empty_response()


@router.get("/stats", **doc(PlatformStats, auth=ADMIN))
async def stats(state: State, conn: Conn) -> JSONBody:
    """Platform-wide counts (see `service.platform_stats`)."""
    uptime = int((datetime.now(UTC) - state.started_at).total_seconds())
    return json_response(await service.platform_stats(conn, state.version, uptime))


@router.get("/plans", **doc(list[PlanLimits], auth=ADMIN))
async def plans(state: State) -> JSONBody:
    """`[PlanLimits]` for free, starter, pro, enterprise."""
    return json_response(service.plans(state.settings))
