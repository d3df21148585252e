"""Who sent a request, read through the proxies the user trusts.

A forwarding header (``X-Forwarded-*``, ``Forwarded``) is text any client can
send. It is believed only when the connection's peer is a trusted proxy, and
within a chain only as far as trusted hops wrote it:

* the client is the rightmost address of the chain that is not a trusted
  proxy, walking ``X-Forwarded-For`` (or ``Forwarded``'s ``for=``) from the
  right, as nginx's ``real_ip_recursive`` and Rails' ``RemoteIp`` do; when
  every address is trusted, the leftmost;
* scheme, host, port and path prefix come from what the outermost trusted
  hop wrote (the hop that received the request from that client);
* ``for=unknown``, obfuscated identifiers (``_hidden``) and anything else
  that is not an IP address stop the walk and are never recorded.

Everything here is a pure function of its inputs, so each rule is shown by
example and tested on its own.

>>> rules = ProxyRules(TrustedProxies.parse(["10.0.0.0/8"]), "x-forwarded")
>>> from internalhttp.server import ConnectionInfo
>>> client, forwarded, scheme, host, port, prefix = rules.origin(
...     "/p", {"x-forwarded-for": "1.2.3.4, 203.0.113.9", "x-forwarded-proto": "https"},
...     ConnectionInfo(client_address="10.0.0.2"))
>>> client, scheme, forwarded
('203.0.113.9', 'https', True)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from typing import NamedTuple, Optional, Union

from internalhttp.server import ConnectionInfo

from opentelemetry_ext_internalhttp._attributes import DEFAULT_PORTS, BoundedValues, parse_port, split_host

# What Rails trusts by default: loopback and the private ranges, so that a
# service behind a sidecar, an ingress or a private load balancer is right
# with no configuration, and one exposed to the internet cannot be lied to.
DEFAULT_TRUSTED_PROXIES = (
    "127.0.0.0/8",
    "::1",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)
# Which header family the trusted proxies write (forwarded_headers=).
X_FORWARDED, FORWARDED, BOTH = "x-forwarded", "forwarded", "both"
FORWARDED_HEADER_FAMILIES = (X_FORWARDED, FORWARDED, BOTH)
# An address is at most this long as text (an IPv6 address with a zone and
# brackets); a longer item is not parsed at all.
_MAX_ADDRESS_LENGTH = 64
# Peers whose trust was decided, kept so that the common few cost a dict look-up.
_DECISION_CACHE_LIMIT = 1024
# The longest X-Forwarded-Prefix believed; a prefix lands on http.route.
_MAX_PREFIX_LENGTH = 256

_Network = Union[IPv4Network, IPv6Network]


def node_address(node: str) -> Optional[str]:
    """An ``X-Forwarded-For`` item or RFC 7239 node as an IP address, or None when it is not one.

    Quotes, brackets and a port are taken off; the address comes back in
    its canonical form.

    >>> node_address('"[2001:DB8::1]:4711"'), node_address("192.0.2.60:80"), node_address(" ::1 ")
    ('2001:db8::1', '192.0.2.60', '::1')
    >>> node_address("unknown"), node_address("_hidden"), node_address("shop.example")
    (None, None, None)
    """
    text = node.strip().strip('"').strip()
    if not text or len(text) > _MAX_ADDRESS_LENGTH:
        return None
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port; a bare IPv6 address has more colons
        text = text.partition(":")[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


class TrustedProxies:
    """The peers whose forwarding headers are believed: networks, or everyone.

    >>> trusted = TrustedProxies.parse(["10.0.0.0/8", "::1"])
    >>> trusted.trusts("10.1.2.3"), trusted.trusts("::ffff:10.0.0.1"), trusted.trusts("8.8.8.8")
    (True, True, False)
    >>> TrustedProxies.parse(["*"]).trusts("203.0.113.9"), TrustedProxies.parse([]).trusts("127.0.0.1")
    (True, False)
    """

    __slots__ = ("_decided", "everyone", "networks")

    def __init__(self, networks: tuple[_Network, ...], everyone: bool) -> None:
        self.networks = networks
        self.everyone = everyone
        self._decided: dict[str, bool] = {}

    @classmethod
    def parse(cls, items: Iterable[str]) -> TrustedProxies:
        """From addresses and CIDR ranges, ``*`` for every peer; ValueError names what is neither."""
        networks: list[_Network] = []
        invalid: list[str] = []
        everyone = False
        for item in items:
            if item == "*":
                everyone = True
                continue
            try:
                networks.append(ip_network(item.strip(), strict=False))
            except ValueError:
                invalid.append(item)
        if invalid:
            raise ValueError(f"not an IP address or CIDR range: {', '.join(invalid)}")
        return cls(tuple(networks), everyone)

    def trusts(self, address: Optional[str], transport: str = "tcp") -> bool:
        """Whether ``address`` (text, as a peer or a chain gives it) is a trusted proxy.

        A unix-socket peer is a local process with the right to the socket:
        trusted, as gunicorn does.
        """
        if self.everyone or transport == "unix":
            return True
        if not address:
            return False
        decided = self._decided.get(address)
        if decided is None:
            canonical = node_address(address)
            decided = canonical is not None and any(
                ip_address(canonical) in network for network in self.networks
            )
            if len(self._decided) < _DECISION_CACHE_LIMIT:
                self._decided[address] = decided
        return decided

    def __repr__(self) -> str:
        listed = ["*"] * self.everyone + [str(network) for network in self.networks]
        return f"TrustedProxies({listed!r})"


# Where a request came from and what it addressed, as far as it is known:
# (client, forwarded, scheme, host, port, prefix), unpacked by these names
# wherever it is read. A plain tuple: one is made per request and read
# twice, and CPython 3.11 reads a NamedTuple's fields, makes one and frees
# it far more slowly (about 2,000 instructions a request in all).
#
# - client: the original client's address; None when no one can tell (a
#   proxy said "unknown", or there is no connection).
# - forwarded: whether client was read from a forwarding header (else it
#   is the peer).
# - scheme: http or https, the connection's own or a trusted proxy's.
# - host: the host the client addressed, host[:port] as written.
# - port: a port a trusted proxy sent on its own (X-Forwarded-Port), which
#   wins over the host's.
# - prefix: where the application is mounted as the client sees it: a
#   trusted X-Forwarded-Prefix, then the serving layer's root; "" at the root.
Origin = tuple[Optional[str], bool, str, Optional[str], Optional[int], str]

# Distinct application roots trusted proxies may name (X-Forwarded-Prefix):
# the root is part of http.route, a metric attribute, and a proxy passes on
# a client's own prefix header when it sets none itself.
_PREFIX_LIMIT = 16


class _Hop(NamedTuple):
    """What the outermost trusted hop wrote, read from one header family."""

    client: Optional[str]
    chained: bool  # the family named a client
    scheme: Optional[str]
    host: Optional[str]
    port: Optional[int]
    prefix: Optional[str]


class ProxyRules:
    """The trusted proxies and the header family they write: reads a request's :class:`Origin`."""

    __slots__ = ("_prefixes", "family", "trusted")

    def __init__(self, trusted: TrustedProxies, family: str) -> None:
        self.trusted = trusted
        self.family = family
        self._prefixes: BoundedValues[str] = BoundedValues(_PREFIX_LIMIT)

    def trusts_peer(self, peer: Optional[str], transport: str) -> bool:
        """Whether the connection's peer is a trusted proxy (see :meth:`TrustedProxies.trusts`)."""
        return self.trusted.trusts(peer, transport)

    def origin(self, target: str, headers: Mapping[str, str], connection: ConnectionInfo) -> Origin:
        """The request's origin: the connection's own values, then what trusted proxies said."""
        peer = connection.client_address
        transport = connection.transport
        root_path = connection.root_path
        scheme = connection.scheme if connection.scheme in DEFAULT_PORTS else "http"
        # An absolute-form target names the host; most targets start with "/".
        host = (target[:1] != "/" and target_host(target)) or headers.get(":authority") or headers.get("host")
        hop = self._hop(headers) if self.trusted.trusts(peer, transport) else None
        if hop is None:
            return (peer, False, scheme, host, None, root_path)
        prefix = (hop.prefix or "") + root_path
        if prefix != root_path and self._prefixes.admit(prefix) is None:
            prefix = root_path  # past the bound: the serving layer's own root
        return (
            hop.client if hop.chained else peer,
            hop.chained,
            hop.scheme or scheme,
            hop.host or host,
            hop.port,
            prefix,
        )

    def _hop(self, headers: Mapping[str, str]) -> Optional[_Hop]:
        family = self.family
        rfc = forwarded_hop(headers.get("forwarded"), self.trusted) if family != X_FORWARDED else None
        x_hop = x_forwarded_hop(headers, self.trusted) if family != FORWARDED else None
        if rfc is None or x_hop is None:
            return rfc or x_hop
        # Both families: each fact from Forwarded first, in the conventions' order.
        return _Hop(
            rfc.client if rfc.chained else x_hop.client,
            rfc.chained or x_hop.chained,
            rfc.scheme or x_hop.scheme,
            rfc.host or x_hop.host,
            x_hop.port,
            x_hop.prefix,
        )


def target_host(target: str) -> Optional[str]:
    """The authority of an absolute-form request target, or None.

    >>> target_host("http://user@shop.example:8080/p?q"), target_host("/p")
    ('shop.example:8080', None)
    """
    if target.startswith("/") or "://" not in target[:8]:
        return None
    authority = target.partition("://")[2]
    for separator in "/?#":
        authority = authority.partition(separator)[0]
    return authority.rpartition("@")[2] or None


def walk_chain(addresses: list[Optional[str]], trusted: TrustedProxies) -> int:
    """The index of the client in a chain of addresses a trusted peer sent (oldest first).

    Walks from the right over trusted proxies; the first address that is
    not one (or is no address at all, ``None``) is the client. When every
    address is trusted, the leftmost.

    >>> trusted = TrustedProxies.parse(["10.0.0.0/8"])
    >>> walk_chain(["1.2.3.4", "203.0.113.9", "10.0.0.7"], trusted)
    1
    >>> walk_chain(["10.0.0.8", "10.0.0.7"], trusted), walk_chain(["1.2.3.4", None, "10.0.0.7"], trusted)
    (0, 1)
    """
    index = len(addresses) - 1
    while index > 0 and addresses[index] is not None and trusted.trusts(addresses[index]):
        index -= 1
    return index


def _items(value: Optional[str]) -> list[str]:
    return [item.strip() for item in value.split(",")] if value else []


def _written_by(items: list[str], hops: int) -> Optional[str]:
    """The item of an appended list that the outermost of ``hops`` trusted hops wrote.

    Each trusted hop appends one item (or overwrites the list with one), so
    counting ``hops`` from the right skips whatever the client sent before.

    >>> _written_by(["forged", "https", "http"], 2), _written_by(["https"], 3), _written_by([], 1)
    ('https', 'https', None)
    """
    if not items:
        return None
    return items[max(0, len(items) - hops)] or None


def x_forwarded_hop(headers: Mapping[str, str], trusted: TrustedProxies) -> Optional[_Hop]:
    """What the outermost trusted hop said in ``X-Forwarded-*``; None when no such header is sent.

    >>> headers = {"x-forwarded-for": "203.0.113.9", "x-forwarded-host": "shop.example",
    ...            "x-forwarded-port": "8443", "x-forwarded-proto": "HTTPS"}
    >>> hop = x_forwarded_hop(headers, TrustedProxies((), False))
    >>> hop.client, hop.scheme, hop.host, hop.port
    ('203.0.113.9', 'https', 'shop.example', 8443)
    """
    chain = _items(headers.get("x-forwarded-for"))
    proto = headers.get("x-forwarded-proto")
    host = headers.get("x-forwarded-host")
    port = headers.get("x-forwarded-port")
    prefix = headers.get("x-forwarded-prefix")
    if not (chain or proto or host or port or prefix):
        return None
    client: Optional[str] = None
    hops = 1  # the peer itself, when it sent no chain
    if chain:
        addresses = [node_address(item) for item in chain]
        index = walk_chain(addresses, trusted)
        client, hops = addresses[index], len(chain) - index
    port_text = _written_by(_items(port), hops)
    return _Hop(
        client,
        bool(chain),
        _scheme(_written_by(_items(proto), hops)),
        _written_by(_items(host), hops),
        parse_port(port_text) if port_text else None,
        _prefix(_written_by(_items(prefix), hops)),
    )


def forwarded_hop(value: Optional[str], trusted: TrustedProxies) -> Optional[_Hop]:
    """What the outermost trusted hop said in ``Forwarded`` (RFC 7239); None when it is not sent.

    >>> hop = forwarded_hop('for=1.2.3.4;proto=https, for="[2001:db8::9]:4711";proto=https;host=shop.example',
    ...                     TrustedProxies((), False))
    >>> hop.client, hop.scheme, hop.host
    ('2001:db8::9', 'https', 'shop.example')
    """
    elements = forwarded_elements(value) if value else []
    if not elements:
        return None
    addresses = [node_address(element.get("for", "")) for element in elements]
    index = walk_chain(addresses, trusted)
    written = elements[index]
    return _Hop(
        addresses[index], True, _scheme(written.get("proto")), written.get("host") or None, None, None
    )


def forwarded_elements(value: str) -> list[dict[str, str]]:
    """The elements of a ``Forwarded`` header, each a dict of its parameters (names lower-cased).

    Quoted values may hold ``,``, ``;`` and ``=``; the first of a repeated
    parameter counts.

    >>> forwarded_elements('for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"')
    [{'for': '192.0.2.60', 'proto': 'http', 'by': '203.0.113.43'}, {'for': '[2001:db8:cafe::17]:4711'}]
    >>> forwarded_elements('for="a,b;c";host=x')
    [{'for': 'a,b;c', 'host': 'x'}]
    """
    elements: list[dict[str, str]] = []
    for element in _split_unquoted(value, ","):
        pairs: dict[str, str] = {}
        for pair in _split_unquoted(element, ";"):
            name, equals, raw = pair.partition("=")
            if equals:
                pairs.setdefault(name.strip().lower(), _unquote(raw.strip()))
        elements.append(pairs)
    return elements


def _split_unquoted(text: str, separator: str) -> list[str]:
    """``text`` split at each ``separator`` that is not inside a quoted string.

    >>> _split_unquoted('a="x,y",b', ",")
    ['a="x,y"', 'b']
    """
    if '"' not in text:
        return text.split(separator)
    parts: list[str] = []
    start = 0
    quoted = False
    for position, character in enumerate(text):
        if character == '"':
            quoted = not quoted
        elif character == separator and not quoted:
            parts.append(text[start:position])
            start = position + 1
    parts.append(text[start:])
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value


def _scheme(value: Optional[str]) -> Optional[str]:
    """A forwarded scheme when it is one a server is reached with (a metric attribute), else None.

    >>> _scheme("HTTPS"), _scheme("gopher"), _scheme(None)
    ('https', None, None)
    """
    scheme = value.strip().lower() if value else ""
    return scheme if scheme in DEFAULT_PORTS else None


def _prefix(value: Optional[str]) -> Optional[str]:
    """An ``X-Forwarded-Prefix`` as a path prefix: absolute, no trailing slash, no query.

    >>> _prefix("/api/"), _prefix("/"), _prefix("api"), _prefix("/a?b")
    ('/api', '', None, None)
    """
    if not value or not value.startswith("/") or len(value) > _MAX_PREFIX_LENGTH:
        return None
    if any(character in value for character in "?#") or not value.isprintable():
        return None
    return value.rstrip("/")


def server_of(origin: Origin) -> tuple[Optional[str], Optional[int]]:
    """``server.address`` and ``server.port`` as the client addressed them.

    A forwarded port wins over the host's; with neither, the scheme's default.

    >>> server_of((None, False, "https", "shop.example", None, ""))
    ('shop.example', 443)
    >>> server_of((None, True, "https", "shop.example:8443", 9443, ""))
    ('shop.example', 9443)
    """
    _client, _forwarded, scheme, host, forwarded_port, _prefix = origin
    if not host:
        return None, forwarded_port
    address, port = split_host(host)
    if forwarded_port is not None:
        port = forwarded_port
    elif port is None:
        port = DEFAULT_PORTS.get(scheme)
    return address or None, port
