"""Webhook signatures, both directions (CONTRACT §10.2, §7.13).

* Outgoing: `X-Spooled-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` over
  the exact body bytes sent, with `X-Spooled-Timestamp: <unix seconds>`; every attempt is
  signed afresh with its own timestamp.
* GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>` (GitHub docs,
  "Validating webhook deliveries"): the HMAC covers the exact bytes received, compared in
  constant time.
* Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]` over `"<t>.<raw body>"`, any `v1`
  may match, at most 300 s old and 60 s in the future — the billing webhook's verifier
  (billing/signature.py, the official `stripe` library's HMAC check) with the organization's
  own secret.
"""

from __future__ import annotations

import hashlib
import hmac

from spooled_backend.billing import signature as stripe_signature

BadSignature = stripe_signature.BadSignature
MAX_HEADER_CHARS = 4096


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>")."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def github_signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, body), as GitHub sends it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_github(secret: str, body: bytes, header: str | None) -> None:
    """Raise BadSignature unless `header` is GitHub's signature of `body` with `secret`."""
    if not header:
        raise BadSignature("Missing X-Hub-Signature-256 header")
    if len(header) > MAX_HEADER_CHARS:
        raise BadSignature("X-Hub-Signature-256 header too long")
    scheme, _, digest = header.strip().partition("=")
    if scheme.lower() != "sha256" or len(digest) != 64:
        raise BadSignature("X-Hub-Signature-256 must be 'sha256=<64 hex digits>'")
    expected = github_signature(secret, body)
    if not hmac.compare_digest(expected.encode(), ("sha256=" + digest.lower()).encode()):
        raise BadSignature("X-Hub-Signature-256 does not match the body")


def verify_stripe(secret: str, body: bytes, header: str | None, now: float | None = None) -> None:
    """Raise BadSignature unless `header` is a fresh Stripe signature of `body` (module doc)."""
    stripe_signature.verify(body, header, secret, now=now)


def tokens_equal(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of a webhook token; a missing token on either side is False."""
    if not given or not expected:
        return False
    return hmac.compare_digest(
        hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest()
    )
