"""Slug helpers: availability check and generation from a name (CONTRACT §7.3)."""

from __future__ import annotations

import re
import secrets
from typing import Any

import asyncpg

from spooled_backend.organizations import queries as q
from spooled_backend.organizations.service import RESERVED_SLUGS, slug_problem

SLUG_MAX = 50
SUFFIX_LEN = 7  # "-" + 6 hex


def _with_suffix(base: str) -> str:
    base = base[: SLUG_MAX - SUFFIX_LEN].rstrip("-")
    return f"{base}-{secrets.token_hex(3)}"


async def _free_variant(conn: asyncpg.Connection, base: str) -> str:
    """`<base>-<6 hex>` that is valid and not taken (a few random tries; collisions are rare)."""
    candidate = _with_suffix(base)
    for _ in range(10):
        if slug_problem(candidate) is None and not await conn.fetchval(q.SLUG_TAKEN, candidate):
            return candidate
        candidate = _with_suffix(base)
    return candidate


async def check_slug(conn: asyncpg.Connection, slug: str) -> dict[str, Any]:
    """`{available, valid, error?, suggestion?}`.

    Invalid format → `valid:false` with the reason; reserved → `available:false, valid:true,
    error:"This slug is reserved", suggestion`; taken (also by a deleted org) →
    `available:false, valid:true, suggestion:"<slug>-<6 hex>"`; otherwise available.
    """
    if slug in RESERVED_SLUGS:
        return {
            "available": False,
            "valid": True,
            "error": "This slug is reserved",
            "suggestion": await _free_variant(conn, slug),
        }
    problem = slug_problem(slug)
    if problem is not None:
        return {"available": False, "valid": False, "error": problem}
    if await conn.fetchval(q.SLUG_TAKEN, slug):
        return {
            "available": False,
            "valid": True,
            "error": "This slug is already taken",
            "suggestion": await _free_variant(conn, slug),
        }
    return {"available": True, "valid": True}


def slugify(name: str) -> str:
    """Lower-case, runs of non `[a-z0-9]` → `-`, trimmed; `org-` prefix when it starts with a
    digit; cut to 50 (the creation limit, rather than B's 80, so the result is always usable);
    padded to the 3-character minimum."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not slug:
        slug = "org"
    if slug[0].isdigit():
        slug = "org-" + slug
    slug = slug[:SLUG_MAX].rstrip("-")
    if len(slug) < 3:
        slug = f"{slug}-org"
    return slug


async def generate_slug(conn: asyncpg.Connection, name: str) -> str:
    """A valid, currently free slug for `name` (suffix `-<6 hex>` when taken or reserved)."""
    slug = slugify(name)
    if slug_problem(slug) is None and not await conn.fetchval(q.SLUG_TAKEN, slug):
        return slug
    return await _free_variant(conn, slug)
