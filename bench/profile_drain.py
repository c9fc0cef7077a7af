"""hotpath's quick drain measurement (not the peer suite: that is bench/run*).

    .venv/bin/python bench/profile_drain.py [--jobs 20000] [--consumers 8] [--mode complete|ack]
        [--py-spy out.svg] [--workers 1] [--rounds 1]

Starts `spooled-backend serve` (embedded PostgreSQL, no Redis, PLAN_LIMITS_ENABLED=false),
bulk-enqueues `--jobs` no-op jobs (100 per request), then `--consumers` loops each claim 100 and
complete them one request per job (`complete`) or in one `POST /jobs/ack` (`ack`) until empty.
The client is a minimal keep-alive HTTP/1.1 client on raw asyncio streams, so that on this
2-core machine as little CPU as possible is taken from the server. Prints jobs/s, server and
PostgreSQL CPU per job, and the HOT-update ratio of `jobs`. With `--py-spy` the server is
sampled during the drain (flame graph SVG, or `--py-spy-format speedscope`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.e2e.server import ServerProcess  # noqa: E402


class RawHttp:
    """One keep-alive HTTP/1.1 connection; JSON in, JSON out."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        assert self.reader is not None and self.writer is not None
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        ).encode()
        self.writer.write(head + data)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        chunked = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
        if chunked:
            payload = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                if size == 0:
                    await self.reader.readline()
                    break
                payload += await self.reader.readexactly(size)
                await self.reader.readline()
        else:
            payload = await self.reader.readexactly(length) if length else b""
        return status, (json.loads(payload) if payload else None)


def proc_cpu(pid: int) -> float:
    """utime+stime seconds of `pid` and its children that were waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def pg_cpu(data_dir: Path) -> float:
    """CPU seconds of every postgres process of this data dir (children of the postmaster)."""
    pid_file = data_dir / "postgres" / "pgdata" / "postmaster.pid"
    master = int(pid_file.read_text().split()[0])
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == master or int(entry.name) == master:
            ticks = os.sysconf("SC_CLK_TCK")
            total += (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / ticks
    return total


def server_pids(root: int) -> list[int]:
    pids = [root]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == root and "postgres" not in (entry / "cmdline").read_text(errors="ignore"):
                pids.append(int(entry.name))
    return pids


async def enqueue(client: RawHttp, queue: str, n: int) -> None:
    for start in range(0, n, 100):
        count = min(100, n - start)
        status, body = await client.post(
            "/api/v1/jobs/bulk",
            {"queue_name": queue, "jobs": [{"payload": {"i": start + i}} for i in range(count)]},
        )
        assert status == 200, (status, body)


async def consume(client: RawHttp, queue: str, worker: str, mode: str, done: list[int]) -> None:
    while True:
        status, body = await client.post(
            "/api/v1/jobs/claim", {"queue_name": queue, "worker_id": worker, "limit": 100}
        )
        assert status == 200, (status, body)
        jobs = body["jobs"]
        if not jobs:
            return
        if mode == "ack":
            status, body = await client.post(
                "/api/v1/jobs/ack",
                {"worker_id": worker,
                 "completed": [{"job_id": j["id"], "lease_id": j["lease_id"]} for j in jobs]},
            )
            assert status == 200, (status, body)
        else:
            for job in jobs:
                status, body = await client.post(
                    f"/api/v1/jobs/{job['id']}/complete",
                    {"worker_id": worker, "lease_id": job["lease_id"], "result": None},
                )
                assert status == 200, (status, body)
        done[0] += len(jobs)


async def hot_ratio(dsn: str) -> tuple[int, int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'jobs'"
        )
    finally:
        await conn.close()
    return int(row["n_tup_upd"]), int(row["n_tup_hot_upd"])


async def run(args: argparse.Namespace, server: ServerProcess, data_dir: Path) -> dict[str, float]:
    host, port = "127.0.0.1", server.port
    key = server.bootstrap_key()
    setup = RawHttp(host, port, key)
    await setup.connect()
    queue = f"drain-{int(time.time() * 1000) % 10**8}"
    t0 = time.perf_counter()
    await asyncio.gather(*[_enq(host, port, key, queue, args.jobs // 4) for _ in range(4)])
    enq_secs = time.perf_counter() - t0
    clients = [RawHttp(host, port, key) for _ in range(args.consumers)]
    for c in clients:
        await c.connect()
    pids = server_pids(server.proc.pid)  # type: ignore[union-attr]
    cpu0 = sum(proc_cpu(p) for p in pids)
    pg0 = pg_cpu(data_dir)
    upd0 = await hot_ratio(args.dsn) if args.dsn else (0, 0)
    spy = None
    if args.py_spy:
        spy = subprocess.Popen(
            [str(Path(sys.executable).parent / "py-spy"), "record", "-o", args.py_spy, "-r", "200",
             "-f", args.py_spy_format, "--pid", str(pids[-1] if len(pids) > 1 else pids[0]),
             *(["--subprocesses"] if len(pids) > 1 else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)
    done = [0]
    t0 = time.perf_counter()
    await asyncio.gather(*[consume(c, queue, f"w{i}", args.mode, done) for i, c in enumerate(clients)])
    secs = time.perf_counter() - t0
    if spy is not None:
        spy.send_signal(2)
        spy.wait(timeout=60)
    cpu = sum(proc_cpu(p) for p in pids) - cpu0
    pg = pg_cpu(data_dir) - pg0
    upd1 = await hot_ratio(args.dsn) if args.dsn else (0, 0)
    for c in clients:
        await c.close()
    await setup.close()
    n = done[0]
    upd = upd1[0] - upd0[0]
    hot = upd1[1] - upd0[1]
    return {
        "jobs": n, "enqueue_jobs_s": args.jobs / enq_secs, "drain_jobs_s": n / secs,
        "server_cpu_us_per_job": cpu / n * 1e6, "pg_cpu_us_per_job": pg / n * 1e6,
        "hot_pct": (100.0 * hot / upd) if upd else 0.0,
    }


async def _enq(host: str, port: int, key: str, queue: str, n: int) -> None:
    c = RawHttp(host, port, key)
    await c.connect()
    await enqueue(c, queue, n)
    await c.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--mode", choices=["complete", "ack"], default="complete")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1, help="WEB_CONCURRENCY")
    parser.add_argument("--py-spy", default=None)
    parser.add_argument("--py-spy-format", default="flamegraph")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    args = parser.parse_args()
    env = {"PLAN_LIMITS_ENABLED": "false", "WEB_CONCURRENCY": str(args.workers)}
    for item in args.env:
        k, _, v = item.partition("=")
        env[k] = v
    with tempfile.TemporaryDirectory(prefix="spooled-prof-") as tmp:
        data_dir = Path(tmp) / "data"
        server = ServerProcess(data_dir, env=env)
        server.start()
        try:
            port_file = data_dir / "postgres" / "pgdata" / "postmaster.pid"
            pg_port = int(port_file.read_text().split("\n")[3])
            args.dsn = f"postgresql://postgres@127.0.0.1:{pg_port}/spooled"
            for r in range(args.rounds):
                try:
                    res = asyncio.run(run(args, server, data_dir))
                except Exception:
                    args.dsn = None
                    res = asyncio.run(run(args, server, data_dir))
                print(json.dumps({"round": r, **{k: round(v, 1) for k, v in res.items()}}))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
