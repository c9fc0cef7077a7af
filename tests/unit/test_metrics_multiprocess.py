"""Several server processes: prometheus-client multiprocess mode sums their counters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

INCREMENT = """
from spooled_backend.observability import metrics
metrics.JOBS_ENQUEUED.inc(queue="mp", organization="o")
metrics.observe_request("GET", "/api/v1/jobs", 200, 0.003)
"""
RENDER = """
from spooled_backend.observability import metrics
print(metrics.render().decode())
"""


def _run(code: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    return out.stdout


def test_two_processes_aggregate(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _run(INCREMENT, env)
    _run(INCREMENT, env)
    text = _run(RENDER, env)
    assert 'spooled_jobs_enqueued_total{organization="",queue="mp"} 2.0' in text
    assert 'spooled_api_requests_total{method="GET",route="/api/v1/jobs",status="2xx"} 2.0' in text
    assert "spooled_api_request_duration_seconds_bucket" in text
