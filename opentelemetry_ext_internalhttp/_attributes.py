"""Pure attribute helpers: what a request's parts mean as semantic-convention attributes.

Free functions of their inputs, with no span, meter or configuration state,
so that each rule is shown by example here and tested on its own. They never
raise on client input: a value that cannot be read is left out.

The keys each semantic-convention mode writes are worked out once per
configuration into an :class:`AttributeKeys` (``http/dup`` writes both).

>>> keys = AttributeKeys.for_mode(old=True, new=True)
>>> attributes = {}
>>> add_server(attributes, keys, "shop.example:8443", ("shop.example", 8443))
>>> attributes
{'http.host': 'shop.example:8443', 'net.host.name': 'shop.example', 'server.address': 'shop.example', \
'net.host.port': 8443, 'server.port': 8443}
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, Optional, TypeVar

from internalhttp.redaction import SENSITIVE_QUERY_PARAMETERS, redact_query
from internalhttp.routing import CodeLocation
from internalhttp.server import ConnectionInfo
from opentelemetry.semconv._incubating.attributes.http_attributes import (
    HTTP_CLIENT_IP,
    HTTP_FLAVOR,
    HTTP_HOST,
    HTTP_METHOD,
    HTTP_SCHEME,
    HTTP_STATUS_CODE,
    HTTP_TARGET,
    HTTP_USER_AGENT,
)
from opentelemetry.semconv._incubating.attributes.net_attributes import (
    NET_HOST_NAME,
    NET_HOST_PORT,
    NET_PEER_IP,
    NET_PEER_PORT,
)
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS, CLIENT_PORT
from opentelemetry.semconv.attributes.code_attributes import (
    CODE_FILE_PATH,
    CODE_FUNCTION_NAME,
    CODE_LINE_NUMBER,
)
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE
from opentelemetry.semconv.attributes.network_attributes import (
    NETWORK_LOCAL_ADDRESS,
    NETWORK_LOCAL_PORT,
    NETWORK_PEER_ADDRESS,
    NETWORK_PEER_PORT,
    NETWORK_PROTOCOL_VERSION,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from opentelemetry.util.http import detect_synthetic_user_agent

# The framework's list and rule: its log lines and our attributes show a
# request target the same way.
DEFAULT_REDACTED_QUERY_PARAMS = SENSITIVE_QUERY_PARAMETERS
DEFAULT_PORTS = {"http": 80, "https": 443}
# The HTTP versions a request can have, spelled as network.protocol.version
# wants them. Anything else is a client's invention and is not recorded: the
# version is a metric attribute.
_PROTOCOL_VERSIONS = {"1.0": "1.0", "1.1": "1.1", "2": "2", "2.0": "2", "3": "3", "3.0": "3"}
_MAX_PORT_DIGITS = 5
_V = TypeVar("_V", bound=Hashable)


@dataclass(frozen=True, slots=True)  # slots: read on every request (see _config.Settings)
class AttributeKeys:
    """The attribute keys one semantic-convention mode writes, for each fact."""

    old: bool
    new: bool
    method: tuple[str, ...]
    scheme: tuple[str, ...]
    host_name: tuple[str, ...]
    host_port: tuple[str, ...]
    user_agent: tuple[str, ...]
    protocol: tuple[str, ...]
    status: tuple[str, ...]

    @classmethod
    def for_mode(cls, old: bool, new: bool) -> AttributeKeys:
        """The keys of the old conventions, the stable ones, or both.

        >>> AttributeKeys.for_mode(old=True, new=True).method
        ('http.method', 'http.request.method')
        """

        def keys(old_key: str, new_key: str) -> tuple[str, ...]:
            return (old_key,) * old + (new_key,) * new

        return cls(
            old,
            new,
            method=keys(HTTP_METHOD, HTTP_REQUEST_METHOD),
            scheme=keys(HTTP_SCHEME, URL_SCHEME),
            host_name=keys(NET_HOST_NAME, SERVER_ADDRESS),
            host_port=keys(NET_HOST_PORT, SERVER_PORT),
            user_agent=keys(HTTP_USER_AGENT, USER_AGENT_ORIGINAL),
            protocol=keys(HTTP_FLAVOR, NETWORK_PROTOCOL_VERSION),
            status=keys(HTTP_STATUS_CODE, HTTP_RESPONSE_STATUS_CODE),
        )


def protocol_version(raw: object) -> Optional[str]:
    """The HTTP version as ``network.protocol.version``, or None for one no client can really speak.

    >>> protocol_version("1.1"), protocol_version("2.0"), protocol_version("1.0000000001")
    ('1.1', '2', None)
    """
    return _PROTOCOL_VERSIONS.get(raw) if isinstance(raw, str) else None


def parse_port(text: str) -> Optional[int]:
    """A TCP port written in ASCII digits, or None.

    >>> parse_port("8080"), parse_port("\u00b2"), parse_port("9" * 5000), parse_port("70000")
    (8080, None, None, None)
    """
    if not text or len(text) > _MAX_PORT_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    port = int(text)
    return port if port <= 65535 else None


@lru_cache(maxsize=256)  # the Host of most requests is one of a few; bounded, as clients choose it
def split_host(host: str) -> tuple[str, Optional[int]]:
    """Split a ``Host`` value (or the first of several) into address and port.

    Never raises: a port that cannot be read is None.

    >>> split_host("[::1]:8080"), split_host("example.com"), split_host("h:x\u00b2")
    (('::1', 8080), ('example.com', None), ('h', None))
    """
    host = host.split(",", 1)[0].strip()
    if host.startswith("["):
        address, _, rest = host[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        address, _, port_text = host.partition(":")
    else:
        address, port_text = host, ""
    return address, parse_port(port_text)


def add_url(
    attributes: dict[str, Any], keys: AttributeKeys, path: str, query: Optional[str], redacted: Iterable[str]
) -> None:
    """``url.path`` and ``url.query`` (stable), ``http.target`` (old), the query redacted.

    >>> attributes = {}
    >>> add_url(attributes, AttributeKeys.for_mode(True, True), "/p", "sig=1&q=2", ["sig"])
    >>> attributes
    {'http.target': '/p?sig=REDACTED&q=2', 'url.path': '/p', 'url.query': 'sig=REDACTED&q=2'}
    """
    if not path:
        return  # a request line that could not be read: nothing to say
    safe_query = redact_query(query, redacted) if query else query
    if keys.old:
        # An empty query keeps its "?": the target is recorded as sent.
        attributes[HTTP_TARGET] = path if safe_query is None else f"{path}?{safe_query}"
    if keys.new:
        attributes[URL_PATH] = path
        if safe_query:
            attributes[URL_QUERY] = safe_query


def add_server(
    attributes: dict[str, Any],
    keys: AttributeKeys,
    host: Optional[str],
    server: tuple[Optional[str], Optional[int]],
) -> None:
    """The server the client addressed (span only: the host is the client's to choose).

    ``host`` is the host as claimed (the old ``http.host``); ``server`` its
    address and port (``server.address``/``server.port``, ``net.host.*``).
    """
    if host and keys.old:
        attributes[HTTP_HOST] = host
    address, port = server
    if address:
        for key in keys.host_name:
            attributes[key] = address
    if port:
        for key in keys.host_port:
            attributes[key] = port


def add_client(
    attributes: dict[str, Any],
    keys: AttributeKeys,
    client: Optional[str],
    forwarded: bool,
    connection: ConnectionInfo,
    client_port: bool,
) -> None:
    """The client: the socket's peer, and the original client behind trusted proxies.

    ``client`` is the original client (the peer itself when ``forwarded`` is
    false; None when a proxy could not tell). ``client.port`` is opt-in in the
    stable conventions; ``client_port`` says whether to record it, and it is
    known only for a client that talks to us directly.

    >>> attributes, stable = {}, AttributeKeys.for_mode(False, True)
    >>> peer = type("C", (), {"client_address": "10.0.0.1", "client_port": 5000})()
    >>> add_client(attributes, stable, "203.0.113.9", True, peer, client_port=True)
    >>> attributes
    {'client.address': '203.0.113.9', 'network.peer.address': '10.0.0.1', 'network.peer.port': 5000}
    """
    peer_address = connection.client_address
    peer_port = connection.client_port
    if keys.old:
        _add_old_client(attributes, peer_address, peer_port, client if forwarded else None)
    if keys.new:
        # client.address is the original client behind any proxies;
        # network.peer.* is the socket the request actually came from.
        if client:
            attributes[CLIENT_ADDRESS] = client
        if client_port and peer_port and not forwarded:
            attributes[CLIENT_PORT] = peer_port
        if peer_address:
            attributes[NETWORK_PEER_ADDRESS] = peer_address
        if peer_port:
            attributes[NETWORK_PEER_PORT] = peer_port


def _add_old_client(
    attributes: dict[str, Any], peer_address: Optional[str], peer_port: Optional[int], original: Optional[str]
) -> None:
    if peer_address:
        attributes[NET_PEER_IP] = peer_address
    if peer_port:
        attributes[NET_PEER_PORT] = peer_port
    if original:
        attributes[HTTP_CLIENT_IP] = original


def body_size(body: object) -> Optional[int]:
    """The size in bytes of a request or response body, when it has one.

    >>> body_size(b"abc"), body_size("h\u00e9"), body_size(None)
    (3, 3, None)
    """
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body)
    if isinstance(body, str):
        return len(body.encode("utf-8"))
    return None


def synthetic_type(headers: Mapping[str, str]) -> Optional[str]:
    """``user_agent.synthetic.type``: ``test`` or ``bot`` from the User-Agent, as util-http detects them.

    >>> synthetic_type({"user-agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"})
    'bot'
    """
    return detect_synthetic_user_agent(headers.get("user-agent"))


def code_attributes(location: CodeLocation, wanted: Iterable[str]) -> dict[str, Any]:
    """The ``code.*`` attributes of a route's handler that were opted in.

    >>> code_attributes(CodeLocation("shop.views.get_user", "/srv/shop/views.py", 12), ["code.function.name"])
    {'code.function.name': 'shop.views.get_user'}
    """
    known = {
        CODE_FUNCTION_NAME: location.function,
        CODE_FILE_PATH: location.file,
        CODE_LINE_NUMBER: location.line,
    }
    return {name: known[name] for name in wanted if known.get(name) is not None}


def add_local(attributes: dict[str, Any], connection: ConnectionInfo, address: bool, port: bool) -> None:
    """The opt-in ``network.local.address`` / ``network.local.port`` of the socket the request came on."""
    if address and connection.server_address:
        attributes[NETWORK_LOCAL_ADDRESS] = connection.server_address
    if port and connection.server_port:
        attributes[NETWORK_LOCAL_PORT] = connection.server_port


class BoundedValues(Generic[_V]):
    """Remembers up to ``limit`` distinct values; after that, a new one is refused.

    For opt-in metric attributes that come from outside the application
    (the server's address as the serving layer reports it): the first
    values seen are recorded, and no input can open more streams than that.

    >>> seen = BoundedValues(limit=2)
    >>> [seen.admit(value) for value in ("a", "b", "a", "c")]
    ['a', 'b', 'a', None]
    """

    __slots__ = ("_limit", "_seen")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[_V] = set()

    def admit(self, value: _V) -> Optional[_V]:
        if value in self._seen:
            return value
        if len(self._seen) < self._limit:
            self._seen.add(value)
            return value
        return None
