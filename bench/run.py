#!/usr/bin/env python3
"""One command: our server beside PgQueuer, Procrastinate, graphile-worker, pg-boss and a pgbench
SQL floor, in one run, against one PostgreSQL.

    python3 bench/run.py [--size smoke|full] [--out DIR] [--postgres ADMIN_DSN]
                         [--server-env NAME=VALUE ...] [--skip-peers]
                         [--only drain,pickup,delayed,api,growth]

Installs what it needs on first use (bench/envs.py), starts an embedded PostgreSQL
(spooled_backend.db.embedded; `--postgres` to use your own), runs the real `spooled-backend serve`
process on it (bootstrap organization, PLAN_LIMITS_ENABLED=false), a do-nothing stub server for
the load client's ceiling, then the workloads (a)-(e) of issue 8, and writes
DIR/results.md (the table), DIR/results.json and DIR/chart.png (default DIR: bench/results).
`--size smoke` fits in about a minute and a half (CI runs it; figures are not checked).
`--only pickup` (comma-separated workloads) runs just those workloads, ours, stub, floor and
peers alike, with the same output format.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import envs  # noqa: E402

SIZES: dict[str, dict] = {
    "smoke": dict(drain_jobs=300, drain_cap=5.0, consumers=[1, 8, 32], sdk_seconds=0.5,
                  pickup_rates=[200, 1000], pickup_seconds=0.5, delayed_jobs=50,
                  delayed_spread=0.5, api_rate=1000, api_seconds=0.5, grace=1.0, lead=0.5,
                  growth=[0, 5_000, 20_000], growth_samples=50, peer_drain_jobs=300),
    "full": dict(drain_jobs=50_000, drain_cap=20.0, consumers=[1, 8, 32], sdk_seconds=6.0,
                 pickup_rates=[200, 1000], pickup_seconds=5.0, delayed_jobs=2000,
                 delayed_spread=10.0, api_rate=1000, api_seconds=5.0, grace=3.0, lead=1.0,
                 growth=[0, 1_000_000, 5_000_000], growth_samples=500, peer_drain_jobs=50_000),
}
POLL_S = 0.05   # consumers without wait_ms sleep this long after an empty claim
WAIT_MS = 2000  # consumers with wait_ms hold each empty claim up to this long


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="smoke")
    p.add_argument("--out", type=Path, default=envs.BENCH / "results")
    p.add_argument("--postgres", help="admin DSN of your own PostgreSQL (default: embedded)")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the server process (repeatable)")
    p.add_argument("--skip-peers", action="store_true", help="only ours, the stub and the floor")
    p.add_argument("--only", type=_workloads, default=WORKLOADS, metavar="W[,W...]",
                   help="run only these workloads (" + ", ".join(WORKLOADS) + "; default all)")
    return p.parse_args(argv)


WORKLOADS = ("drain", "pickup", "delayed", "api", "growth")


def _workloads(text: str) -> tuple[str, ...]:
    chosen = tuple(w.strip() for w in text.split(",") if w.strip())
    unknown = [w for w in chosen if w not in WORKLOADS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"unknown workload(s) {unknown}; choose from {WORKLOADS}")
    return chosen


def main() -> int:
    args = parse_args()
    if os.environ.get("SPOOLED_BENCH_READY") != "1":
        node_problem = envs.ensure_all()
        env = {**os.environ, "SPOOLED_BENCH_READY": "1"}
        if node_problem:
            env["SPOOLED_BENCH_NO_NODE"] = node_problem
        py = str(envs.PROJECT_PY)
        os.execve(py, [py, str(Path(__file__).resolve()), *sys.argv[1:]], env)
    from bench.driver import run

    return run(args, SIZES[args.size], POLL_S, WAIT_MS)


if __name__ == "__main__":
    sys.exit(main())
