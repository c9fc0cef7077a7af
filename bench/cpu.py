"""CPU seconds used by the server process, its PostgreSQL and the benchmark itself.

On a shared 2-core machine throughput depends on what else runs; CPU per job does much less,
so the tables report both. Read from /proc (Linux); on other systems every reading is 0.
"""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, user+system CPU seconds) of `pid`, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


class CpuMeter:
    """`snapshot()` → {"server": s, "postgres": s, "bench": s}; PostgreSQL is the postmaster and
    its children (backends of exited connections drop out, so keep pools open over a phase)."""

    def __init__(self, server_pid: int | None, postmaster_pid: int | None) -> None:
        self.server_pid = server_pid
        self.postmaster_pid = postmaster_pid

    def _postgres(self) -> float:
        if self.postmaster_pid is None or not Path("/proc").is_dir():
            return 0.0
        total = 0.0
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                stat = _stat(int(entry.name))
                if stat and (int(entry.name) == self.postmaster_pid or stat[0] == self.postmaster_pid):
                    total += stat[1]
        return total

    def snapshot(self) -> dict[str, float]:
        server = _stat(self.server_pid) if self.server_pid else None
        own = _stat(os.getpid())
        return {
            "server": server[1] if server else 0.0,
            "postgres": self._postgres(),
            "bench": own[1] if own else 0.0,
        }


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before[k] for k in before}
