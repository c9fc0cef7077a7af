"""JWT secret strength, slugs, plan limits (CONTRACT §4.2, §7.3, §12.1, §20 D4)."""

from __future__ import annotations

import pytest

from spooled_backend.config import PLACEHOLDER_JWT_SECRET, ConfigError, Settings, jwt_secret_problem
from spooled_backend.organizations.plans import PLAN_LIMITS, TIERS, limits_for, upgrade_tier
from spooled_backend.organizations.service import slug_problem

STRONG = "k3Yq8vT2pLm9Zr4Wx7Nb1Cd6Fg0Hj5Qs"


@pytest.mark.parametrize(
    ("secret", "fragment"),
    [
        (None, "not set"),
        ("", "not set"),
        (PLACEHOLDER_JWT_SECRET, "placeholder"),
        ("short-Secret-1", "shorter than 32"),
        ("ab" * 20, "fewer than 10 distinct"),
        ("x7Q2p9Lm4Zr8Wt1Kb6Nc3Vd5Fg0Hj-development", "development"),
        ("x7Q2p9Lm4Zr8Wt1Kb6Nc3Vd5Fg0Hj-SECRET", "secret"),
        ("x7Q2p9Lm4Zr8Wt1Kb6Nc3Vd5Fg0Hj-Password", "password"),
        ("x7Q2p9Lm4Zr8Wt1Kb6Nc3Vd5Fg0Hj-change-me", "change-me"),
        ("x7Q2p9Lm4Zr8Wt1Kb6Nc3Vd5Fg0Hj-testing", "test"),
        ("x7Q2p9Lm4Zr8Wt1Kb6Nc3Vd5Fg0Hj-demo", "demo"),
    ],
)
def test_jwt_secret_problems(secret: str | None, fragment: str) -> None:
    problem = jwt_secret_problem(secret)
    assert problem is not None and fragment in problem


def test_jwt_secret_ok() -> None:
    assert jwt_secret_problem(STRONG) is None
    assert jwt_secret_problem("0123456789" + "abcdefghij" + "klmnopqrstuv") is None  # 32, 32 distinct


def test_production_refuses_weak_secret_and_development_replaces_it() -> None:
    prod = Settings(_env_file=None, rust_env="production", jwt_secret="weak")  # type: ignore[call-arg]
    with pytest.raises(ConfigError):
        _ = prod.effective_jwt_secret
    staging = Settings(_env_file=None, rust_env="staging", jwt_secret=None)  # type: ignore[call-arg]
    with pytest.raises(ConfigError):
        _ = staging.effective_jwt_secret
    dev = Settings(_env_file=None, rust_env="development", jwt_secret="weak")  # type: ignore[call-arg]
    assert len(dev.effective_jwt_secret) >= 32 and dev.effective_jwt_secret != "weak"
    ok = Settings(_env_file=None, rust_env="production", jwt_secret=STRONG)  # type: ignore[call-arg]
    assert ok.effective_jwt_secret == STRONG


@pytest.mark.parametrize("slug", ["abc", "acme-corp", "a1-b2-c3", "x" * 50, "org2024"])
def test_slug_ok(slug: str) -> None:
    assert slug_problem(slug) is None


@pytest.mark.parametrize(
    ("slug", "fragment"),
    [
        ("ab", "3-50"), ("x" * 51, "3-50"), ("Acme", "lowercase"), ("1abc", "lowercase"),
        ("-abc", "lowercase"), ("abc-", "lowercase"), ("a--b", "lowercase"), ("a_b", "lowercase"),
        ("a b", "lowercase"), ("abc\x00", "lowercase"), ("admin", "reserved"), ("www", "reserved"),
        ("test", "reserved"), ("ab\u00e9", "lowercase"),
    ],
)
def test_slug_problems(slug: str, fragment: str) -> None:
    problem = slug_problem(slug)
    assert problem is not None and fragment in problem


def test_upgrade_tier_chain() -> None:
    assert [upgrade_tier(t) for t in TIERS] == ["starter", "pro", "enterprise", None]
    assert upgrade_tier("deleted") == "starter"
    assert upgrade_tier("bogus") == "starter"


def test_limits_for_tiers_and_fallback() -> None:
    free = limits_for("free")
    assert free["tier"] == "free" and free["display_name"] == "Free"
    assert (free["max_jobs_per_day"], free["max_active_jobs"], free["max_payload_size_bytes"]) == (
        1000, 10, 65_536
    )
    assert limits_for("enterprise")["max_jobs_per_day"] is None
    assert limits_for("enterprise")["max_payload_size_bytes"] == 1_048_576
    assert limits_for("nonsense")["tier"] == "free"
    for tier in TIERS:
        limits = limits_for(tier)
        assert set(limits) == {"tier", *PLAN_LIMITS[tier]}


def test_limits_for_custom_limits_override_only_known_numeric_keys() -> None:
    limits = limits_for(
        "free",
        {"max_queues": 7, "max_workers": None, "tier": "enterprise", "display_name": "X",
         "max_api_keys": "9", "max_schedules": True, "unknown": 1},
    )
    assert limits["max_queues"] == 7
    assert limits["max_workers"] is None
    assert limits["tier"] == "free" and limits["display_name"] == "Free"
    assert limits["max_api_keys"] == 2 and limits["max_schedules"] == 1
    assert "unknown" not in limits
    # the base table is not mutated
    assert PLAN_LIMITS["free"]["max_queues"] == 2


def test_limits_disabled_nulls_quotas_but_keeps_payload_and_retention() -> None:
    limits = limits_for("free", {"max_queues": 3}, enabled=False)
    for key in ("max_jobs_per_day", "max_active_jobs", "max_queues", "max_workers",
                "rate_limit_requests_per_second", "rate_limit_burst"):
        assert limits[key] is None
    assert limits["max_payload_size_bytes"] == 65_536
    assert limits["job_retention_days"] == 3
