"""Pure-ASGI rate limiting for public and admin routes (per client IP), and the
`X-RateLimit-*` headers on every rate-limited response (CONTRACT §2, §12.4).

Protected routes are limited per organization / API key after authentication (see
`ratelimit.tenant`, called from `core.deps.require_auth`); their decision is left in
`scope["state"]["rate_limit"]` and this middleware writes the headers. A 429 from here is sent
before the application sees the request: nothing was done.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spooled_backend.core.responses import encode
from spooled_backend.ratelimit import rules
from spooled_backend.ratelimit.clientip import client_ip
from spooled_backend.ratelimit.rules import Decision, Rule

STATE_KEY = "rate_limit"
API = "/api/v1"
JOBS = f"{API}/jobs"
# Public routes of CONTRACT §12.4 (auth, email, signup, org create, slug helpers, webhooks).
PUBLIC_AUTH = frozenset(
    f"{API}/auth/{p}"
    for p in ("login", "refresh", "validate", "email/start", "email/verify", "check-email",
              "email/check", "signup/complete")
)
SLUG_HELPERS = frozenset({f"{API}/organizations/check-slug", f"{API}/organizations/generate-slug"})


def route_rules(method: str, path: str, settings_rps: int, settings_burst: int) -> list[Rule]:
    """The per-IP rules for this request (empty for protected and unlimited routes)."""
    if path.startswith(JOBS):  # the job routes (the hot path) are all protected
        return []
    if path == f"{API}/admin" or path.startswith(f"{API}/admin/"):
        return [rules.ADMIN_IP]
    if path in PUBLIC_AUTH:
        public = rules.public_ip(settings_rps, settings_burst)
        if path.endswith(("/check-email", "/email/check")):
            return [public, *rules.CHECK_EMAIL_IP]
        return [public]
    if path in SLUG_HELPERS:
        public = rules.public_ip(settings_rps, settings_burst)
        return [public, *rules.CHECK_SLUG_IP] if path.endswith("check-slug") else [public]
    if ((path == f"{API}/organizations" and method == "POST")
            or path == f"{API}/billing/webhook"
            or (path.startswith(f"{API}/webhooks/")
                and path.rsplit("/", 1)[-1] in ("custom", "github", "stripe"))):
        return [rules.public_ip(settings_rps, settings_burst)]
    return []


async def send_rate_limited(send: Send, decision: Decision) -> None:
    """Write the contract's 429 (RATE_LIMIT_EXCEEDED + Retry-After + X-RateLimit-*)."""
    body = encode(decision.error_body())
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 429,
                "headers": headers + decision.raw_headers()})
    await send({"type": "http.response.body", "body": body})


class RateLimitMiddleware:
    """Per-IP limits before the app; `X-RateLimit-*` headers on the way out."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services = getattr(getattr(scope.get("app"), "state", None), "services", None)
        limiter = getattr(services, "rate_limiter", None)
        state: dict[str, object] = scope.setdefault("state", {})
        if services is not None and limiter is not None and scope["method"] != "OPTIONS":
            settings = services.settings
            applicable = route_rules(
                scope["method"], scope["path"],
                settings.rate_limit_requests_per_second, settings.rate_limit_burst_size,
            )
            if applicable:
                ip = client_ip(scope, settings.trusted_client_ip_header, settings.trusted_proxy_hops)
                decision = rules.tightest(await limiter.check([(r, ip) for r in applicable]))
                if decision is not None and not decision.allowed:
                    await send_rate_limited(send, decision)
                    return
                state[STATE_KEY] = decision

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = state.get(STATE_KEY)
                if isinstance(decision, Decision):
                    existing = {name.lower() for name, _ in message.get("headers", [])}
                    extra = [h for h in decision.raw_headers() if h[0] not in existing]
                    message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
