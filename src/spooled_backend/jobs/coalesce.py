"""Group commit of the per-job calls: single creates, completes and fails (issue 8).

`POST /jobs`, `/jobs/{id}/complete` and `/fail` are what SDK producers and workers send once
per job. Run one transaction each, PostgreSQL spends most of the call on the transaction
rather than on the row: BEGIN with the tenant binding and key check, COMMIT and its WAL flush
are three round trips, each a context switch on both sides. The drain measured ~700 µs of
PostgreSQL CPU per job completed one by one against ~140 µs through the batch ack. So
concurrent calls of one kind, organization and key scope share one transaction:

- completes and fails: one `ACK_JOBS` statement for the whole batch (jobs/ack.py `apply`);
- creates: one `INSERT_JOBS_MANY` statement (`service.create_jobs`); jobs with a parent, and
  organizations with quota caps, go through `service.create_job` one by one in the same
  transaction (quotas, idempotency, parent rules exactly as alone; each item's 4xx is
  raised before it writes anything).

Each request still gets exactly its own single-route answer (or error).

Batches form by themselves, with no timer: the first call of an idle organization goes to
the database at once; calls arriving while its batch is in the database wait for it and go
together as the next one (`MAX_IN_FLIGHT` batches per organization and kind in the database,
at most `MAX_ITEMS` items each). One client alone therefore sees no added latency.

Rules kept per item:
- an item whose `conflict` key (the job id of an ack, the idempotency key of a create) is
  already in the forming batch goes to the next one, so two racing acks of one job, or two
  creates with one key, answer as if sequential (409 for the second ack; the existing id with
  `created: false` for the second create);
- every cached API key of the batch is checked in its first round trip (`spooled_check_key`);
  when one changed (SQLSTATE SPK01), or anything else fails the batch's transaction, its items
  are applied again one per transaction, so only the item at fault sees the error;
- an item whose request was cancelled (timeout, shutdown) before its batch started is dropped;
  once the batch started, the item is applied like a single statement already sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog

from spooled_backend.core.context import AuthContext
from spooled_backend.core.tenancy import KEY_CHANGED
from spooled_backend.db import onetrip

if TYPE_CHECKING:
    from spooled_backend.core.state import AppState

log = structlog.get_logger(__name__)

MAX_IN_FLIGHT = 1  # batches per (organization, scope) and kind in the database at once
MAX_ITEMS = 100
T = TypeVar("T")
# Applies a batch as one transaction on the bound connection (one round trip when it is one
# statement, db/onetrip.py): per item, in order, its result or the SpooledError its single
# route would raise (nothing written for that item).
ApplyBatch = Callable[[onetrip.Bound, AuthContext, list[Any]], Awaitable[list[Any]]]
Key = tuple[str, tuple[str, ...] | None]  # (organization id, the key's queue scope)


@dataclass(slots=True)
class _Pending:
    item: Any
    auth: AuthContext
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Batch:
    pending: list[_Pending] = field(default_factory=list)
    conflicts: set[str] = field(default_factory=set)


class GroupCommit(Generic[T]):
    """Concurrent calls of one kind, applied together per organization (module docstring)."""

    def __init__(self, state: AppState, apply: ApplyBatch, max_items: int = MAX_ITEMS) -> None:
        self.state = state
        self.apply = apply
        self.max_items = max_items
        self._forming: dict[Key, _Batch] = {}
        self._slots: dict[Key, asyncio.Semaphore] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, auth: AuthContext, item: T, conflict: str | None = None) -> Any:
        """Apply `item` in the organization's next batch; its result, or raises its error
        (a SpooledError as the single route would, a database error as a single
        transaction would)."""
        key: Key = (auth.organization_id, None if auth.unrestricted else auth.queues)
        batch = self._forming.get(key)
        if (batch is None or len(batch.pending) >= self.max_items
                or (conflict is not None and conflict in batch.conflicts)):
            batch = self._forming[key] = _Batch()
            task = asyncio.create_task(self._flush(key, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        batch.pending.append(_Pending(item, auth, future))
        if conflict is not None:
            batch.conflicts.add(conflict)
        return await future

    async def _flush(self, key: Key, batch: _Batch) -> None:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = asyncio.Semaphore(MAX_IN_FLIGHT)
        async with slot:
            if self._forming.get(key) is batch:
                del self._forming[key]  # sealed: later calls form the next batch
            live = [p for p in batch.pending if not p.future.done()]
            if live:
                await self._apply(live)
        if len(self._slots) > 10_000 and not slot.locked() and key not in self._forming:
            self._slots.pop(key, None)  # bounded; an idle organization's slot is recreated

    async def _apply(self, batch: list[_Pending]) -> None:
        try:
            outcomes = await self._transaction(batch)
        except Exception as exc:  # noqa: BLE001 - answered per item below
            if len(batch) == 1:
                _settle(batch[0].future, exc)
                return
            reason = ("a cached API key of the batch changed (revoked, expired, scope or plan)"
                      if getattr(exc, "sqlstate", None) == KEY_CHANGED else type(exc).__name__)
            log.info("group commit not applied; applying its items one by one",
                     items=len(batch), reason=reason)
            for one in batch:
                await self._apply([one])
            return
        for pending, outcome in zip(batch, outcomes, strict=True):
            _settle(pending.future, outcome)

    async def _transaction(self, batch: list[_Pending]) -> list[Any]:
        state = self.state
        auth = batch[0].auth  # same organization and scope for every item of the batch
        checks = list({(p.auth.api_key_id, p.auth.fingerprint) for p in batch})
        async with state.pool.acquire() as conn:
            db = onetrip.bound(state, conn, auth, checks)
            return await self.apply(db, auth, [p.item for p in batch])


def _settle(future: asyncio.Future[Any], outcome: object) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def for_acks(state: AppState) -> GroupCommit[Any]:
    """Single completes and fails (`ack.AckItem`) → one ACK_JOBS statement per batch; submit
    with `conflict=job_id`. Result: the ACK row (`new_status`, prior `retry_count`, …)."""
    from spooled_backend.jobs import ack

    async def apply(db: onetrip.Bound, auth: AuthContext, items: list[Any]) -> list[Any]:
        return await ack.apply_alone(db, auth, items, state.events)

    return GroupCommit(state, apply, ack.MAX_ITEMS)


def for_creates(state: AppState) -> GroupCommit[Any]:
    """Single creates (`service.NewJob`) → `service.create_jobs` (one INSERT for the batch
    when no quota applies); submit with `conflict=idempotency_key`. Result: `(job_id,
    created)`."""
    from spooled_backend.jobs import service

    async def apply(db: onetrip.Bound, auth: AuthContext, jobs: list[Any]) -> list[Any]:
        return await service.create_jobs(db, state.settings, auth, jobs, state.events)

    return GroupCommit(state, apply)
