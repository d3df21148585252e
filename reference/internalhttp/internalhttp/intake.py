"""Whether a request read by the serving loop is ready for a worker, or its body must be waited for.

Internal to :mod:`internalhttp.loop`. A worker is given a request only once
its head and its whole body are buffered, so a client sending its body
slowly holds a connection and some buffered bytes, never a worker (as
nginx does, unlike a thread-per-request server). The loop reads the body
without blocking, within ``body_timeout`` seconds of the head's end.

Only framing is looked at here (``Content-Length``, ``Transfer-Encoding``,
``Expect``); whatever is wrong with a request (a bad length, a body too
large, a malformed chunk) makes it "ready": the worker reads the request
again with the full rules and refuses it as before.

>>> head = b"POST / HTTP/1.1\\r\\nContent-Length: 5\\r\\n\\r\\n"
>>> wait = body_wait(bytearray(head + b"he"), len(head), 100)
>>> wait.ready(bytearray(head + b"hello")), wait.expect_continue
(True, False)
>>> body_wait(bytearray(b"GET / HTTP/1.1\\r\\n\\r\\n"), 18, 100) is None  # no body: ready now
True
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import time
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional

from internalhttp.body import scan_chunked
from internalhttp.protocol import Connection, RequestHandler
from internalhttp.wire import (
    RequestError,
    body_length,
    expects_continue,
    parse_request_line,
)

if TYPE_CHECKING:  # annotations only
    from internalhttp.loop import ServingLoop

__all__ = ["BodyIntake", "BodyWait", "body_wait"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# After answering a request the loop refused (a late body, too many bytes
# buffered), how long it reads and discards what the client still sends
# before closing, so that the answer is not lost to a reset (RFC 9112, 9.6).
_LINGER = 1.0

# The framing fields of a head, by name (any case) and value: a head without
# any (most GETs) is ready at once, for the cost of one search.
_FRAMING = re.compile(rb"\n(content-length|transfer-encoding|expect)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


class BodyWait:
    """A request whose head is read and whose body the loop is still reading."""

    __slots__ = (
        "chunk_pos",
        "chunk_total",
        "counted",
        "deadline",
        "end",
        "expect_continue",
        "head_end",
        "limit",
    )

    def __init__(self, head_end: int, length: Optional[int], limit: int) -> None:
        self.head_end = head_end
        # Where the body ends in the buffer; -1 when chunked (found by scanning).
        self.end = head_end + length if length is not None else -1
        self.limit = limit
        self.chunk_pos = head_end  # the next chunk-size line not yet walked
        self.chunk_total = 0
        self.expect_continue = False
        self.deadline = 0.0
        self.counted = 0  # body bytes this request counts against max_buffered_bytes

    def ready(self, buffer: bytearray) -> bool:
        """Whether the whole body is buffered (or the worker is to refuse the request)."""
        if self.end >= 0:
            return len(buffer) >= self.end
        try:
            self.chunk_pos, self.chunk_total, done = scan_chunked(
                buffer, self.chunk_pos, self.chunk_total, self.limit
            )
        except RequestError:
            return True
        return done


def body_wait(buffer: bytearray, head_end: int, max_body_size: int) -> Optional[BodyWait]:
    """The wait for the body of the request whose head ends at ``head_end``; None if ready now."""
    fields = _FRAMING.findall(buffer, 0, head_end)
    if not fields:
        return None
    values: dict[bytes, List[str]] = {b"content-length": [], b"transfer-encoding": [], b"expect": []}
    for name, value in fields:
        values[name.lower()].append(value.strip().decode("latin-1"))
    try:
        version = parse_request_line(bytes(buffer[: buffer.find(b"\n")]).rstrip(b"\r").decode("latin-1"))[2]
        length = body_length(values[b"transfer-encoding"], values[b"content-length"])
    except RequestError:
        return None
    if length is not None and not 0 < length <= max_body_size:
        return None
    wait = BodyWait(head_end, length, max_body_size)
    if wait.ready(buffer):
        return None
    expect = values[b"expect"][0] if values[b"expect"] else ""
    wait.expect_continue = expects_continue(expect, version) and len(buffer) == head_end
    return wait


class BodyIntake:
    """The serving loop's connections whose request body it is reading, or which it refused and is closing.

    Both dicts are in deadline order (every wait is as long), so expiring
    is cheap. ``buffered`` counts the body bytes read for requests not yet
    answered, across all connections; a worker's request keeps counting
    until :meth:`release_bytes`.
    """

    def __init__(self, loop: ServingLoop) -> None:
        self._loop = loop
        self._limits = loop.limits
        self._bodies: Dict[socket.socket, Connection] = {}
        self._lingering: Dict[socket.socket, Connection] = {}
        # Why each lingering connection will close (see internalhttp.observe.CLOSE_REASONS).
        self._reasons: Dict[socket.socket, str] = {}
        self.buffered = 0

    def __len__(self) -> int:
        return len(self._bodies) + len(self._lingering)

    def start(self, conn: Connection, wait: BodyWait) -> None:
        """Read the body of ``conn``'s request (its head just read), sending ``100 Continue`` if asked."""
        wait.deadline = time.monotonic() + self._limits.body_timeout
        if wait.expect_continue:
            with contextlib.suppress(OSError):  # 25 bytes on a socket with nothing unsent
                conn.sock.send(_CONTINUE)
        conn.body = wait
        self._bodies[conn.sock] = conn
        self._count(conn, len(conn.buffer) - wait.head_end)

    def on_ready(self, conn: Connection) -> bool:
        """Read from ``conn`` if it is one of ours; return whether it was."""
        if conn.sock in self._bodies:
            self._read(conn)
        elif conn.sock in self._lingering:
            self._linger(conn)
        else:
            return False
        return True

    def _read(self, conn: Connection) -> None:
        data = conn.receive()
        if data is None:
            return
        if not data:
            self.forget(conn)
            self.release_bytes(conn)
            self._loop.close(conn, "client_closed")
            return
        conn.buffer += data
        self._count(conn, len(data))

    def _count(self, conn: Connection, size: int) -> None:
        wait = conn.body
        if wait is None:  # pragma: no cover  # only connections reading a body get here
            return
        wait.counted += size
        with self._loop._lock:
            self.buffered += size
            over = self.buffered > self._limits.max_buffered_bytes
        if over:
            self._refuse(conn, 503, "Too many request bytes buffered", "refused")
        elif wait.ready(conn.buffer):
            self._loop.hand_over_request(conn, wait.head_end)

    def forget(self, conn: Connection) -> None:
        """Stop reading ``conn`` (its request goes to a worker, or it closes); its bytes still count."""
        self._bodies.pop(conn.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._loop._selector.unregister(conn.sock)

    def release_bytes(self, conn: Connection) -> None:
        """``conn``'s request is answered (or dropped): its body bytes no longer count. Any thread."""
        wait, conn.body = conn.body, None
        if wait is not None:
            with self._loop._lock:
                self.buffered -= wait.counted

    def _refuse(self, conn: Connection, status: int, reason: str, close_reason: str) -> None:
        """Answer the request whose body was being read, without a worker; close after lingering."""
        head_end = conn.body.head_end if conn.body is not None else 0
        self.forget(conn)
        self.release_bytes(conn)
        handler = RequestHandler(self._loop, conn, bytes(conn.buffer[:head_end]))
        # The line was read as valid when the body wait began (see body_wait).
        handler.method, handler.target, handler.version = parse_request_line(handler.request_line)
        extra = (("Retry-After", "1"),) if status == 503 else ()
        with contextlib.suppress(OSError):  # a small answer on a socket with nothing unsent
            conn.sock.send(handler.refusal(status, reason, extra))
            conn.sock.shutdown(socket.SHUT_WR)
        conn.buffer = bytearray()  # the request is done with
        conn.deadline = time.monotonic() + _LINGER
        self._lingering[conn.sock] = conn
        self._reasons[conn.sock] = close_reason
        self._loop._selector.register(conn.sock, selectors.EVENT_READ, conn)

    def _linger(self, conn: Connection) -> None:
        with contextlib.suppress(BlockingIOError, InterruptedError):
            try:
                if conn.sock.recv(65536):
                    return  # discarded
            except OSError:
                pass
            self._end_linger(conn)

    def _end_linger(self, conn: Connection) -> None:
        self._lingering.pop(conn.sock, None)
        reason = self._reasons.pop(conn.sock, "refused")
        with contextlib.suppress(KeyError, ValueError):
            self._loop._selector.unregister(conn.sock)
        self._loop.close(conn, reason)

    def expire(self, now: float) -> None:
        """Answer 408 to bodies past their deadline; close lingering connections past theirs."""
        while self._bodies:
            conn = next(iter(self._bodies.values()))
            if conn.body is not None and conn.body.deadline > now:
                break
            self._refuse(conn, 408, "Request body too slow", "body_timeout")
        while self._lingering:
            conn = next(iter(self._lingering.values()))
            if conn.deadline > now:
                break
            self._end_linger(conn)

    def clear(self) -> Iterator[Connection]:
        """Every connection of ours, forgotten (the loop is stopping)."""
        connections = [*self._bodies.values(), *self._lingering.values()]
        self._bodies.clear()
        self._lingering.clear()
        self._reasons.clear()
        return iter(connections)
