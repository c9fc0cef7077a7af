"""Pure billing rules: Stripe-Signature verification window, plan mapping, return URLs."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from spooled_backend.billing.service import origin_of
from spooled_backend.billing.signature import BadSignature, verify
from spooled_backend.billing.webhook import plan_for
from spooled_backend.config import Settings

SECRET = "whsec_unit"
BODY = b'{"id":"evt_1","type":"invoice.paid"}'
NOW = 1_800_000_000


def header(ts: int, *macs: str) -> str:
    return ",".join([f"t={ts}", *(f"v1={m}" for m in macs)])


def mac(ts: int, body: bytes = BODY, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("age", [0, 1, 299, 300])
def test_accepts_up_to_300_seconds_old(age: int) -> None:
    ts = NOW - age
    verify(BODY, header(ts, mac(ts)), SECRET, now=NOW)


@pytest.mark.parametrize("skew", [1, 59, 60])
def test_accepts_up_to_60_seconds_ahead(skew: int) -> None:
    ts = NOW + skew
    verify(BODY, header(ts, mac(ts)), SECRET, now=NOW)


@pytest.mark.parametrize("ts", [NOW - 301, NOW - 10_000, NOW + 61, NOW + 3600])
def test_refuses_outside_the_window(ts: int) -> None:
    with pytest.raises(BadSignature):
        verify(BODY, header(ts, mac(ts)), SECRET, now=NOW)


def test_any_v1_may_match() -> None:
    good = mac(NOW)
    verify(BODY, header(NOW, "00" * 32, good, "ff" * 32), SECRET, now=NOW)
    with pytest.raises(BadSignature):
        verify(BODY, header(NOW, "00" * 32, "ff" * 32), SECRET, now=NOW)


@pytest.mark.parametrize(
    "value",
    [None, "", "t=", "v1=abc", f"t=x,v1={'0' * 64}", f"t={NOW}", "t=1,t=2", "x" * 5000],
)
def test_malformed_headers(value: str | None) -> None:
    with pytest.raises(BadSignature):
        verify(BODY, value, SECRET, now=NOW)


def test_body_and_secret_are_bound() -> None:
    with pytest.raises(BadSignature):
        verify(BODY + b"\n", header(NOW, mac(NOW)), SECRET, now=NOW)
    with pytest.raises(BadSignature):
        verify(BODY, header(NOW, mac(NOW, secret="other")), SECRET, now=NOW)
    with pytest.raises(BadSignature):
        verify(b"\xff\xfe", header(NOW, mac(NOW, b"\xff\xfe")), SECRET, now=NOW)


def test_plan_for() -> None:
    s = Settings(_env_file=None, stripe_starter_price_id="p_s", stripe_pro_price_id="p_p")  # type: ignore[call-arg]
    assert plan_for(s, "active", ["p_p"]) == "pro"
    assert plan_for(s, "trialing", ["p_s"]) == "starter"
    assert plan_for(s, "past_due", ["p_s", "p_p"]) == "pro"
    assert plan_for(s, "active", ["other"]) is None
    assert plan_for(s, "incomplete", ["p_p"]) is None
    for terminal in ("canceled", "unpaid", "incomplete_expired"):
        assert plan_for(s, terminal, ["p_p"]) == "free"
    unset = Settings(_env_file=None)  # type: ignore[call-arg]
    assert plan_for(unset, "active", ["p_p"]) is None


def test_origin_of() -> None:
    assert origin_of("https://App.Example.com/x?y") == ("https", "https://app.example.com")
    assert origin_of("https://a.example.com:8443/") == ("https", "https://a.example.com:8443")
    assert origin_of("http://[::1]:3000/") == ("http", "http://[::1]:3000")
    for bad in ("ftp://a.example.com", "//a.example.com", "https://", "https://u:p@a.example.com",
                "https://a.example.com:70000", "not a url"):
        assert origin_of(bad) is None, bad
