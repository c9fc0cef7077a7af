"""`Stripe-Signature` verification for the billing webhook (CONTRACT §7.4).

`t=<unix>,v1=<hex>[,v1=…]`: HMAC-SHA256 with the endpoint secret over `"{t}.{raw body}"`; any
matching `v1` is accepted (secret rotation sends several). The timestamp must be at most 300 s
old and at most 60 s in the future. The HMAC check is the official `stripe` library's; the
future bound is ours (the library only checks age).
"""

from __future__ import annotations

import time

import stripe

TOLERANCE_PAST_SECS = 300
TOLERANCE_FUTURE_SECS = 60


class BadSignature(Exception):
    """The request is not a genuine, fresh Stripe delivery (→ 401)."""


def _timestamp(header: str) -> int:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                break
    raise BadSignature("Stripe-Signature has no valid timestamp")


def verify(raw_body: bytes, header: str | None, secret: str, now: float | None = None) -> None:
    """Raise BadSignature unless `header` signs `raw_body` with `secret` within the window.

    `now` (Unix seconds) is for tests; the library's own age check uses the real clock, so the
    window is checked here explicitly as well.
    """
    if not header:
        raise BadSignature("Missing Stripe-Signature header")
    if len(header) > 4096:
        raise BadSignature("Stripe-Signature header too long")
    try:
        payload = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadSignature("Body is not UTF-8") from None
    stamp = _timestamp(header)
    current = time.time() if now is None else now
    if stamp < current - TOLERANCE_PAST_SECS:
        raise BadSignature("Stripe-Signature timestamp is too old")
    if stamp > current + TOLERANCE_FUTURE_SECS:
        raise BadSignature("Stripe-Signature timestamp is in the future")
    try:
        stripe.WebhookSignature.verify_header(payload, header, secret, tolerance=None)
    except stripe.SignatureVerificationError as exc:
        raise BadSignature(str(exc).split(".")[0]) from None
