"""One data directory, one owner: an exclusive lock on `SPOOLED_DATA_DIR` for the life of the
process that runs its embedded PostgreSQL (`serve`, `migrate`).

Without it a second `serve` on the same directory took the first one's `postmaster.pid` for a
stale one and stopped the first server's database. The lock is `flock` on `<dir>/spooled.lock`
(released by the kernel when the holder dies, even by `kill -9`); the file holds the owner's pid
for the refusal message. Holding the lock also makes "a postmaster.pid is there" mean "an
orphan of a killed server", which the embedded start then stops and replaces.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "spooled.lock"


class DataDirInUse(Exception):
    """Another live process holds the data directory."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"data directory {data_dir} is in use by {who} (a running spooled-backend serve or "
            f"migrate); stop it first, or set SPOOLED_DATA_DIR to another directory"
        )
        self.data_dir = data_dir
        self.pid = pid


@dataclass
class DataDirLock:
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the last descriptor drops the flock
            self.fd = -1


def lock_data_dir(data_dir: Path) -> DataDirLock:
    """Take the exclusive lock or raise DataDirInUse (never waits)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: the holder's pid stays
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        finally:
            os.close(fd)
        raise DataDirInUse(data_dir, int(text) if text.isdigit() else None) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return DataDirLock(path, fd)
