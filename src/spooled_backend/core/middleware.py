"""Pure-ASGI middleware (no BaseHTTPMiddleware): request hygiene of CONTRACT §1–§3.

Order, outermost first (`install`): request context (request id, security headers,
X-API-Version, access log, last-resort 500) → CORS → body size limit (413) → rate limits and
`X-RateLimit-*` (ratelimit/middleware.py) → gzip → 30 s timeout (408) → the application.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import structlog
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spooled_backend.config import Settings
from spooled_backend.core.errors import PayloadTooLarge
from spooled_backend.core.responses import encode
from spooled_backend.observability import metrics, tracing
from spooled_backend.observability.redaction import redact_text
from spooled_backend.ratelimit.middleware import RateLimitMiddleware

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


class RequestContextMiddleware:
    """Request id (echoed or generated), security headers on every response, `X-API-Version`
    (validated; `1` on /api/ responses), a redacted access log, and a contract-shaped 500 when
    something below fails before responding."""

    def __init__(self, app: ASGIApp, enable_hsts: bool = False) -> None:
        self.app = app
        self.security_headers = SECURITY_HEADERS + ([HSTS] if enable_hsts else [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and REQUEST_ID_RE.match(incoming) else str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        api = scope["path"].startswith("/api/")
        started = time.perf_counter()
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                if api:
                    headers.append((b"x-api-version", b"1"))
                if any(k == b"content-security-policy" for k, _ in headers):
                    # a page with its own policy (the offline /docs and /redoc)
                    headers.extend(h for h in self.security_headers
                                   if h[0] != b"content-security-policy")
                else:
                    headers.extend(self.security_headers)
                message["headers"] = headers
                if tracing.ENABLED:  # before the response ends the server span
                    tracing.name_http_span(scope["method"], getattr(scope.get("route"), "path", None))
            await send(message)

        try:
            version = unsupported_api_version(_header(scope, b"x-api-version")) if api else None
            if version is not None:
                await send_json(send_wrapper, 400, {
                    "code": "BAD_REQUEST",
                    "message": f"Unsupported API version '{version}'; supported versions: 1",
                })
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # last resort: a 5xx with the contract body
            log.error("unhandled error", path=scope["path"], request_id=request_id, exc_info=exc)
            if status == 0:
                await send_json(send_wrapper, 500, {"code": "INTERNAL_ERROR",
                                                    "message": "Internal server error"})
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            metrics.observe_request(scope["method"], route, status, elapsed)
            query = scope.get("query_string", b"").decode("latin-1")
            if not scope["path"].startswith(QUIET_PATHS):
                auth = scope["state"].get("auth")
                log.info(
                    "request",
                    method=scope["method"],
                    path=redact_text(scope["path"]),
                    query=redact_text("?" + query) if query else None,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                    request_id=request_id,
                    organization_id=getattr(auth, "organization_id", None),
                )
            structlog.contextvars.clear_contextvars()


class BodyLimitMiddleware:
    """413 PAYLOAD_TOO_LARGE over `max_bytes`: at once from `Content-Length`, and while a
    streamed (chunked) body is read (the read raises PayloadTooLarge, rendered as 413)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _error(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"Request body exceeds the {self.max_bytes} byte limit", extra={"limit": self.max_bytes}
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            err = self._error()
            await send_json(send, 413, err.body(), [(b"connection", b"close")])
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._error()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge as exc:
            if started:
                raise
            await send_json(send, 413, exc.body(), [(b"connection", b"close")])


class TimeoutMiddleware:
    """408 REQUEST_TIMEOUT when no response has started within `seconds` (CONTRACT §2).
    Once the response starts (streams, SSE) the clock stops; websockets are not timed."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        started = False
        try:
            async with asyncio.timeout(self.seconds) as deadline:

                async def tracking_send(message: Message) -> None:
                    nonlocal started
                    if message["type"] == "http.response.start" and not started:
                        started = True
                        deadline.reschedule(None)
                    await send(message)

                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if started or not deadline.expired():
                raise
            log.warning("request timed out", path=redact_text(scope["path"]), seconds=self.seconds)
            await send_json(send, 408, {
                "code": "REQUEST_TIMEOUT",
                "message": f"Request did not complete within {self.seconds:g} seconds",
            })


def install(app: ASGIApp, settings: Settings) -> None:
    """Add the middleware stack (Starlette: the last added is the outermost)."""
    add = app.add_middleware  # type: ignore[attr-defined]
    add(TimeoutMiddleware, seconds=settings.request_timeout_secs)
    add(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES)
    add(RateLimitMiddleware)
    add(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    if settings.is_production:
        add(CORSMiddleware, allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=PRODUCTION_CORS_HEADERS, expose_headers=EXPOSED_HEADERS, max_age=600)
    else:
        add(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS, max_age=600)
    add(RequestContextMiddleware, enable_hsts=settings.enable_hsts)
