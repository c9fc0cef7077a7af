"""The real server as a user starts it: `spooled-backend serve` in a subprocess.

No DATABASE_URL, so it starts the embedded PostgreSQL in `SPOOLED_DATA_DIR/postgres`; loopback
ports only. Used by the e2e suite.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support import free_port

__all__ = ["BIN", "ServerFailed", "ServerProcess", "free_port"]

BIN = Path(sys.executable).parent / "spooled-backend"  # the venv's console script

# Variables of the developer's shell that would change what the server does.
_SCRUBBED = (
    "DATABASE_URL",
    "DATABASE_DIRECT_URL",
    "REDIS_URL",
    "RUST_ENV",
    "ADMIN_API_KEY",
    "METRICS_TOKEN",
    "JWT_SECRET",
    "SPOOLED_BOOTSTRAP_ORG",
)


class ServerFailed(AssertionError):
    """The server did not come up, or did not stop cleanly; carries its output."""


@dataclass
class ServerProcess:
    """One `spooled-backend serve` process over `data_dir`.

    `redis_url=None` leaves REDIS_URL unset. `env` adds variables (e.g. DEFAULT_PLAN_TIER).
    Each `start()` picks fresh ports; the data dir (and so the database) is kept across restarts.
    """

    data_dir: Path
    redis_url: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    command: list[str] = field(default_factory=lambda: [str(BIN), "serve"])
    port: int = 0
    metrics_port: int = 0
    grpc_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    runs: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "postgres" / "pgdata" / "postmaster.pid"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "initial-api-key"

    def bootstrap_key(self) -> str:
        return self.key_file.read_text().strip()

    def output(self) -> str:
        """Everything this run printed (stdout and stderr interleaved)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
        env.update(
            SPOOLED_DATA_DIR=str(self.data_dir),
            HOST="127.0.0.1",
            PORT=str(self.port),
            METRICS_PORT=str(self.metrics_port),
            GRPC_PORT=str(self.grpc_port),
            PYTHONUNBUFFERED="1",
        )
        if self.redis_url is not None:
            env["REDIS_URL"] = self.redis_url
        env.update(self.env)
        return env

    def start(self, timeout: float = 120.0) -> None:
        """Start and wait (bounded) until GET /health answers `healthy`.

        Raises ServerFailed with the server output if it exits or is not healthy in time.
        """
        assert self.proc is None, "already running"
        if not Path(self.command[0]).exists():
            raise ServerFailed(f"{self.command[0]} not found: run with the project's venv python")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port, self.metrics_port, self.grpc_port = free_port(), free_port(), free_port()
        self.runs += 1
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-run{self.runs}.log"
        with self.log_path.open("wb") as out:
            # cwd = data dir so a developer's ./.env is not read.
            self.proc = subprocess.Popen(
                self.command, cwd=self.data_dir, env=self._environment(),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise ServerFailed(
                        f"server exited with {self.proc.returncode} before it was healthy:\n"
                        + self.output()
                    )
                try:
                    resp = client.get(f"{self.base_url}/health")
                    if resp.status_code == 200 and resp.json().get("status") == "healthy":
                        return
                    last = f"{resp.status_code} {resp.text}"
                except httpx.HTTPError as exc:
                    last = repr(exc)
                time.sleep(0.1)
        self.kill()
        raise ServerFailed(f"server not healthy after {timeout}s ({last}):\n" + self.output())

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait (bounded); returns the exit code. Raises ServerFailed on a hang."""
        assert self.proc is not None, "not running"
        proc, self.proc = self.proc, None
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc = proc
            self.kill()
            raise ServerFailed(f"server did not exit {timeout}s after SIGTERM:\n" + self.output())

    def kill(self) -> None:
        """Last resort for a failed start or stop: SIGKILL our own process, then stop the
        embedded PostgreSQL it may have left behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None
        if self.pid_file.exists():
            from spooled_backend.db.embedded import EmbeddedPostgres

            embedded = EmbeddedPostgres(self.data_dir / "postgres")
            embedded._prepare_user()
            embedded.stop()
