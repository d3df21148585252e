"""The framework's HTTP wire rules, in one place.

Every serving layer (the socket server, the WSGI adapter) and the parts that
build responses check tokens, lengths and limits the same way, so the rules
live here and nowhere else. Nothing here does I/O.

>>> is_token("M-SEARCH"), is_token("G@T")
(True, False)
>>> parse_content_length(["5", "5, 5"])
5
>>> parse_request_line("GET /users/7?x=1 HTTP/1.1")
('GET', '/users/7?x=1', 'HTTP/1.1')
>>> parse_chunk_size(b"1a;name=value")
26
>>> body_length(["chunked"], []) is None, body_length([], ["12"])
(True, 12)
>>> wants_close("HTTP/1.0", [])
True
"""

from __future__ import annotations

import re
from typing import Iterable, List, Optional, Sequence, Tuple

__all__ = [
    "DEFAULT_BODY_TIMEOUT",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_MAX_WORKERS",
    "MAX_HEADERS",
    "MAX_LENGTH",
    "SUPPORTED_VERSIONS",
    "TOKEN",
    "RequestError",
    "body_length",
    "expects_continue",
    "is_token",
    "parse_chunk_size",
    "parse_content_length",
    "parse_request_line",
    "readable_request_line",
    "response_connection",
    "response_has_content",
    "status_allows_body",
    "wants_close",
]

# RFC 9110, section 5.6.2: methods and field names are tokens.
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
_HEX_DIGITS = re.compile(rb"[0-9A-Fa-f]+\Z")
_VERSION = re.compile(r"HTTP/[0-9]\.[0-9]\Z")

#: The protocol versions the servers speak; any other well-formed version is a 505.
SUPPORTED_VERSIONS = frozenset({"HTTP/1.0", "HTTP/1.1"})

#: Largest request body accepted, in bytes (10 MiB); a larger one is a 413.
DEFAULT_MAX_BODY_SIZE = 10 * 1024 * 1024
#: Largest request head (request line and header fields) accepted, in bytes.
DEFAULT_MAX_HEAD_SIZE = 64 * 1024
#: Most header fields (and chunked-body trailer fields) in one request.
MAX_HEADERS = 100
#: Seconds a connection has to deliver a whole request head, counted from
#: when it was accepted or from its previous response; also the time a
#: response has to be written.
DEFAULT_HEAD_TIMEOUT = 10.0
#: Seconds a request body has to arrive whole, counted from the end of its
#: head (408 otherwise): the same number as nginx's ``client_body_timeout``,
#: but for the whole body, so a trickling client cannot stretch it.
DEFAULT_BODY_TIMEOUT = 60.0
#: Request body bytes buffered at most, across all connections, for requests
#: not yet answered; a body that would go past it is answered 503.
DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024
#: Open client connections at most; past it the oldest one still waiting for
#: its request head is closed to make room.
DEFAULT_MAX_CONNECTIONS = 512
#: Threads running the application at most.
DEFAULT_MAX_WORKERS = 32
#: Seconds a stopping server waits for requests in progress.
DEFAULT_GRACE_PERIOD = 10.0

#: Lengths above this are reported as this: no limit admits them, and
#: callers compare them without converting huge digit strings (Python refuses
#: ``int()`` of more than 4,300 digits) or asking a socket for 10**20 bytes.
MAX_LENGTH = 2**63 - 1
_MAX_DECIMAL_DIGITS = len(str(MAX_LENGTH)) - 1  # 18: always below MAX_LENGTH
_MAX_HEX_DIGITS = 15  # likewise


class RequestError(ValueError):
    """A request that breaks the wire rules; answer it with ``status`` and close.

    ``reason`` is a fixed phrase chosen here, never text taken from the
    request, so it is safe to send back and to log.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def is_token(text: str) -> bool:
    """Whether ``text`` is an RFC 9110 token (a method or a field name)."""
    return TOKEN.match(text) is not None


def parse_request_line(line: str) -> Tuple[str, str, str]:
    """Split a request line into method, target and version (RFC 9112, 3).

    Raises :class:`RequestError`: 400 for anything malformed (including the
    HTTP/0.9 form ``GET /``), 505 for a well-formed version other than
    HTTP/1.0 and HTTP/1.1.
    """
    words = line.split()
    if len(words) != 3:
        raise RequestError(400, "Malformed request line")
    method, target, version = words
    if not _VERSION.match(version):
        raise RequestError(400, "Malformed HTTP version")
    if version not in SUPPORTED_VERSIONS:
        raise RequestError(505, "HTTP version not supported")
    if not is_token(method):
        raise RequestError(400, "Bad request method")
    return method, target, version


def readable_request_line(line: str) -> Tuple[str, str]:
    """The method and target of a request line, when they can be read; else ``("", "")``.

    For answering a request line that :func:`parse_request_line` refused: a
    line of three words whose first is a method token says what was asked
    (``GET /users/1``) even when its version is not one the server speaks.

    >>> readable_request_line("GET /users/1 HTTP/2.0")
    ('GET', '/users/1')
    >>> readable_request_line("GET /users/1")
    ('', '')
    >>> readable_request_line("G@T / HTTP/2.0")
    ('', '')
    """
    words = line.split()
    if len(words) != 3 or not is_token(words[0]):
        return "", ""
    return words[0], words[1]


def parse_content_length(values: Iterable[str]) -> Optional[int]:
    """The body length the ``Content-Length`` field values declare.

    ``None`` when there is no value. Repeated identical values (``"5, 5"``)
    are one value (RFC 9110, 8.6); differing values, signs, spaces inside
    the number or anything but ASCII digits raise :class:`RequestError`
    (400). A length above :data:`MAX_LENGTH` is returned as ``MAX_LENGTH``.
    """
    found = {v.strip() for value in values for v in value.split(",")}
    if not found:
        return None
    if len(found) != 1:
        raise RequestError(400, "Invalid Content-Length")
    text = found.pop()
    if not _DIGITS.match(text):
        raise RequestError(400, "Invalid Content-Length")
    significant = text.lstrip("0")
    if len(significant) > _MAX_DECIMAL_DIGITS:
        return MAX_LENGTH
    return int(significant or "0")


def parse_chunk_size(line: bytes) -> int:
    """The size on a chunk-size line of a chunked body (RFC 9112, 7.1).

    Chunk extensions (after ``;``) and surrounding whitespace are ignored;
    anything but hexadecimal digits raises :class:`RequestError` (400). A
    size above :data:`MAX_LENGTH` is returned as ``MAX_LENGTH``.
    """
    text = line.split(b";", 1)[0].strip()
    if not _HEX_DIGITS.match(text):
        raise RequestError(400, "Invalid chunk size")
    significant = text.lstrip(b"0")
    if len(significant) > _MAX_HEX_DIGITS:
        return MAX_LENGTH
    return int(significant or b"0", 16)


# -- framing and keep-alive: what a request's fields and a response's status decide --


def body_length(transfer_encodings: Sequence[str], content_lengths: Sequence[str]) -> Optional[int]:
    """How a request body is framed (RFC 9112, 6.3): its length, or ``None`` when chunked.

    ``transfer_encodings`` and ``content_lengths`` are the values of every
    ``Transfer-Encoding`` and ``Content-Length`` field. No field at all
    means no body (0). Both at once is how requests get smuggled past
    proxies: a 400. A transfer coding other than ``chunked`` alone is a 501.

    >>> body_length([], [])
    0
    >>> body_length(["Chunked"], [])
    >>> body_length(["gzip, chunked"], [])
    Traceback (most recent call last):
    internalhttp.wire.RequestError: Unsupported Transfer-Encoding
    >>> body_length(["chunked"], ["5"])
    Traceback (most recent call last):
    internalhttp.wire.RequestError: Content-Length and Transfer-Encoding together
    """
    if transfer_encodings:
        if content_lengths:
            raise RequestError(400, "Content-Length and Transfer-Encoding together")
        codings = [c.strip().lower() for value in transfer_encodings for c in value.split(",")]
        if codings != ["chunked"]:
            raise RequestError(501, "Unsupported Transfer-Encoding")
        return None
    return parse_content_length(content_lengths) or 0


def expects_continue(expect: str, version: str) -> bool:
    """Whether the client waits for ``100 Continue`` before sending its body (RFC 9110, 10.1.1).

    Only HTTP/1.1 clients do; the server sends it once the body is known to
    be acceptable, and not to a client that sent the body anyway.

    >>> expects_continue("100-Continue", "HTTP/1.1"), expects_continue("100-continue", "HTTP/1.0")
    (True, False)
    """
    return expect.lower() == "100-continue" and version == "HTTP/1.1"


def wants_close(version: str, connection_values: Iterable[str]) -> bool:
    """Whether the client asked for its connection to close after the response (RFC 9112, 9.3).

    ``connection_values`` are the values of the request's ``Connection``
    fields. HTTP/1.0 closes unless the client asked to keep it alive.

    >>> wants_close("HTTP/1.1", [])
    False
    >>> wants_close("HTTP/1.1", ["keep-alive, Close"])
    True
    >>> wants_close("HTTP/1.0", ["Keep-Alive"])
    False
    """
    tokens = {t.strip().lower() for value in connection_values for t in value.split(",")}
    if "close" in tokens:
        return True
    return version == "HTTP/1.0" and "keep-alive" not in tokens


def response_connection(
    headers: List[Tuple[str, str]], close: bool, version: str
) -> Tuple[bool, List[Tuple[str, str]]]:
    """Whether the connection closes after a response, and the response's fields for that.

    ``close`` says whether it closes anyway (the client asked, or the server
    is stopping); a ``Connection`` field that the application set to
    ``close`` closes it too. Without a ``Connection`` field of the
    application's, a closing response says ``close`` and a kept-alive
    HTTP/1.0 one ``keep-alive`` (HTTP/1.0 would close by default).

    >>> response_connection([], False, "HTTP/1.1")
    (False, [])
    >>> response_connection([], True, "HTTP/1.1")
    (True, [('Connection', 'close')])
    >>> response_connection([], False, "HTTP/1.0")
    (False, [('Connection', 'keep-alive')])
    >>> response_connection([("connection", "Close")], False, "HTTP/1.1")
    (True, [('connection', 'Close')])
    """
    connection = [value.lower() for name, value in headers if name.lower() == "connection"]
    close = close or any("close" in value for value in connection)
    if not connection:
        if close:
            headers = [*headers, ("Connection", "close")]
        elif version == "HTTP/1.0":
            headers = [*headers, ("Connection", "keep-alive")]
    return close, headers


def status_allows_body(status: int) -> bool:
    """Whether a response with this status may carry content (RFC 9110, 6.4.1).

    1xx, 204 and 304 responses end with their headers; sending bytes after
    them would be read as the start of the next response on a kept-alive
    connection.

    >>> status_allows_body(200), status_allows_body(204), status_allows_body(304)
    (True, False, False)
    """
    return status >= 200 and status not in (204, 304)


def response_has_content(method: str, status: int) -> bool:
    """Whether the response's body is sent: never in answer to ``HEAD`` or with a status that forbids it.

    >>> response_has_content("GET", 200), response_has_content("HEAD", 200), response_has_content("GET", 304)
    (True, False, False)
    """
    return method != "HEAD" and status_allows_body(status)
