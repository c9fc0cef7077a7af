"""Sending one webhook request: body per format, signing headers, SSRF-pinned connection,
bounded time and bounded response reading (CONTRACT §10.2, §10.4).

One `Sender` per process holds an httpx client over an httpcore pool whose network backend is
`ssrf.PinnedBackend` (resolve once, check, connect to the checked address). Redirects are not
followed, proxies from the environment are not used, at most `RESPONSE_READ_BYTES` of a reply
are read (a 50 MB answer costs 64 KiB), and the whole exchange has a deadline, so a receiver
that hangs or drips can never hold a delivery slot longer than `total_timeout_secs`.
Every failure becomes an `Outcome` with an `error` text; nothing here raises.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from spooled_backend.webhooks import formats, rules, signing, ssrf

USER_AGENT = "Spooled-OutgoingWebhook/1.0"
TEST_USER_AGENT = "Spooled-WebhookTest/1.0"


@dataclass(frozen=True)
class Request:
    url: str
    event: str
    body: dict[str, Any]  # the envelope (or the test document)
    fmt: str = "json"
    secret: str | None = None
    attempt: int = 1
    delivery_id: str | None = None
    user_agent: str = USER_AGENT


@dataclass(frozen=True)
class Outcome:
    success: bool
    status_code: int | None
    response_body: str | None
    error: str | None
    elapsed_ms: int
    timestamp: int


def encode_body(fmt: str, body: dict[str, Any]) -> bytes:
    document = formats.render(fmt, body)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def build_headers(request: Request, body: bytes, timestamp: int) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": request.user_agent,
        "X-Spooled-Event": request.event,
        "X-Spooled-Timestamp": str(timestamp),
        "X-Spooled-Delivery-Attempt": str(request.attempt),
    }
    if request.delivery_id is not None:
        headers["X-Spooled-Delivery-Id"] = request.delivery_id
    if request.secret:
        headers["X-Spooled-Signature"] = signing.sign(request.secret, timestamp, body)
    return headers


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for part in self._stream:
            yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class PinnedTransport(httpx.AsyncBaseTransport):
    """httpx transport over an httpcore pool with the SSRF-pinning network backend."""

    def __init__(self, backend: ssrf.PinnedBackend, max_connections: int) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=min(max_connections, 32),
            keepalive_expiry=30.0,
            network_backend=backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,  # type: ignore[arg-type]
            extensions=request.extensions,
        )
        response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class Sender:
    """Sends webhook requests (module docstring). `resolve` is replaceable for tests."""

    def __init__(
        self,
        production: bool,
        *,
        resolve: ssrf.Resolver = ssrf.system_resolve,
        timeout_secs: float = 10.0,
        connect_timeout_secs: float = 5.0,
        max_connections: int = 64,
    ) -> None:
        self.production = production
        self.total_timeout_secs = timeout_secs + connect_timeout_secs
        self.client = httpx.AsyncClient(
            transport=PinnedTransport(ssrf.PinnedBackend(production, resolve), max_connections),
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(timeout_secs, connect=connect_timeout_secs),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, request: Request) -> Outcome:
        """POST `request`; the outcome of this one attempt (never raises)."""
        timestamp = int(time.time())
        started = time.monotonic()

        def outcome(
            success: bool, status: int | None, text: str | None, error: str | None
        ) -> Outcome:
            elapsed = int((time.monotonic() - started) * 1000)
            return Outcome(success, status, text, error, elapsed, timestamp)

        try:
            ssrf.check_url(request.url, self.production)
        except ssrf.BlockedTarget as exc:
            return outcome(False, None, None, str(exc))
        body = encode_body(request.fmt, request.body)
        headers = build_headers(request, body, timestamp)
        try:
            async with asyncio.timeout(self.total_timeout_secs):
                async with self.client.stream(
                    "POST", request.url, content=body, headers=headers
                ) as response:
                    received = bytearray()
                    async for chunk in response.aiter_raw():
                        received += chunk
                        if len(received) >= rules.RESPONSE_READ_BYTES:
                            break
                    status = response.status_code
        except ssrf.BlockedTarget as exc:
            return outcome(False, None, None, str(exc))
        except (TimeoutError, httpx.TimeoutException, httpcore.TimeoutException):
            return outcome(False, None, None, "Request timed out")
        except (httpx.HTTPError, httpcore.ConnectError, httpcore.NetworkError) as exc:
            return outcome(False, None, None, f"Request failed: {_describe(exc)}")
        except (httpcore.ProtocolError, httpx.InvalidURL, ssl.SSLError, OSError) as exc:
            return outcome(False, None, None, f"Request failed: {_describe(exc)}")
        text = bytes(received[: rules.RESPONSE_BODY_CHARS * 4]).decode("utf-8", "replace")
        text = text[: rules.RESPONSE_BODY_CHARS].replace("\x00", "")
        if 200 <= status < 300:
            return outcome(True, status, text, None)
        error = f"HTTP {status}"
        if 300 <= status < 400:
            error += " (redirects are not followed)"
        return outcome(False, status, text, error)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
