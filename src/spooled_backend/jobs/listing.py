"""Job lists with filters and `limit + 1` paging (CONTRACT §5, §7.6, §7.7)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import NotFound
from spooled_backend.core.pagination import Page, split_page
from spooled_backend.jobs import queries as q


@dataclass(frozen=True)
class JobFilter:
    queue_name: str | None = None
    statuses: list[str] | None = None
    tag: str | None = None
    search: str | None = None
    job_type: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    order_by: str = "created_at"
    order_dir: str = "DESC"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(auth: AuthContext, f: JobFilter) -> tuple[str, list[Any]]:
    """WHERE clause over bound parameters only; column names come from the whitelist."""
    params: list[Any] = [auth.organization_id]
    clauses = ["organization_id = $1"]

    def bind(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    if auth.scope_filter is not None:
        clauses.append(f"queue_name = ANY({bind(auth.scope_filter)}::text[])")
    if f.queue_name is not None:
        clauses.append(f"queue_name = {bind(f.queue_name)}")
    if f.statuses:
        clauses.append(f"status = ANY({bind(f.statuses)}::text[])")
    if f.tag is not None:
        clauses.append(f"tags ? {bind(f.tag)}")
    if f.job_type is not None:
        clauses.append(f"payload ->> 'job_type' = {bind(f.job_type)}")
    if f.search:
        # `q`: id prefix, or substring of queue_name / payload.job_type, case-insensitive;
        # LIKE wildcards in the search text are escaped (backslash is the default escape).
        escaped = _like_escape(f.search.lower())
        prefix = bind(escaped + "%")
        like = bind("%" + escaped + "%")
        clauses.append(
            f"(id LIKE {prefix} OR lower(queue_name) LIKE {like}"
            f" OR lower(payload ->> 'job_type') LIKE {like})"
        )
    if f.created_after is not None:
        clauses.append(f"created_at >= {bind(f.created_after)}")
    if f.created_before is not None:
        clauses.append(f"created_at < {bind(f.created_before)}")
    return " AND ".join(clauses), params


async def list_jobs(
    conn: asyncpg.Connection, auth: AuthContext, f: JobFilter, page: Page
) -> tuple[list[dict[str, Any]], bool]:
    """JobSummary rows (with both `attempt` and `retry_count`, §19 #7) and has_more."""
    where, params = _where(auth, f)
    n = len(params)
    sql = (
        f"SELECT {q.SUMMARY_COLUMNS} FROM jobs WHERE {where} "
        f"ORDER BY {f.order_by} {f.order_dir} NULLS LAST, id {f.order_dir} "
        f"LIMIT ${n + 1} OFFSET ${n + 2}"
    )
    rows = await conn.fetch(sql, *params, page.fetch, page.offset)
    shown, has_more = split_page(rows, page)
    out = []
    for row in shown:
        item = dict(row)
        item["attempt"] = item["retry_count"]
        out.append(item)
    return out, has_more


async def job_history(
    conn: asyncpg.Connection, auth: AuthContext, job_id: str, page: Page, direction: str
) -> tuple[list[dict[str, Any]], bool]:
    """History events of one job, oldest first by default; 404 for other orgs/out of scope."""
    owner = await conn.fetchrow(q.PARENT_JOB, job_id, auth.organization_id)
    if owner is None or not auth.can_access_queue(owner["queue_name"]):
        raise NotFound("Job not found")
    sql = q.HISTORY.format(direction="DESC" if direction == "desc" else "ASC")
    rows = await conn.fetch(sql, job_id, auth.organization_id, page.fetch, page.offset)
    shown, has_more = split_page(rows, page)
    return [dict(r) for r in shown], has_more
