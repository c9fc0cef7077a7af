"""The SQL floor: our own claim and complete statements run by pgbench, no HTTP, no Python.

The claim is `spooled_backend.jobs.queries.CLAIM_JOBS` as the server runs it (read at run time,
so the floor follows the hot-path work), with its final SELECT folded into arrays for `\\gset`;
"complete" is the batch acknowledgement statement (ACK_JOBS, what every complete runs), for the
whole claimed array in one statement (what a batch acknowledgement can reach). Both on the server's own `jobs`
table, under the benchmark organization, in the same PostgreSQL the server and the peers use.
pgbench comes with the embedded PostgreSQL binaries (same major version as the server).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.ours import percentiles


def pgbench_path() -> str | None:
    try:
        from spooled_backend.db.embedded import POSTGRES_BIN_PATH

        candidate = Path(POSTGRES_BIN_PATH) / "pgbench"
        if candidate.exists():
            return str(candidate)
    except Exception:
        pass
    for major in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(major)
    return shutil.which("pgbench")


def _lit(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def bind(sql: str, params: dict[int, object]) -> str:
    """Replace $N by literals (pgbench `:var` references inside strings stay as they are).

    The maps in this file follow the parameter comments of jobs/queries.py; a statement that
    grows a parameter fails here by name rather than running something else."""

    def one(m: re.Match[str]) -> str:
        n = int(m.group(1))
        if n not in params:
            raise RuntimeError(f"bench/floor.py has no value for ${n} of this statement: "
                               "update its parameter map (see jobs/queries.py)")
        value = params[n]
        return value if isinstance(value, _Raw) else _lit(value)

    return re.sub(r"\$(\d+)(?!\d)", one, sql)


class _Raw(str):
    """A parameter inserted verbatim (e.g. a pgbench variable expression)."""


def one_line(sql: str) -> str:
    """pgbench takes a statement per line unless it ends with `;` on a later line; keep it one
    line (no `--` comments, which would swallow the rest)."""
    sql = re.sub(r"--[^\n]*", "", sql)
    return " ".join(sql.split())


def claim_sql(org: str, queue: str, limit: int, worker: str) -> str:
    """CLAIM_JOBS with its result folded into two array literals (`ids`, `leases`)."""
    from spooled_backend.jobs import queries

    sql = queries.CLAIM_JOBS.strip()
    head, sep, _ = sql.rpartition("\nSELECT ")
    if not sep:
        raise RuntimeError("CLAIM_JOBS has no final SELECT to fold")
    sql = (head + "\nSELECT COALESCE(array_agg(id), '{}')::text AS ids, "
           "COALESCE(array_agg(lease_id), '{}')::text AS leases FROM claimed")
    return one_line(bind(sql, {1: org, 2: queue, 3: limit, 4: _Raw(worker), 5: 300}))


def complete_array_sql(org: str, worker: str) -> str:
    """The batch acknowledgement statement (queries.ACK_JOBS, when the server has it) for the
    claimed arrays; before it existed, the same fenced UPDATE + history row as COMPLETE_JOB."""
    from spooled_backend.jobs import queries

    ack = getattr(queries, "ACK_JOBS", None)
    if ack is not None:
        n = "cardinality(':ids'::text[])"
        return one_line(bind(ack, {
            1: org, 2: _Raw(f"array_fill(({worker})::text, ARRAY[{n}])"), 3: _Raw("':ids'"), 4: _Raw("':leases'"),
            5: _Raw(f"array_fill(NULL::text, ARRAY[{n}])"),
            6: _Raw(f"array_fill('complete'::text, ARRAY[{n}])"),
            7: _Raw(f"array_fill(NULL::text, ARRAY[{n}])"), 8: None}))
    return one_line(f"""
WITH done AS (
    UPDATE jobs j SET status = 'completed', result = NULL, completed_at = now(),
        lease_expires_at = NULL, updated_at = now()
    FROM unnest(':ids'::text[], ':leases'::text[]) AS a(id, lease_id)
    WHERE j.id = a.id AND j.organization_id = {_lit(org)} AND j.status = 'processing'
      AND j.assigned_worker_id = {worker} AND j.lease_id = a.lease_id
      AND j.lease_expires_at > now()
    RETURNING j.id
)
INSERT INTO job_history (organization_id, job_id, event_type, worker_id, details)
SELECT {_lit(org)}, id, 'completed', {worker}, NULL FROM done""")


def insert_sql(org: str, queue: str) -> str:
    from spooled_backend.jobs import queries

    return one_line(bind(queries.INSERT_JOB, {
        1: org, 2: queue, 3: '{"i": 1}', 4: 0, 5: None, 6: None, 7: None, 8: None, 9: None,
        10: None, 11: None, 12: None, 13: None, 14: True, 15: 3, 16: 300}))


def complete_one_sql(org: str) -> str:
    from spooled_backend.jobs import queries

    return one_line(bind(queries.ACK_JOBS, {
        1: org, 2: _Raw("ARRAY['floor-c']"), 3: _Raw("ARRAY['floorc-:client_id-:n']"),
        4: _Raw("ARRAY['L']"), 5: _Raw("ARRAY[NULL]::text[]"), 6: _Raw("ARRAY['complete']"),
        7: _Raw("ARRAY[NULL]::text[]"), 8: None}))


class Floor:
    def __init__(self, dsn_parts: dict[str, str], org: str) -> None:
        self.exe = pgbench_path()
        self.conn = dsn_parts  # host, port, user, dbname
        self.org = org

    @property
    def available(self) -> str | None:
        return None if self.exe else "n/a (pgbench not found)"

    def _run(self, script: str, args: list[str], timeout: float = 600) -> tuple[str, float, Path]:
        logdir = Path(tempfile.mkdtemp(prefix="floor-"))
        path = logdir / "script.sql"
        path.write_text(script + "\n")
        cmd = [self.exe, "-n", "-h", self.conn["host"], "-p", self.conn["port"],
               "-U", self.conn["user"], *args, "-f", str(path), self.conn["dbname"]]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=logdir,
                              env={**os.environ, "PGAPPNAME": "bench-floor"})
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed: {proc.stderr[-800:]}")
        return proc.stdout, elapsed, logdir

    @staticmethod
    def _log_latencies(logdir: Path) -> list[float]:
        """Per-transaction latency (s) from pgbench -l logs (field 3, microseconds)."""
        out = []
        for log in logdir.glob("pgbench_log*"):
            for line in log.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    out.append(int(parts[2]) / 1e6)
        return out

    def drain(self, queue: str, clients: int, jobs: int, count_done) -> dict:
        """`clients` pgbench clients, each transaction claims 100 and completes them by array;
        `count_done()` counts completed rows of `queue` afterwards."""
        worker = _Raw("'floor-w:client_id'")
        script = (claim_sql(self.org, queue, 100, worker) + " \\gset\n"
                  + complete_array_sql(self.org, "'floor-w:client_id'") + ";")
        per_client = -(-jobs // (100 * clients)) + 1
        stdout, elapsed, _ = self._run(script, ["-c", str(clients), "-j", str(min(clients, 2)),
                                                "-t", str(per_client)])
        done = count_done()
        m = re.search(r"initial connection time = ([\d.]+) ms", stdout)
        connect = float(m.group(1)) / 1000 if m else 0.0
        seconds = max(elapsed - connect, 1e-9)
        return {"status": "ok", "jobs_per_s": done / seconds, "completed": done,
                "seconds": seconds}

    def rate_latency(self, script: str, rate: float, seconds: float, clients: int = 4,
                     defines: dict[str, str] | None = None) -> dict:
        """Open-loop (-R) latency percentiles of `script`, from per-transaction logs."""
        args = ["-c", str(clients), "-j", "2", "-R", str(int(rate)),
                "-T", str(max(1, int(seconds))), "-l"]
        for k, v in (defines or {}).items():
            args += ["-D", f"{k}={v}"]
        _, _, logdir = self._run(script, args)
        return {"status": "ok", **percentiles(self._log_latencies(logdir))}

    def closed_latency(self, script: str, transactions: int) -> dict:
        _, _, logdir = self._run(script, ["-c", "1", "-t", str(transactions), "-l"])
        return {"status": "ok", **percentiles(self._log_latencies(logdir))}
