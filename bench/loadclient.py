"""The benchmark's HTTP load client: raw HTTP/1.1 keep-alive over asyncio streams (uvloop).

Why not httpx: on a 2-core machine every CPU cycle the client spends is taken from the server
under test, and httpx/httpcore cost ~3-5x more client CPU per request than writing a pre-built
request and reading Content-Length bytes back. The client's own ceiling is measured in every run
against bench/stub.py (same code, a server that does nothing) and printed beside each result.

One `Conn` is one TCP connection used by one task at a time; `Pool` lends connections to
open-loop producers (a new one is opened when all are busy, up to `size`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["Conn", "HttpError", "Pool"]


class HttpError(RuntimeError):
    def __init__(self, status: int, body: bytes, path: str) -> None:
        super().__init__(f"{path} → {status} {body[:300]!r}")
        self.status = status
        self.body = body


class Conn:
    def __init__(self, host: str, port: int, api_key: str) -> None:
        self.host, self.port = host, port
        self._head = (
            f"Host: {host}:{port}\r\nAuthorization: Bearer {api_key}\r\n"
            "Content-Type: application/json\r\nAccept: application/json\r\n"
        ).encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
            self._writer = self._reader = None

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """(status, body). Reconnects once when the server closed the kept-alive connection."""
        for attempt in (0, 1):
            if self._writer is None:
                await self._connect()
            try:
                return await self._roundtrip(method, path, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _roundtrip(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        assert self._reader is not None and self._writer is not None
        payload = body or b""
        self._writer.write(b"%s %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (
            method.encode(), path.encode(), self._head, len(payload), payload))
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = -1
        chunked = close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            parts = []
            while True:
                size = int((await self._reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self._reader.readline()
                    break
                parts.append(await self._reader.readexactly(size))
                await self._reader.readline()
            data = b"".join(parts)
        elif length >= 0:
            data = await self._reader.readexactly(length)
        else:
            data = await self._reader.read()
            close = True
        if close:
            await self.close()
        return status, data

    async def post(self, path: str, obj: Any) -> Any:
        """POST JSON; the decoded answer of a 2xx, HttpError otherwise."""
        status, data = await self.request("POST", path, json.dumps(obj).encode())
        if status >= 300:
            raise HttpError(status, data, path)
        return json.loads(data) if data else None


class Pool:
    """Connections lent one request at a time; grows on demand up to `size`."""

    def __init__(self, host: str, port: int, api_key: str, size: int = 256) -> None:
        self._args = (host, port, api_key)
        self._free: list[Conn] = []
        self._all: list[Conn] = []
        self._size = size
        self._available = asyncio.Semaphore(size)

    async def post(self, path: str, obj: Any) -> Any:
        async with self._available:
            if self._free:
                conn = self._free.pop()
            else:
                conn = Conn(*self._args)
                self._all.append(conn)
            try:
                return await conn.post(path, obj)
            finally:
                self._free.append(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()
        self._free.clear()
