"""The socket server's serving loop: accepting connections, reading request heads and bodies.

Internal to :mod:`internalhttp.serving`. One thread runs
:meth:`ServingLoop.serve_forever`: it accepts connections and reads request
heads and bodies without blocking (with :mod:`selectors`), answers 408 to
connections whose head or body is late, and hands each request that is
completely read to the :class:`~internalhttp.workers.WorkerPool`, where a
:class:`~internalhttp.protocol.RequestHandler` answers it. A kept-alive
connection comes back to the loop to wait for its next request. What
happens to connections is told to the application's serving observer
(:mod:`internalhttp.observe`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import re
import selectors
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from internalhttp.intake import BodyIntake, body_wait
from internalhttp.listening import ACCEPT, FD_WARNING_INTERVAL, Listener, Waker
from internalhttp.observe import notify
from internalhttp.protocol import RECV_SIZE, Connection, Limits, RequestHandler
from internalhttp.wire import readable_request_line
from internalhttp.workers import WorkerPool

if TYPE_CHECKING:  # annotations only: never bind the class at run time
    from internalhttp.server import InternalHTTPServer

__all__ = ["ServingLoop"]

logger = logging.getLogger("internalhttp")

# A request head ends with an empty line; bare LF line ends are tolerated
# (RFC 9112, section 2.2), as http.server did.
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LISTEN_BACKLOG = 128
_ACCEPT_BATCH = 64  # accepts per wake-up, so reading heads is not starved
# How often the loop wakes up with nothing to do, to close connections whose
# head deadline has passed and to resume accepting after a pause.
_TICK = 0.25
# After the process ran out of file descriptors and there was no waiting
# connection to close, accepting pauses this long instead of spinning.
_ACCEPT_BACKOFF = 0.1
# A worker that answered a kept-alive connection waits this long for the next
# request before handing the connection back to the loop, and serves at most
# this many requests of one connection in a row.
_FOLLOW_UP_WAIT = 0.002
_FOLLOW_UPS = 100
# Sent, if the socket takes it at once, to a client whose head timed out.
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
# Why a connection the loop waited on closed, by what it was waiting for.
_TIMEOUT_REASONS = ("idle_timeout", "head_timeout")


class ServingLoop:
    """The listening socket, the serving loop and the worker pool.

    Connections waiting for a request head are in ``_waiting``, in the order
    they started waiting; as every wait is ``head_timeout`` long, that is
    also the order of their deadlines, so expiring them and choosing the
    oldest to close are both cheap. Connections whose request body is being
    read are the ``_intake``'s. Connections a worker holds are counted in
    ``_in_flight`` and come back through ``_returned``.
    """

    def __init__(self, app: InternalHTTPServer, address: Tuple[str, int], limits: Limits) -> None:
        self.app = app
        self.limits = limits
        # create_server sets SO_REUSEADDR, so a restarted server can bind at once.
        listening = socket.create_server(address, backlog=_LISTEN_BACKLOG)
        listening.setblocking(False)
        self.server_address: Tuple[str, int] = listening.getsockname()[:2]
        self._selector = selectors.DefaultSelector()
        self._listener = Listener(listening, self._selector)
        self._waker = Waker()
        self._waiting: Dict[socket.socket, Connection] = {}
        self._returned: List[Connection] = []
        self._in_flight = 0
        self._intake = BodyIntake(self)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._loop_done = False
        self._loop_exited = threading.Event()
        self._pool = WorkerPool(limits.max_workers, f"internalhttp-worker-{self.server_address[1]}")

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop -----------------------------------------------------------------

    def serve_forever(self) -> None:
        """Accept connections and read request heads until :meth:`shutdown`."""
        try:
            self._selector.register(self._waker.reader, selectors.EVENT_READ, None)
            self._listener.resume()
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
            self._waker.drain()
        elif data is ACCEPT:
            self._accept()
        elif not self._intake.on_ready(data):
            self._read_head(data)

    def _open_count(self) -> int:
        with self._lock:
            return len(self._waiting) + len(self._intake) + len(self._returned) + self._in_flight

    def _accept(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            if self._open_count() >= self.limits.max_connections and not self._waiting:
                self._listener.pause(None)  # every connection is busy: wait for one to end
                return
            try:
                sock, address = self._listener.sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._out_of_descriptors()
                    return
                continue  # e.g. ECONNABORTED: that client is gone, the next may not be
            if self._open_count() >= self.limits.max_connections:
                self._close_oldest("capacity")
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                # The response is one write; without this a kept-alive client's
                # delayed ACK can hold back the next response.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            notify(self.app, "connection_opened")
            self._watch(Connection(sock, address, time.monotonic()))

    def _out_of_descriptors(self) -> None:
        now = time.monotonic()
        if now - self._listener.last_fd_warning >= FD_WARNING_INTERVAL:
            self._listener.last_fd_warning = now
            logger.warning("internalhttp: out of file descriptors; closing the oldest waiting connection")
        if not self._close_oldest("descriptors"):
            self._listener.pause(now + _ACCEPT_BACKOFF)  # instead of spinning on accept()

    def _close_oldest(self, reason: str) -> bool:
        for conn in self._waiting.values():
            self._unwatch(conn)
            notify(self.app, "connection_rejected", reason)
            self.close(conn, reason)
            return True
        return False

    def close(self, conn: Connection, reason: str) -> None:
        """Close a connection, telling the observer why (see internalhttp.observe.CLOSE_REASONS)."""
        notify(self.app, "connection_closed", time.monotonic() - conn.opened, conn.requests, reason)
        conn.close()

    def _maybe_resume(self, now: float) -> None:
        if not self._listener.may_resume(now):
            return
        # A waiting connection can be closed to make room for a new one.
        if self._waiting or self._open_count() < self.limits.max_connections:
            self._listener.resume()

    def _watch(self, conn: Connection) -> None:
        conn.deadline = time.monotonic() + self.limits.head_timeout
        conn.sock.setblocking(False)
        with self._lock:
            self._waiting[conn.sock] = conn
        self._selector.register(conn.sock, selectors.EVENT_READ, conn)
        if conn.buffer:  # a pipelined request may already be complete
            self._check_head(conn)

    def _unwatch(self, conn: Connection) -> None:
        with self._lock:
            self._waiting.pop(conn.sock, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)

    def _read_head(self, conn: Connection) -> None:
        if self._waiting.get(conn.sock) is not conn:
            return  # closed earlier in the same round of events
        data = conn.receive()
        if data is None:
            return
        if not data:
            self._unwatch(conn)
            self.close(conn, "client_closed")
            return
        conn.buffer += data
        self._check_head(conn)

    def _check_head(self, conn: Connection) -> None:
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
            return
        wait = body_wait(buffer, head_end, self.limits.max_body_size)
        if wait is None:
            self._hand_over(conn, lambda conn: self._serve_one(conn, head_end))
            return
        with self._lock:  # still registered with the selector: only its role changes
            del self._waiting[conn.sock]
        self._intake.start(conn, wait)

    def hand_over_request(self, conn: Connection, head_end: int) -> None:
        """Have a worker answer the request whose head ends at ``head_end`` (its body buffered)."""
        self._hand_over(conn, lambda conn: self._serve_one(conn, head_end))

    def _hand_over(self, conn: Connection, task: Callable[[Connection], Optional[str]]) -> None:
        if conn.body is not None:
            self._intake.forget(conn)
        else:
            self._unwatch(conn)
        with self._lock:
            self._in_flight += 1
        conn.queued_at = time.monotonic()
        notify(self.app, "request_queued")
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
                break
            self._unwatch(conn)
            if conn.buffer:  # a head started but not finished in time
                with contextlib.suppress(OSError):
                    conn.sock.send(_REQUEST_TIMEOUT)
            self.close(conn, _TIMEOUT_REASONS[bool(conn.buffer)])
        self._intake.expire(now)

    def _finish_loop(self) -> None:
        with self._lock:
            self._loop_done = True
            leftovers = [*self._waiting.values(), *self._intake.clear(), *self._returned]
            self._waiting.clear()
            self._returned = []
        for conn in leftovers:  # idle, half-sent or refused: nothing to finish
            self.close(conn, "shutdown")
        self._selector.close()
        self._listener.sock.close()
        self._waker.reader.close()
        self._loop_exited.set()

    # -- on a worker thread ----------------------------------------------------

    def _run(self, conn: Connection, task: Callable[[Connection], Optional[str]]) -> None:
        close_reason: Optional[str] = "error"
        conn.queue_time = time.monotonic() - conn.queued_at
        notify(self.app, "request_dequeued", conn.queue_time)
        try:
            conn.sock.settimeout(self.limits.head_timeout)  # blocking, bounded
            close_reason = task(conn)
        except Exception:
            self.handle_error(conn.sock, conn.address)
        finally:
            self._give_back(conn, close_reason)

    def _serve_one(self, conn: Connection, head_end: int) -> Optional[str]:
        """Answer the request whose head ends at ``head_end``, then any follow-up already here.

        A follow-up is answered by this worker only when its body is
        buffered too; otherwise the loop reads it (see internalhttp.intake).
        """
        for _ in range(_FOLLOW_UPS):
            head = bytes(conn.buffer[:head_end])
            del conn.buffer[:head_end]
            close_reason = RequestHandler(self, conn, head).handle()
            conn.queue_time = 0.0  # a follow-up does not wait for a worker
            self._intake.release_bytes(conn)
            if close_reason is not None or self._stopping.is_set():
                return close_reason or "shutdown"
            head_end = self._next_head(conn)
            if head_end < 0 or body_wait(conn.buffer, head_end, self.limits.max_body_size) is not None:
                break
        return None

    def _next_head(self, conn: Connection) -> int:
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
                data = conn.sock.recv(RECV_SIZE)
            except TimeoutError:
                return -1
            finally:
                conn.sock.settimeout(self.limits.head_timeout)
            if not data:
                return -1  # the loop sees the end of file too and closes
            conn.buffer += data
        found = _HEAD_END.search(conn.buffer, 0, self.limits.max_head_size)
        return found.end() if found and not conn.buffer.startswith((b"\r", b"\n")) else -1

    def _refuse_head(self, conn: Connection) -> str:
        line_end = conn.buffer.find(b"\n", 0, self.limits.max_head_size)
        if line_end < 0:
            # Only the start of the request line is kept, for the access log.
            RequestHandler(self, conn, bytes(conn.buffer[:200])).refuse(414, "Request line too long")
            return "refused"
        handler = RequestHandler(self, conn, bytes(conn.buffer[:line_end]))
        handler.method, handler.target = readable_request_line(handler.request_line)
        handler.refuse(431, "Request head too large")
        return "refused"

    def _give_back(self, conn: Connection, close_reason: Optional[str]) -> None:
        self._intake.release_bytes(conn)  # when the task failed before its request was answered
        with self._lock:
            self._in_flight -= 1
            if close_reason is None and (self._loop_done or self._stopping.is_set()):
                close_reason = "shutdown"
            if close_reason is None:
                self._returned.append(conn)
        if close_reason is not None:
            self.close(conn, close_reason)
        self._waker.wake()  # to watch it again, or to resume accepting

    def handle_error(self, sock: object, client_address: object) -> None:
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
        self._waker.wake()
        self._loop_exited.wait()

    def stop_workers(self, timeout: float) -> None:
        """Let requests in progress finish within ``timeout`` seconds, then end the pool."""
        for thread in self._pool.stop(timeout):
            logger.warning("internalhttp: %s still running at shutdown; left behind", thread.name)
        self._waker.close_writer()
