"""What a request is made of: its headers, its connection, the request read once, its exchange, a refusal.

Value types only, shared by the dispatch seam (:mod:`internalhttp.server`,
which re-exports them), the serving layers and whatever wraps dispatch
(logging, telemetry). Nothing here routes, reads a socket's data or writes
a response.

>>> headers = Headers({"Content-Type": "text/plain"})
>>> headers["content-type"]
'text/plain'
>>> ConnectionInfo(client_address="127.0.0.1").transport
'tcp'
>>> Refusal(505, "HTTP version not supported", "GET", "/users/1").method
'GET'
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, Mapping, NamedTuple, Optional, Tuple

from internalhttp.routing import RouteMatch

if TYPE_CHECKING:  # annotations only
    from internalhttp.response import Outcome

__all__ = [
    "UNKNOWN_CONNECTION",
    "ConnectionInfo",
    "Exchange",
    "Headers",
    "Refusal",
    "Request",
    "local_endpoint",
    "socket_endpoint",
]


@dataclass(frozen=True)
class ConnectionInfo:
    """What the serving layer knows about the connection a request came on.

    Serving layers pass it to ``handle_request(..., connection=...)``; handlers
    never see it. Every field is optional because a request may be dispatched
    in-process with no connection at all.

    ``client_address``/``client_port`` are the peer of the socket.
    ``server_address``/``server_port`` are the socket's own (local) end, as
    ``getsockname()`` tells it for the accepted connection: never a wildcard
    bind address and never what a client wrote in a header; ``None`` when the
    serving layer has no socket to ask. On a unix socket ``transport`` is
    ``"unix"``, ``server_address`` the socket's path (``None`` when unnamed)
    and both ports ``None``. ``root_path`` is where the application is
    mounted (WSGI ``SCRIPT_NAME``, percent-encoded, no trailing slash; ``""``
    at the root): the target the application routes on is below it.
    ``queue_time`` is how long, in seconds, the request waited for a worker
    of the socket server once it was read (``0.0`` for a kept-alive
    connection's request served by the worker already holding it; ``None``
    when the serving layer does not queue or does not know, as under WSGI).
    """

    client_address: Optional[str] = None
    client_port: Optional[int] = None
    server_address: Optional[str] = None
    server_port: Optional[int] = None
    scheme: str = "http"
    protocol_version: Optional[str] = None
    transport: str = "tcp"
    root_path: str = ""
    queue_time: Optional[float] = None


# What getsockname() says of a socket bound to every interface: not an address
# anyone connected to, so never reported as one.
_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def socket_endpoint(family: int, address: object) -> Tuple[str, Optional[str], Optional[int]]:
    """``(transport, address, port)`` of one end of a socket, from its family and address.

    ``address`` is what ``getsockname()`` or ``accept()`` returned: a
    ``(host, port)`` pair for IPv4, ``(host, port, flowinfo, scope_id)`` for
    IPv6, a path for a unix socket (``""`` when unnamed; ``bytes`` starting
    with NUL for Linux's abstract namespace, written ``@name`` as ``ss`` does).

    >>> import socket
    >>> socket_endpoint(socket.AF_INET, ("127.0.0.1", 8080))
    ('tcp', '127.0.0.1', 8080)
    >>> socket_endpoint(socket.AF_INET6, ("::1", 8080, 0, 0))
    ('tcp', '::1', 8080)
    >>> socket_endpoint(socket.AF_INET, ("0.0.0.0", 8080))
    ('tcp', None, 8080)
    >>> socket_endpoint(socket.AF_UNIX, "/run/app.sock")
    ('unix', '/run/app.sock', None)
    >>> socket_endpoint(socket.AF_UNIX, "")
    ('unix', None, None)
    >>> socket_endpoint(socket.AF_UNIX, b"\\0app")
    ('unix', '@app', None)
    """
    if family == getattr(socket, "AF_UNIX", None):
        if isinstance(address, (bytes, bytearray)):
            address = os.fsdecode(bytes(address))
        path = str(address or "")
        if path.startswith("\0"):
            path = "@" + path[1:]
        return "unix", path or None, None
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = str(address[0]), address[1]
        return "tcp", (None if host in _WILDCARDS else host), (port if type(port) is int else None)
    return "tcp", None, None


def local_endpoint(sock: socket.socket) -> Tuple[str, Optional[str], Optional[int]]:
    """``(transport, address, port)`` of a connected socket's own end; ``("tcp", None, None)`` when unknown.

    Anything without a working ``getsockname()`` (a closed socket, an object
    some WSGI server put where a socket was expected) is unknown.
    """
    try:
        return socket_endpoint(sock.family, sock.getsockname())
    except (AttributeError, OSError, TypeError, ValueError):
        return "tcp", None, None


class Headers(Mapping[str, str]):
    """A read-only, case-insensitive mapping of header names to values.

    Repeated header lines are joined with ``,`` (RFC 9110, section 5.3);
    iteration yields the names as first spelled. Names and values are kept
    as text whatever the caller passed: ``bytes`` are read as Latin-1 (as
    HTTP/1.1 servers do) and anything else as ``str(value)``.

    >>> headers = Headers([("Accept", "a/b"), ("accept", b"c/d")])
    >>> headers["ACCEPT"]
    'a/b,c/d'
    >>> list(headers)
    ['Accept']
    """

    __slots__ = ("_names", "_values")

    def __init__(self, items: Iterable[Tuple[Any, Any]] | Mapping[Any, Any] | None = None) -> None:
        self._values: Dict[str, str] = {}
        self._names: Dict[str, str] = {}
        if items is None:
            return
        # A dict is the common case, and cheaper to recognise than any Mapping.
        pairs = items.items() if type(items) is dict or isinstance(items, Mapping) else items
        for name, value in pairs:
            name = name if type(name) is str else _text(name)
            key = name.lower()
            text = value if type(value) is str else _text(value)
            if key in self._values:
                self._values[key] = f"{self._values[key]},{text}"
            else:
                self._values[key] = text
                self._names[key] = name

    def __getitem__(self, name: str) -> str:
        return self._values[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self._values[name.lower()]
        except (KeyError, AttributeError):
            return default

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._names.values())

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Headers({[(self._names[k], v) for k, v in self._values.items()]!r})"

    def lowered(self) -> MappingProxyType[str, str]:
        """A read-only view with lower-case names, without copying.

        >>> dict(Headers([("X-Request-Id", "r-1")]).lowered())
        {'x-request-id': 'r-1'}
        """
        return MappingProxyType(self._values)


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (list, tuple)):
        return ",".join(_text(item) for item in value)
    return str(value)


@dataclass(slots=True)
class Request:
    """One request, read once: what :meth:`InternalHTTPServer.prepare` returns.

    ``target`` is the request target as sent; ``path`` and ``query`` are
    its parts (see :func:`~internalhttp.routing.split_target`); ``match``
    is what the route table made of the method and path. Everything that
    looks at a request before or after its handler (logging, telemetry)
    reads it from here instead of parsing the request again. ``connection``
    is :data:`UNKNOWN_CONNECTION` for a request dispatched with none.

    Nothing changes a request once it is made. It is a dataclass with
    slots, not frozen and not a NamedTuple, because one is made for every
    request and its fields are read a dozen times: CPython makes and reads
    such an instance in less than two thirds of a NamedTuple's instructions
    and in a quarter of a frozen dataclass's.
    """

    method: str
    target: str
    path: str
    query: Optional[str]
    headers: Headers
    connection: ConnectionInfo
    match: RouteMatch
    # The serving layer's exchange, when a serving layer is serving this request.
    exchange: Optional[Exchange] = None


# The connection of a request dispatched in-process, with no socket: nothing is known of it.
UNKNOWN_CONNECTION = ConnectionInfo()


class Exchange:
    """One request a serving layer is serving, as :meth:`InternalHTTPServer.exchange` sees it.

    Created for each served request and taken by the :meth:`~InternalHTTPServer.prepare`
    of the ``handle_request`` call made for it (a ``handle_request`` call
    nested inside the handler prepares a request of its own without one).
    :meth:`~InternalHTTPServer.conclude` leaves the request's
    :class:`~internalhttp.response.Outcome` here, so the rule that turns a
    handler's value into the response sent is applied once.
    """

    __slots__ = ("outcome", "raise_exceptions")

    def __init__(self, raise_exceptions: bool) -> None:
        self.raise_exceptions = raise_exceptions
        self.outcome: Optional[Outcome] = None


class Refusal(NamedTuple):
    """A request a serving layer answered itself, without the application.

    ``method`` and ``target`` are ``""`` when the request line could not be
    read; ``status`` is what the client received (400, 413, 414, 431, 501, 505).
    """

    status: int
    reason: str
    method: str = ""
    target: str = ""
    connection: Optional[ConnectionInfo] = None
