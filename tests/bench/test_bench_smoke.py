"""`python bench/run.py --size smoke` on a fresh temporary PostgreSQL: every row of the table is
there, every peer ran, and the chart was drawn. Speed is never asserted (a shared 2-core
machine); what is asserted is that the command works end to end, as the coordinator will run it
with `--size full`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PEERS = ("pgqueuer", "procrastinate", "graphile", "pgboss")
OURS_DRAIN = (
    "REST, claim 100 + one complete per job",
    "REST, claim 100 + batch ack",
    "SpooledWorker, poll_interval=1.0 (default)",
    "SpooledWorker, poll_interval=0.01",
    "gRPC ProcessJobs",
)
# Until they exist on the server these rows say why, in the cell.
MAY_BE_NA = ("batch ack", "wait_ms", "gRPC")
NODE = shutil.which("node") is not None  # without Node the two Node peers' cells say so


def peer_ok(system: str, result: dict) -> bool:
    if not NODE and system in ("graphile", "pgboss"):
        return result["status"].startswith("n/a (node")
    return result["status"] == "ok"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--size", "smoke",
                           "--out", str(out)], capture_output=True, text=True, timeout=540,
                          cwd=REPO, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-5000:]
    print(proc.stdout)  # the table, in the CI log
    data = json.loads((out / "results.json").read_text())
    return data, (out / "results.md").read_text(), out


def results(data: dict, section: str, system: str) -> list[dict]:
    return [r for r in data["records"] if r["section"] == section and r["system"] == system]


def assert_ran(record: dict) -> None:
    status = record["result"]["status"]
    if any(word in record["variant"] for word in MAY_BE_NA):
        assert status == "ok" or status.startswith("n/a ("), record
    else:
        assert status == "ok", record


@pytest.mark.timeout(600)
def test_every_drain_row(smoke: tuple[dict, str, Path]) -> None:
    data, _, _ = smoke
    consumers = data["meta"]["size_params"]["consumers"]
    assert consumers == [1, 8, 32]
    ours = results(data, "drain", "ours")
    assert {(r["variant"], r["param"]) for r in ours} == {
        (v, c) for v in OURS_DRAIN for c in consumers}
    for r in ours:
        assert_ran(r)
        if r["result"]["status"] == "ok":
            assert r["result"]["completed"] > 0
    grpc = [r for r in ours if r["variant"] == "gRPC ProcessJobs"]
    assert all(r["result"]["status"] == "n/a (gRPC not yet implemented)" for r in grpc)
    for system in ("stub", "floor", *PEERS):
        rows = results(data, "drain", system)
        assert {r["param"] for r in rows} == set(consumers), system
        for r in rows:
            assert peer_ok(system, r["result"]), r
            if r["result"]["status"] == "ok":
                assert r["result"]["jobs_per_s"] > 0, r


@pytest.mark.timeout(600)
def test_every_latency_row(smoke: tuple[dict, str, Path]) -> None:
    data, _, _ = smoke
    size = data["meta"]["size_params"]
    for section, params in (("pickup", size["pickup_rates"]), ("delayed", [size["delayed_jobs"]])):
        ours = results(data, section, "ours")
        assert {r["param"] for r in ours} == set(params)
        assert len(ours) == 2 * len(params)  # with and without wait_ms
        for r in ours:
            assert_ran(r)
            if r["result"]["status"] == "ok":
                assert r["result"]["n"] > 0 and r["result"]["p99"] >= r["result"]["p50"] >= 0
        for system in ("stub", *PEERS):
            rows = results(data, section, system)
            assert {r["param"] for r in rows} == set(params), (section, system)
            for r in rows:
                assert peer_ok(system, r["result"]), r
                if r["result"]["status"] == "ok":
                    assert r["result"]["n"] > 0, r
    for system in ("ours", "stub", "floor"):
        assert {r["param"] for r in results(data, "api", system)} == {
            "create", "claim", "complete"}
        assert all(r["result"]["status"] == "ok" for r in results(data, "api", system))
    for peer in PEERS:
        rows = results(data, "api", peer)
        assert len(rows) == 1 and peer_ok(peer, rows[0]["result"]), rows
    for system in ("ours", "floor"):
        rows = results(data, "growth", system)
        assert [r["param"] for r in rows] == size["growth"]
        assert all(r["result"]["status"] == "ok" for r in rows)


@pytest.mark.timeout(600)
def test_table_chart_and_facts(smoke: tuple[dict, str, Path]) -> None:
    data, table, out = smoke
    for heading in ("(a) drain", "(b) pickup", "(c) delayed", "(d) API latency",
                    "(e) claim latency", "Peers, same run"):
        assert heading in table
    assert "client ceiling (stub)" in table and "× best peer" in table and "× floor" in table
    assert "PLAN_LIMITS_ENABLED=false" in table
    machine = data["meta"]["machine"]
    assert machine["cores"] >= 1 and machine["postgres"] and machine["python"]
    assert data["meta"]["rss"]["max_mb"] > 0
    png = (out / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
