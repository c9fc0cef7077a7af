"""core/httpserver.CorkedWrites: the writes of one event-loop step leave as one send, in order,
and nothing is lost on close or written after it."""

from __future__ import annotations

import asyncio

from spooled_backend.core.httpserver import CorkedWrites


class RecordingTransport:
    """Stands in for the socket transport: records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


async def test_head_and_body_of_one_step_leave_together() -> None:
    real = RecordingTransport()
    corked = CorkedWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(b"{}")
    assert real.sent == []
    await asyncio.sleep(0)
    assert real.sent == [b"HTTP/1.1 200 OK\r\n\r\n{}"]
    corked.write(b"event: ping\n\n")  # a later step (a streamed body): its own send
    await asyncio.sleep(0)
    assert real.sent[-1] == b"event: ping\n\n" and len(real.sent) == 2


async def test_close_flushes_first_and_nothing_is_written_after() -> None:
    real = RecordingTransport()
    corked = CorkedWrites(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    corked.write(b"a")
    corked.write(b"b")
    corked.close()
    assert real.sent == [b"ab"] and real.closed
    corked.write(b"late")
    await asyncio.sleep(0)
    assert real.sent == [b"ab"]
    assert corked.is_closing()
