"""The real `spooled-backend` process as an operator meets it (issue 7 §2 header cap, §3, §4, §6):
one owner per data directory, recovery after `kill -9`, the errors the deployment guide
promises, the line with the bound addresses, and the 431 for oversized request heads."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import SERVER_ENV, stop_cleanly
from tests.e2e.server import BIN, ServerProcess, free_port


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "DATABASE_DIRECT_URL", "REDIS_URL", "RUST_ENV")}
    return subprocess.run([str(BIN), *args], env={**base, **env}, cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def _pid_alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped by init counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def _error_lines(text: str) -> list[str]:
    """stderr without the development-mode JWT warning."""
    return [ln for ln in text.splitlines() if ln.strip() and "JWT_SECRET" not in ln]


def test_header_cap_answers_431_and_keeps_serving(server_without_redis: ServerProcess) -> None:
    """A 10 MiB Authorization header: 431 with the contract's error body, read by the client
    before the connection closes; 60 KiB heads still pass; the server keeps serving."""
    base = server_without_redis.base_url
    with httpx.Client(timeout=30) as client:
        started = time.monotonic()
        huge = client.get(f"{base}/api/v1/jobs", headers={"Authorization": "Bearer " + "a" * 10 * 2**20})
        assert huge.status_code == 431
        assert huge.headers["content-type"] == "application/json"
        assert huge.json() == {"code": "REQUEST_HEADER_FIELDS_TOO_LARGE",
                               "message": "Request headers exceed the limit of 65536 bytes"}
        assert time.monotonic() - started < 10
        # many headers adding up past the cap are the same case
        many = {f"x-h{i}": "v" * 1000 for i in range(80)}
        assert client.get(f"{base}/health", headers=many).status_code == 431
        fine = client.get(f"{base}/api/v1/jobs", headers={"Authorization": "Bearer " + "a" * 60_000})
        assert fine.status_code == 401 and fine.json()["code"] == "UNAUTHORIZED"
        assert client.get(f"{base}/health").json()["status"] == "healthy"
    # raw socket: the answer arrives even while the client is still sending
    with socket.create_connection(("127.0.0.1", server_without_redis.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 200_000)
        head = sock.recv(200)
    assert head.startswith(b"HTTP/1.1 431 ")


def test_listening_line_shows_the_bound_addresses(server_without_redis: ServerProcess) -> None:
    out = server_without_redis.output()
    lines = [ln for ln in out.splitlines() if ln.startswith("Listening: ")]
    s = server_without_redis
    assert lines == [
        f"Listening: REST http://127.0.0.1:{s.port} · metrics http://127.0.0.1:{s.metrics_port}/metrics"
    ], out
    assert httpx.get(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=5).status_code == 200


def test_one_owner_per_data_dir_and_recovery_after_kill_9(tmp_path: Path) -> None:
    """A second `serve` or `migrate` on a data dir in use refuses with one line and leaves the
    first server working; after `kill -9` the orphaned PostgreSQL is stopped and replaced on
    the next start, with the data kept."""
    data = tmp_path / "data"
    first = ServerProcess(data, redis_url=None, env=dict(SERVER_ENV))
    first.start()
    try:
        assert first.proc is not None
        key = first.bootstrap_key()
        job = httpx.post(f"{first.base_url}/api/v1/jobs", timeout=10,
                         headers={"Authorization": f"Bearer {key}"},
                         json={"queue_name": "keep", "payload": {"n": 1}}).json()["id"]
        env = {"SPOOLED_DATA_DIR": str(data), "PORT": str(free_port()),
               "METRICS_PORT": str(free_port()), "HOST": "127.0.0.1"}
        expected = (f"Error: data directory {data} is in use by pid {first.proc.pid} "
                    "(a running spooled-backend serve or migrate); stop it first, or set "
                    "SPOOLED_DATA_DIR to another directory")
        for command in (["serve"], ["migrate"]):
            done = _run(command, env, tmp_path)
            assert done.returncode == 1, (command, done.stdout, done.stderr)
            assert _error_lines(done.stderr) == [expected], done.stderr
            assert "Traceback" not in done.stdout + done.stderr
        health = httpx.get(f"{first.base_url}/health", timeout=5).json()
        assert health["status"] == "healthy" and health["database"] is True

        # kill -9: the embedded PostgreSQL is orphaned (still running)
        postmaster = int(first.pid_file.read_text().split()[0])
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        first.proc = None
        assert _pid_alive(postmaster)

        first.start()
        assert _gone(postmaster), "the orphan must be stopped by the next start"
        new_postmaster = int(first.pid_file.read_text().split()[0])
        assert new_postmaster != postmaster and _pid_alive(new_postmaster)
        got = httpx.get(f"{first.base_url}/api/v1/jobs/{job}", timeout=10,
                        headers={"Authorization": f"Bearer {key}"})
        assert got.status_code == 200 and got.json()["status"] == "pending"
    finally:
        if first.proc is not None:
            stop_cleanly(first)
        else:
            first.kill()
    # the lock went with the server: migrate works now (and refuses nothing)
    done = _run(["migrate"], {"SPOOLED_DATA_DIR": str(data)}, tmp_path)
    assert done.returncode == 0 and "Migrations applied." in done.stdout, done.stderr
    assert not first.pid_file.exists()


def test_unreachable_database_is_two_lines_and_exit_1(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://spooled:secret-pw@127.0.0.1:{port}/spooled"
    for command in (["serve"], ["migrate"]):
        done = _run(command, {"DATABASE_URL": url, "SPOOLED_DATA_DIR": str(tmp_path / "d")},
                    tmp_path)
        assert done.returncode == 1, (command, done.stderr)
        lines = _error_lines(done.stderr)
        assert lines[0] == f"Error: Failed to connect to database at 127.0.0.1:{port} (database 'spooled')"
        assert len(lines) == 2 and lines[1].startswith("  cause: ConnectionRefusedError: ")
        assert "Traceback" not in done.stderr and "secret-pw" not in done.stderr + done.stdout
    done = _run(["migrate"], {"DATABASE_URL": "postgresql://u@no-such-host.invalid:5432/db"},
                tmp_path)
    lines = _error_lines(done.stderr)
    assert done.returncode == 1 and lines[0] == (
        "Error: Failed to connect to database at no-such-host.invalid:5432 (database 'db')"
    )
    assert len(lines) == 2 and lines[1].startswith("  cause: gaierror: ")


def test_bad_rust_env_is_one_line(tmp_path: Path) -> None:
    for command in (["serve"], ["migrate"]):
        done = _run(command, {"RUST_ENV": "bogus", "SPOOLED_DATA_DIR": str(tmp_path / "d")},
                    tmp_path)
        assert done.returncode == 2
        assert _error_lines(done.stderr) == [
            "Error: invalid RUST_ENV='bogus': RUST_ENV must be development, staging or production"
        ], done.stderr
    assert not (tmp_path / "d" / "postgres").exists()
