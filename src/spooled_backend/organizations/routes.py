"""REST routes for organizations (CONTRACT §6 #14–25, §7.3)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from spooled_backend.auth.admin import admin_key_matches
from spooled_backend.core.body import parse_body
from spooled_backend.core.deps import Auth, Conn, State
from spooled_backend.core.errors import AccessDenied
from spooled_backend.core.responses import JSONBody, json_response
from spooled_backend.organizations import queries as q
from spooled_backend.organizations import service
from spooled_backend.organizations.schemas import CreateOrganization

router = APIRouter(prefix="/api/v1", tags=["organizations"])


@router.post("/organizations", status_code=201)
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


@router.get("/organizations")
async def list_organizations(conn: Conn, auth: Auth) -> JSONBody:
    """`[{id, name, slug, plan_tier, created_at}]`: only the caller's organization."""
    org = await conn.fetchrow(q.GET_ORG, auth.organization_id)
    summary = {k: org[k] for k in ("id", "name", "slug", "plan_tier", "created_at")}
    return json_response([summary])
