"""Serving an application over real sockets with the standard library.

A small HTTP/1.1 server with no dependencies that holds up against slow and
hostile clients:

* one thread (the serving loop) accepts connections and reads request heads
  without blocking, using :mod:`selectors`; a connection must deliver its
  whole request head within ``head_timeout`` seconds, however slowly it
  trickles in, so a client sending one byte at a time cannot hold on;
* at most ``max_connections`` connections are open: past it, the one that
  has waited longest for its head is closed to make room, so new clients
  are always accepted and no file descriptor is leaked or exhausted;
* a connection whose head is complete goes to a pool of at most
  ``max_workers`` threads, which read the body (``max_body_size`` at most,
  413 otherwise, decided from ``Content-Length`` before reading) and call
  the application; a kept-alive connection then goes back to the loop to
  wait for its next request without holding a thread;
* malformed requests are answered with a proper status line (400, 413, 414,
  431, 501, 505) and the connection closed, never with a traceback.

Responses always carry ``Content-Length``; chunked request bodies, pipelined
requests and ``Expect: 100-continue`` are supported; any method token reaches
the application; a handler failure is answered with a 500.

>>> import http.client
>>> from internalhttp import InternalHTTPServer
>>> app = InternalHTTPServer("doc")
>>> app.add_route("/", lambda headers, body: "hi")
>>> with serve(app) as running:
...     conn = http.client.HTTPConnection(running.host, running.port, timeout=5)
...     conn.request("GET", "/")
...     conn.getresponse().read()
...     conn.close()
b'hi'
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import io
import logging
import queue
import re
import selectors
import signal
import socket
import sys
import threading
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Set, Tuple

from internalhttp.redaction import escape_control, loggable_target
from internalhttp.response import dispatch, status_allows_body
from internalhttp.server import ConnectionInfo, Headers, Refusal, local_endpoint, socket_endpoint
from internalhttp.version import __version__
from internalhttp.wire import (
    DEFAULT_GRACE_PERIOD,
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_WORKERS,
    MAX_HEADERS,
    RequestError,
    parse_chunk_size,
    parse_content_length,
    parse_request_line,
    readable_request_line,
)

if TYPE_CHECKING:  # annotations only: never bind the class at run time
    from internalhttp.server import InternalHTTPServer

__all__ = ["RunningServer", "serve", "serve_forever"]

logger = logging.getLogger("internalhttp")
access_logger = logging.getLogger("internalhttp.access")

SERVER_VERSION = f"internalhttp/{__version__}"

# A request head ends with an empty line; bare LF line ends are tolerated
# (RFC 9112, section 2.2), as http.server did.
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_MAX_LINE = 65536  # longest chunk-size or trailer line, as http.server allowed
_RECV_SIZE = 16384  # per read: bounds what a waiting connection can buffer
_LISTEN_BACKLOG = 128
_ACCEPT_BATCH = 64  # accepts per wake-up, so reading heads is not starved
# How often the loop wakes up with nothing to do, to close connections whose
# head deadline has passed and to resume accepting after a pause.
_TICK = 0.25
# After the process ran out of file descriptors and there was no waiting
# connection to close, accepting pauses this long instead of spinning.
_ACCEPT_BACKOFF = 0.1
_FD_WARNING_INTERVAL = 60.0
# A worker that answered a kept-alive connection waits this long for the next
# request before handing the connection back to the loop, and serves at most
# this many requests of one connection in a row.
_FOLLOW_UP_WAIT = 0.002
_FOLLOW_UPS = 100
# The slowest average rate, in bytes per second, at which a request body may
# arrive once ``head_timeout`` has passed (see _Reader): slow enough for any
# real client, fast enough that trickling bodies cannot hold the workers long.
_MIN_BODY_RATE = 8192
# Below this size a response's head and body are sent in one write.
_ONE_WRITE = 65536
# How often serve_forever() wakes up so that Ctrl-C and SIGTERM are handled promptly.
_WAKE_INTERVAL = 0.2
# Lingering close after refusing a request: how long to wait for the client's
# remaining input, and how much of it to discard at most.
_LINGER_TIMEOUT = 1.0
_LINGER_LIMIT = 1 << 20
_ACCEPT = object()  # selector key data of the listening socket
# Sent, if the socket takes it at once, to a client whose head timed out.
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Limits(NamedTuple):
    max_body_size: int
    max_head_size: int
    max_connections: int
    max_workers: int
    head_timeout: float


class _ClientGone(Exception):
    """The client closed the connection before sending the whole request."""


class _Connection:
    """A client connection and the bytes read from it but not yet used."""

    __slots__ = ("address", "buffer", "deadline", "scanned", "sock")

    def __init__(self, sock: socket.socket, address: Tuple[str, int]) -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray()
        self.deadline = 0.0
        self.scanned = 0  # how much of buffer is known to hold no head end

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


# -- the worker pool -------------------------------------------------------------


class _WorkerPool:
    """At most ``size`` daemon threads running tasks from a queue.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit,
    so one handler that never returns would keep the process from exiting;
    these are daemons, like the connection threads this server used to have.
    Threads are started as tasks need them.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._tasks: queue.SimpleQueue[Optional[Callable[[], None]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: List[threading.Thread] = []
        self._busy: Set[threading.Thread] = set()
        self._idle = 0
        self._pending = 0

    def submit(self, task: Callable[[], None]) -> None:
        with self._lock:
            self._pending += 1
            if self._pending > self._idle and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._tasks.put(task)

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._lock:
                self._idle += 1
            task = self._tasks.get()
            with self._lock:
                self._idle -= 1
                if task is None:
                    return
                self._pending -= 1
                self._busy.add(me)
            try:
                task()
            finally:
                with self._lock:
                    self._busy.discard(me)

    def stop(self, timeout: float) -> List[threading.Thread]:
        """Let queued tasks run, end the threads; return those still busy after ``timeout``."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._tasks.put(None)  # after every task already queued
        deadline = time.monotonic() + timeout
        for thread in threads:
            if thread is not threading.current_thread():  # a handler stopping its own server
                thread.join(max(0.0, deadline - time.monotonic()))
        return [t for t in threads if t.is_alive() and t is not threading.current_thread()]


# -- reading a request body --------------------------------------------------------


class _Reader:
    """Reads a body from what the loop already buffered, then from the socket.

    Works on the connection's own buffer, so whatever is read past the end of
    this request (a pipelined next request) stays there for the next one.

    The body has a deadline too, so that a client trickling it in cannot
    hold a worker: ``head_timeout`` seconds, plus one second for every
    :data:`_MIN_BODY_RATE` bytes received so far. A body that falls behind
    is answered with 408.
    """

    def __init__(self, conn: _Connection, head_timeout: float) -> None:
        self._sock = conn.sock
        self._buffer = conn.buffer
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
            raise _ClientGone
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


# -- one request -------------------------------------------------------------------


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a valid code with no registered phrase, e.g. 599
        return ""


def _report_refusal(app: Any, refusal: Refusal) -> None:
    """Tell the application about a request refused on its behalf.

    Whatever the application does with it never stops the answer.
    """
    refused = getattr(app, "refused", None)
    if refused is not None:
        try:
            refused(refusal)
        except Exception:
            logger.exception("internalhttp: %r.refused() raised", app)


def _printable(request_line: str) -> str:
    """A request line fit for a log line: bounded, query credentials redacted, controls escaped."""
    method, _, rest = request_line[:1000].partition(" ")
    target, space, version = rest.rpartition(" ") if rest.count(" ") else (rest, "", "")
    return escape_control(f"{method} {loggable_target(target)}{space}{version}".strip())


def _wants_close(version: str, headers: http.client.HTTPMessage) -> bool:
    tokens = {t.strip().lower() for v in headers.get_all("Connection") or [] for t in v.split(",")}
    if "close" in tokens:
        return True
    return version == "HTTP/1.0" and "keep-alive" not in tokens  # HTTP/1.0 closes by default


class _RequestHandler:
    """Reads one request whose head is buffered, dispatches it and answers.

    The attribute names are those of ``http.server.BaseHTTPRequestHandler``.
    """

    def __init__(self, server: _HTTPServer, conn: _Connection, head: bytes) -> None:
        self.server = server
        self.connection = conn.sock
        self.client_address = conn.address
        self.rfile = _Reader(conn, server.limits.head_timeout)  # reads what follows the head
        line, _, self._fields = head.partition(b"\n")
        self.requestline = line.rstrip(b"\r").decode("latin-1")
        self.command = ""
        self.path = ""
        self.request_version = "HTTP/1.1"
        self.headers = http.client.HTTPMessage()
        self.close_connection = True

    def handle(self) -> bool:
        """Answer the request; return whether the connection stays open."""
        try:
            self._parse_head()
            body = self._read_body()
        except RequestError as exc:
            self._refuse(exc.status, exc.reason)
            return False
        except _ClientGone:
            return False
        status, headers, payload = dispatch(
            self.server.app,
            self.command,
            self.path,
            Headers(self.headers.items()),
            body,
            self._connection_info(),
        )
        self._respond(status, headers, payload)
        return not self.close_connection

    def _parse_head(self) -> None:
        try:
            self.command, self.path, self.request_version = parse_request_line(self.requestline)
        except RequestError:
            # The refusal still says what was asked, when the line tells it.
            self.command, self.path = readable_request_line(self.requestline)
            raise
        try:
            self.headers = http.client.parse_headers(io.BytesIO(self._fields))
        except http.client.HTTPException as exc:  # more than 100 fields
            raise RequestError(431, "Too many header fields") from exc
        self.close_connection = _wants_close(self.request_version, self.headers)

    def _read_body(self) -> bytes:
        limit = self.server.limits.max_body_size
        transfer_encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if transfer_encodings:
            # Both at once is how requests get smuggled past proxies (RFC 9112, 6.3).
            if lengths:
                raise RequestError(400, "Content-Length and Transfer-Encoding together")
            codings = [c.strip().lower() for value in transfer_encodings for c in value.split(",")]
            if codings != ["chunked"]:
                raise RequestError(501, "Unsupported Transfer-Encoding")
            self._continue()
            return self.rfile.read_chunked(limit)
        size = parse_content_length(lengths)
        if not size:
            return b""
        if size > limit:  # decided before reading a byte of it
            raise RequestError(413, "Request body too large")
        self._continue()
        return self.rfile.read_exactly(size)

    def _continue(self) -> None:
        # A client that sent "Expect: 100-continue" waits for this before the
        # body; it is sent only once the body is known to be acceptable.
        expect = self.headers.get("Expect", "")
        wanted = expect.lower() == "100-continue" and self.request_version == "HTTP/1.1"
        if wanted and not self.rfile.buffered():  # a client that sent the body anyway is not waiting
            self.connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _head(self, status: int, headers: List[Tuple[str, str]]) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {_phrase(status)}",
            f"Server: {SERVER_VERSION}",
            f"Date: {formatdate(usegmt=True)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _respond(self, status: int, headers: List[Tuple[str, str]], payload: bytes) -> None:
        connection = [value.lower() for name, value in headers if name.lower() == "connection"]
        if any("close" in value for value in connection) or self.server.stopping:
            self.close_connection = True
        if not connection:
            if self.close_connection:
                headers = [*headers, ("Connection", "close")]
            elif self.request_version == "HTTP/1.0":
                headers = [*headers, ("Connection", "keep-alive")]
        head = self._head(status, headers)
        self.connection.settimeout(self.server.limits.head_timeout)  # the body's deadline is over
        if self.command == "HEAD" or not status_allows_body(status):
            payload = b""
        if len(payload) < _ONE_WRITE:
            self.connection.sendall(head + payload)
        else:
            self.connection.sendall(head)
            self.connection.sendall(payload)

    def _refuse(self, status: int, reason: str) -> None:
        """Answer an error without involving the application, then close.

        The close is a lingering one (RFC 9112, section 9.6): the client may
        still be sending the body we refused, and closing a socket with
        unread input makes the kernel reset the connection, which can
        destroy our response before the client reads it. So we stop
        writing, read and discard what is still arriving for a moment, and
        only then let the connection close.
        """
        self.close_connection = True
        _report_refusal(
            self.server.app, Refusal(status, reason, self.command, self.path, self._connection_info())
        )
        body = f"{status} {_phrase(status)}: {reason}\n".encode("ascii")
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        # A refusal's access line, shaped like respond()'s, the target as any log line shows it.
        access_logger.info(
            '%s - "%s" %d %d', self.address_string(), _printable(self.requestline), status, len(body)
        )
        self.connection.settimeout(self.server.limits.head_timeout)
        self.connection.sendall(self._head(status, headers) + (b"" if self.command == "HEAD" else body))
        with contextlib.suppress(OSError):  # includes the linger timeout
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(_LINGER_TIMEOUT)
            drained = 0
            while drained < _LINGER_LIMIT:
                data = self.connection.recv(65536)
                if not data:
                    break
                drained += len(data)

    def _connection_info(self) -> ConnectionInfo:
        transport, local_address, local_port = local_endpoint(self.connection)
        _, client_address, client_port = socket_endpoint(self.connection.family, self.client_address)
        return ConnectionInfo(
            client_address=client_address,
            client_port=client_port,
            server_address=local_address,
            server_port=local_port,
            scheme="http",
            protocol_version=self.request_version.partition("/")[2] or None,
            transport=transport,
        )

    # -- logging --------------------------------------------------------------

    def address_string(self) -> str:
        return str(self.client_address[0])

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # The access line of a dispatched request is written by
        # InternalHTTPServer.respond, inside whatever wraps it (a span's
        # context); a refusal's by _refuse. http.server must not add a third.
        pass

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own messages, at DEBUG: a library leaves to the
        # application whether they are written anywhere.
        # ``format`` is always one of http.server's constant format strings.
        access_logger.debug("%s - " + format, self.address_string(), *args)


# -- the server ----------------------------------------------------------------------


class _HTTPServer:
    """The listening socket, the serving loop and the worker pool.

    Connections waiting for a request head are in ``_waiting``, in the order
    they started waiting; as every wait is ``head_timeout`` long, that is
    also the order of their deadlines, so expiring them and choosing the
    oldest to close are both cheap. Connections a worker holds are counted
    in ``_in_flight`` and come back through ``_returned``.
    """

    def __init__(self, app: InternalHTTPServer, address: Tuple[str, int], limits: _Limits) -> None:
        self.app = app
        self.limits = limits
        # create_server sets SO_REUSEADDR, so a restarted server can bind at once.
        self._listener = socket.create_server(address, backlog=_LISTEN_BACKLOG)
        self._listener.setblocking(False)
        self.server_address: Tuple[str, int] = self._listener.getsockname()[:2]
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._waiting: Dict[socket.socket, _Connection] = {}
        self._returned: List[_Connection] = []
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._loop_done = False
        self._loop_exited = threading.Event()
        self._accepting = False
        self._paused_until: Optional[float] = None
        self._last_fd_warning = -_FD_WARNING_INTERVAL
        self._pool = _WorkerPool(limits.max_workers, f"internalhttp-worker-{self.server_address[1]}")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop -----------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections and read request heads until :meth:`shutdown`."""
        try:
            self._selector.register(self._wake_r, selectors.EVENT_READ, None)
            self._resume_accepting()
            while not self._stopping.is_set():
                for key, _ in self._selector.select(_TICK):
                    self._on_ready(key.data)
                now = time.monotonic()
                self._take_returned()
                self._expire(now)
                self._maybe_resume(now)
        finally:
            self._finish_loop()

    def _on_ready(self, data: Any) -> None:
        if data is None:
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
        elif data is _ACCEPT:
            self._accept()
        else:
            self._read_head(data)

    def _open_count(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._returned) + self._in_flight

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            if self._open_count() >= self.limits.max_connections and not self._waiting:
                self._pause_accepting(None)  # every connection is busy: wait for one to end
                return
            try:
                sock, address = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._out_of_descriptors()
                    return
                continue  # e.g. ECONNABORTED: that client is gone, the next may not be
            if self._open_count() >= self.limits.max_connections:
                self._close_oldest()
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                # The response is one write; without this a kept-alive client's
                # delayed ACK can hold back the next response.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._watch(_Connection(sock, address))

    def _out_of_descriptors(self) -> None:
        now = time.monotonic()
        if now - self._last_fd_warning >= _FD_WARNING_INTERVAL:
            self._last_fd_warning = now
            logger.warning("internalhttp: out of file descriptors; closing the oldest waiting connection")
        if not self._close_oldest():
            self._pause_accepting(now + _ACCEPT_BACKOFF)  # instead of spinning on accept()

    def _close_oldest(self) -> bool:
        for conn in self._waiting.values():
            self._unwatch(conn)
            conn.close()
            return True
        return False

    def _pause_accepting(self, until: Optional[float]) -> None:
        if self._accepting:
            self._selector.unregister(self._listener)
            self._accepting = False
        self._paused_until = until

    def _resume_accepting(self) -> None:
        self._selector.register(self._listener, selectors.EVENT_READ, _ACCEPT)
        self._accepting = True

    def _maybe_resume(self, now: float) -> None:
        if self._accepting or (self._paused_until is not None and now < self._paused_until):
            return
        # A waiting connection can be closed to make room for a new one.
        if self._waiting or self._open_count() < self.limits.max_connections:
            self._resume_accepting()

    def _watch(self, conn: _Connection) -> None:
        conn.deadline = time.monotonic() + self.limits.head_timeout
        conn.sock.setblocking(False)
        with self._lock:
            self._waiting[conn.sock] = conn
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        if conn.buffer:  # a pipelined request may already be complete
            self._check_head(conn)

    def _unwatch(self, conn: _Connection) -> None:
        with self._lock:
            self._waiting.pop(conn.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)

    def _read_head(self, conn: _Connection) -> None:
        if self._waiting.get(conn.sock) is not conn:
            return  # closed earlier in the same round of events
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._unwatch(conn)
            conn.close()
            return
        conn.buffer += data
        self._check_head(conn)

    def _check_head(self, conn: _Connection) -> None:
        buffer = conn.buffer
        if conn.scanned == 0:
            # RFC 9112, section 2.2: ignore empty lines before a request line.
            del buffer[: len(buffer) - len(buffer.lstrip(b"\r\n"))]
        found = _HEAD_END.search(buffer, max(0, conn.scanned - 3))
        if found is None:
            conn.scanned = len(buffer)
            if len(buffer) > self.limits.max_head_size:
                self._hand_over(conn, self._refuse_head)
            return
        conn.scanned = 0
        head_end = found.end()
        if head_end > self.limits.max_head_size:
            self._hand_over(conn, self._refuse_head)
        else:
            self._hand_over(conn, lambda conn: self._serve_one(conn, head_end))

    def _hand_over(self, conn: _Connection, task: Callable[[_Connection], bool]) -> None:
        self._unwatch(conn)
        with self._lock:
            self._in_flight += 1
        self._pool.submit(lambda: self._run(conn, task))

    def _take_returned(self) -> None:
        with self._lock:
            returned, self._returned = self._returned, []
        for conn in returned:
            self._watch(conn)

    def _expire(self, now: float) -> None:
        while self._waiting:
            conn = next(iter(self._waiting.values()))
            if conn.deadline > now:
                return
            self._unwatch(conn)
            if conn.buffer:  # a head started but not finished in time
                with contextlib.suppress(OSError):
                    conn.sock.send(_REQUEST_TIMEOUT)
            conn.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full: the loop is awake anyway; closed: it is gone
            self._wake_w.send(b"\0")

    def _finish_loop(self) -> None:
        with self._lock:
            self._loop_done = True
            leftovers = list(self._waiting.values()) + self._returned
            self._waiting.clear()
            self._returned = []
        for conn in leftovers:  # idle or half-sent: nothing to finish
            conn.close()
        self._selector.close()
        self._listener.close()
        self._wake_r.close()
        self._loop_exited.set()

    # -- on a worker thread ----------------------------------------------------

    def _run(self, conn: _Connection, task: Callable[[_Connection], bool]) -> None:
        keep = False
        try:
            conn.sock.settimeout(self.limits.head_timeout)  # blocking, bounded
            keep = task(conn)
        except Exception:
            self.handle_error(conn.sock, conn.address)
        finally:
            self._give_back(conn, keep)

    def _serve_one(self, conn: _Connection, head_end: int) -> bool:
        for _ in range(_FOLLOW_UPS):
            head = bytes(conn.buffer[:head_end])
            del conn.buffer[:head_end]
            if not _RequestHandler(self, conn, head).handle() or self._stopping.is_set():
                return False
            head_end = self._next_head(conn)
            if head_end < 0:
                break
        return True

    def _next_head(self, conn: _Connection) -> int:
        """Where the next request's head ends if it is already here, or arrives at once; else -1.

        Going back to the loop between two requests of a busy kept-alive
        connection costs a wake-up and two selector changes; a client that
        sends its next request right after reading the response saves them.
        The wait is short enough that a slow client cannot hold the worker.
        """
        if not conn.buffer:
            # A socket timeout, not select.select(): that fails on descriptors
            # above 1023, and a selector would cost a descriptor of its own.
            conn.sock.settimeout(_FOLLOW_UP_WAIT)
            try:
                data = conn.sock.recv(_RECV_SIZE)
            except TimeoutError:
                return -1
            finally:
                conn.sock.settimeout(self.limits.head_timeout)
            if not data:
                return -1  # the loop sees the end of file too and closes
            conn.buffer += data
        found = _HEAD_END.search(conn.buffer, 0, self.limits.max_head_size)
        return found.end() if found and not conn.buffer.startswith((b"\r", b"\n")) else -1

    def _refuse_head(self, conn: _Connection) -> bool:
        line_end = conn.buffer.find(b"\n", 0, self.limits.max_head_size)
        if line_end < 0:
            # Only the start of the request line is kept, for the access log.
            _RequestHandler(self, conn, bytes(conn.buffer[:200]))._refuse(414, "Request line too long")
            return False
        handler = _RequestHandler(self, conn, bytes(conn.buffer[:line_end]))
        handler.command, handler.path = readable_request_line(handler.requestline)
        handler._refuse(431, "Request head too large")
        return False

    def _give_back(self, conn: _Connection, keep: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            keep = keep and not self._loop_done and not self._stopping.is_set()
            if keep:
                self._returned.append(conn)
        if not keep:
            conn.close()
        self._wake()  # to watch it again, or to resume accepting

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client resetting or timing out is routine; anything else is a bug
        # worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            logger.debug("internalhttp: connection from %s ended: %r", client_address, exc)
        else:
            logger.exception("internalhttp: error on connection from %s", client_address)

    # -- stopping -------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the loop: no more connections, idle ones closed; wait for it."""
        self._stopping.set()
        self._wake()
        self._loop_exited.wait()

    def stop_workers(self, timeout: float) -> None:
        """Let requests in progress finish within ``timeout`` seconds, then end the pool."""
        for thread in self._pool.stop(timeout):
            logger.warning("internalhttp: %s still running at shutdown; left behind", thread.name)
        self._wake_w.close()


# -- the public API ------------------------------------------------------------------


class RunningServer:
    """A handle on an application being served in a background thread.

    Returned by :func:`serve`. ``port`` is the port actually bound, which is
    how a test asks for port 0 and then learns where to connect. Use it as a
    context manager, or call :meth:`shutdown`, to stop serving.
    """

    def __init__(self, httpd: _HTTPServer, thread: threading.Thread, grace_period: float) -> None:
        self._httpd = httpd
        self._thread = thread
        self._grace_period = grace_period
        self._lock = threading.Lock()
        self._closed = False
        self.host: str = str(httpd.server_address[0])
        self.port: int = int(httpd.server_address[1])

    @property
    def app(self) -> InternalHTTPServer:
        """The application being served."""
        return self._httpd.app

    @property
    def url(self) -> str:
        """The base URL to reach the server, e.g. ``http://127.0.0.1:8080``."""
        return f"http://{self.host}:{self.port}"

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` has been called."""
        return self._closed

    def shutdown(self) -> None:
        """Stop serving and release everything; safe to call more than once.

        Stops accepting and closes the listening socket and every connection
        waiting for a request, then lets the requests in progress finish and
        be answered (with ``Connection: close``) for up to the grace period
        given to :func:`serve`, and joins the threads. A handler still
        running after that is not waited for; it is logged at WARNING.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._httpd.shutdown()  # returns once the loop has closed its sockets
            self._thread.join()
            self._httpd.stop_workers(self._grace_period)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving"
        return f"<RunningServer {self.app!r} on {self.url} ({state})>"


def serve(
    server: InternalHTTPServer,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_workers: int = DEFAULT_MAX_WORKERS,
    head_timeout: float = DEFAULT_HEAD_TIMEOUT,
    grace_period: float = DEFAULT_GRACE_PERIOD,
) -> RunningServer:
    """Serve ``server`` on ``host:port`` from a daemon thread; return at once.

    The socket is bound and listening before this returns, so the handle's
    ``url`` can be used immediately; ``port=0`` picks a free port. Binding
    errors (port in use, bad address) are raised here, in the caller.
    IPv4 only.

    The limits (defaults in :mod:`internalhttp.wire`):

    * ``max_body_size``: bytes of request body at most (10 MiB); a larger
      ``Content-Length`` is answered with 413 before the body is read, a
      chunked body with 413 as soon as it passes the limit.
    * ``max_connections``: open client connections at most (512); past it,
      the connection that has waited longest for its request head is closed.
      Keep it well under the process's file-descriptor limit (``ulimit -n``).
    * ``max_workers``: requests handled at the same time at most (32).
    * ``head_timeout``: seconds a connection has to send a whole request head,
      from when it was accepted or answered last (10 s); a body has the same
      time plus a second per 8 KiB received (else 408); also the timeout of
      writing a response.
    * ``grace_period``: seconds :meth:`RunningServer.shutdown` waits for the
      requests in progress (10 s).
    """
    if max_connections < 1 or max_workers < 1 or max_body_size < 0 or head_timeout <= 0:
        raise ValueError("max_connections and max_workers must be >= 1, max_body_size >= 0, head_timeout > 0")
    limits = _Limits(max_body_size, DEFAULT_MAX_HEAD_SIZE, max_connections, max_workers, head_timeout)
    httpd = _HTTPServer(server, (host, port), limits)
    thread = threading.Thread(
        target=httpd.serve_forever, name=f"internalhttp-serve-{httpd.server_address[1]}", daemon=True
    )
    thread.start()
    return RunningServer(httpd, thread, grace_period)


@contextlib.contextmanager
def _sigterm_sets(stop: List[int]) -> Iterator[None]:
    """While active, SIGTERM appends to ``stop`` instead of killing the process.

    SIGTERM is what docker, systemd and Kubernetes send; its default action
    ends the process at once, without running ``atexit`` handlers (where the
    OpenTelemetry SDK flushes its last spans). Only the main thread may set
    signal handlers; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    try:
        yield
    finally:
        # None: the previous handler was not set from Python; the default is the best guess.
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def serve_forever(
    server: InternalHTTPServer,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    max_workers: int = DEFAULT_MAX_WORKERS,
    head_timeout: float = DEFAULT_HEAD_TIMEOUT,
    grace_period: float = DEFAULT_GRACE_PERIOD,
) -> None:
    """Serve ``server`` on ``host:port`` in the calling thread until stopped.

    For command-line use: Ctrl-C (SIGINT) or SIGTERM stops accepting, lets
    the requests in progress finish within ``grace_period`` seconds and
    returns, so that the process exits normally and its ``atexit`` handlers
    run. A line saying where it listens is printed to stderr. The keyword
    arguments are the limits of :func:`serve`. Tests and embedding code want
    :func:`serve` instead, which does not block.
    """
    stop: List[int] = []
    running = serve(
        server,
        host,
        port,
        max_body_size=max_body_size,
        max_connections=max_connections,
        max_workers=max_workers,
        head_timeout=head_timeout,
        grace_period=grace_period,
    )
    with running:
        with _sigterm_sets(stop):
            try:  # from the announcement on: a parent may signal as soon as it reads it
                _announce(f"internalhttp: serving {server!r} on {running.url} (Ctrl-C or SIGTERM to stop)")
                # Waking up regularly lets Ctrl-C and SIGTERM through promptly.
                while not stop and running._thread.is_alive():
                    running._thread.join(_WAKE_INTERVAL)
            except KeyboardInterrupt:
                stop.append(signal.SIGINT)
        if stop:
            _announce(f"internalhttp: {signal.Signals(stop[0]).name} received, shutting down")


def _announce(line: str) -> None:
    # Printed, not logged: it must be seen without any logging configuration.
    if sys.stderr is not None:
        print(line, file=sys.stderr, flush=True)
