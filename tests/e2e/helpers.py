"""Bounded waiting and a worker running in a thread, for the e2e tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from spooled.client import SpooledClient
from spooled.worker import SpooledWorker

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T], done: Callable[[T], bool], *, timeout: float, what: str
) -> T:
    """Call `probe` every 0.1 s until `done(value)`; AssertionError with the last value after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {value!r}")
        time.sleep(0.1)
        value = probe()
    return value


@contextmanager
def running_worker(
    client: SpooledClient,
    queue_name: str,
    handler: Callable[[Any], Any],
    **options: Any,
) -> Iterator[tuple[SpooledWorker, list[tuple[str, Any]]]]:
    """`SpooledWorker` started in a thread; yields (worker, events seen). On exit: `stop()`,
    the thread must end within 20 s and no worker `error` event may have been emitted."""
    worker = SpooledWorker(client, queue_name=queue_name, **options)
    worker.process(handler)
    events: list[tuple[str, Any]] = []
    for name in ("started", "error", "job:completed", "job:failed", "job:lease_lost", "stopped"):
        worker.on(name)(lambda data, name=name: events.append((name, data)))  # type: ignore[misc]
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.start()
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"worker-{queue_name}", daemon=True)
    thread.start()
    wait_for(lambda: worker.state, lambda s: s in ("running", "error"), timeout=15,
             what="worker to start")
    try:
        yield worker, events
    finally:
        worker.stop()
        thread.join(timeout=20)
        assert not thread.is_alive(), "worker thread did not stop"
    assert not failure, failure
    errors = [data for name, data in events if name == "error"]
    assert not errors, f"worker error events: {errors}"
