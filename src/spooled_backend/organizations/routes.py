"""REST routes for organizations (CONTRACT §6 #14–25, §7.3).

Literal paths (`/organizations/usage`, `/check-slug`, `/generate-slug`, `/webhook-token…`) are
registered before `/organizations/{org_id}` so they win.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from spooled_backend.auth.admin import admin_key_matches
from spooled_backend.core.body import parse_body, parse_optional_body
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.errors import AccessDenied, BadRequest, ValidationFailed
from spooled_backend.core.openapi import NONE, UNRESTRICTED, doc
from spooled_backend.core.responses import JSONBody, empty_response, json_response
from spooled_backend.organizations import lifecycle, quotas, service, slugs
from spooled_backend.organizations.schemas import (
    ClearWebhookToken,
    CreateOrganization,
    GeneratedSlug,
    GenerateSlug,
    Member,
    Organization,
    OrganizationCreated,
    OrganizationSummary,
    SlugCheck,
    UpdateOrganization,
    UsageInfo,
    WebhookToken,
)

router = APIRouter(prefix="/api/v1", tags=["organizations"])


@router.post(
    "/organizations", status_code=201,
    **doc(OrganizationCreated, body=CreateOrganization, errors=(403, 409), auth=NONE),
)
async def create_organization(request: Request, state: State, conn: Conn) -> JSONBody:
    """Create an organization → 201 `{organization, api_key: {id, key, name, created_at}}`.

    `REGISTRATION_MODE=open`: public; `closed`: needs a matching `X-Admin-Key` (else 403);
    `invite`: 403 (CONTRACT §4.6). 400 bad name/slug, 409 slug or billing email taken.
    """
    mode = state.settings.registration_mode
    if mode != "open" and not (
        mode == "closed" and admin_key_matches(state.settings, request.headers.get("x-admin-key"))
    ):
        raise AccessDenied("Registration is closed on this server")
    body = await parse_body(request, CreateOrganization)
    result = await service.create_organization(
        conn, state.settings, name=body.name, slug=body.slug, billing_email=body.billing_email
    )
    return json_response(result, status=201)


@router.get("/organizations", **doc(list[OrganizationSummary]))
async def list_organizations(conn: Conn, auth: Auth) -> JSONBody:
    """`[{id, name, slug, plan_tier, created_at}]`: only the caller's organization."""
    return json_response(await lifecycle.summaries(conn, auth))


@router.get("/organizations/usage", **doc(UsageInfo, auth=UNRESTRICTED))
async def get_usage(state: State, conn: Conn, auth: Auth) -> JSONBody:
    """UsageInfo (CONTRACT §12.3) of the caller's org. 403 for scoped keys."""
    auth.require_unrestricted()
    return json_response(await quotas.usage(conn, state.settings, auth))


@router.get("/organizations/check-slug", **doc(SlugCheck, errors=(400,), auth=NONE))
async def check_slug(conn: Conn, slug: str | None = None) -> JSONBody:
    """Public: `{available, valid, error?, suggestion?}`; 400 when `slug` is missing."""
    if slug is None:
        raise ValidationFailed("slug", "slug query parameter is required", "missing_field")
    return json_response(await slugs.check_slug(conn, slug.strip()))


@router.post(
    "/organizations/generate-slug", **doc(GeneratedSlug, body=GenerateSlug, auth=NONE)
)
async def generate_slug(request: Request, conn: Conn) -> JSONBody:
    """Public: `{name}` (1–200 characters after trimming) → `{slug}`, free at the time of asking."""
    body = await parse_body(request, GenerateSlug)
    name = body.name.strip()
    if not 1 <= len(name) <= 200:
        raise ValidationFailed("name", "name must be 1-200 characters", "length")
    return json_response({"slug": await slugs.generate_slug(conn, name)})


@router.get(
    "/organizations/webhook-token", **doc(WebhookToken, errors=(404,), auth=UNRESTRICTED)
)
async def get_webhook_token(state: State, conn: Conn, auth: Auth) -> JSONBody:
    """`{webhook_token, webhook_url}`. 403 for scoped keys."""
    return json_response(await lifecycle.get_webhook_token(conn, state.settings, auth))


@router.post(
    "/organizations/webhook-token/regenerate",
    **doc(WebhookToken, errors=(404,), auth=UNRESTRICTED),
)
async def regenerate_webhook_token(state: State, conn: Conn, auth: Auth) -> JSONBody:
    """New `whk_…` token, persisted → `{webhook_token, webhook_url}`. 403 for scoped keys."""
    return json_response(await lifecycle.regenerate_webhook_token(conn, state.settings, auth))


@router.post(
    "/organizations/webhook-token/clear",
    **doc(WebhookToken, body=ClearWebhookToken, body_required=False, errors=(404,),
          auth=UNRESTRICTED),
)
async def clear_webhook_token(request: Request, state: State, conn: Conn, auth: Auth) -> JSONBody:
    """Remove the ingest token (CONTRACT §21 R3) → `{webhook_token: null, token: null,
    webhook_url}`. Optional body `{confirm?}`: `confirm: false` is refused (400). 403 scoped."""
    auth.require_unrestricted()
    body = await parse_optional_body(request, ClearWebhookToken)
    if body.confirm is False:
        raise BadRequest("Send {\"confirm\": true} (or no body) to clear the webhook token")
    return json_response(await lifecycle.clear_webhook_token(conn, state.settings, auth))


@router.get("/organizations/{org_id}", **doc(Organization, errors=(404,)))
async def get_organization(org_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """Organization; 404 for any id but the caller's."""
    return json_response(await lifecycle.get_organization(conn, auth, org_id))


@router.put(
    "/organizations/{org_id}",
    **doc(Organization, body=UpdateOrganization, errors=(404, 409), auth=UNRESTRICTED),
)
async def update_organization(org_id: str, request: Request, conn: Conn, auth: Auth) -> JSONBody:
    """Update `name`, `billing_email`, `settings` → Organization. 403 scoped, 404, 409 email."""
    auth.require_unrestricted()
    body = await parse_body(request, UpdateOrganization)
    return json_response(await lifecycle.update_organization(conn, auth, org_id, body))


@router.delete(
    "/organizations/{org_id}", status_code=204,
    **doc(None, errors=(404, 409), auth=UNRESTRICTED),
)
async def delete_organization(org_id: str, conn: Conn, auth: Auth) -> Response:
    """204 soft delete; 409 while active jobs/workers/schedules exist. 403 scoped, 404."""
    await lifecycle.delete_organization(conn, auth, org_id)
    return empty_response()


@router.get(
    "/organizations/{org_id}/members", **doc(list[Member], errors=(404,), auth=UNRESTRICTED)
)
async def list_members(org_id: str, conn: Conn, auth: Auth) -> JSONBody:
    """`[{id, user_id, email, name, role, joined_at, invited_by}]`. 403 scoped, 404."""
    return json_response(await lifecycle.list_members(conn, auth, org_id))
