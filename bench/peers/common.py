"""Shared by the Python peer drivers (they run in bench/.venv-peers)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from bench.ours import open_loop, percentiles

__all__ = ["emit", "open_loop", "percentiles", "spec", "wait_until"]


def spec() -> dict[str, Any]:
    return json.loads(sys.argv[1])


def emit(task: dict[str, Any], result: dict[str, Any]) -> None:
    print("RESULT " + json.dumps({"task": task, "result": result}), flush=True)


async def wait_until(predicate, timeout: float, step: float = 0.01) -> bool:
    import asyncio

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True
