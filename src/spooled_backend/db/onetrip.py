"""Single-statement tenant transactions in one round trip (issue 8, third profile).

A transaction bound to a tenant costs three round trips: `BEGIN` with the binding and key
checks (core/tenancy.py `begin_bound`), the statement, `COMMIT`. For a lone create, claim or
complete, those round trips were most of the request's time in the server (wall-clock
tracing of a lone create: 1.7 ms in the transaction, of which the statement was 0.3 ms in
PostgreSQL), and each is a context switch on both sides.

The hot statements that make a whole transaction by themselves (`HOT` below) are therefore
wrapped, once per database, in a PL/pgSQL function generated from the statement text: the
function binds the tenant role and organization, checks the cached API keys
(`spooled_check_key`), switches to generic plans, and runs the statement (`RETURN QUERY`).
Called outside a transaction it is one implicit transaction: binding, checks and statement
commit or fail together, in one round trip. Its parameters are the statement's own, in
order, followed by (organization id, tenant role or NULL, key ids, fingerprints), so the
statement's `$n` keep their meaning inside the function.

PL/pgSQL plans each statement when it first runs, after the role switch, so row-level
security applies as in a `BEGIN`…`COMMIT` transaction. The function name carries a hash of
its definition: replicas of different versions use different functions, and a changed
statement gets a new one. When the functions cannot be created (a login role without CREATE
on the schema), or one disappears, the statement runs in a three-round-trip transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog

from spooled_backend.core import tenancy

if TYPE_CHECKING:
    from spooled_backend.core.context import AuthContext
    from spooled_backend.core.state import AppState

log = structlog.get_logger(__name__)

PREFIX = "spooled_1rt_"
TYPES = "SELECT format_type(t.o, NULL) FROM unnest($1::oid[]) WITH ORDINALITY AS t(o, n) ORDER BY t.n"
INSTALL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('spooled:onetrip'))"
EXISTS = "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = $1)"
GENERIC = f"    PERFORM {tenancy.GENERIC_PLANS};\n"


def function_ddl(name: str, sql: str, params: Sequence[str], generic_plans: bool) -> str:
    """`CREATE FUNCTION name(<params of sql>, org text, role text, key_ids text[],
    fingerprints text[]) RETURNS SETOF record` running `sql` after the tenant binding."""
    n = len(params)
    args = ", ".join([*params, "text", "text", "text[]", "text[]"])
    org, role, keys, prints = (f"${n + i}" for i in range(1, 5))
    return (
        f"CREATE FUNCTION {name}({args}) RETURNS SETOF record LANGUAGE plpgsql AS $spooled$\n"
        "BEGIN\n"
        f"    IF {role} IS NOT NULL THEN PERFORM set_config('role', {role}, true); END IF;\n"
        f"    PERFORM set_config('app.current_org_id', {org}, true);\n"
        f"    PERFORM spooled_check_key(c.k, c.f) FROM unnest({keys}, {prints}) AS c(k, f);\n"
        + (GENERIC if generic_plans else "")
        + f"    RETURN QUERY {sql.strip()};\n"
        "END\n$spooled$"
    )


class OneTrip:
    """The installed wrappers of one database: statement text → the SQL calling its function."""

    def __init__(self) -> None:
        self.calls: dict[str, str] = {}
        self.generic: dict[str, bool] = {}

    async def install(self, pool: asyncpg.Pool, statements: Mapping[str, bool]) -> None:
        """Create the missing functions for `statements` (text → generic plans?), under an
        advisory lock (replicas start together). Logs a warning and keeps the
        three-round-trip path when they cannot be created."""
        self.generic.update(statements)
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(INSTALL_LOCK)
                for sql, generic in statements.items():
                    self.calls[sql] = await _install_one(conn, sql, generic)
        except (asyncpg.PostgresError, ValueError) as exc:
            self.calls.clear()
            log.warning("single-round-trip statements unavailable; the hot statements run in "
                        "BEGIN/COMMIT transactions", error=f"{type(exc).__name__}: {exc}")

    async def fetch(self, conn: asyncpg.Connection, bind: tuple[str, str | None],
                    checks: Sequence[tenancy.KeyCheck], sql: str, *args: Any) -> list[asyncpg.Record]:
        """`sql` with `args` as a whole transaction bound to `bind` (organization id, tenant
        role or None) after the checks of the cached keys `checks` ((key id, fingerprint); a
        None fingerprint is a JWT: not checked). One round trip when installed, else
        BEGIN…COMMIT. Raises what the statement raises, or SQLSTATE SPK01
        (`tenancy.KEY_CHANGED`) when a cached key changed; nothing is written then."""
        call = self.calls.get(sql)
        if call is not None:
            keys = [(k, f) for k, f in checks if f is not None]
            try:
                return await conn.fetch(call, *args, bind[0], bind[1],
                                        [k for k, _ in keys], [f for _, f in keys])
            except asyncpg.UndefinedFunctionError:
                self.calls.pop(sql, None)  # dropped behind our back: the slow path from now on
                log.warning("single-round-trip function missing; using BEGIN/COMMIT",
                            function=call.split("(", 1)[0].rsplit(" ", 1)[-1])
        async with bound_transaction(conn, bind, checks, self.generic.get(sql, False)) as tx:
            return await tx.fetch(sql, *args)  # type: ignore[no-any-return]


@dataclass(slots=True)
class Bound:
    """A pooled connection with the tenant binding and key checks of one request or batch."""

    conn: asyncpg.Connection
    one_trip: OneTrip
    bind: tuple[str, str | None]
    checks: Sequence[tenancy.KeyCheck]

    async def fetch_alone(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """`sql` as the whole transaction (OneTrip.fetch)."""
        return await self.one_trip.fetch(self.conn, self.bind, self.checks, sql, *args)

    def transaction(self, generic_plans: bool = True) -> Any:
        """A BEGIN…COMMIT transaction for several statements (async context manager)."""
        return bound_transaction(self.conn, self.bind, self.checks, generic_plans)


def bound(state: AppState, conn: asyncpg.Connection, auth: AuthContext,
          checks: Sequence[tenancy.KeyCheck] | None = None) -> Bound:
    """`conn` bound to `auth`'s organization (and the tenant role), checking `checks` or, by
    default, `auth`'s own cached key."""
    return Bound(conn, state.one_trip, (auth.organization_id, state.tenant_role),
                 [(auth.api_key_id, auth.fingerprint)] if checks is None else checks)


@asynccontextmanager
async def bound_transaction(conn: asyncpg.Connection, bind: tuple[str, str | None],
                            checks: Sequence[tenancy.KeyCheck],
                            generic_plans: bool) -> AsyncIterator[asyncpg.Connection]:
    """BEGIN with the binding and key checks in one round trip, COMMIT on exit."""
    from spooled_backend.core.deps import transaction_on

    async with transaction_on(conn, None, None, bind, list(checks) or None,  # type: ignore[arg-type]
                              generic_plans=generic_plans) as tx:
        yield tx


async def _install_one(conn: asyncpg.Connection, sql: str, generic: bool) -> str:
    statement = await conn.prepare(sql)
    attributes = statement.get_attributes()
    params = [r[0] for r in await conn.fetch(TYPES, [t.oid for t in statement.get_parameters()])]
    types = [r[0] for r in await conn.fetch(TYPES, [a.type.oid for a in attributes])]
    if len({a.name for a in attributes}) != len(attributes):
        raise ValueError("a single-round-trip statement needs distinct column names")
    name = PREFIX + hashlib.sha256(function_ddl("", sql, params, generic).encode()).hexdigest()[:24]
    if not await conn.fetchval(EXISTS, name):
        await conn.execute(function_ddl(name, sql, params, generic))
        await conn.execute(f"REVOKE ALL ON FUNCTION {name} FROM PUBLIC")
    placeholders = ", ".join(f"${i}" for i in range(1, len(params) + 5))
    columns = ", ".join(f'"{a.name}" {t}' for a, t in zip(attributes, types, strict=True))
    return f"SELECT * FROM {name}({placeholders}) AS r({columns})"
