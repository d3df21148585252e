"""Serving an application over real sockets with the standard library.

Built on :class:`http.server.ThreadingHTTPServer` (one thread per connection)
so that the framework has no dependencies, yet behaves like a real HTTP/1.1
server: persistent connections, any method token, ``Content-Length`` on
every response, chunked request bodies, and a handler failure answered with a
500 instead of a dropped connection.

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
import logging
import re
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Tuple

from internalhttp.response import dispatch, status_allows_body
from internalhttp.server import ConnectionInfo, Headers
from internalhttp.version import __version__

if TYPE_CHECKING:  # annotations only: never bind the class at run time
    from internalhttp.server import InternalHTTPServer

__all__ = ["RunningServer", "serve", "serve_forever"]

logger = logging.getLogger("internalhttp")
access_logger = logging.getLogger("internalhttp.access")

# RFC 9110, section 9.1: a method is a token; anything else is a bad request.
_METHOD_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_CONTENT_LENGTH = re.compile(r"[0-9]+\Z")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+\Z")
_MAX_LINE = 65536  # the same limit http.server applies to the request line
_MAX_TRAILERS = 100  # and to the number of header lines
# How often the serving loop checks for shutdown: the upper bound on how long
# RunningServer.shutdown() waits for the loop to notice.
_POLL_INTERVAL = 0.05
# How often serve_forever() wakes up so that Ctrl-C is handled promptly.
_WAKE_INTERVAL = 0.2
# Lingering close after refusing a request: how long to wait for the client's
# remaining input, and how much of it to discard at most.
_LINGER_TIMEOUT = 1.0
_LINGER_LIMIT = 1 << 20
# How long shutdown waits for handlers that are still running.
_SHUTDOWN_TIMEOUT = 5.0


class _BadRequest(Exception):
    """The request cannot be answered by the application; reply ``status``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _ClientGone(Exception):
    """The client closed the connection before sending the whole body."""


class _RequestHandler(BaseHTTPRequestHandler):
    """Adapts one HTTP/1.1 connection to ``InternalHTTPServer.handle_request``."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # persistent connections by default
    server_version = f"internalhttp/{__version__}"
    sys_version = ""
    # The response head and body are separate writes; without TCP_NODELAY the
    # second one waits for the client's delayed ACK on a kept-alive connection.
    disable_nagle_algorithm = True
    # Idle/read timeout per connection, so a silent client cannot pin a thread.
    timeout = 30.0

    def __getattr__(self, name: str) -> Callable[[], None]:
        # BaseHTTPRequestHandler looks up ``do_<METHOD>`` for every request and
        # answers 501 when it is missing. Every method goes to the application
        # instead, which decides between a handler, 404 and 405.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        if not _METHOD_TOKEN.match(self.command):
            self._refuse(400, "Bad request method")
            return
        try:
            body = self._read_body()
        except _BadRequest as exc:
            self._refuse(exc.status, exc.reason)
            return
        except _ClientGone:
            self.close_connection = True
            return
        status, headers, payload = dispatch(
            self.server.app,
            self.command,
            self.path,
            Headers(self.headers.items()),
            body,
            self._connection_info(),
        )
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)  # a "Connection: close" also closes
        if self.close_connection and "connection" not in {name.lower() for name, _ in headers}:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status_allows_body(status):
            self.wfile.write(payload)

    def _refuse(self, status: int, reason: str) -> None:
        """Answer an error without involving the application, then close.

        The close is a lingering one (RFC 9112, section 9.6): the client may
        still be sending the body we refused, and closing a socket with
        unread input makes the kernel reset the connection, which can
        destroy our response before the client reads it. So we stop
        writing, read and discard what is still arriving for a moment, and
        only then let the connection close.
        """
        self.send_error(status, reason)  # sends "Connection: close" and sets close_connection
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
        local = self.connection.getsockname()
        return ConnectionInfo(
            client_address=self.client_address[0],
            client_port=self.client_address[1],
            server_address=local[0],
            server_port=local[1],
            scheme="http",
            protocol_version=self.request_version.partition("/")[2] or None,
        )

    # -- request body -------------------------------------------------------

    def _read_body(self) -> bytes:
        transfer_encodings = self.headers.get_all("Transfer-Encoding") or []
        lengths = self.headers.get_all("Content-Length") or []
        if transfer_encodings:
            # Both at once is how requests get smuggled past proxies (RFC 9112, 6.3).
            if lengths:
                raise _BadRequest(400, "Content-Length and Transfer-Encoding together")
            codings = [c.strip().lower() for value in transfer_encodings for c in value.split(",")]
            if codings != ["chunked"]:
                raise _BadRequest(501, "Unsupported Transfer-Encoding")
            return self._read_chunked()
        if not lengths:
            return b""
        # Repeated identical values ("5, 5") are allowed by RFC 9110, 8.6.
        values = {v.strip() for value in lengths for v in value.split(",")}
        if len(values) != 1 or not _CONTENT_LENGTH.match(next(iter(values))):
            raise _BadRequest(400, "Invalid Content-Length")
        return self._read_exactly(int(values.pop()))

    def _read_exactly(self, size: int) -> bytes:
        data = self.rfile.read(size)
        if len(data) < size:
            raise _ClientGone
        return data

    def _read_line(self) -> bytes:
        line = self.rfile.readline(_MAX_LINE + 1)
        if not line:
            raise _ClientGone
        if len(line) > _MAX_LINE:
            raise _BadRequest(400, "Line too long in chunked body")
        return line

    def _read_chunked(self) -> bytes:
        """Read a chunked body (RFC 9112, section 7.1), dropping any trailers."""
        chunks: List[bytes] = []
        while True:
            size_text = self._read_line().split(b";", 1)[0].strip()  # drop chunk extensions
            if not _CHUNK_SIZE.match(size_text):
                raise _BadRequest(400, "Invalid chunk size")
            size = int(size_text, 16)
            if size == 0:
                break
            chunks.append(self._read_exactly(size))
            if self._read_exactly(2) != b"\r\n":
                raise _BadRequest(400, "Chunk not followed by CRLF")
        for _ in range(_MAX_TRAILERS + 1):
            if self._read_line() in (b"\r\n", b"\n"):
                return b"".join(chunks)
        raise _BadRequest(431, "Too many trailer fields")

    # -- logging --------------------------------------------------------------

    def version_string(self) -> str:
        return self.server_version  # without the base class's trailing space

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # The application's access line is written by InternalHTTPServer.respond,
        # inside whatever wraps it (a span's context); this would be a second one.
        pass

    def log_message(self, format: str, *args: Any) -> None:
        # The base class writes an access log line to stderr for every
        # request; a library must leave that decision to the application.
        # ``format`` is always one of http.server's constant format strings.
        access_logger.debug("%s - " + format, self.address_string(), *args)


class _HTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its application and its connections.

    It remembers every open connection and its thread so that shutdown can
    end idle kept-alive connections, whose threads would otherwise block in
    ``recv`` until the client goes away, and then join those threads. (The
    stdlib's own tracking, ``block_on_close``, skips daemon threads, and the
    threads must stay daemons so that a forgotten server never keeps a
    process alive.)
    """

    request_queue_size = 64
    block_on_close = False  # joining is done by stop_connections()

    def __init__(self, app: InternalHTTPServer, address: Tuple[str, int]) -> None:
        self.app = app
        self._open: Dict[socket.socket, threading.Thread] = {}
        self._open_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS look-up that
        # can take seconds and that nothing here uses.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Runs on the serving loop's thread, so once the loop has stopped no
        # connection can be added behind stop_connections()'s back.
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"internalhttp-connection-{client_address[1]}",
            daemon=True,
        )
        with self._open_lock:
            self._open[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def stop_connections(self, timeout: float) -> None:
        """End every connection after its current request; join the threads.

        Only the reading side is shut down: a thread waiting for the next
        request sees end of file and exits, while one running a handler can
        still write the response. Threads still running after ``timeout``
        seconds (a handler that does not return) are left behind, logged.
        """
        with self._open_lock:
            connections = list(self._open.items())
        for connection, _ in connections:
            with contextlib.suppress(OSError):  # its own thread may have closed it meanwhile
                connection.shutdown(socket.SHUT_RD)
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            if thread is threading.current_thread():
                continue  # a handler shutting down its own server
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                logger.warning("internalhttp: %s still running at shutdown; left behind", thread.name)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints these to stderr. A client resetting or timing
        # out is routine; anything else is a bug worth a traceback.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            logger.debug("internalhttp: connection from %s ended: %r", client_address, exc)
        else:
            logger.exception("internalhttp: error on connection from %s", client_address)


class RunningServer:
    """A handle on an application being served in a background thread.

    Returned by :func:`serve`. ``port`` is the port actually bound, which is
    how a test asks for port 0 and then learns where to connect. Use it as a
    context manager, or call :meth:`shutdown`, to stop serving.
    """

    def __init__(self, httpd: _HTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self._lock = threading.Lock()
        self._closed = False
        host, port = httpd.server_address[:2]
        self.host: str = str(host)
        self.port: int = int(port)

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

        Stops the accept loop, closes the listening socket, ends every open
        connection after the request it is handling, if any, has been
        answered, then joins the connection threads and the serving thread.
        A handler still running after a few seconds is not waited for.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._httpd.shutdown()  # returns once serve_forever() has returned
            self._httpd.server_close()  # closes the listening socket
            self._httpd.stop_connections(_SHUTDOWN_TIMEOUT)
            self._thread.join()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving"
        return f"<RunningServer {self.app!r} on {self.url} ({state})>"


def serve(server: InternalHTTPServer, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Serve ``server`` on ``host:port`` from a daemon thread; return at once.

    The socket is bound and listening before this returns, so the handle's
    ``url`` can be used immediately; ``port=0`` picks a free port. Binding
    errors (port in use, bad address) are raised here, in the caller.
    IPv4 only.
    """
    httpd = _HTTPServer(server, (host, port))
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": _POLL_INTERVAL},
        name=f"internalhttp-serve-{httpd.server_address[1]}",
        daemon=True,
    )
    thread.start()
    return RunningServer(httpd, thread)


def serve_forever(server: InternalHTTPServer, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``server`` on ``host:port`` in the calling thread until interrupted.

    For command-line use (``Ctrl-C`` stops it cleanly). Tests and embedding
    code want :func:`serve` instead, which does not block.
    """
    with serve(server, host, port) as running:
        logger.info("internalhttp: serving %r on %s", server, running.url)
        try:
            # Joining with a timeout, in a loop, lets Ctrl-C through promptly.
            while running._thread.is_alive():
                running._thread.join(_WAKE_INTERVAL)
        except KeyboardInterrupt:
            logger.info("internalhttp: interrupted, shutting down")
