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
* the loop reads request bodies too (``max_body_size`` at most, 413
  otherwise, decided from ``Content-Length`` before reading), within
  ``body_timeout`` seconds of the head (408 otherwise) and with at most
  ``max_buffered_bytes`` buffered across all connections (503 past it), so
  a client sending its body slowly holds no thread;
* a request completely read goes to a pool of at most ``max_workers``
  threads, which call the application; a kept-alive connection then goes
  back to the loop to wait for its next request without holding a thread;
* malformed requests are answered with a proper status line (400, 413, 414,
  431, 501, 505) and the connection closed, never with a traceback.

Responses always carry ``Content-Length``; chunked request bodies, pipelined
requests and ``Expect: 100-continue`` are supported; any method token reaches
the application; a handler failure is answered with a 500.

This module is the public API (:func:`serve`, :func:`serve_forever`,
:class:`RunningServer`); the parts are :mod:`internalhttp.loop` (the serving
loop), :mod:`internalhttp.workers` (the worker pool),
:mod:`internalhttp.protocol` and :mod:`internalhttp.body` (one request on
a connection) and :mod:`internalhttp.wire` (the rules).

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
import signal
import sys
import threading
from typing import TYPE_CHECKING, Iterator, List

from internalhttp.loop import ServingLoop
from internalhttp.protocol import Limits
from internalhttp.wire import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_GRACE_PERIOD,
    DEFAULT_HEAD_TIMEOUT,
    DEFAULT_MAX_BODY_SIZE,
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_MAX_WORKERS,
)

if TYPE_CHECKING:  # annotations only: never bind the class at run time
    from internalhttp.server import InternalHTTPServer

__all__ = ["RunningServer", "serve", "serve_forever"]

# How often serve_forever() wakes up so that Ctrl-C and SIGTERM are handled promptly.
_WAKE_INTERVAL = 0.2


class RunningServer:
    """A handle on an application being served in a background thread.

    Returned by :func:`serve`. ``port`` is the port actually bound, which is
    how a test asks for port 0 and then learns where to connect. Use it as a
    context manager, or call :meth:`shutdown`, to stop serving.
    """

    def __init__(self, httpd: ServingLoop, thread: threading.Thread, grace_period: float) -> None:
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
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
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
      from when it was accepted or answered last (10 s; else 408, or a
      plain close when nothing was sent); also the timeout of writing a
      response.
    * ``body_timeout``: seconds a request body has to arrive whole, from the
      end of its head (60 s); else 408 and the connection closed. The loop
      reads bodies, so a slow one holds no worker; ``100 Continue`` is sent
      first when the client asks for it.
    * ``max_buffered_bytes``: request body bytes held at most across all
      connections for requests not yet answered (64 MiB); a body that goes
      past it is answered 503 with ``Retry-After: 1`` and the connection
      closed (the others go on). Keep it above ``max_body_size``.
    * ``grace_period``: seconds :meth:`RunningServer.shutdown` waits for the
      requests in progress (10 s).
    """
    if min(max_connections, max_workers) < 1 or min(max_body_size, max_buffered_bytes) < 0:
        raise ValueError(
            "max_connections and max_workers must be >= 1, max_body_size and max_buffered_bytes >= 0"
        )
    if head_timeout <= 0 or body_timeout <= 0:
        raise ValueError("head_timeout and body_timeout must be > 0")
    limits = Limits(
        max_body_size,
        DEFAULT_MAX_HEAD_SIZE,
        max_connections,
        max_workers,
        head_timeout,
        body_timeout,
        max_buffered_bytes,
    )
    httpd = ServingLoop(server, (host, port), limits)
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
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
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
        body_timeout=body_timeout,
        max_buffered_bytes=max_buffered_bytes,
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
