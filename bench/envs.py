"""The benchmark's environments, installed on first use (stdlib only: runs before any venv).

* `.venv` — the project's own venv (`pip install -e '.[test]'`: the server, the official SDK);
* `bench/.venv-peers` — PgQueuer, Procrastinate, matplotlib, psutil (bench/requirements-peers.txt),
  never project dependencies;
* `bench/node_modules` — graphile-worker and pg-boss (`npm ci` from bench/package-lock.json).

Each is reinstalled only when its requirements file changed (a copy is kept next to it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
PROJECT_PY = REPO / ".venv" / "bin" / "python"
PEERS_VENV = BENCH / ".venv-peers"
PEERS_PY = PEERS_VENV / "bin" / "python"
NODE_MODULES = BENCH / "node_modules"


def _say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], cwd: Path = REPO, timeout: float = 900) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SystemExit(f"[bench] {' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n"
                         f"{proc.stderr[-2000:]}")


def _stale(marker: Path, source: Path) -> bool:
    return not marker.exists() or marker.read_bytes() != source.read_bytes()


def ensure_project() -> None:
    """The project's venv, (re)installed when pyproject.toml changed since the last install."""
    marker = REPO / ".venv" / ".bench-installed-pyproject.toml"
    pyproject = REPO / "pyproject.toml"
    if PROJECT_PY.exists() and not _stale(marker, pyproject):
        return
    if not PROJECT_PY.exists():
        _say("creating .venv (the project, with the official SDK)")
        _run([sys.executable, "-m", "venv", str(REPO / ".venv")])
    _say("installing the project into .venv (pip install -e '.[test]')")
    _run([str(PROJECT_PY), "-m", "pip", "install", "-q", "-e", ".[test]"])
    shutil.copyfile(pyproject, marker)


def ensure_peers() -> None:
    req = BENCH / "requirements-peers.txt"
    marker = PEERS_VENV / ".installed-requirements"
    if PEERS_PY.exists() and not _stale(marker, req):
        return
    _say("installing the Python peers into bench/.venv-peers")
    if not PEERS_PY.exists():
        _run([sys.executable, "-m", "venv", str(PEERS_VENV)])
    _run([str(PEERS_PY), "-m", "pip", "install", "-q", "-r", str(req)])
    shutil.copyfile(req, marker)


def ensure_node() -> str | None:
    """None when ready, else why the Node peers cannot run."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm not installed"
    lock = BENCH / "package-lock.json"
    marker = NODE_MODULES / ".installed-package-lock.json"
    if NODE_MODULES.exists() and not _stale(marker, lock):
        return None
    _say("installing the Node peers into bench/node_modules (npm ci)")
    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BENCH)
    shutil.copyfile(lock, marker)
    return None


def ensure_all() -> str | None:
    ensure_project()
    ensure_peers()
    return ensure_node()
