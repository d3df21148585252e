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
"""

from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_HEAD_TIMEOUT",
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_MAX_WORKERS",
    "MAX_HEADERS",
    "MAX_LENGTH",
    "SUPPORTED_VERSIONS",
    "TOKEN",
    "RequestError",
    "is_token",
    "parse_chunk_size",
    "parse_content_length",
    "parse_request_line",
    "readable_request_line",
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
#: when it was accepted or from its previous response. A body gets as long
#: plus a second per 8 KiB received; a response as long to be written.
DEFAULT_HEAD_TIMEOUT = 10.0
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
