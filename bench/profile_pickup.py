"""Pickup latency alone, repeated (issue 8 target: p99 < 20 ms at 200 jobs/s with `wait_ms`).

    .venv/bin/python bench/profile_pickup.py [--rates 200,1000] [--seconds 5] [--rounds 3]
        [--variants wait,poll] [--wait-ms 2000] [--poll-ms 50] [--py-spy out.svg] [--py-spy-format raw]
        [--server-env NAME=VALUE ...] [--baseline-src DIR] [--statements]

Starts `spooled-backend serve` (embedded PostgreSQL, no Redis, PLAN_LIMITS_ENABLED=false) and
runs bench/ours.py's `pickup` workload — 8 idle consumers (claim limit 10, batch ack), jobs
created open-loop at `rate`/s through `POST /api/v1/jobs`, latency from just before the create
is sent until the claim's answer arrives — `--rounds` times, the variants interleaved, so that
on a shared machine the spread shows and variants compare within one run. One line per
measurement (with the server's and its PostgreSQL's CPU per job picked up, steadier than
latency on a shared machine), then the medians of each variant. With `--py-spy` the server is
sampled (idle frames included) during the whole run. With `--baseline-src` (a `src/` directory of
another revision, e.g. `git archive main src | tar -x -C /tmp/base`) a second server runs that
code (first on PYTHONPATH, each server on its own embedded PostgreSQL) and every measurement is
made on both, alternating: before/after in the same conditions. `--statements` loads
pg_stat_statements and prints the statements run per job picked up (claims, empty claims' due
look-ups, transactions): the work behind the latency, independent of the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import ours  # noqa: E402
from bench.profile_drain import pg_cpu, proc_cpu  # noqa: E402
from tests.e2e.server import ServerProcess  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="200,1000")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", default="wait,poll")
    p.add_argument("--wait-ms", type=int, default=2000)
    p.add_argument("--poll-ms", type=int, default=50)
    p.add_argument("--grace", type=float, default=3.0)
    p.add_argument("--py-spy", help="write a py-spy flame graph of the server here")
    p.add_argument("--py-spy-format", default="flamegraph", help="flamegraph, raw, speedscope")
    p.add_argument("--server-env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--baseline-src", type=Path, help="src/ of the revision to compare with")
    p.add_argument("--statements", action="store_true", help="statements per job (pg_stat_statements)")
    return p.parse_args()


# name → (pattern, top-level statements only). A transaction is a COMMIT or a call of a
# single-round-trip function (src/spooled_backend/db/onetrip.py); the statements inside those
# functions are nested (pg_stat_statements.track = all).
STATEMENTS = {
    "transactions": ("COMMIT%|SELECT * FROM spooled_1rt_%", True),
    "claims": ("%rate_bucket AS MATERIALIZED%FOR UPDATE SKIP LOCKED%", False),
    "due look-ups": ("%FROM min(scheduled_at)) FROM jobs%", False),
    "acks": ("%lease_id, result, kind, error, worker_id%", False),
}


def pg_dsn(server: ServerProcess) -> str:
    pid_file = server.data_dir / "postgres" / "pgdata" / "postmaster.pid"
    return f"postgresql://postgres@127.0.0.1:{int(pid_file.read_text().split()[3])}/spooled"


async def statement_calls(server: ServerProcess) -> dict[str, int]:
    import asyncpg

    conn = await asyncpg.connect(pg_dsn(server))
    try:
        return {name: int(await conn.fetchval(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
            "WHERE query LIKE ANY (string_to_array($1, '|')) AND (toplevel OR NOT $2)",
            pattern, top)) for name, (pattern, top) in STATEMENTS.items()}
    finally:
        await conn.close()


def cpu_of(server: ServerProcess) -> tuple[float, float]:
    """(server process, its PostgreSQL) CPU seconds so far."""
    return proc_cpu(server.proc.pid), pg_cpu(server.data_dir)  # type: ignore[union-attr]


async def measure(args: argparse.Namespace, targets: dict[str, ours.Target],
                  servers: dict[str, ServerProcess]) -> None:
    for target in targets.values():
        await ours.capabilities(target)  # warm: key verification, statement preparation
    rates = [float(r) for r in args.rates.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]
    results: dict[tuple[str, str, float], list[dict]] = {}
    for n in range(args.rounds):
        for rate in rates:
            for variant in variants:
                order = list(targets.items())
                if n % 2:
                    order.reverse()  # neither server always goes first
                for name, target in order:
                    wait = args.wait_ms if variant == "wait" else None
                    cpu0 = cpu_of(servers[name])
                    calls0 = await statement_calls(servers[name]) if args.statements else {}
                    res = await ours.pickup(target, rate, args.seconds, wait,
                                            args.poll_ms / 1000, True, grace=args.grace)
                    cpu1 = cpu_of(servers[name])
                    jobs = max(res["picked"], 1)
                    if args.statements:
                        calls1 = await statement_calls(servers[name])
                        res["per_job"] = {k: (calls1[k] - calls0[k]) / jobs for k in calls1}
                    res["server_us"] = (cpu1[0] - cpu0[0]) / jobs * 1e6
                    res["pg_us"] = (cpu1[1] - cpu0[1]) / jobs * 1e6
                    results.setdefault((name, variant, rate), []).append(res)
                    print(f"round {n + 1} {name:8} {variant:4} {rate:6.0f}/s: p50 "
                          f"{res['p50']:8.1f}  p95 {res['p95']:8.1f}  p99 {res['p99']:8.1f} ms  "
                          f"picked {res['picked']}/{res['sent']}  errors {res['errors']}  CPU/job "
                          f"server {res['server_us']:.0f} µs, PostgreSQL {res['pg_us']:.0f} µs  "
                          f"load {os.getloadavg()[0]:.1f}", flush=True)
                    if "per_job" in res:
                        print("    per job picked up: " + ", ".join(
                            f"{k} {v:.2f}" for k, v in res["per_job"].items()), flush=True)
    print("median over rounds (ms):")
    for (name, variant, rate), runs in sorted(results.items(), key=lambda kv: kv[0][1:]):
        med = {p: statistics.median(r[p] for r in runs)
               for p in ("p50", "p95", "p99", "server_us", "pg_us")}
        print(f"  {name:8} {variant:4} {rate:6.0f}/s: p50 {med['p50']:.1f} / p95 {med['p95']:.1f}"
              f" / p99 {med['p99']:.1f}; CPU/job server {med['server_us']:.0f} µs, PostgreSQL "
              f"{med['pg_us']:.0f} µs  (p99 of each round: "
              + ", ".join(f"{r['p99']:.1f}" for r in runs) + ")")


async def _create_extension(server: ServerProcess) -> None:
    import asyncpg

    conn = await asyncpg.connect(pg_dsn(server))
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await conn.close()


def main() -> int:
    args = parse_args()
    env = {"PLAN_LIMITS_ENABLED": "false", **dict(e.split("=", 1) for e in args.server_env)}
    with tempfile.TemporaryDirectory(prefix="spooled-pickup-") as tmp:
        servers = {"this": ServerProcess(Path(tmp) / "this", env=env)}
        if args.baseline_src:
            path = os.pathsep.join([str(args.baseline_src.resolve()),
                                    *filter(None, [os.environ.get("PYTHONPATH")])])
            servers["baseline"] = ServerProcess(Path(tmp) / "baseline",
                                                env={**env, "PYTHONPATH": path})
        spy = None
        try:
            for server in servers.values():
                server.start()
                if args.statements:  # restart with pg_stat_statements loaded
                    server.stop()
                    conf = server.data_dir / "postgres" / "pgdata" / "postgresql.conf"
                    conf.write_text(conf.read_text() + "\nshared_preload_libraries = "
                                    "'pg_stat_statements'\npg_stat_statements.track = all\n")
                    server.start()
                    asyncio.run(_create_extension(server))
            if args.py_spy:
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--idle", "-o",
                     args.py_spy, "-f", args.py_spy_format, "-r", "500",
                     "--pid", str(servers["this"].proc.pid)],  # type: ignore[union-attr]
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            targets = {name: ours.Target("127.0.0.1", s.port, s.bootstrap_key())
                       for name, s in servers.items()}
            try:
                import uvloop

                uvloop.run(measure(args, targets, servers))
            except ImportError:
                asyncio.run(measure(args, targets, servers))
        finally:
            if spy is not None:
                spy.send_signal(2)
                spy.wait(60)
            for server in servers.values():
                if server.proc is not None:
                    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
