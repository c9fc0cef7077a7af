"""A local webhook receiver (http.server on 127.0.0.1, in a thread) with scripted answers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each request with the next item of `script` (then `default`): an int status,
    `"hang"` (never answers), `"redirect"` (302 to /elsewhere) or `"huge"` (200 + 50 MB)."""

    script: list[Any] = field(default_factory=list)
    default: Any = 200
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    action = receiver.script.pop(0) if receiver.script else receiver.default
                try:
                    self._answer(action)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _answer(self, action: Any) -> None:
                if action == "hang":
                    receiver._release.wait(30)
                    return
                if action == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if action == "huge":
                    size = 50 * 1024 * 1024
                    self.send_response(200)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    chunk = b"x" * 65536
                    for _ in range(size // len(chunk)):
                        self.wfile.write(chunk)
                    return
                payload = b'{"ok":true}' if 200 <= int(action) < 300 else b"nope"
                self.send_response(int(action))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # many concurrent deliveries connect at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    async def wait_for(self, n: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= n:
                    return list(self.received)
            await asyncio.sleep(0.01)
        raise AssertionError(f"receiver got {len(self.received)} requests, wanted {n}")

    def wait_sync(self, n: int, timeout: float = 15.0) -> list[Received]:
        """`wait_for` for synchronous tests (the server runs in another process)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= n:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"receiver got {len(self.received)} requests, wanted {n}")

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
