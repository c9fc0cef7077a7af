"""Pure webhook rules: signatures against fixed vectors, SSRF address spellings and resolved
names (resolver stub), retry schedule, formats, queue names of ingested events."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spooled_backend.webhooks import delivery, formats, rules, signing, ssrf

SECRET = "s3cr3t-key"
BODY = b'{"id":"d1","event":"job.completed","data":{"job_id":"j1"}}'


def test_outgoing_signature_fixed_vector() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signing.sign(SECRET, 1700000000, BODY) == f"sha256={expected}"
    # a different timestamp signs differently
    assert signing.sign(SECRET, 1700000001, BODY) != signing.sign(SECRET, 1700000000, BODY)


def test_headers_of_an_attempt() -> None:
    req = delivery.Request(url="https://x.test/", event="job.failed", body={}, secret=SECRET,
                           attempt=3, delivery_id="d1")
    headers = delivery.build_headers(req, BODY, 1700000000)
    assert headers["X-Spooled-Event"] == "job.failed"
    assert headers["X-Spooled-Timestamp"] == "1700000000"
    assert headers["X-Spooled-Delivery-Attempt"] == "3"
    assert headers["X-Spooled-Signature"] == signing.sign(SECRET, 1700000000, BODY)
    unsigned = delivery.build_headers(
        delivery.Request(url="https://x.test/", event="job.failed", body={}), BODY, 1)
    assert "X-Spooled-Signature" not in unsigned


def test_github_signature_fixed_vector() -> None:
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    signing.verify_github(SECRET, BODY, f"sha256={digest}")
    signing.verify_github(SECRET, BODY, f"sha256={digest.upper()}")
    for bad in (None, "", f"sha1={digest}", "sha256=abc", f"sha256={'0' * 64}"):
        with pytest.raises(signing.BadSignature):
            signing.verify_github(SECRET, BODY, bad)
    with pytest.raises(signing.BadSignature):  # one byte changed
        signing.verify_github(SECRET, BODY + b" ", f"sha256={digest}")
    with pytest.raises(signing.BadSignature):
        signing.verify_github("other", BODY, f"sha256={digest}")


def _stripe(secret: str, t: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()


def test_stripe_signature_fixed_vectors_and_window() -> None:
    t = 1_700_000_000
    good = _stripe(SECRET, t, BODY)
    signing.verify_stripe(SECRET, BODY, f"t={t},v1={good}", now=t)
    # any of several v1 values may match (secret rotation)
    signing.verify_stripe(SECRET, BODY, f"t={t},v1={'0' * 64},v1={good}", now=t)
    signing.verify_stripe(SECRET, BODY, f"t={t},v1={good}", now=t + 299)
    signing.verify_stripe(SECRET, BODY, f"t={t},v1={good}", now=t - 59)
    cases = [
        None, "", f"v1={good}", f"t=abc,v1={good}", f"t={t}", f"t={t},v1={'0' * 64}",
        f"t={t + 1},v1={good}",
    ]
    for header in cases:
        with pytest.raises(signing.BadSignature):
            signing.verify_stripe(SECRET, BODY, header, now=t)
    with pytest.raises(signing.BadSignature, match="too old"):
        signing.verify_stripe(SECRET, BODY, f"t={t},v1={good}", now=t + 301)
    with pytest.raises(signing.BadSignature, match="future"):
        signing.verify_stripe(SECRET, BODY, f"t={t},v1={good}", now=t - 61)


def test_tokens_equal() -> None:
    assert signing.tokens_equal("whk_abc", "whk_abc")
    assert not signing.tokens_equal("whk_abc", "whk_abd")
    assert not signing.tokens_equal(None, "whk_abc")
    assert not signing.tokens_equal("whk_abc", None)  # a cleared token refuses all


LOOPBACK_SPELLINGS = [
    "127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0x7f.0.0.1", "0x7f.1",
    "0177.0.0.1", "0177.1", "017700000001", "127.000.000.001", "[::1]", "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]", "[0:0:0:0:0:ffff:127.0.0.1]", "127.0.0.1.",
]
ALWAYS_BLOCKED = [
    "169.254.169.254", "0xa9fea9fe", "2852039166", "[fe80::1]", "[::ffff:169.254.169.254]",
    "224.0.0.1", "[ff02::1]", "0.0.0.0", "0", "0.1.2.3", "240.0.0.1", "255.255.255.255",
    "[::]", "[64:ff9b::a9fe:a9fe]",
]
PRIVATE = [
    "10.0.0.1", "10.1", "012.0.0.1", "0xa.0.0.1", "167772161", "172.16.0.1", "192.168.1.1",
    "100.64.0.1", "[fd00::1]", "[::ffff:10.0.0.1]", "[::ffff:192.168.0.1]", "[2002:c0a8:0101::]",
]
PUBLIC = ["93.184.216.34", "1.1.1.1", "[2606:4700:4700::1111]", "8.8.8.8"]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + ALWAYS_BLOCKED + PRIVATE)
def test_production_refuses_every_spelling(host: str) -> None:
    with pytest.raises(ssrf.BlockedTarget):
        ssrf.check_url(f"https://{host}/hook", production=True)


@pytest.mark.parametrize("host", ALWAYS_BLOCKED)
def test_development_still_refuses_metadata_multicast_reserved(host: str) -> None:
    with pytest.raises(ssrf.BlockedTarget):
        ssrf.check_url(f"http://{host}/hook", production=False)


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS + PRIVATE + ["localhost"])
def test_development_allows_local_receivers(host: str) -> None:
    ssrf.check_url(f"http://{host}:8080/hook", production=False)


@pytest.mark.parametrize("host", PUBLIC + ["example.com", "hooks.slack.com"])
def test_public_targets_pass(host: str) -> None:
    ssrf.check_url(f"https://{host}/hook", production=True)


@pytest.mark.parametrize("url", [
    "http://example.com/", "ftp://example.com/", "https:///nohost", "https://localhost/",
    "https://api.localhost/", "https://metadata.google.internal/", "https://u:p@example.com/",
    "https://example.com:99999/", "javascript:alert(1)",
])
def test_production_url_rules(url: str) -> None:
    with pytest.raises(ssrf.BlockedTarget):
        ssrf.check_url(url, production=True)


def test_parse_ipv4_loose_matches_inet_aton() -> None:
    import socket

    for text in ["127.1", "0x7f.1", "0177.0.0.1", "2130706433", "10.1", "1.2.3", "0xff.0xff.0xff.0xff"]:
        assert ssrf.parse_ipv4_loose(text) == ipaddress.IPv4Address(socket.inet_aton(text))
    for text in ["256.1.1.1", "1.2.3.4.5", "08.1.1.1", "0x", "a.b.c.d", "1..2", "4294967296"]:
        assert ssrf.parse_ipv4_loose(text) is None or text == "0x"


@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_decimal_spelling_is_judged_like_the_dotted_one(n: int) -> None:
    dotted = ipaddress.IPv4Address(n)
    assert ssrf.parse_address(str(n)) == dotted
    assert ssrf.parse_address(hex(n)) == dotted
    assert ssrf.blocked_reason(dotted, True) == ssrf.blocked_reason(
        ipaddress.IPv6Address(f"::ffff:{dotted}"), True)


def stub_resolver(table: dict[str, list[str]]) -> ssrf.Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]

    return resolve


NAMES = {
    "internal.example.com": ["10.0.0.7"],
    "rebind.example.com": ["93.184.216.34", "127.0.0.1"],  # one bad answer is enough
    "metadata.example.com": ["169.254.169.254"],
    "mapped.example.com": ["::ffff:192.168.1.1"],
    "v6local.example.com": ["::1"],
    "good.example.com": ["93.184.216.34", "2606:4700:4700::1111"],
}


@pytest.mark.parametrize("host", [h for h in NAMES if h != "good.example.com"] + ["nxdomain.example"])
async def test_names_resolving_to_forbidden_addresses_are_refused_at_send(host: str) -> None:
    with pytest.raises(ssrf.BlockedTarget):
        await ssrf.resolve_checked(host, 443, True, stub_resolver(NAMES))


async def test_send_connects_to_the_checked_address() -> None:
    assert await ssrf.resolve_checked("good.example.com", 443, True, stub_resolver(NAMES)) == \
        "93.184.216.34"
    assert await ssrf.resolve_checked("mapped.example.com", 443, False, stub_resolver(NAMES)) == \
        "192.168.1.1"


async def test_sender_refuses_before_connecting() -> None:
    """A name resolving to a private address: no connection, a recorded error, no exception."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["10.0.0.7"]

    sender = delivery.Sender(True, resolve=resolve, timeout_secs=1, connect_timeout_secs=1)
    try:
        outcome = await sender.send(delivery.Request(url="https://internal.example.com/x",
                                                     event="job.created", body={}))
    finally:
        await sender.aclose()
    assert calls == ["internal.example.com"]
    assert not outcome.success and outcome.status_code is None
    assert "private address" in (outcome.error or "")
    plain = delivery.Sender(True)
    try:
        outcome = await plain.send(delivery.Request(url="http://example.com/", event="e", body={}))
    finally:
        await plain.aclose()
    assert outcome.error == "Webhook URL must use https"


@given(st.integers(min_value=1, max_value=50))
def test_backoff_schedule(n: int) -> None:
    assert rules.backoff_secs(n) == min(2 ** (n - 1), 32)


def test_backoff_first_values() -> None:
    assert [rules.backoff_secs(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 32, 32]


def test_provider_queue_names() -> None:
    assert rules.provider_queue("github", "pull_request") == "github-pull_request"
    assert rules.provider_queue("stripe", "invoice-paid") == "stripe-invoice-paid"
    assert rules.provider_queue("github", "a b/c") == "github-a-b-c"
    assert rules.provider_queue("github", "x" * 100) == "github-" + "x" * 64


@pytest.mark.parametrize("fmt", ["slack", "discord", "teams", "json"])
def test_formats_render_json_documents(fmt: str) -> None:
    envelope = {"id": "d1", "event": "job.failed", "created_at": "2026-12-01T00:00:00Z",
                "data": {"job_id": "j1", "queue_name": "q", "error": "boom", "result": {"a": 1}}}
    doc = formats.render(fmt, envelope)
    json.dumps(doc)
    if fmt == "json":
        assert doc == envelope
    elif fmt == "slack":
        assert doc["text"] == "Spooled: job.failed (j1)"
    elif fmt == "discord":
        assert doc["embeds"][0]["fields"][0] == {"name": "job_id", "value": "j1", "inline": True}
    else:
        assert doc["@type"] == "MessageCard"
