"""Pure organization rules: slug generation, plan limits, usage warnings, admin limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spooled_backend.admin.service import check_custom_limits
from spooled_backend.core.errors import ValidationFailed
from spooled_backend.organizations.plans import limits_for, upgrade_tier
from spooled_backend.organizations.quotas import feature_error, quota_error
from spooled_backend.organizations.service import slug_problem
from spooled_backend.organizations.slugs import slugify
from spooled_backend.organizations.usage import warnings_for


@given(st.text(max_size=300))
def test_slugify_always_yields_a_valid_slug_shape(name: str) -> None:
    slug = slugify(name)
    problem = slug_problem(slug)
    assert problem is None or problem == "This slug is reserved", (name, slug, problem)
    assert 3 <= len(slug) <= 50


def test_slugify_examples() -> None:
    assert slugify("Acme, Inc.") == "acme-inc"
    assert slugify("2fast") == "org-2fast"
    assert slugify("ab") == "ab-org"
    assert slugify("---") == "org"
    assert slugify("a" * 49 + "-b") == "a" * 49  # cut, trailing hyphen trimmed


def test_upgrade_path_and_limits() -> None:
    assert [upgrade_tier(t) for t in ("free", "starter", "pro", "enterprise")] == [
        "starter", "pro", "enterprise", None,
    ]
    assert limits_for("bogus")["tier"] == "free"
    custom = limits_for("pro", {"max_queues": 3, "max_workers": None, "display_name": "x"})
    assert custom["max_queues"] == 3 and custom["max_workers"] is None
    assert custom["display_name"] == "Pro"
    off = limits_for("free", None, enabled=False)
    assert off["max_jobs_per_day"] is None and off["max_payload_size_bytes"] == 65536


def test_error_bodies() -> None:
    body = quota_error(limits_for("pro"), "schedules", 50, 50).body()
    assert body == {
        "error": "limit_exceeded", "code": "QUOTA_EXCEEDED",
        "message": "schedules limit reached (50/50). Upgrade to enterprise for higher limits.",
        "resource": "schedules", "current": 50, "limit": 50, "plan": "pro",
        "upgrade_to": "enterprise",
    }
    top = quota_error(limits_for("enterprise", {"max_queues": 1}), "queues", 1, 1).body()
    assert "upgrade_to" not in top and top["message"] == "queues limit reached (1/1)."
    feature = feature_error(limits_for("free"), "workflows")
    assert feature.status == 403 and feature.body()["feature"] == "workflows"


def test_warning_thresholds() -> None:
    def entry(cur: int, lim: int | None) -> dict[str, object]:
        pct = None if not lim else cur * 100.0 / lim
        return {"current": cur, "limit": lim, "percentage": pct, "is_disabled": lim == 0}

    usage = {"jobs_today": entry(500, 1000), "active_jobs": entry(10, 10), "queues": entry(1, 10),
             "workers": entry(0, 0)}
    free = {w["resource"]: w["severity"] for w in warnings_for("free", usage)}
    assert free == {"jobs_per_day": "warning", "active_jobs": "critical"}
    pro = {w["resource"]: w["severity"] for w in warnings_for("pro", usage)}
    assert pro == {"active_jobs": "critical"}


def test_custom_limits_validation() -> None:
    assert check_custom_limits(None) is None and check_custom_limits({}) is None
    assert check_custom_limits({"max_queues": 0, "max_workers": None}) == {
        "max_queues": 0, "max_workers": None,
    }
    for bad in ([1], "x", {"nope": 1}, {"max_queues": -1}, {"max_queues": True},
                {"max_queues": 1.0}, {"max_queues": 10**13}, {"display_name": 1}):
        with pytest.raises(ValidationFailed):
            check_custom_limits(bad)
