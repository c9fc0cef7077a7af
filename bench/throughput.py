"""Throughput and latency of the real server over HTTP, next to a bare PostgreSQL queue.

    .venv/bin/python bench/throughput.py [--jobs 1000] [--concurrency 32] [--workers 4] [--batch 10]

Starts `spooled-backend serve` as a user would (embedded PostgreSQL in a temporary
SPOOLED_DATA_DIR, no Redis, loopback only, PLAN_LIMITS_ENABLED=false so rate limits do not
cap the numbers), then measures with plain httpx:

* create rate: `--jobs` POST /api/v1/jobs from `--concurrency` concurrent requests;
* claim+complete rate: `--workers` loops, each claiming `--batch` jobs and completing them
  (one POST per job, concurrently) until the queue is empty;
* end-to-end latency: `--samples` sequential create → claim → complete rounds, p50/p99;

and the same three against a minimal table in the same PostgreSQL instance, with one
`UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)` claim, to show the cost of the HTTP
layer. Prints markdown tables. Every phase is bounded by `--phase-timeout` seconds.
The client shares the machine with the server: on 2 cores the numbers are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.baseline import BaselineQueue
from bench.cpu import CpuMeter
from bench.http_client import HttpQueue
from bench.measure import Result, render_tables, run_phases
from tests.e2e.server import ServerProcess


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per rate phase")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent creates")
    parser.add_argument("--workers", type=int, default=4, help="claiming loops")
    parser.add_argument("--batch", type=int, default=10, help="jobs per claim")
    parser.add_argument("--samples", type=int, default=200, help="latency rounds")
    parser.add_argument("--phase-timeout", type=float, default=10.0, help="seconds per phase")
    return parser.parse_args(argv)


def embedded_port(server: ServerProcess) -> int:
    """The embedded PostgreSQL's port, from line 4 of its postmaster.pid."""
    return int(server.pid_file.read_text().splitlines()[3])


async def measure(server: ServerProcess, args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    assert server.proc is not None
    postmaster = int(server.pid_file.read_text().splitlines()[0])
    connections = max(args.concurrency, args.workers * args.batch)
    async with HttpQueue(server.base_url, server.bootstrap_key(), connections) as http:
        meter = CpuMeter(server.proc.pid, postmaster)
        results.append(await run_phases("HTTP (spooled-backend)", http, args, meter))
    dsn = f"postgresql://postgres@127.0.0.1:{embedded_port(server)}"
    async with BaselineQueue(dsn, connections) as baseline:
        meter = CpuMeter(None, postmaster)
        results.append(await run_phases("PostgreSQL SKIP LOCKED baseline", baseline, args, meter))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spooled-bench-") as tmp:
        server = ServerProcess(Path(tmp) / "data", env={"PLAN_LIMITS_ENABLED": "false"})
        server.start()
        boot = time.monotonic() - started
        try:
            results = asyncio.run(measure(server, args))
        finally:
            code = server.stop()
        if code != 0:
            print(server.output(), file=sys.stderr)
            print(f"server exited with {code}", file=sys.stderr)
            return 1
    print(render_tables(results, args))
    print(f"\nserver start {boot:.1f} s, whole run {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
