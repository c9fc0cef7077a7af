"""Token rules of CONTRACT §4.2 (auth/tokens.py): HS256 only, types, times, claim shapes."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from spooled_backend.auth import tokens

SECRET = "Zq8vT2pLm9Kr4Wx7Nb1Cd6Fg0Hj5QsYu3"
LIFE = tokens.Lifetimes.from_hours(24)


def pair(**overrides: object) -> tuple[str, str, str]:
    args: dict[str, object] = {"org_id": "org-1", "api_key_id": "key-1", "queues": ["a", "b"]}
    args.update(overrides)
    return tokens.issue_pair(SECRET, LIFE, **args)  # type: ignore[arg-type]


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_lifetimes_follow_jwt_expiration_hours() -> None:
    assert tokens.Lifetimes.from_hours(24) == tokens.Lifetimes(86400, 2073600)
    assert tokens.Lifetimes.from_hours(1) == tokens.Lifetimes(3600, 86400)


def test_pair_claims_share_session_and_differ_in_type_and_jti() -> None:
    now = int(time.time())
    access, refresh, sid = pair(now=now)
    a = tokens.decode(access, SECRET, expected_type=tokens.ACCESS)
    r = tokens.decode(refresh, SECRET, expected_type=tokens.REFRESH)
    assert a.sid == r.sid == sid
    assert a.jti != r.jti
    assert (a.org_id, a.api_key_id, a.queues) == ("org-1", "key-1", ("a", "b"))
    assert a.iat == a.nbf == now and a.exp == now + 86400
    assert r.exp == now + 2073600
    assert jwt.get_unverified_header(access) == {"alg": "HS256", "typ": "JWT"}
    raw = jwt.decode(access, SECRET, algorithms=["HS256"])
    assert raw["sub"] == raw["org_id"] == "org-1"
    assert raw["token_type"] == "access"
    assert access.startswith("eyJ") and tokens.looks_like_jwt(access)


def test_issue_access_keeps_session_and_gets_new_jti() -> None:
    access, _, sid = pair()
    again = tokens.issue_access(SECRET, LIFE, org_id="org-1", api_key_id="key-1", queues=[], sid=sid)
    first, second = tokens.decode(access, SECRET), tokens.decode(again, SECRET)
    assert second.sid == first.sid and second.jti != first.jti and second.queues == ()


def test_email_claim_is_carried() -> None:
    access, _, _ = pair(email="a@example.com")
    claims = tokens.decode(access, SECRET)
    assert claims.email == "a@example.com"
    assert claims.public()["email"] == "a@example.com"


def test_public_claims_shape_for_validate() -> None:
    access, _, sid = pair()
    public = tokens.decode(access, SECRET).public()
    assert set(public) == {"sub", "org_id", "api_key_id", "iat", "exp", "nbf", "jti", "queues",
                           "token_type", "sid"}
    assert public["sid"] == sid and public["queues"] == ["a", "b"]


def test_wrong_type_is_refused_both_ways() -> None:
    access, refresh, _ = pair()
    with pytest.raises(tokens.TokenError, match="access"):
        tokens.decode(refresh, SECRET, expected_type=tokens.ACCESS)
    with pytest.raises(tokens.TokenError, match="refresh"):
        tokens.decode(access, SECRET, expected_type=tokens.REFRESH)


def test_expired_and_not_yet_valid_are_refused() -> None:
    past = int(time.time()) - 2 * 86400
    access, _, _ = pair(now=past)
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.decode(access, SECRET)
    future = int(time.time()) + 3600
    early, _, _ = pair(now=future)
    with pytest.raises(tokens.TokenError, match="not yet valid"):
        tokens.decode(early, SECRET)


def test_wrong_secret_and_tampering_are_refused() -> None:
    access, _, _ = pair()
    with pytest.raises(tokens.TokenError):
        tokens.decode(access, SECRET + "x")
    header, payload, signature = access.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["org_id"] = claims["sub"] = "org-2"
    with pytest.raises(tokens.TokenError):
        tokens.decode(f"{header}.{b64(claims)}.{signature}", SECRET)


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_alg_none_and_other_algorithms_are_refused() -> None:
    access, _, _ = pair()
    claims = jwt.decode(access, SECRET, algorithms=["HS256"])
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."
    with pytest.raises(tokens.TokenError, match="algorithm"):
        tokens.decode(unsigned, SECRET)
    hs512 = jwt.encode(claims, SECRET + "-long-enough-for-hs512-" * 2, algorithm="HS512")
    with pytest.raises(tokens.TokenError, match="algorithm"):
        tokens.decode(hs512, SECRET)
    # same secret, other HMAC algorithm: still refused (no algorithm confusion)
    hs384 = jwt.encode(claims, SECRET, algorithm="HS384")
    with pytest.raises(tokens.TokenError):
        tokens.decode(hs384, SECRET)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "eyJ",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "eyJ" + "A" * 5000,
        "eyJ\u00e9.\u00e9.\u00e9",
        "not-a-jwt-at-all",
        "eyJhbGciOiJIUzI1NiJ9.%%%.%%%",
    ],
)
def test_malformed_values_raise_token_error_only(value: str) -> None:
    with pytest.raises(tokens.TokenError):
        tokens.decode(value, SECRET)


@pytest.mark.parametrize(
    "change",
    [
        {"org_id": 5},
        {"token_type": "admin"},
        {"queues": "a,b"},
        {"queues": [1, 2]},
        {"exp": "tomorrow"},
        {"sid": 7},
        {"sub": "someone-else"},
    ],
)
def test_signed_but_malformed_claims_are_refused(change: dict[str, object]) -> None:
    access, _, _ = pair()
    claims = jwt.decode(access, SECRET, algorithms=["HS256"])
    claims.update(change)
    forged = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(tokens.TokenError):
        tokens.decode(forged, SECRET)


@pytest.mark.parametrize("missing", ["exp", "nbf", "iat", "jti", "api_key_id", "token_type"])
def test_required_claims(missing: str) -> None:
    access, _, _ = pair()
    claims = jwt.decode(access, SECRET, algorithms=["HS256"])
    del claims[missing]
    with pytest.raises(tokens.TokenError):
        tokens.decode(jwt.encode(claims, SECRET, algorithm="HS256"), SECRET)


def test_tokens_without_sid_are_accepted() -> None:
    access, _, _ = pair()
    claims = jwt.decode(access, SECRET, algorithms=["HS256"])
    del claims["sid"]
    decoded = tokens.decode(jwt.encode(claims, SECRET, algorithm="HS256"), SECRET)
    assert decoded.sid is None and "sid" not in decoded.public()


def test_remaining_seconds() -> None:
    now = int(time.time())
    access, _, _ = pair(now=now)
    claims = tokens.decode(access, SECRET)
    assert claims.remaining_seconds(now) == 86400
    assert claims.remaining_seconds(now + 90000) == 0
