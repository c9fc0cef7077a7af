"""The run itself (in the project's venv): PostgreSQL, server, stub, workloads, peers, report."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bench import envs, ours, report
from bench.floor import Floor, claim_sql, complete_one_sql, insert_sql

BOOT_KEY = re.compile(r"API key, shown once:\s*\n\s*(\S+)")
SCRUB = ("DATABASE_URL", "DATABASE_DIRECT_URL", "REDIS_URL", "RUST_ENV", "ADMIN_API_KEY",
         "METRICS_TOKEN", "JWT_SECRET", "SPOOLED_BOOTSTRAP_ORG", "SPOOLED_BENCH_READY",
         "SPOOLED_BENCH_NO_NODE")
PEER_DBS = {"pgqueuer": "bench_pgqueuer", "procrastinate": "bench_procrastinate",
            "graphile": "bench_graphile", "pgboss": "bench_pgboss"}
SERVER_DB = "spooled_bench"


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- processes
class Server:
    """`spooled-backend serve` (the console script of the project's venv) on DATABASE_URL."""

    def __init__(self, database_url: str, workdir: Path, extra_env: dict[str, str]) -> None:
        self.port = free_port()
        self.log = workdir / "server.log"
        self.env = {k: v for k, v in os.environ.items() if k not in SCRUB}
        self.env.update(DATABASE_URL=database_url, HOST="127.0.0.1", PORT=str(self.port),
                        METRICS_PORT=str(free_port()), GRPC_PORT=str(free_port()),
                        PLAN_LIMITS_ENABLED="false", SPOOLED_DATA_DIR=str(workdir / "data"),
                        PYTHONUNBUFFERED="1", **extra_env)
        self.command = [str(envs.PROJECT_PY.parent / "spooled-backend"), "serve"]
        self.proc: subprocess.Popen | None = None
        self.key = ""

    def start(self, timeout: float = 120) -> None:
        out = self.log.open("wb")
        self.proc = subprocess.Popen(self.command, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.log.parent)
        deadline = time.monotonic() + timeout
        import httpx

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited {self.proc.returncode}:\n{self.output()[-3000:]}")
            try:
                r = httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2)
                if r.status_code == 200 and r.json().get("status") == "healthy":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server not healthy in {timeout} s:\n{self.output()[-3000:]}")
        m = BOOT_KEY.search(self.output())
        if not m:
            raise RuntimeError("no bootstrap API key in the server output (database not empty?)")
        self.key = m.group(1)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


class Stub:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([str(envs.PROJECT_PY), str(envs.BENCH / "stub.py"),
                                      str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.proc.stdout.readline()  # "stub listening ..."

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class RssSampler(threading.Thread):
    """RSS of the server's process tree (psutil), tagged with the phase running."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True, name="rss")
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float, str]] = []
        self.phase = "start"
        self.stopped = threading.Event()
        self.t0 = time.monotonic()
        self.processes = 1

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self.stopped.wait(self.interval):
            try:
                procs = [root, *root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs) / 2**20
                self.processes = max(self.processes, len(procs))
            except psutil.Error:
                return
            self.samples.append((time.monotonic() - self.t0, rss, self.phase))

    def summary(self) -> dict[str, Any]:
        drain = [s[1] for s in self.samples if s[2].startswith("drain")]
        every = [s[1] for s in self.samples] or [0.0]
        return {"interval_s": self.interval, "max_mb": max(drain or every),
                "max_all_mb": max(every), "start_mb": every[0],
                "samples": [[round(t, 2), round(m, 1), p] for t, m, p in self.samples]}


# --------------------------------------------------------------------------- facts
def machine_facts(pg_version: str) -> dict[str, Any]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0.0
    try:
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = kb / 2**20
    except (OSError, IndexError, ValueError):
        pass
    try:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except OSError:
        node = "not installed"
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gb": mem,
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "postgres": pg_version, "python": platform.python_version(), "node": node,
            "platform": platform.platform()}


# --------------------------------------------------------------------------- the run
class Run:
    def __init__(self, args: argparse.Namespace, size: dict, poll: float, wait_ms: int) -> None:
        self.args, self.size, self.poll, self.wait_ms = args, size, poll, wait_ms
        self.records: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.rss: RssSampler | None = None

    def add(self, section: str, variant: str, param: Any, system: str, result: dict,
            **extra: Any) -> None:
        self.records.append({"section": section, "variant": variant, "param": param,
                             "system": system, "result": result, **extra})
        figure = result.get("jobs_per_s", result.get("p99"))
        say(f"{section:7} {system:13} {variant[:42]:42} {param!s:>9}: "
            f"{result.get('status')} {figure if figure is None else round(figure, 1)}")

    @staticmethod
    async def guard(coro) -> dict:
        """A failing workload becomes an `error: ...` cell, not a failed run."""
        try:
            return await coro
        except Exception as exc:
            return {"status": f"error: {exc!r}"[:300]}

    async def guard_thread(self, fn, *args) -> dict:
        return await self.guard(asyncio.to_thread(fn, *args))

    def wants(self, workload: str) -> bool:
        """`--only`: is this workload (drain, pickup, delayed, api, growth) part of the run?"""
        return workload in getattr(self.args, "only", (workload,))

    def phase(self, name: str) -> None:
        if self.rss is not None:
            self.rss.phase = name

    # ----------------------------------------------------------------- ours + stub
    async def drains(self, target: ours.Target, stub: ours.Target, caps: dict) -> None:
        s = self.size
        for c in s["consumers"] if self.wants("drain") else ():
            self.phase(f"drain-{c}")
            for mode, variant in (("complete", "REST, claim 100 + one complete per job"),
                                  ("ack", "REST, claim 100 + batch ack")):
                if mode == "ack" and caps["ack"]:
                    res = {"status": f"n/a ({caps['ack']})"}
                else:
                    res = await self.guard(ours.drain(target, c, s["drain_jobs"], s["drain_cap"],
                                                      mode))
                self.add("drain", variant, c, "ours", res)
                self.add("drain", variant, c, "stub", await self.guard(
                    ours.drain(stub, c, s["drain_jobs"], s["drain_cap"], mode)))
            for poll, variant in ((None, "SpooledWorker, poll_interval=1.0 (default)"),
                                  (0.01, "SpooledWorker, poll_interval=0.01")):
                # Bounded by time: with the default it drains ~concurrency jobs per second.
                res = await self.guard_thread(ours.sdk_drain, target, c, s["drain_jobs"],
                                              s["sdk_seconds"], poll)
                self.add("drain", variant, c, "ours", res)
                if poll is not None:
                    self.add("drain", variant, c, "stub", await self.guard_thread(
                        ours.sdk_drain, stub, c, s["drain_jobs"], s["sdk_seconds"], poll))
            self.add("drain", "gRPC ProcessJobs", c, "ours",
                     {"status": "n/a (gRPC not yet implemented)"})

    async def latencies(self, target: ours.Target, stub: ours.Target, caps: dict) -> None:
        s = self.size
        use_ack = caps["ack"] is None
        ack_note = "batch ack" if use_ack else "one complete per job"
        for rate in s["pickup_rates"] if self.wants("pickup") else ():
            self.phase(f"pickup-{rate}")
            for wait, variant in ((None, f"8 consumers polling every {int(self.poll * 1000)} ms"),
                                  (self.wait_ms, f"8 consumers, claim wait_ms={self.wait_ms}")):
                variant += f", {ack_note}"
                for system, t in (("ours", target), ("stub", stub)):
                    if wait and caps["wait_ms"] and system == "ours":
                        res = {"status": f"n/a ({caps['wait_ms']})"}
                    else:
                        res = await self.guard(ours.pickup(
                            t, rate, s["pickup_seconds"], wait, self.poll,
                            use_ack if system == "ours" else True, grace=s["grace"]))
                    self.add("pickup", variant, rate, system, res)
        n = s["delayed_jobs"]
        self.phase("delayed")
        for wait, variant in ((None, f"8 consumers polling every {int(self.poll * 1000)} ms"),
                              (self.wait_ms, f"8 consumers, claim wait_ms={self.wait_ms}")
                              ) if self.wants("delayed") else ():
            for system, t in (("ours", target), ("stub", stub)):
                if wait and caps["wait_ms"] and system == "ours":
                    res = {"status": f"n/a ({caps['wait_ms']})"}
                else:
                    res = await self.guard(ours.delayed(
                        t, n, s["delayed_spread"], wait, self.poll,
                        use_ack if system == "ours" else True, grace=s["grace"],
                        lead=s["lead"]))
                self.add("delayed", variant + f", due over {s['delayed_spread']:g} s", n,
                         system, res)
        self.phase("api")
        rate = s["api_rate"]
        for system, t in (("ours", target), ("stub", stub)) if self.wants("api") else ():
            try:
                api = await ours.api_latency(t, rate, s["api_seconds"],
                                             min(10.0, max(2.0, 2 * s["api_seconds"])))
            except Exception as exc:
                api = {op: {"status": f"error: {exc!r}"[:300]} for op in ("create", "claim",
                                                                         "complete")}
            for op, res in api.items():
                self.add("api", f"{op} at {rate} req/s", op, system, res,
                         peer_param="enqueue" if op == "create" else op)

    # ----------------------------------------------------------------- floor
    def floor_drains(self, floor: Floor, db: asyncpg.Connection, loop_run) -> None:
        for c in self.size["consumers"] if self.wants("drain") else ():
            queue = ours.queue_name("floor")
            loop_run(self._floor_fill(db, queue, self.size["drain_jobs"]))
            res = floor.drain(queue, c, self.size["drain_jobs"], lambda q=queue: loop_run(
                db.fetchval("SELECT count(*) FROM jobs WHERE queue_name = $1 "
                            "AND status = 'completed'", q)))
            self.add("drain", "pgbench", c, "floor", res)

    async def _floor_fill(self, db: asyncpg.Connection, queue: str, n: int) -> None:
        await db.execute("""
            INSERT INTO jobs (organization_id, queue_name, status, payload)
            SELECT $1, $2, 'pending', jsonb_build_object('i', g) FROM generate_series(1, $3) g
        """, self.org, queue, n)

    def floor_api(self, floor: Floor, db: asyncpg.Connection, loop_run) -> None:
        if not self.wants("api"):
            return
        s = self.size
        rate, secs = s["api_rate"], max(1, int(s["api_seconds"]))
        clients = 4
        queue = ours.queue_name("floor-api")
        self.add("api", "", "create", "floor",
                 floor.rate_latency(insert_sql(self.org, queue) + ";", rate, secs, clients))
        loop_run(self._floor_fill(db, queue, int(rate * secs * 1.5) + 100))
        self.add("api", "", "claim", "floor", floor.rate_latency(
            claim_sql(self.org, queue, 1, "'floor-api'") + ";", rate, secs, clients))
        per_client = int(rate * secs * 1.5 / clients) + 50
        loop_run(db.execute("""
            INSERT INTO jobs (id, organization_id, queue_name, status, payload, assigned_worker_id,
                              lease_id, lease_expires_at, started_at)
            SELECT 'floorc-' || c || '-' || n, $1, $2, 'processing', '{}'::jsonb, 'floor-c', 'L',
                   now() + interval '1 hour', now()
            FROM generate_series(0, $3 - 1) c, generate_series(1, $4) n
        """, self.org, queue, clients, per_client))
        self.add("api", "", "complete", "floor", floor.rate_latency(
            "\\set n :n + 1\n" + complete_one_sql(self.org) + ";", rate, secs, clients,
            defines={"n": "0"}))

    # ----------------------------------------------------------------- (e)
    async def growth(self, target: ours.Target, db: asyncpg.Connection,
                     floor: Floor | None) -> None:
        s = self.size
        if not self.wants("growth"):
            return
        self.phase("growth")
        # Only this workload's rows: earlier workloads left their finished jobs behind.
        await db.execute("TRUNCATE jobs, job_history CASCADE")
        queue = ours.queue_name("growth")
        loaded = 0
        for retained in s["growth"]:
            t = time.perf_counter()
            step = 500_000
            # Bulk load as a restore would: secondary indexes dropped, rows inserted, the same
            # indexes rebuilt from their own definitions (several times faster than maintaining
            # them row by row; the schema afterwards is identical).
            indexes = await db.fetch("""
                SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
                JOIN pg_class c ON c.oid = i.indexrelid
                WHERE i.indrelid = 'jobs'::regclass
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)
            """) if retained > loaded else []
            for ix in indexes:
                await db.execute(f'DROP INDEX "{ix["relname"]}"')
            while loaded < retained:
                n = min(step, retained - loaded)
                await db.execute("""
                    INSERT INTO jobs (id, organization_id, queue_name, status, payload, result,
                                      created_at, started_at, completed_at, updated_at,
                                      assigned_worker_id, lease_id)
                    SELECT 'done-' || g, $1, $2, 'completed', jsonb_build_object('i', g), 'null',
                           now() - interval '1 hour', now() - interval '1 hour', now(), now(),
                           'w', 'l'
                    FROM generate_series($3::bigint + 1, $3::bigint + $4) g
                """, self.org, queue, loaded, n)
                loaded += n
            await db.execute("SET maintenance_work_mem = '256MB'")
            for ix in indexes:
                await db.execute(ix["def"])
            if retained:
                await db.execute("VACUUM ANALYZE jobs")
                say(f"growth: {retained:,} finished jobs retained "
                    f"(loaded in {time.perf_counter() - t:.0f} s)")
            await ours.enqueue(target, queue, s["growth_samples"])
            self.add("growth", "REST claim, limit 1", retained, "ours",
                     await self.guard(ours.claim_latency(target, queue, s["growth_samples"])),
                     param_label=f"{retained:,}")
            if floor is not None:
                await self._floor_fill(db, queue, s["growth_samples"])
                res = await self.guard_thread(floor.closed_latency, claim_sql(
                    self.org, queue, 1, "'floor-grow'") + ";", s["growth_samples"])
                self.add("growth", "", retained, "floor", res)

    # ----------------------------------------------------------------- peers
    def peers(self, admin_dsn: str, node_problem: str | None) -> None:
        s = self.size
        tasks = [{"kind": "drain", "consumers": c, "jobs": s["peer_drain_jobs"],
                  "cap": s["drain_cap"]} for c in s["consumers"]]
        tasks += [{"kind": "pickup", "rate": r, "seconds": s["pickup_seconds"],
                   "grace": s["grace"]} for r in s["pickup_rates"]]
        tasks.append({"kind": "delayed", "jobs": s["delayed_jobs"],
                      "spread": s["delayed_spread"], "grace": s["grace"] + 2.5,
                      "lead": s["lead"]})  # + graphile-worker's 2 s poll for run_at jobs
        tasks.append({"kind": "enqueue", "rate": s["api_rate"], "seconds": s["api_seconds"]})
        workload = {"drain": "drain", "pickup": "pickup", "delayed": "delayed", "enqueue": "api"}
        tasks = [t for t in tasks if self.wants(workload[t["kind"]])]
        if not tasks:
            return
        commands = {
            "pgqueuer": [str(envs.PEERS_PY), "-m", "bench.peers.pgqueuer_peer"],
            "procrastinate": [str(envs.PEERS_PY), "-m", "bench.peers.procrastinate_peer"],
            "graphile": ["node", str(envs.BENCH / "peers" / "graphile.mjs")],
            "pgboss": ["node", str(envs.BENCH / "peers" / "pgboss.mjs")],
        }
        for name, cmd in commands.items():
            self.phase(f"peer-{name}")
            if name in ("graphile", "pgboss") and node_problem:
                for t in tasks:
                    self._peer_record(name, t, {"status": f"n/a ({node_problem})"})
                continue
            dsn = admin_dsn.rsplit("/", 1)[0] + "/" + PEER_DBS[name]
            say(f"peer {name}: {len(tasks)} tasks")
            remaining = list(tasks)
            while remaining:
                remaining = self._peer_process(name, cmd, dsn, remaining)

    def _peer_process(self, name: str, cmd: list[str], dsn: str, tasks: list[dict]) -> list[dict]:
        """Run `tasks` in one peer process, each under its own deadline; a task past it is
        recorded as timed out, the process killed, and the tasks after it are returned to be
        run in a fresh process."""
        import queue as queue_mod

        proc = subprocess.Popen([*cmd, json.dumps({"dsn": dsn, "tasks": tasks})],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=envs.REPO, stdin=subprocess.DEVNULL)
        lines: queue_mod.Queue[str | None] = queue_mod.Queue()
        err: list[str] = []

        def pump(stream, sink) -> None:
            for line in stream:
                sink(line)
            if stream is proc.stdout:
                lines.put(None)

        threading.Thread(target=pump, args=(proc.stdout, lines.put), daemon=True).start()
        threading.Thread(target=pump, args=(proc.stderr, err.append), daemon=True).start()
        for n, task in enumerate(tasks):
            # Generous: enqueue of a large drain on a loaded machine, process start, schema reset.
            budget = 90 + 2 * (task.get("cap", 0) + task.get("seconds", 0)
                               + task.get("spread", 0) + task.get("grace", 0))
            deadline = time.monotonic() + budget
            got = None
            while got is None:
                try:
                    line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue_mod.Empty:
                    break
                if line is None:
                    break
                if line.startswith("RESULT "):
                    got = json.loads(line[7:])
            if got is not None:
                self._peer_record(name, got["task"], got["result"])
                continue
            proc.kill()
            proc.wait(10)
            timed_out = time.monotonic() >= deadline
            why = (f"error: timed out after {budget:.0f} s" if timed_out else
                   f"error: {name} exited {proc.returncode}: {''.join(err)[-200:].strip()}")
            self._peer_record(name, task, {"status": why})
            return tasks[n + 1:]
        proc.wait(30)
        return []

    def _peer_record(self, name: str, task: dict, result: dict) -> None:
        kind = task["kind"]
        section, param = {
            "drain": ("drain", task.get("consumers")), "pickup": ("pickup", task.get("rate")),
            "delayed": ("delayed", task.get("jobs")), "enqueue": ("api", "enqueue"),
        }[kind]
        self.add(section, kind, param, name, result)


def run(args: argparse.Namespace, size: dict, poll: float, wait_ms: int) -> int:
    started = time.time()
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="spooled-bench-"))
    embedded = None
    if args.postgres:
        admin_dsn = args.postgres
    else:
        from spooled_backend.db.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(work / "postgres", max_connections=400)
        say("starting the embedded PostgreSQL")
        admin_dsn = embedded.start()
    r = Run(args, size, poll, wait_ms)
    server = stub = None
    loop = asyncio.new_event_loop()
    try:
        try:
            import uvloop

            loop = uvloop.new_event_loop()
        except ImportError:
            pass
        asyncio.set_event_loop(loop)
        run_ = loop.run_until_complete

        async def setup() -> str:
            admin = await asyncpg.connect(admin_dsn)
            try:
                for name in [SERVER_DB, *PEER_DBS.values()]:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    await admin.execute(f'CREATE DATABASE "{name}"')
                return await admin.fetchval("SHOW server_version")
            finally:
                await admin.close()

        pg_version = run_(setup())
        server_url = admin_dsn.rsplit("/", 1)[0] + "/" + SERVER_DB
        extra = dict(item.split("=", 1) for item in args.server_env)
        server = Server(server_url, work, extra)
        say("starting spooled-backend serve")
        server.start()
        stub = Stub()
        r.rss = RssSampler(server.proc.pid)  # type: ignore[union-attr]
        r.rss.start()
        target = ours.Target("127.0.0.1", server.port, server.key)
        stub_target = ours.Target("127.0.0.1", stub.port, "sp_live_stub000000000000")
        db = run_(asyncpg.connect(server_url))
        r.org = run_(db.fetchval("SELECT id FROM organizations WHERE slug = 'default'"))
        caps = run_(ours.capabilities(target))
        say(f"server capabilities: batch ack {caps['ack'] or 'yes'}, "
            f"wait_ms {caps['wait_ms'] or 'yes'}")
        # Warm-up: first-use costs (key verification, statement preparation) out of the figures.
        run_(ours.drain(target, 4, 40, 10, "complete"))

        run_(r.drains(target, stub_target, caps))
        floor = Floor(_dsn_parts(server_url), r.org)
        if floor.available:
            r.notes.append(floor.available)
        else:
            r.phase("floor")
            _sync_guard(r, "drain", lambda: r.floor_drains(floor, db, run_))
        run_(r.latencies(target, stub_target, caps))
        if not floor.available:
            r.phase("floor")
            _sync_guard(r, "api", lambda: r.floor_api(floor, db, run_))
        if not args.skip_peers:
            r.peers(admin_dsn, os.environ.get("SPOOLED_BENCH_NO_NODE"))
        run_(r.growth(target, db, None if floor.available else floor))
        run_(db.close())
    finally:
        if r.rss is not None:
            r.rss.stopped.set()
        code = server.stop() if server else None
        if stub:
            stub.stop()
        if embedded is not None:
            embedded.stop()
        loop.close()
    if code not in (0, None):
        say(f"server exited with {code}; its log: {server.log if server else ''}")
    meta = {
        "started": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M"),
        "size": args.size, "seconds": time.monotonic() - t0, "size_params": size,
        "machine": machine_facts(pg_version),
        "server": f"`spooled-backend serve` (its defaults{_envs(args.server_env)}; "
                  f"{r.rss.processes if r.rss else 1} process(es) in its tree) "
                  f"on {'the embedded' if embedded else 'your'} PostgreSQL; "
                  "every figure measured from outside the server process",
        "org": "the bootstrap organization `default` (enterprise plan) with "
               "PLAN_LIMITS_ENABLED=false: no quotas and no organization rate limits throttle "
               "the benchmark",
        "client": "raw asyncio HTTP/1.1 keep-alive (bench/loadclient.py, uvloop), one process; "
                  "its ceiling is the `client ceiling (stub)` column: the same client code "
                  "against bench/stub.py, an in-memory server that does nothing",
        "peers": "PgQueuer 1.6.0 and Procrastinate 3.10.0 (bench/.venv-peers), graphile-worker "
                 "0.16.6 and pg-boss 10.4.2 (bench/node_modules), each in its own process, in "
                 "its own database of the same PostgreSQL; SQL floor: pgbench running our claim "
                 "statement and an array complete",
        "notes": r.notes + [f"consumers without wait_ms sleep {int(poll * 1000)} ms after an "
                            f"empty claim; with it they claim with wait_ms={wait_ms}",
                            "ratios: ours ÷ other; for jobs/s above 1 is better, for latencies "
                            "below 1 is better"],
        "rss": r.rss.summary() if r.rss else None,
    }
    text = "## Benchmark\n\n" + report.render_meta(meta) + "\n" + report.render(r.records, meta)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "records": r.records},
                                                      indent=1, default=str))
    chart = subprocess.run([str(envs.PEERS_PY), str(envs.BENCH / "chart.py"),
                            str(args.out / "results.json"), str(args.out / "chart.png")],
                           capture_output=True, text=True, timeout=120)
    if chart.returncode != 0:
        say(f"chart failed: {chart.stderr[-500:]}")
    print(text)
    print(f"\nWritten: {args.out / 'results.md'}, results.json, chart.png")
    return 0 if code in (0, None) else 1


def _sync_guard(r: Run, section: str, fn) -> None:
    try:
        fn()
    except Exception as exc:
        say(f"floor {section} failed: {exc!r}")
        r.notes.append(f"SQL floor ({section}) failed: {exc!r}"[:300])


def _dsn_parts(dsn: str) -> dict[str, str]:
    u = urlsplit(dsn)
    return {"host": u.hostname or "127.0.0.1", "port": str(u.port or 5432),
            "user": u.username or "postgres", "dbname": u.path.lstrip("/")}


def _envs(items: list[str]) -> str:
    return (", " + ", ".join(items)) if items else ""
