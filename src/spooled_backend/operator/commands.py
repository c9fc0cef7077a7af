"""Operator commands over the service functions of the API (the REST routes' own rules).

`orgs create|list`, `keys create|revoke`, `queues list|pause|resume`, `jobs stats`,
`dlq list|retry|purge`, `doctor`. `--org` takes an organization id or slug. `--json` prints
machine-readable output. `dlq retry --all` / `dlq purge` work in batches with a progress bar.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import pydantic
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from spooled_backend.admin import service as admin
from spooled_backend.admin.schemas import AdminCreateOrganization
from spooled_backend.api_keys import service as api_keys
from spooled_backend.api_keys.schemas import AdminCreateApiKey
from spooled_backend.config import Settings
from spooled_backend.core.errors import SpooledError
from spooled_backend.core.events import NoEvents
from spooled_backend.core.pagination import Page
from spooled_backend.jobs import batch, listing
from spooled_backend.jobs import service as jobs
from spooled_backend.operator import doctor as doctor_checks
from spooled_backend.operator.database import operator_auth, run, session
from spooled_backend.operator.output import console, emit, emit_json
from spooled_backend.queues import service as queues

F = TypeVar("F", bound=Callable[..., Any])
Json = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output")]
Org = Annotated[str, typer.Option("--org", "-o", help="Organization id or slug")]
DLQ_BATCH = 100

orgs_app = typer.Typer(help="Organizations (like the admin API).", no_args_is_help=True)
keys_app = typer.Typer(help="API keys of an organization.", no_args_is_help=True)
queues_app = typer.Typer(help="Queues of an organization.", no_args_is_help=True)
jobs_app = typer.Typer(help="Jobs of an organization.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter queue of an organization.", no_args_is_help=True)


def settings() -> Settings:
    from spooled_backend.observability.logging import configure_logging

    try:
        s = Settings()
    except ValueError as exc:
        typer.echo(f"Configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(s.json_logs, "warning")
    return s


def errors(fn: F) -> F:
    """Service errors become `Error: <message>` and exit code 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpooledError as exc:
            typer.echo(f"Error: {exc.message}", err=True)
            raise typer.Exit(1) from None
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            typer.echo(f"Error: {problems}", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def doctor(as_json: Json = False) -> None:
    """Check what `serve` needs: one line each, ✓ or ✗ (exit 1 when any fails)."""
    checks = doctor_checks.run_doctor(settings())
    if as_json:
        emit_json(doctor_checks.as_dicts(checks))
    else:
        for c in checks:
            mark = "[green]✓[/green]" if c.ok else "[red]✗[/red]"
            console.print(f"{mark} {c.name}: {c.detail}", highlight=False)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


# --- organizations -------------------------------------------------------------------------

@orgs_app.command("create")
@errors
def orgs_create(
    name: Annotated[str, typer.Argument(help="Display name")],
    slug: Annotated[str, typer.Option(help="URL slug (lowercase letters, digits, dashes)")],
    plan: Annotated[str, typer.Option(help="free, starter, pro, enterprise")] = "free",
    billing_email: Annotated[str | None, typer.Option(help="Billing email")] = None,
    as_json: Json = False,
) -> None:
    """Create an organization and its first API key (shown once)."""
    s = settings()
    body = AdminCreateOrganization(name=name, slug=slug, plan_tier=plan, billing_email=billing_email)
    created = run(s, lambda c: admin.create_organization(c, s, body))
    if as_json:
        emit_json(created)
        return
    org, key = created["organization"], created["api_key"]
    emit({k: org.get(k) for k in ("id", "name", "slug", "plan_tier")}, False, title="Organization")
    console.print(f"API key (shown once): [bold]{key['key']}[/bold]", highlight=False)


@orgs_app.command("list")
@errors
def orgs_list(
    plan: Annotated[str | None, typer.Option(help="Only this plan tier")] = None,
    search: Annotated[str | None, typer.Option(help="Name, slug or billing email contains")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Json = False,
) -> None:
    """List organizations with their usage."""
    s = settings()
    page = Page(limit=limit, offset=offset)
    out = run(s, lambda c: admin.list_organizations(
        c, s, plan_tier=plan, search=search, sort_by="created_at", sort_order="desc", page=page))
    rows = out["organizations"]
    if as_json:
        emit_json(out)
        return
    for row in rows:
        row.update({f"usage.{k}": v for k, v in row["usage"].items()})
    emit(rows, False, ("id", "slug", "name", "plan_tier", "usage.jobs_today", "usage.queues",
                       "usage.api_keys", "created_at"), title=f"{out['total']} organizations")


# --- API keys ------------------------------------------------------------------------------

@keys_app.command("create")
@errors
def keys_create(
    org: Org,
    name: Annotated[str, typer.Option(help="Key name")] = "cli",
    queues_: Annotated[str | None, typer.Option("--queues", help="Comma list; default all")] = None,
    expires_at: Annotated[datetime | None, typer.Option(help="Expiry (UTC)")] = None,
    as_json: Json = False,
) -> None:
    """Create an API key (shown once)."""
    s = settings()
    fields: dict[str, Any] = {"name": name}
    if queues_:
        fields["queues"] = [q.strip() for q in queues_.split(",") if q.strip()]
    if expires_at is not None:
        fields["expires_at"] = expires_at if expires_at.tzinfo else expires_at.astimezone()
    body = AdminCreateApiKey(**fields)

    async def work(c: Any) -> dict[str, Any]:
        auth = await operator_auth(c, org)
        return await admin.create_api_key(c, s, auth.organization_id, body)

    created = run(s, work)
    if as_json:
        emit_json(created)
        return
    emit({k: created.get(k) for k in ("id", "name", "queues", "expires_at")}, False, title="API key")
    console.print(f"API key (shown once): [bold]{created['key']}[/bold]", highlight=False)


@keys_app.command("revoke")
@errors
def keys_revoke(org: Org, key_id: Annotated[str, typer.Argument(help="API key id")],
                as_json: Json = False) -> None:
    """Revoke an API key (refused from the next request on)."""
    s = settings()

    async def work(c: Any) -> dict[str, Any]:
        auth = await operator_auth(c, org)
        await api_keys.revoke_key(c, auth.organization_id, key_id)
        return {"id": key_id, "revoked": True}

    emit(run(s, work), as_json)


# --- queues --------------------------------------------------------------------------------

@queues_app.command("list")
@errors
def queues_list(org: Org, as_json: Json = False) -> None:
    """Queues (configured and implicit) with their settings."""
    s = settings()

    async def work(c: Any) -> list[dict[str, Any]]:
        return await queues.list_queues(c, s, await operator_auth(c, org))

    emit(run(s, work), as_json, ("queue_name", "enabled", "max_retries", "default_timeout",
                                 "rate_limit"))


@queues_app.command("pause")
@errors
def queues_pause(org: Org, name: Annotated[str, typer.Argument(help="Queue name")],
                 reason: Annotated[str | None, typer.Option(help="Why")] = None,
                 as_json: Json = False) -> None:
    """Pause a queue: claims hand out nothing, enqueueing still works."""
    s = settings()

    async def work(c: Any) -> dict[str, Any]:
        return await queues.pause_queue(c, s, await operator_auth(c, org), name, reason)

    emit(run(s, work), as_json)


@queues_app.command("resume")
@errors
def queues_resume(org: Org, name: Annotated[str, typer.Argument(help="Queue name")],
                  as_json: Json = False) -> None:
    """Resume a paused queue."""
    s = settings()

    async def work(c: Any) -> dict[str, Any]:
        return await queues.resume_queue(c, await operator_auth(c, org), name)

    emit(run(s, work), as_json)


# --- jobs ----------------------------------------------------------------------------------

@jobs_app.command("stats")
@errors
def jobs_stats(org: Org, queue: Annotated[str | None, typer.Option(help="One queue")] = None,
               as_json: Json = False) -> None:
    """Job counts per status (GET /jobs/stats)."""
    s = settings()

    async def work(c: Any) -> dict[str, int]:
        return await jobs.job_stats(c, await operator_auth(c, org), queue)

    emit(run(s, work), as_json)


# --- dead-letter queue ---------------------------------------------------------------------

@dlq_app.command("list")
@errors
def dlq_list(org: Org, queue: Annotated[str | None, typer.Option(help="One queue")] = None,
             limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
             as_json: Json = False) -> None:
    """Dead-letter jobs, newest first."""
    s = settings()

    async def work(c: Any) -> list[dict[str, Any]]:
        f = listing.JobFilter(queue_name=queue, statuses=["deadletter"])
        rows, _ = await listing.list_jobs(c, await operator_auth(c, org), f, Page(limit, 0))
        return rows

    emit(run(s, work), as_json, ("id", "queue_name", "retry_count", "last_error", "created_at"))


def _batched(title: str, total: int, as_json: bool,
             step: Callable[[], int]) -> int:
    """Call `step()` (one batch, returns how many it did) until it does nothing or `total` is
    reached (jobs failing back into the DLQ meanwhile cannot keep it going); rich progress."""
    done = 0
    if as_json or total == 0:
        while done < total and (n := step()) > 0:
            done += n
        return done
    columns = (TextColumn(title), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(title, total=total)
        while done < total and (n := step()) > 0:
            done += n
            progress.update(task, advance=n)
    return done


def _dlq_count(s: Settings, org: str, queue: str | None) -> int:
    async def work(c: Any) -> int:
        stats = await jobs.job_stats(c, await operator_auth(c, org), queue)
        return stats.get("deadletter", 0)

    return run(s, work)


@dlq_app.command("retry")
@errors
def dlq_retry(
    org: Org,
    queue: Annotated[str | None, typer.Option(help="One queue")] = None,
    job_id: Annotated[list[str] | None, typer.Option("--job-id", help="Only these jobs")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every dead-letter job, in batches")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Batch size")] = DLQ_BATCH,
    as_json: Json = False,
) -> None:
    """Move dead-letter jobs back to pending (retry_count 0), honouring the plan's active-jobs cap."""
    s = settings()
    ids: list[str] = []

    def step() -> int:
        async def work(c: Any) -> int:
            out = await batch.retry_dead_letters(c, s, await operator_auth(c, org), job_id or None,
                                                 queue, limit, NoEvents())
            ids.extend(out["retried_jobs"])
            return int(out["retried_count"])

        return run(s, work)

    with session(s):
        if all_ and not job_id:
            count = _batched("retrying", _dlq_count(s, org, queue), as_json, step)
        else:
            count = step()
    emit({"retried_count": count, "retried_jobs": ids}, as_json)


@dlq_app.command("purge")
@errors
def dlq_purge(
    org: Org,
    queue: Annotated[str | None, typer.Option(help="One queue")] = None,
    older_than: Annotated[datetime | None, typer.Option(help="Only jobs created before (UTC)")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm the deletion")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=10000)] = 1000,
    as_json: Json = False,
) -> None:
    """Delete dead-letter jobs for good (needs --yes), in batches with a progress bar."""
    s = settings()
    if not yes:
        typer.echo("Error: purge deletes jobs for good; pass --yes to confirm", err=True)
        raise typer.Exit(1)
    cutoff = older_than if older_than is None or older_than.tzinfo else older_than.astimezone()

    def step() -> int:
        async def work(c: Any) -> int:
            out = await batch.purge_dead_letters(c, await operator_auth(c, org), True, queue,
                                                 cutoff, batch_size)
            return int(out["purged_count"])

        return run(s, work)

    with session(s):
        count = _batched("purging", _dlq_count(s, org, queue), as_json, step)
    emit({"purged_count": count}, as_json)


def register(app: typer.Typer) -> None:
    """Add the operator commands to the `spooled-backend` CLI."""
    app.command("doctor")(doctor)
    app.add_typer(orgs_app, name="orgs")
    app.add_typer(keys_app, name="keys")
    app.add_typer(queues_app, name="queues")
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(dlq_app, name="dlq")
