"""Reading a request body from a connection: by length or chunked, within a deadline.

Internal to the socket server (:mod:`internalhttp.protocol`); the framing
rules themselves (which length, which coding) are in :mod:`internalhttp.wire`.

>>> import socket
>>> ours, theirs = socket.socketpair()
>>> buffer = bytearray(b"5\\r\\nhello\\r\\n0\\r\\n\\r\\nnext")
>>> BodyReader(ours, buffer, 5.0).read_chunked(limit=100)
b'hello'
>>> buffer  # what follows the body stays for the next request
bytearray(b'next')
>>> ours.close(); theirs.close()
"""

from __future__ import annotations

import socket
import time
from typing import List, Tuple

from internalhttp.wire import MAX_HEADERS, RequestError, parse_chunk_size

__all__ = ["BodyReader", "ClientGone", "scan_chunked"]

_MAX_LINE = 65536  # longest chunk-size or trailer line, as http.server allowed
# The slowest average rate, in bytes per second, at which a request body may
# arrive once ``head_timeout`` has passed (see BodyReader): slow enough for any
# real client, fast enough that trickling bodies cannot hold the workers long.
_MIN_BODY_RATE = 8192


def scan_chunked(buffer: bytearray, pos: int, total: int, limit: int) -> Tuple[int, int, bool]:
    """Walk the complete chunks of a chunked body in ``buffer`` from ``pos``, without copying them.

    Returns where the first chunk not yet complete starts, the size of the
    chunks walked so far (``total`` is what earlier calls walked), and
    whether the whole body, trailers included, is buffered; so a body that
    arrives in pieces is walked once. Raises :class:`RequestError` as
    :meth:`BodyReader.read_chunked` does for what it would refuse.

    >>> scan_chunked(bytearray(b"5\\r\\nhello\\r\\n3\\r\\nab"), 0, 0, 100)
    (10, 5, False)
    >>> scan_chunked(bytearray(b"5\\r\\nhello\\r\\n0\\r\\n\\r\\n"), 10, 5, 100)
    (10, 5, True)
    """
    while True:
        line_end = buffer.find(b"\n", pos, pos + _MAX_LINE + 1)
        if line_end < 0:
            if len(buffer) - pos > _MAX_LINE:
                raise RequestError(400, "Line too long in chunked body")
            return pos, total, False
        size = parse_chunk_size(bytes(buffer[pos : line_end + 1]))
        if size == 0:
            return pos, total, _trailers_end(buffer, line_end + 1) >= 0
        if total + size > limit:
            raise RequestError(413, "Request body too large")
        chunk_end = line_end + 1 + size + 2
        if len(buffer) < chunk_end:
            return pos, total, False
        if buffer[chunk_end - 2 : chunk_end] != b"\r\n":
            raise RequestError(400, "Chunk not followed by CRLF")
        pos, total = chunk_end, total + size


def _trailers_end(buffer: bytearray, pos: int) -> int:
    """Where the trailer section starting at ``pos`` ends (after its empty line); -1 if not buffered yet."""
    for _ in range(MAX_HEADERS + 1):
        line_end = buffer.find(b"\n", pos)
        if line_end < 0:
            return -1
        if line_end == pos or (line_end == pos + 1 and buffer[pos] == 13):  # CR
            return line_end + 1
        pos = line_end + 1
    return pos  # too many trailer fields: ready, for the worker to refuse


class ClientGone(Exception):
    """The client closed the connection before sending the whole request."""


class BodyReader:
    """Reads a body from what the loop already buffered, then from the socket.

    Works on the connection's own buffer, so whatever is read past the end of
    this request (a pipelined next request) stays there for the next one.

    The serving loop buffers a body before a worker gets its request
    (:mod:`internalhttp.intake`), so this reads from the socket only in the
    cases the loop leaves to the worker. Those have a deadline too, so that
    a client trickling a body in cannot hold a worker: ``head_timeout`` seconds, plus one second for every
    :data:`_MIN_BODY_RATE` bytes received so far. A body that falls behind
    is answered with 408.
    """

    def __init__(self, sock: socket.socket, buffer: bytearray, head_timeout: float) -> None:
        self._sock = sock
        self._buffer = buffer
        self._deadline = time.monotonic() + head_timeout

    def _fill(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise RequestError(408, "Request body too slow")
        self._sock.settimeout(remaining)
        try:
            data = self._sock.recv(65536)
        except TimeoutError as exc:
            raise RequestError(408, "Request body too slow") from exc
        if not data:
            raise ClientGone
        self._buffer += data
        self._deadline += len(data) / _MIN_BODY_RATE

    def buffered(self) -> bool:
        return bool(self._buffer)

    def read_exactly(self, size: int) -> bytes:
        while len(self._buffer) < size:
            self._fill()
        with memoryview(self._buffer) as view:  # one copy, not two
            data = bytes(view[:size])
        del self._buffer[:size]
        return data

    def readline(self, limit: int) -> bytes:
        start = 0
        while True:
            end = self._buffer.find(b"\n", start, limit + 1)
            if end >= 0:
                return self.read_exactly(end + 1)
            if len(self._buffer) > limit:
                raise RequestError(400, "Line too long in chunked body")
            start = len(self._buffer)
            self._fill()

    def read_chunked(self, limit: int) -> bytes:
        """Read a chunked body (RFC 9112, section 7.1), dropping any trailers.

        A size is checked against ``limit`` before its chunk is read, so an
        oversized body costs at most ``limit`` bytes of memory.
        """
        chunks: List[bytes] = []
        total = 0
        while True:
            size = parse_chunk_size(self.readline(_MAX_LINE))
            if size == 0:
                break
            total += size
            if total > limit:
                raise RequestError(413, "Request body too large")
            chunks.append(self.read_exactly(size))
            if self.read_exactly(2) != b"\r\n":
                raise RequestError(400, "Chunk not followed by CRLF")
        for _ in range(MAX_HEADERS + 1):
            if self.readline(_MAX_LINE) in (b"\r\n", b"\n"):
                return b"".join(chunks)
        raise RequestError(431, "Too many trailer fields")
