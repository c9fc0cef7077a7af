"""The run's chart (matplotlib, in bench/.venv-peers): python bench/chart.py results.json out.png

Three panels: drain jobs/s per consumer count (log scale) for ours, the peers and the SQL floor;
pickup and delayed-job p99 latency (log scale); server RSS over the run.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PEERS = {"pgqueuer": "PgQueuer", "procrastinate": "Procrastinate",
         "graphile": "graphile-worker", "pgboss": "pg-boss"}


def main(src: str, dst: str) -> None:
    data = json.load(open(src))
    records, meta = data["records"], data["meta"]

    def ok(r: dict) -> bool:
        return r["result"].get("status") == "ok"

    fig, axes = plt.subplots(1, 3, figsize=(18, 6))
    # (a) drain
    ax = axes[0]
    series: dict[str, dict] = {}
    for r in records:
        if r["section"] != "drain" or not ok(r) or r["system"] == "stub":
            continue
        if r["system"] == "ours":
            label = "ours: " + r["variant"].replace("REST, ", "").replace("SpooledWorker, ", "SDK ")
        elif r["system"] == "floor":
            label = "SQL floor (pgbench)"
        else:
            label = PEERS[r["system"]]
        series.setdefault(label, {})[r["param"]] = r["result"]["jobs_per_s"]
    consumers = sorted({p for s in series.values() for p in s})
    width = 0.8 / max(1, len(series))
    for n, (label, values) in enumerate(series.items()):
        xs = [consumers.index(c) + n * width for c in values]
        ax.bar(xs, list(values.values()), width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(consumers))])
    ax.set_xticklabels([f"{c} consumers" for c in consumers])
    ax.set_yscale("log")
    ax.set_ylabel("jobs/s (log)")
    ax.set_title("(a) drain of no-op jobs")
    top = max((v for vals in series.values() for v in vals.values()), default=1)
    ax.set_ylim(top=top * 30)  # room for the legend above the bars
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    # (b), (c) latency p99
    ax = axes[1]
    labels, values = [], []
    for r in records:
        if r["section"] not in ("pickup", "delayed") or not ok(r) or r["system"] in ("stub",):
            continue
        who = "ours" if r["system"] == "ours" else PEERS.get(r["system"], r["system"])
        variant = ""
        if r["system"] == "ours":
            variant = " wait_ms" if "wait_ms" in r["variant"] else " poll"
        what = f"pickup @{r['param']}/s" if r["section"] == "pickup" else "delayed"
        labels.append(f"{what}: {who}{variant}")
        values.append(max(r["result"]["p99"], 0.01))
    ax.barh(range(len(values)), values, color=["tab:blue" if lb.split(": ")[1].startswith("ours")
                                               else "tab:gray" for lb in labels])
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("p99 ms (log)")
    ax.set_title("(b) pickup and (c) delayed-job lateness, p99")
    # RSS
    ax = axes[2]
    rss = (meta.get("rss") or {}).get("samples", [])
    if rss:
        ax.plot([s[0] for s in rss], [s[1] for s in rss])
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("server RSS, MB")
    ax.set_title("server RSS (process tree)")
    m = meta["machine"]
    fig.suptitle(f"Spooled backend vs peers — {meta['started']} UTC, size {meta['size']}, "
                 f"{m['cores']} cores {m['cpu']}, PostgreSQL {m['postgres']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=90)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
