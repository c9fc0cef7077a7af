"""Pure rules of the hot path: the bound BEGIN text, the wake-up bookkeeping, the redaction
pre-check, the fast lane's route matching."""

from __future__ import annotations

import asyncio
import time

import pytest

from spooled_backend.core.fastlane import FastLane
from spooled_backend.core.tenancy import begin_bound
from spooled_backend.jobs.routes import HOT_ROUTES
from spooled_backend.jobs.wakeup import ClaimWakeups
from spooled_backend.observability.redaction import redact_text

ORG = "3f0b8a52-8f7e-4b8e-9a51-2d1f7f1f9c10"
KEY = "9d4c2a1e-5b6f-4c3d-8e7f-0a1b2c3d4e5f"
FP = "0123456789abcdef0123456789abcdef"


def test_begin_bound_text() -> None:
    assert begin_bound(ORG, None) == f"BEGIN; SELECT set_config('app.current_org_id', '{ORG}', true);"
    text = begin_bound(ORG, "spooled_tenant", (KEY, FP))
    assert text == (
        "BEGIN; SELECT set_config('role', 'spooled_tenant', true), "
        f"set_config('app.current_org_id', '{ORG}', true), spooled_check_key('{KEY}', '{FP}');"
    )
    assert "spooled_check_key" not in begin_bound(ORG, None, (KEY, None))  # a JWT: no check


def test_begin_bound_checks_every_key_of_a_coalesced_batch() -> None:
    other = "1d4c2a1e-5b6f-4c3d-8e7f-0a1b2c3d4e5f"
    text = begin_bound(ORG, None, [(KEY, FP), (other, None), (other, FP[::-1])])
    assert text == (
        f"BEGIN; SELECT set_config('app.current_org_id', '{ORG}', true), "
        f"spooled_check_key('{KEY}', '{FP}'), spooled_check_key('{other}', '{FP[::-1]}');"
    )
    with pytest.raises(ValueError):
        begin_bound(ORG, None, [(KEY, FP), ("k'--", FP)])


@pytest.mark.parametrize("org,role,check", [
    ("x'; DROP TABLE jobs; --", None, None),
    ("", None, None),
    (ORG, "postgres", None),
    (ORG, None, ("k' OR '1'='1", FP)),
    (ORG, None, (KEY, "not-hex")),
    (ORG, None, (KEY, FP.upper())),
])
def test_begin_bound_refuses_anything_but_our_ids(org: str, role: str | None,
                                                  check: tuple[str, str] | None) -> None:
    with pytest.raises(ValueError):
        begin_bound(org, role, check)


async def test_wake_counts_oldest_first_and_timeouts() -> None:
    w = ClaimWakeups()
    order: list[int] = []

    async def waiter(i: int, timeout: float) -> None:
        if await w.wait("o", "q", timeout):
            order.append(i)

    tasks = [asyncio.create_task(waiter(i, 1.0)) for i in range(3)]
    await asyncio.sleep(0.01)
    assert w.waiting == 3
    assert w.wake("o", "other") == 0
    assert w.wake("o", "q", 2) == 2
    await asyncio.sleep(0.01)
    assert order == [0, 1]
    w.on_notify("o\tq\t5")
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2] and w.waiting == 0
    started = time.monotonic()
    assert not await w.wait("o", "q", 0.05)
    assert time.monotonic() - started >= 0.045
    assert not await w.wait("o", "q", 0)


async def test_due_timer_keeps_the_earliest_and_wakes_one() -> None:
    w = ClaimWakeups()
    got: list[int] = []

    async def waiter(i: int) -> None:
        if await w.wait("o", "q", 2.0):
            got.append(i)

    tasks = [asyncio.create_task(waiter(i)) for i in range(2)]
    await asyncio.sleep(0.01)
    now = time.time()
    w.on_notify(f"o\tq\t0\t{now + 0.5}")
    w.on_notify(f"o\tq\t0\t{now + 0.1}")  # earlier: replaces the timer
    w.on_notify(f"o\tq\t0\t{now + 0.3}")  # later: ignored
    await asyncio.sleep(0.2)
    assert got == [0]
    w.close()
    await asyncio.gather(*tasks)
    assert got == [0, 1]


def test_redaction_pre_check_keeps_every_pattern() -> None:
    clean = "/api/v1/jobs/3f0b8a52-8f7e-4b8e-9a51-2d1f7f1f9c10/complete"
    assert redact_text(clean) is clean
    for secret, kept in [
        ("Bearer abc.def", "Bearer [REDACTED]"), ("BEARER x", "BEARER [REDACTED]"),
        ("sk_live_abcdefgh", "sk_live_[REDACTED]"), ("sp_test_abcdefgh", "sp_test_[REDACTED]"),
        ("whk_abcdefgh", "whk_[REDACTED]"), ("whsec_abcdefgh", "whsec_[REDACTED]"),
        ("?token=abc&x=1", "?token=[REDACTED]&x=1"), ("&API_KEY=zz", "&API_KEY=[REDACTED]"),
        ("eyJhbGciOi.eyJzdWIiOi.sig", "eyJ[REDACTED]"),
    ]:
        assert kept in redact_text(f"path {secret} end"), secret


def test_fast_lane_matches_only_its_routes() -> None:
    lane = FastLane(HOT_ROUTES)

    def match(method: str, path: str) -> tuple[str, str | None] | None:
        found = lane.match({"method": method, "path": path})
        return None if found is None else (found[0].__name__, found[1])

    assert match("POST", "/api/v1/jobs") == ("create_job", None)
    assert match("POST", "/api/v1/jobs/claim") == ("claim_jobs", None)
    assert match("POST", "/api/v1/jobs/ack") == ("ack_jobs", None)
    assert match("POST", "/api/v1/jobs/abc/complete") == ("complete_job", "abc")
    assert match("POST", "/api/v1/jobs/abc/fail") == ("fail_job", "abc")
    assert match("POST", "/api/v1/jobs/abc/heartbeat") == ("heartbeat_job", "abc")
    for method, path in [("GET", "/api/v1/jobs"), ("GET", "/api/v1/jobs/abc/complete"),
                         ("POST", "/api/v1/jobs/"), ("POST", "/api/v1/jobs//complete"),
                         ("POST", "/api/v1/jobs/abc/retry"), ("POST", "/api/v1/jobs/abc/complete/x"),
                         ("POST", "/api/v1/jobs/bulk"), ("POST", "/api/v1/jobsx")]:
        assert match(method, path) is None, (method, path)


async def test_a_notification_between_claim_and_sleep_is_not_lost() -> None:
    w = ClaimWakeups()
    ticket = w.ticket("o", "q")
    w.on_notify("o\tq\t1")  # arrives while the claimer's (empty) claim is in flight
    started = time.monotonic()
    assert await w.wait("o", "q", 5.0, ticket)  # returns at once: claim again
    assert time.monotonic() - started < 0.5
    assert not await w.wait("o", "q", 0.05, w.ticket("o", "q"))
