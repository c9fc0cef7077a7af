"""Job dependencies: release, re-gate or cancel dependents when a job's status changes
(CONTRACT §8.2, §8.9, §21 R11), and the `GET`/`POST /jobs/{id}/dependencies` rules.

The rule lives once, in SQL: `spooled_settle_jobs(changed, gated)` (migration 0005). Every
transition that ends a job (complete, final fail, dead-letter by lease recovery or an offline
worker, cancel, expiry) or brings one back (manual, DLQ and workflow retry) feeds the ids it
changed to that function **in the same statement**, through `settled_cte`:

    WITH ..., done AS (UPDATE jobs ... RETURNING j.id, j.has_dependents, j.workflow_id, ...),
         {settled_cte("done")}
    SELECT ..., {SETTLED_COLUMN} FROM ...

and hands the `settled` column (a JSON array, or NULL) to `emit`. The CTE only calls the
function when one of the changed jobs has dependents (`jobs.has_dependents`) or belongs to a
workflow, so the common job pays one boolean per row. Children become claimable in the
parent's completing transaction; workflow progress and `workflow.completed`/`workflow.failed`
follow from the same statement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from spooled_backend.core.context import AuthContext
from spooled_backend.core.errors import Conflict, NotFound
from spooled_backend.core.events import Events

SETTLE = "SELECT * FROM spooled_settle_jobs($1::text[], $2::text[])"

NEEDS_SETTLING = "(has_dependents OR workflow_id IS NOT NULL)"


def settled_cte(source: str, where: str = "true") -> str:
    """A CTE named `settled` settling the rows of CTE `source` (columns `id`, `has_dependents`,
    `workflow_id`) that match `where` (SQL over `source`'s columns, e.g. "status =
    'deadletter'"). The function is not called at all when no such row needs settling."""
    return f"""settled AS (
    SELECT s.* FROM (SELECT ARRAY(SELECT id FROM {source}
                                  WHERE ({where}) AND {NEEDS_SETTLING}) AS ids) a,
         LATERAL spooled_settle_jobs(a.ids) s
    WHERE cardinality(a.ids) > 0
)"""


# The column to add to the statement's final SELECT: the effects as a JSON array (or NULL).
SETTLED_COLUMN = "(SELECT jsonb_agg(to_jsonb(s)) FROM settled s) AS settled"


def emit(events: Events, effects: Iterable[Mapping[str, Any]] | None) -> None:
    """Tell the outside world what `spooled_settle_jobs` did (after commit, via `events`)."""
    for e in effects or ():
        kind = e["kind"]
        if kind == "cancelled":
            events.job_status(e["organization_id"], e["id"], e["queue_name"], e["old_status"], "cancelled")
        elif kind == "released":
            events.job_released(e["organization_id"], e["id"], e["queue_name"])
        elif kind == "workflow" and e["new_status"] != e["old_status"]:
            args = (e["organization_id"], e["id"], e["detail"] or "", e["total_jobs"] or 0,
                    e["completed_jobs"] or 0, e["failed_jobs"] or 0)
            if e["new_status"] == "completed":
                events.workflow_completed(*args)
            elif e["new_status"] == "failed":
                events.workflow_failed(*args)


async def settle(
    conn: asyncpg.Connection, events: Events, changed: Sequence[str], gated: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """Run the settle function as its own statement (for paths that cannot embed the CTE);
    must run in the transaction that changed the jobs. Returns the effects, already emitted."""
    if not changed and not gated:
        return []
    rows = [dict(r) for r in await conn.fetch(SETTLE, list(changed), list(gated))]
    emit(events, rows)
    return rows


# ---- GET /jobs/{id}/dependencies -------------------------------------------------------

# $1 job, $2 org, $3 queue scope (NULL = all). One round trip: the dashboard asks for every job.
GET_DEPENDENCIES = """
SELECT j.id, j.queue_name, j.dependency_mode, j.dependencies_met,
  COALESCE((SELECT jsonb_agg(jsonb_build_object('job_id', p.id, 'queue_name', p.queue_name,
                                                'status', p.status,
                                                'completed', p.status = 'completed',
                                                'dependency_type', d.dependency_type)
                             ORDER BY p.created_at, p.id)
            FROM job_dependencies d JOIN jobs p ON p.id = d.depends_on_job_id
            WHERE d.job_id = j.id
              AND ($3::text[] IS NULL OR p.queue_name = ANY($3))), '[]'::jsonb) AS dependencies,
  COALESCE((SELECT jsonb_agg(jsonb_build_object('job_id', c.id, 'queue_name', c.queue_name,
                                                'status', c.status,
                                                'completed', c.status = 'completed',
                                                'dependency_type', d.dependency_type)
                             ORDER BY c.created_at, c.id)
            FROM job_dependencies d JOIN jobs c ON c.id = d.job_id
            WHERE d.depends_on_job_id = j.id
              AND ($3::text[] IS NULL OR c.queue_name = ANY($3))), '[]'::jsonb) AS dependents
FROM jobs j
WHERE j.id = $1 AND (j.organization_id = $2) IS TRUE AND ($3::text[] IS NULL OR j.queue_name = ANY($3))
"""


async def get_dependencies(conn: asyncpg.Connection, auth: AuthContext, job_id: str) -> dict[str, Any]:
    """`{job_id, dependency_mode, dependencies_met, dependencies: [...], dependents: [...]}`;
    entries `{job_id, queue_name, status, completed, dependency_type}`. Jobs in queues outside
    a scoped key are left out. NotFound for other orgs and out-of-scope jobs."""
    row = await conn.fetchrow(GET_DEPENDENCIES, job_id, auth.organization_id, auth.scope_filter)
    if row is None:
        raise NotFound("Job not found")
    return {
        "job_id": row["id"],
        "dependency_mode": row["dependency_mode"],
        "dependencies_met": row["dependencies_met"],
        "dependencies": row["dependencies"],
        "dependents": row["dependents"],
    }


# ---- POST /jobs/{id}/dependencies --------------------------------------------------------

LOCK_ORG_GRAPH = "SELECT pg_advisory_xact_lock(hashtextextended('spooled:deps:' || $1, 0))"

FIND_JOB = """
SELECT id, status, queue_name FROM jobs
WHERE id = $1 AND (organization_id = $2) IS TRUE AND ($3::text[] IS NULL OR queue_name = ANY($3))
"""

# Flag and row-lock the new parents, in id order ($1 ids, $2 org, $3 scope). The lock makes a
# parent's completion either finish before (we then read its final status) or wait for us
# (its settle statement then sees our edge): the release cannot be missed.
MARK_PARENTS = """
WITH p AS (
    SELECT id FROM jobs
    WHERE id = ANY($1::text[]) AND organization_id = $2
      AND ($3::text[] IS NULL OR queue_name = ANY($3))
    ORDER BY id FOR UPDATE
)
UPDATE jobs j SET has_dependents = true FROM p WHERE j.id = p.id RETURNING j.id
"""

LOCK_TARGET = "SELECT status FROM jobs WHERE id = $1 AND (organization_id = $2) IS TRUE FOR UPDATE"

# The jobs among $2 that already (transitively) depend on $1: an edge $1 → one of them would
# close a cycle. UNION (not ALL) makes the walk terminate on any graph.
DESCENDANTS_AMONG = """
WITH RECURSIVE down(id) AS (
    SELECT d.job_id FROM job_dependencies d WHERE d.depends_on_job_id = $1
    UNION
    SELECT d.job_id FROM job_dependencies d JOIN down ON d.depends_on_job_id = down.id
)
SELECT id FROM down WHERE id = ANY($2::text[])
"""

INSERT_EDGES = """
INSERT INTO job_dependencies (organization_id, job_id, depends_on_job_id, dependency_type)
SELECT $1, $2, unnest($3::text[]), $4
ON CONFLICT (job_id, depends_on_job_id) DO NOTHING
RETURNING depends_on_job_id
"""

SET_MODE = """
UPDATE jobs SET dependency_mode = $3, updated_at = now() WHERE id = $1 AND (organization_id = $2) IS TRUE
RETURNING dependencies_met
"""

GET_MET = "SELECT dependencies_met, status FROM jobs WHERE id = $1"


async def add_dependencies(
    conn: asyncpg.Connection,
    auth: AuthContext,
    job_id: str,
    depends_on: Sequence[str],
    mode: str,
    events: Events,
) -> dict[str, Any]:
    """Make `job_id` wait for `depends_on` with `mode` (all/any) (CONTRACT §7.6 row 49).

    Self and cycle-closing edges are skipped silently; existing edges are not counted again.
    `dependencies_met` is recomputed at once (a dependency that already ended failed,
    dead-lettered or cancelled cancels the job, like a parent ending so later would).
    Raises NotFound when the job or any dependency is missing, another organization's or out
    of the key's scope (nothing is written), Conflict when the job is no longer pending or
    scheduled. Serialised per organization (advisory lock) so concurrent adds cannot build a
    cycle between them. Must run inside the request's transaction.
    """
    target = await conn.fetchrow(FIND_JOB, job_id, auth.organization_id, auth.scope_filter)
    if target is None:
        raise NotFound("Job not found")
    wanted = sorted({d for d in depends_on if d != job_id})
    await conn.execute(LOCK_ORG_GRAPH, auth.organization_id)
    if wanted:
        found = {r["id"] for r in await conn.fetch(MARK_PARENTS, wanted, auth.organization_id, auth.scope_filter)}
        missing = [d for d in wanted if d not in found]
        if missing:
            raise NotFound(f"Dependency job not found: {', '.join(missing[:5])}")
    status = await conn.fetchval(LOCK_TARGET, job_id, auth.organization_id)
    if status not in ("pending", "scheduled"):
        raise Conflict(f"Dependencies can only be added to pending or scheduled jobs; job is {status}")
    cyclic = {r["id"] for r in await conn.fetch(DESCENDANTS_AMONG, job_id, wanted)} if wanted else set()
    edges = [d for d in wanted if d not in cyclic]
    added = []
    if edges:
        added = await conn.fetch(INSERT_EDGES, auth.organization_id, job_id, edges, mode)
    await conn.fetchval(SET_MODE, job_id, auth.organization_id, mode)
    await settle(conn, events, [], [job_id])
    row = await conn.fetchrow(GET_MET, job_id)
    return {
        "job_id": job_id,
        "dependencies_added": len(added),
        "added_count": len(added),
        "dependencies_met": bool(row["dependencies_met"]) and row["status"] != "cancelled",
        "dependency_mode": mode,
        "status": row["status"],
    }


def needs_settling(row: Mapping[str, Any]) -> bool:
    return bool(row.get("has_dependents")) or row.get("workflow_id") is not None


# ---- backstop sweep (CONTRACT §15 "Dependency / workflow sweep") ---------------------------

# Waiting jobs whose dependencies would now let them run or doom them (their parents ended on
# a path that did not settle them, e.g. a row deleted by a queue delete), and jobs of
# workflows left pending/running with nothing active. $1 batch size. Normally empty: every
# terminal path settles in its own statement.
STRAGGLERS = """
SELECT COALESCE(ARRAY(
    SELECT c.id FROM jobs c
    LEFT JOIN job_dependencies d ON d.job_id = c.id
    LEFT JOIN jobs p ON p.id = d.depends_on_job_id
    WHERE NOT c.dependencies_met AND c.status IN ('pending', 'scheduled')
    GROUP BY c.id
    HAVING count(p.id) = 0
        OR (c.dependency_mode = 'any' AND (bool_or(p.status = 'completed')
            OR bool_and(p.status IN ('failed', 'deadletter', 'cancelled'))))
        OR (c.dependency_mode <> 'any' AND (bool_and(p.status = 'completed')
            OR bool_or(p.status IN ('failed', 'deadletter', 'cancelled'))))
    LIMIT $1
), '{}') AS gated,
COALESCE(ARRAY(
    SELECT (SELECT j.id FROM jobs j WHERE j.workflow_id = w.id LIMIT 1) FROM workflows w
    WHERE w.status IN ('pending', 'running')
      AND EXISTS (SELECT 1 FROM jobs j WHERE j.workflow_id = w.id)
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.workflow_id = w.id
                        AND j.status IN ('pending', 'scheduled', 'processing'))
    LIMIT $1
), '{}') AS workflow_jobs
"""


async def sweep_dependencies(conn: asyncpg.Connection, events: Events, batch: int = 500) -> int:
    """Settle what no transition settled (see STRAGGLERS); returns how many effects."""
    row = await conn.fetchrow(STRAGGLERS, batch)
    effects = await settle(conn, events, row["workflow_jobs"], row["gated"])
    return len(effects)
