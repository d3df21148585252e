"""One request on a connection of the socket server: read it, have it served, answer or refuse it.

Internal to :mod:`internalhttp.serving`: the serving loop (:mod:`internalhttp.loop`)
hands a worker a connection whose request head and body are buffered; a
:class:`RequestHandler` reads the head and the body (from the buffer; from
the socket only for what the loop left to it), calls the application
through :meth:`InternalHTTPServer.serve_request` and writes the response, or
refuses the request (400, 408, 413, 414, 431, 501, 505) with a lingering
close. What the request's fields decide (framing, keep-alive, ``100
Continue``) are the pure rules of :mod:`internalhttp.wire`.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import socket
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, List, NamedTuple, Optional, Tuple

from internalhttp.body import BodyReader, ClientGone
from internalhttp.redaction import escape_control, loggable_target
from internalhttp.request import ConnectionInfo, Headers, Refusal, local_endpoint, socket_endpoint
from internalhttp.version import __version__
from internalhttp.wire import (
    RequestError,
    body_length,
    expects_continue,
    parse_request_line,
    readable_request_line,
    response_connection,
    response_has_content,
    wants_close,
)

if TYPE_CHECKING:  # annotations only: never bind the classes at run time
    from internalhttp.intake import BodyWait
    from internalhttp.loop import ServingLoop
    from internalhttp.server import InternalHTTPServer

__all__ = ["SERVER_VERSION", "Connection", "Limits", "RequestHandler"]

logger = logging.getLogger("internalhttp")
access_logger = logging.getLogger("internalhttp.access")

SERVER_VERSION = f"internalhttp/{__version__}"

# Below this size a response's head and body are sent in one write.
_ONE_WRITE = 65536
# Lingering close after refusing a request: how long to wait for the client's
# remaining input, and how much of it to discard at most.
_LINGER_TIMEOUT = 1.0
_LINGER_LIMIT = 1 << 20


class Limits(NamedTuple):
    """The limits one socket server enforces (see :func:`internalhttp.serving.serve`)."""

    max_body_size: int
    max_head_size: int
    max_connections: int
    max_workers: int
    head_timeout: float
    body_timeout: float
    max_buffered_bytes: int


# Bytes taken from a socket per read: bounds what one read adds to a buffer.
RECV_SIZE = 16384


class Connection:
    """A client connection and the bytes read from it but not yet used."""

    __slots__ = (
        "address",
        "body",
        "buffer",
        "deadline",
        "opened",
        "queue_time",
        "queued_at",
        "requests",
        "scanned",
        "sock",
    )

    def __init__(self, sock: socket.socket, address: Tuple[str, int], opened: float = 0.0) -> None:
        self.sock = sock
        self.address = address
        self.buffer = bytearray()
        self.deadline = 0.0
        self.scanned = 0  # how much of buffer is known to hold no head end
        self.opened = opened  # time.monotonic() when accepted
        self.requests = 0  # request heads read on it so far
        # The body the loop is reading (an intake.BodyWait), until a worker answers the request.
        self.body: Optional[BodyWait] = None
        self.queued_at = 0.0  # when the request was handed to the worker pool
        # How long the request being answered waited for a worker (see ConnectionInfo).
        self.queue_time: Optional[float] = None

    def receive(self) -> Optional[bytes]:
        """What a non-blocking read gets: None if nothing is there yet, ``b""`` if the client is gone."""
        try:
            return self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""  # reset, or otherwise unreadable: as good as closed

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a valid code with no registered phrase, e.g. 599
        return ""


def _report_refusal(app: InternalHTTPServer, refusal: Refusal) -> None:
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


class RequestHandler:
    """Reads one request whose head is buffered, dispatches it and answers."""

    def __init__(self, server: ServingLoop, conn: Connection, head: bytes) -> None:
        self.server = server
        self.conn = conn
        conn.requests += 1
        self.sock = conn.sock
        self.client_address = conn.address
        self.reader = BodyReader(conn.sock, conn.buffer, server.limits.head_timeout)  # what follows the head
        line, _, self._fields = head.partition(b"\n")
        self.request_line = line.rstrip(b"\r").decode("latin-1")
        self.method = ""
        self.target = ""
        self.version = "HTTP/1.1"
        self.headers = http.client.HTTPMessage()
        self.close_connection = True

    def handle(self) -> Optional[str]:
        """Answer the request; return None if the connection stays open, else why it closes.

        The reasons are those of :data:`internalhttp.observe.CLOSE_REASONS`.
        """
        try:
            self._parse_head()
            body = self._read_body()
        except RequestError as exc:
            self.refuse(exc.status, exc.reason)
            return "refused"
        except ClientGone:
            return "client_closed"
        status, headers, payload = self.server.app.serve_request(
            self.method,
            self.target,
            Headers(self.headers.items()),
            body,
            self._connection_info(),
        )
        self._send(status, headers, payload)
        return "server_closed" if self.close_connection else None

    def _parse_head(self) -> None:
        try:
            self.method, self.target, self.version = parse_request_line(self.request_line)
        except RequestError:
            # The refusal still says what was asked, when the line tells it.
            self.method, self.target = readable_request_line(self.request_line)
            raise
        try:
            self.headers = http.client.parse_headers(io.BytesIO(self._fields))
        except http.client.HTTPException as exc:  # more than 100 fields
            raise RequestError(431, "Too many header fields") from exc
        self.close_connection = wants_close(self.version, self.headers.get_all("Connection") or [])

    def _read_body(self) -> bytes:
        limit = self.server.limits.max_body_size
        length = body_length(
            self.headers.get_all("Transfer-Encoding") or [], self.headers.get_all("Content-Length") or []
        )
        if length is None:
            self._continue()
            return self.reader.read_chunked(limit)
        if not length:
            return b""
        if length > limit:  # decided before reading a byte of it
            raise RequestError(413, "Request body too large")
        self._continue()
        return self.reader.read_exactly(length)

    def _continue(self) -> None:
        # Sent only once the body is known to be acceptable; a client that
        # sent the body anyway is not waiting.
        if expects_continue(self.headers.get("Expect", ""), self.version) and not self.reader.buffered():
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _head(self, status: int, headers: List[Tuple[str, str]]) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {_phrase(status)}",
            f"Server: {SERVER_VERSION}",
            f"Date: {formatdate(usegmt=True)}",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, status: int, headers: List[Tuple[str, str]], payload: bytes) -> None:
        self.close_connection, headers = response_connection(
            headers, self.close_connection or self.server.stopping, self.version
        )
        head = self._head(status, headers)
        self.sock.settimeout(self.server.limits.head_timeout)  # the body's deadline is over
        if not response_has_content(self.method, status):
            payload = b""
        if len(payload) < _ONE_WRITE:
            self.sock.sendall(head + payload)
        else:
            self.sock.sendall(head)
            self.sock.sendall(payload)

    def refuse(self, status: int, reason: str) -> None:
        """Answer an error without involving the application, then close.

        The close is a lingering one (RFC 9112, section 9.6): the client may
        still be sending the body we refused, and closing a socket with
        unread input makes the kernel reset the connection, which can
        destroy our response before the client reads it. So we stop
        writing, read and discard what is still arriving for a moment, and
        only then let the connection close.
        """
        self.sock.settimeout(self.server.limits.head_timeout)
        self.sock.sendall(self.refusal(status, reason))
        with contextlib.suppress(OSError):  # includes the linger timeout
            self.sock.shutdown(socket.SHUT_WR)
            self.sock.settimeout(_LINGER_TIMEOUT)
            drained = 0
            while drained < _LINGER_LIMIT:
                data = self.sock.recv(65536)
                if not data:
                    break
                drained += len(data)

    def refusal(self, status: int, reason: str, extra: Tuple[Tuple[str, str], ...] = ()) -> bytes:
        """Report a refusal to the application and log it; return the response to send."""
        self.close_connection = True
        _report_refusal(
            self.server.app, Refusal(status, reason, self.method, self.target, self._connection_info())
        )
        body = f"{status} {_phrase(status)}: {reason}\n".encode("ascii")
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *extra,
        ]
        # A refusal's access line, shaped like log_access()'s, the target as any log line shows it.
        access_logger.info(
            '%s - "%s" %d %d', self.client_address[0], _printable(self.request_line), status, len(body)
        )
        return self._head(status, headers) + (b"" if self.method == "HEAD" else body)

    def _connection_info(self) -> ConnectionInfo:
        transport, local_address, local_port = local_endpoint(self.sock)
        _, client_address, client_port = socket_endpoint(self.sock.family, self.client_address)
        return ConnectionInfo(
            client_address=client_address,
            client_port=client_port,
            server_address=local_address,
            server_port=local_port,
            scheme="http",
            protocol_version=self.version.partition("/")[2] or None,
            transport=transport,
            queue_time=self.conn.queue_time,
        )
