"""One pure-ASGI edge layer (no BaseHTTPMiddleware): request hygiene of CONTRACT §1–§3.

`EdgeMiddleware` does, in this order, what used to be six stacked middlewares (each with its own
`send` wrapper, 8 wrappers per response message in the drain's profile): request id, security
headers, X-API-Version (400 on an unsupported one), access log, last-resort 500 → CORS → body
size limit (413) → per-IP rate limits of public/admin routes and `X-RateLimit-*`
(ratelimit/middleware.py) → gzip → 30 s timeout (408) → the application. One `send` wrapper
adds every header; CORS and gzip (Starlette's) are entered only when the request has an
`Origin` / accepts gzip, since they do nothing else but add `Vary`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid

import structlog
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spooled_backend.config import Settings
from spooled_backend.core.errors import PayloadTooLarge
from spooled_backend.core.fastlane import FastLane
from spooled_backend.core.responses import encode
from spooled_backend.observability import metrics, tracing
from spooled_backend.observability.redaction import redact_text
from spooled_backend.ratelimit import rules
from spooled_backend.ratelimit.clientip import client_ip
from spooled_backend.ratelimit.middleware import STATE_KEY, route_rules, send_rate_limited
from spooled_backend.ratelimit.rules import Decision

log = structlog.get_logger(__name__)

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
API_VERSION_RE = re.compile(r"^[A-Za-z0-9.]{1,16}$")
SUPPORTED_API_VERSIONS = frozenset({"1"})
MAX_BODY_BYTES = 5 * 1024 * 1024
GZIP_MINIMUM_BYTES = 1024
QUIET_PATHS = ("/health", "/metrics")  # probes and scrapes: no access-log line
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-xss-protection", b"1; mode=block"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"permissions-policy", b"accelerometer=(), camera=(), geolocation=(), microphone=()"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains; preload")
EXPOSED_HEADERS = [
    "X-Request-Id", "X-API-Version", "X-Has-More", "Retry-After", "X-RateLimit-Limit",
    "X-RateLimit-Remaining", "X-RateLimit-Reset", "X-RateLimit-Scope",
]
PRODUCTION_CORS_HEADERS = [
    "Authorization", "Content-Type", "X-API-Key", "X-Request-Id", "X-Admin-Key", "X-Organization-Id",
]


async def send_json(send: Send, status: int, body: dict[str, object],
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A complete JSON response (the contract's error bodies)."""
    data = encode(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode())] + (headers or []),
    })
    await send({"type": "http.response.body", "body": data})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def unsupported_api_version(raw: str | None) -> str | None:
    """The version to refuse (400), or None. Values that are not ≤16 chars of `[A-Za-z0-9.]`
    are treated as version 1 (CONTRACT §2)."""
    if raw is None:
        return None
    value = raw.strip()
    if not API_VERSION_RE.match(value) or value in SUPPORTED_API_VERSIONS:
        return None
    return value


class EdgeMiddleware:
    """Everything between the server and the application (module docstring)."""

    def __init__(self, app: ASGIApp, settings: Settings, fastlane: FastLane | None = None) -> None:
        self.app = app
        self.fastlane = fastlane
        self.settings = settings
        self.security_headers = SECURITY_HEADERS + ([HSTS] if settings.enable_hsts else [])
        self.max_bytes = MAX_BODY_BYTES
        self.timeout_secs = settings.request_timeout_secs
        self.gzip = GZipMiddleware(self._timed, minimum_size=GZIP_MINIMUM_BYTES)
        if settings.is_production:
            self.cors = CORSMiddleware(
                self._limited, allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
                allow_headers=PRODUCTION_CORS_HEADERS, expose_headers=EXPOSED_HEADERS, max_age=600,
            )
        else:
            self.cors = CORSMiddleware(
                self._limited, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"],
                expose_headers=EXPOSED_HEADERS, max_age=600,
            )

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"Request body exceeds the {self.max_bytes} byte limit", extra={"limit": self.max_bytes}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = origin = accept = declared = version_header = None
        for key, value in scope["headers"]:
            if key == b"x-request-id":
                incoming = value.decode("latin-1")
            elif key == b"origin":
                origin = value
            elif key == b"accept-encoding":
                accept = value
            elif key == b"content-length":
                declared = value
            elif key == b"x-api-version":
                version_header = value.decode("latin-1")
        request_id = incoming if incoming and REQUEST_ID_RE.match(incoming) else str(uuid.uuid4())
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        path = scope["path"]
        api = path.startswith("/api/")
        scope["spooled.gzip"] = accept is not None and b"gzip" in accept
        scope["spooled.declared"] = declared
        started = time.perf_counter()
        status = 0
        extra_headers = [(b"x-request-id", request_id.encode())]
        if api:
            extra_headers.append((b"x-api-version", b"1"))
        extra_headers.extend(self.security_headers)
        if origin is None:
            extra_headers.append((b"vary", b"Origin"))  # what CORS adds to an origin-less request
        deadline: asyncio.Timeout | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, deadline
            if message["type"] == "http.response.start":
                status = message["status"]
                scope["spooled.started"] = True
                headers = list(message.get("headers", ()))
                decision = state.get(STATE_KEY)
                if isinstance(decision, Decision):
                    existing = {name.lower() for name, _ in headers}
                    headers.extend(h for h in decision.raw_headers() if h[0] not in existing)
                if any(k == b"content-security-policy" for k, _ in headers):
                    # a page with its own policy (the offline /docs and /redoc)
                    headers.extend(h for h in extra_headers if h[0] != b"content-security-policy")
                else:
                    headers.extend(extra_headers)
                message["headers"] = headers
                if tracing.ENABLED:  # before the response ends the server span
                    tracing.name_http_span(scope["method"], getattr(scope.get("route"), "path", None))
                if deadline is not None:
                    timer, deadline = deadline, None
                    with contextlib.suppress(RuntimeError):  # already expired or left
                        timer.reschedule(None)  # the 408 clock stops once the response starts
            await send(message)

        try:
            version = unsupported_api_version(version_header) if api else None
            if version is not None:
                await send_json(send_wrapper, 400, {
                    "code": "BAD_REQUEST",
                    "message": f"Unsupported API version '{version}'; supported versions: 1",
                })
            else:
                try:
                    if self.timeout_secs > 0:
                        async with asyncio.timeout(self.timeout_secs) as deadline:
                            await self._route(origin, scope, receive, send_wrapper)
                    else:
                        await self._route(origin, scope, receive, send_wrapper)
                except TimeoutError:
                    timer, deadline = deadline, None
                    if status or timer is None or not timer.expired():
                        raise
                    log.warning("request timed out", path=redact_text(path),
                                seconds=self.timeout_secs)
                    await send_json(send_wrapper, 408, {
                        "code": "REQUEST_TIMEOUT",
                        "message": f"Request did not complete within {self.timeout_secs:g} seconds",
                    })
        except Exception as exc:  # last resort: a 5xx with the contract body
            log.error("unhandled error", path=path, request_id=request_id, exc_info=exc)
            if status == 0:
                await send_json(send_wrapper, 500, {"code": "INTERNAL_ERROR",
                                                    "message": "Internal server error"})
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            metrics.observe_request(scope["method"], route, status, elapsed)
            if not path.startswith(QUIET_PATHS):
                query = scope.get("query_string", b"")
                auth = state.get("auth")
                access_log(scope["method"], path, query, status, elapsed, request_id,
                           getattr(auth, "organization_id", None))
            structlog.contextvars.clear_contextvars()

    async def _route(self, origin: bytes | None, scope: Scope, receive: Receive, send: Send) -> None:
        if origin is not None:
            await self.cors(scope, receive, send)
        else:
            await self._limited(scope, receive, send)

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Body size limit (413), public per-IP rate limits (429), gzip, the application."""
        declared = scope["spooled.declared"]
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, self._too_large().body(), [(b"connection", b"close")])
            return
        if await self._public_rate_limit(scope, send):
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        try:
            if scope["spooled.gzip"]:
                await self.gzip(scope, limited_receive, send)
            else:
                await self._timed(scope, limited_receive, send)
        except PayloadTooLarge as exc:
            if scope.get("spooled.started"):
                raise
            await send_json(send, 413, exc.body(), [(b"connection", b"close")])

    async def _timed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The application: a hot route (core/fastlane.py) or FastAPI's router."""
        hot = self.fastlane.match(scope) if self.fastlane is not None else None
        if hot is not None:
            await self.fastlane.serve(hot[0], hot[1], scope, receive, send)  # type: ignore[union-attr]
        else:
            await self.app(scope, receive, send)

    async def _public_rate_limit(self, scope: Scope, send: Send) -> bool:
        """Per-IP limits of public and admin routes (ratelimit/middleware.py); True when a 429
        was sent."""
        services = getattr(getattr(scope.get("app"), "state", None), "services", None)
        limiter = getattr(services, "rate_limiter", None)
        if services is None or limiter is None or scope["method"] == "OPTIONS":
            return False
        settings = services.settings
        applicable = route_rules(
            scope["method"], scope["path"],
            settings.rate_limit_requests_per_second, settings.rate_limit_burst_size,
        )
        if not applicable:
            return False
        ip = client_ip(scope, settings.trusted_client_ip_header, settings.trusted_proxy_hops)
        decision = rules.tightest(await limiter.check([(r, ip) for r in applicable]))
        if decision is not None and not decision.allowed:
            await send_rate_limited(send, decision)
            return True
        scope["state"][STATE_KEY] = decision
        return False


def access_log(method: str, path: str, query: bytes, status: int, elapsed: float,
               request_id: str, organization_id: str | None) -> None:
    """One access-log line; redaction of path and query happens here (cheap when clean)."""
    log.info(
        "request",
        method=method,
        path=redact_text(path),
        query=redact_text("?" + query.decode("latin-1")) if query else None,
        status=status,
        duration_ms=round(elapsed * 1000, 2),
        request_id=request_id,
        organization_id=organization_id,
        _redacted=True,  # path and query above; the rest are numbers and our own ids
    )


def install(app: ASGIApp, settings: Settings, hot_routes: dict | None = None) -> None:  # type: ignore[type-arg]
    """Add the edge layer (the only middleware); `hot_routes` are served by the fast lane."""
    fastlane = FastLane(hot_routes) if hot_routes else None
    app.add_middleware(EdgeMiddleware, settings=settings, fastlane=fastlane)  # type: ignore[attr-defined]
