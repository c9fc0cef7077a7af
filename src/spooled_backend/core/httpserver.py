"""The HTTP/1.1 protocol `serve` runs: uvicorn's httptools protocol with a cap on request heads.

httptools buffers a header of any size before handing it over, so without a cap a 10 MiB
`Authorization` header is read, parsed and passed to the app. Here the request line plus headers
of one request may take at most `MAX_HEAD_BYTES` (64 KiB, above what browsers and SDKs send);
past that the server answers 431 with the contract's error body and closes the connection.
The bytes of a head still arriving are counted chunk by chunk, so at most one read chunk beyond
the cap is ever buffered; a head that completes inside one chunk is measured exactly.
"""

from __future__ import annotations

import asyncio
import socket

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from spooled_backend.core.responses import encode

MAX_HEAD_BYTES = 64 * 1024
TOO_LARGE_CODE = "REQUEST_HEADER_FIELDS_TOO_LARGE"
DISCARD_MAX_BYTES = 64 * 1024 * 1024
DISCARD_SECS = 10.0


class _HeadTooLarge(Exception):
    pass


def too_large_response(limit: int = MAX_HEAD_BYTES) -> bytes:
    """The complete 431 response (status line, headers, JSON error body of CONTRACT §3.1)."""
    body = encode({"code": TOO_LARGE_CODE,
                   "message": f"Request headers exceed the limit of {limit} bytes"})
    head = (
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "x-content-type-options: nosniff\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class CorkedWrites:
    """The response cycle's view of its connection: the writes of one event-loop step leave in
    one `send` instead of one each.

    uvicorn writes a response's head and its body separately, and uvloop sends each at once:
    two system calls (and often two TCP segments) per response, ~7 % of a per-job request's
    CPU in the issue-8 profile. Here the first write of a step schedules a flush for the end of
    the step (`call_soon`); what follows in the same step joins it. A streamed response (SSE)
    still gets its head at once, at the end of the step that sent it. Only the cycle writes
    through this; the protocol's own answers (400, 431) flush it first, so order is kept."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] | None = None

    def write(self, data: bytes) -> None:
        if self._pending is None:
            self._pending = [data]
            self._loop.call_soon(self.flush)
        else:
            self._pending.append(data)

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class CappedHttpToolsProtocol(HttpToolsProtocol):
    """`uvicorn.run(..., http=CappedHttpToolsProtocol)`: the head cap, and corked response
    writes (`CorkedWrites`)."""

    max_head_bytes = MAX_HEAD_BYTES

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._head_open = True  # between the end of one message and its successor's headers
        self._head_bytes = 0
        self._exact_head = 0
        self._discarded = -1  # >= 0 once a 431 was sent
        self._corked: CorkedWrites | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._corked = CorkedWrites(transport, self.loop)

    def send_400_response(self, msg: str) -> None:
        if self._corked is not None:
            self._corked.flush()
        super().send_400_response(msg)

    def data_received(self, data: bytes) -> None:
        if self._discarded >= 0:  # after a 431: swallow the rest so the client can read it
            self._discarded += len(data)
            if self._discarded > DISCARD_MAX_BYTES:
                self.transport.close()
            return
        if self._head_open:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge) or isinstance(exc, _HeadTooLarge):
                self._reject_head()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._head_open and self._head_bytes > self.max_head_bytes:
            self._reject_head()

    def _reject_head(self) -> None:
        """Answer 431 at once, then read and drop what the client is still sending (closing
        with unread data would reset the connection before the client reads the answer) until
        it closes, DISCARD_MAX_BYTES, or DISCARD_SECS."""
        self.logger.warning("Request headers too large: refused with 431")
        if self._corked is not None:
            self._corked.flush()
        if self.transport.is_closing():
            return
        self.transport.write(too_large_response(self.max_head_bytes))
        self._discarded = 0
        self.loop.call_later(DISCARD_SECS, self.transport.close)

    def on_message_begin(self) -> None:
        self._exact_head = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._exact_head += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._exact_head += len(name) + len(value) + 4
        if self._exact_head > self.max_head_bytes:
            raise _HeadTooLarge()
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_bytes = 0
        super().on_headers_complete()
        cycle = getattr(self, "cycle", None)
        if cycle is not None and self._corked is not None:
            cycle.transport = self._corked

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open = True
        self._head_bytes = 0


def bound_addresses(sockets: list[object]) -> list[str]:
    """`http://host:port` for each listening socket (IPv6 in brackets)."""
    out = []
    for sock in sockets:
        host, port = sock.getsockname()[:2]  # type: ignore[attr-defined]
        out.append(f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}")
    return list(dict.fromkeys(out))


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server that, once its sockets are bound, prints one line with the addresses
    really listening (issue 7: the first start tells the truth), e.g.
    `Listening: REST http://0.0.0.0:8080 · metrics http://0.0.0.0:9090/metrics`."""

    def __init__(self, config: uvicorn.Config, extra: dict[str, str | None]) -> None:
        super().__init__(config)
        self.extra = extra  # name → address (None = not running)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:
            return
        bound = [s for server in self.servers for s in server.sockets]
        parts = [f"REST {' '.join(bound_addresses(bound))}"]
        parts += [f"{name} {addr}" for name, addr in self.extra.items() if addr]
        print("Listening: " + " · ".join(parts), flush=True)
