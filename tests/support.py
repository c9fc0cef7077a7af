"""Test plumbing shared by the suites: real PostgreSQL (embedded wheel) and real Redis."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throwaway `redis-server` (Debian package) on a free loopback port, no persistence."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError("redis-server did not start")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


class PgBouncer:
    """A throwaway PgBouncer (Debian package) in transaction mode in front of `pg_port`, on a
    free loopback port: any database and role, no prepared-statement support (asyncpg's
    statement cache must be off behind it). Runs as `run_as` when started by root (PgBouncer
    refuses to run as root)."""

    def __init__(self, workdir: Path, pg_port: int, run_as: str | None = None) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise RuntimeError("pgbouncer is not installed (apt-get install pgbouncer)")
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "pgbouncer.ini"
        (workdir / "userlist.txt").write_text('"postgres" ""\n')
        config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={pg_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            # trust like the embedded server; roles the tests create are looked up with
            # auth_query, so each client keeps its own login role (RLS tests depend on it)
            "auth_type = trust\n"
            f"auth_file = {workdir / 'userlist.txt'}\n"
            "auth_user = postgres\n"
            "pool_mode = transaction\n"
            "max_client_conn = 2000\n"
            "default_pool_size = 40\n"
            "server_reset_query =\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {workdir / 'pgbouncer.log'}\n"
            "admin_users = postgres\n"
        )
        if run_as is not None:
            import pwd

            entry = pwd.getpwnam(run_as)
            for path in (workdir, config, workdir / "userlist.txt"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.proc = subprocess.Popen([binary, str(config)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, user=run_as)
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"pgbouncer did not start: {(workdir / 'pgbouncer.log').read_text()}")

    def url(self, direct_url: str) -> str:
        """The same database through this PgBouncer."""
        head, _, tail = direct_url.rpartition("@")
        database = tail.split("/", 1)[1]
        return f"{head}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
