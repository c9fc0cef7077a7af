"""The markdown table from the run's records (bench/results/results.json).

A record: {"section", "variant", "param", "system", "result"}; `system` is "ours", "stub"
(the load client's ceiling: the same client code against bench/stub.py), "floor" (pgbench) or a
peer name. Each row of ours shows its figure, the stub ceiling, the best peer at the same
parameter, and the ratios to the best peer and to the SQL floor.
"""

from __future__ import annotations

import math
from typing import Any

PEERS = {"pgqueuer": "PgQueuer", "procrastinate": "Procrastinate",
         "graphile": "graphile-worker", "pgboss": "pg-boss"}

SECTIONS = [
    ("drain", "(a) drain no-op jobs, jobs/s (higher is better)", "consumers", "rate"),
    ("pickup", "(b) pickup latency with idle consumers, ms p50 / p95 / p99 (lower is better)",
     "jobs/s", "latency"),
    ("delayed", "(c) delayed jobs: lateness after scheduled_at, ms p50 / p95 / p99", "jobs",
     "latency"),
    ("api", "(d) API latency at a fixed open-loop arrival rate, ms p50 / p95 / p99", "call",
     "latency"),
    ("growth", "(e) claim latency (limit 1, sequential) with finished jobs retained, "
     "ms p50 / p95 / p99", "retained", "latency"),
]


def ok(result: dict | None) -> bool:
    return bool(result) and result.get("status") == "ok"


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:.1f}"


def fmt_ms(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def cell(result: dict | None, kind: str) -> str:
    if result is None:
        return "–"
    if not ok(result):
        return result.get("status", "–")
    if kind == "rate":
        text = fmt_rate(result["jobs_per_s"])
        if result.get("capped"):
            text += f" ({result['completed']:,} jobs in {result['seconds']:.1f} s)"
        return text
    text = " / ".join(fmt_ms(result.get(p)) for p in ("p50", "p95", "p99"))
    missing = [k for k in ("picked",) if k in result and result[k] < result.get(
        "sent", result.get("due", result[k]))]
    if missing:
        text += f" ({result['picked']}/{result.get('sent', result.get('due'))} picked)"
    return text


def ratio(ours: dict | None, other: dict | None, kind: str) -> str:
    if not (ok(ours) and ok(other)):
        return "–"
    if kind == "rate":
        a, b = ours["jobs_per_s"], other["jobs_per_s"]
        return f"{a / b:.2f}×" if b else "–"
    parts = []
    for p in ("p50", "p99"):
        a, b = ours.get(p), other.get(p)
        parts.append(f"{a / b:.2f}×" if a is not None and b and not math.isnan(a) else "–")
    return " / ".join(parts)


def best(results: list[tuple[str, dict]], kind: str) -> tuple[str, dict] | None:
    good = [(s, r) for s, r in results if ok(r)]
    if not good:
        return None
    if kind == "rate":
        return max(good, key=lambda sr: sr[1]["jobs_per_s"])
    return min(good, key=lambda sr: sr[1].get("p99") or math.inf)


def render(records: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    def find(section: str, system: str, param: Any, variant: str | None = None) -> dict | None:
        for r in records:
            if (r["section"], r["system"], r["param"]) == (section, system, param) and (
                    variant is None or r["variant"] == variant):
                return r["result"]
        return None

    lines: list[str] = []
    for section, title, param_name, kind in SECTIONS:
        ours = [r for r in records if r["section"] == section and r["system"] == "ours"]
        if not ours:
            continue
        lines += [f"### {title}", "",
                  f"| ours | {param_name} | figure | client ceiling (stub) | best peer "
                  f"| × best peer{' (p50 / p99)' if kind != 'rate' else ''} | SQL floor "
                  f"| × floor{' (p50 / p99)' if kind != 'rate' else ''} |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in ours:
            stub = find(section, "stub", r["param"], r["variant"])
            floor = find(section, "floor", r["param"])
            peers = [(PEERS[s], find(section, s, r["peer_param"] if "peer_param" in r
                                     else r["param"])) for s in PEERS]
            top = best([(n, p) for n, p in peers if p is not None], kind)
            top_cell = f"{top[0]} {cell(top[1], kind)}" if top else "–"
            lines.append(
                f"| {r['variant']} | {r['param_label'] if 'param_label' in r else r['param']} "
                f"| {cell(r['result'], kind)} | {cell(stub, kind)} | {top_cell} "
                f"| {ratio(r['result'], top[1] if top else None, kind)} | {cell(floor, kind)} "
                f"| {ratio(r['result'], floor, kind)} |")
        lines.append("")
    # Every peer's own figures, beside ours.
    peer_rows = []
    for section, _title, _, kind in SECTIONS:
        params: list[Any] = []
        for r in records:
            if r["section"] == section and r["system"] in PEERS and r["param"] not in params:
                params.append(r["param"])
        for param in params:
            cells = [cell(find(section, s, param), kind) for s in PEERS]
            peer_rows.append(f"| {section} | {param} | " + " | ".join(cells) + " |")
    if peer_rows:
        lines += ["### Peers, same run", "",
                  "| workload | param | " + " | ".join(PEERS.values()) + " |",
                  "|---|---|" + "---|" * len(PEERS)] + peer_rows + [""]
    rss = meta.get("rss")
    if rss:
        lines += [f"Server RSS (whole process tree, sampled every {rss['interval_s']} s): "
                  f"max {rss['max_mb']:.0f} MB during the drains, max {rss['max_all_mb']:.0f} MB "
                  f"over the run, {rss['start_mb']:.0f} MB at start.", ""]
    return "\n".join(lines)


def render_meta(meta: dict[str, Any]) -> str:
    m = meta["machine"]
    lines = [
        f"Run {meta['started']} UTC, size `{meta['size']}`, {meta['seconds']:.0f} s. "
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']:.0f} GiB, load average "
        f"{m['loadavg']} at start; PostgreSQL {m['postgres']}; Python {m['python']}; "
        f"Node {m['node']}.",
        f"Server: {meta['server']}.",
        f"Organization: {meta['org']}.",
        f"Load client: {meta['client']}.",
        f"Peers: {meta['peers']}.",
    ]
    if meta.get("notes"):
        lines += [f"Notes: {n}" for n in meta["notes"]]
    return "\n".join(lines) + "\n"
