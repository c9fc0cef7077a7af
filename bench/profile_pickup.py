"""Pickup latency alone, repeated (issue 8 target: p99 < 20 ms at 200 jobs/s with `wait_ms`).

    .venv/bin/python bench/profile_pickup.py [--rates 200,1000] [--seconds 5] [--rounds 3]
        [--variants wait,poll] [--wait-ms 2000] [--poll-ms 50] [--py-spy out.svg] [--py-spy-format raw]
        [--server-env NAME=VALUE ...]

Starts `spooled-backend serve` (embedded PostgreSQL, no Redis, PLAN_LIMITS_ENABLED=false) and
runs bench/ours.py's `pickup` workload — 8 idle consumers (claim limit 10, batch ack), jobs
created open-loop at `rate`/s through `POST /api/v1/jobs`, latency from just before the create
is sent until the claim's answer arrives — `--rounds` times, the variants interleaved, so that
on a shared machine the spread shows and variants compare within one run. One line per
measurement, then the median of each variant's p50 / p95 / p99. With `--py-spy` the server is
sampled (idle frames included) during the whole run.
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
    return p.parse_args()


async def measure(args: argparse.Namespace, target: ours.Target) -> None:
    await ours.capabilities(target)  # warm: key verification, statement preparation
    rates = [float(r) for r in args.rates.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]
    results: dict[tuple[str, float], list[dict]] = {}
    for n in range(args.rounds):
        for rate in rates:
            for variant in variants:
                wait = args.wait_ms if variant == "wait" else None
                res = await ours.pickup(target, rate, args.seconds, wait, args.poll_ms / 1000,
                                        True, grace=args.grace)
                results.setdefault((variant, rate), []).append(res)
                print(f"round {n + 1} {variant:4} {rate:6.0f}/s: p50 {res['p50']:8.1f}  p95 "
                      f"{res['p95']:8.1f}  p99 {res['p99']:8.1f} ms  picked {res['picked']}/"
                      f"{res['sent']}  errors {res['errors']}  load {os.getloadavg()[0]:.1f}",
                      flush=True)
    print("median over rounds (ms):")
    for (variant, rate), runs in results.items():
        med = {p: statistics.median(r[p] for r in runs) for p in ("p50", "p95", "p99")}
        print(f"  {variant:4} {rate:6.0f}/s: p50 {med['p50']:.1f} / p95 {med['p95']:.1f} / "
              f"p99 {med['p99']:.1f}  (p99 of each round: "
              + ", ".join(f"{r['p99']:.1f}" for r in runs) + ")")


def main() -> int:
    args = parse_args()
    env = {"PLAN_LIMITS_ENABLED": "false", **dict(e.split("=", 1) for e in args.server_env)}
    with tempfile.TemporaryDirectory(prefix="spooled-pickup-") as tmp:
        server = ServerProcess(Path(tmp), env=env)
        server.start()
        spy = None
        try:
            if args.py_spy:
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "--idle", "-o",
                     args.py_spy, "-f", args.py_spy_format, "-r", "500",
                     "--pid", str(server.proc.pid)],  # type: ignore[union-attr]
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            target = ours.Target("127.0.0.1", server.port, server.bootstrap_key())
            try:
                import uvloop

                uvloop.run(measure(args, target))
            except ImportError:
                asyncio.run(measure(args, target))
        finally:
            if spy is not None:
                spy.send_signal(2)
                spy.wait(60)
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
