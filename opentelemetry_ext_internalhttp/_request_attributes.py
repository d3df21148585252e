"""What one request says, as span and metric attributes, under one configuration.

``RequestReading`` holds what is decided once per ``instrument*()`` call
(the convention's keys, opt-ins, captured headers, the proxy rules, the
known methods) and turns a framework ``Request`` into attributes with the
pure helpers of ``_attributes`` and ``_proxies``. No span or meter here:
the lifecycle (``_telemetry``) asks, and records what it gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from internalhttp.redaction import redact_path
from internalhttp.response import NormalizedResponse
from internalhttp.server import UNKNOWN_CONNECTION, Headers, InternalHTTPServer, Request
from opentelemetry.semconv._incubating.attributes.http_attributes import (
    HTTP_REQUEST_BODY_SIZE,
    HTTP_RESPONSE_BODY_SIZE,
)
from opentelemetry.semconv._incubating.attributes.user_agent_attributes import USER_AGENT_SYNTHETIC_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_METHOD_ORIGINAL
from opentelemetry.semconv.attributes.network_attributes import NETWORK_TRANSPORT
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.util.http import ExcludeList, normalise_request_header_name, normalise_response_header_name

from opentelemetry_ext_internalhttp._attributes import (
    AttributeKeys,
    BoundedValues,
    add_client,
    add_local,
    add_server,
    add_url,
    body_size,
    code_attributes,
    protocol_version,
    synthetic_type,
)
from opentelemetry_ext_internalhttp._bodies import (
    BODY_CONTENT_ATTRIBUTES,
    HTTP_REQUEST_BODY_CONTENT,
    HTTP_RESPONSE_BODY_CONTENT,
    body_content,
)
from opentelemetry_ext_internalhttp._config import Settings
from opentelemetry_ext_internalhttp._methods import NO_METHODS, MethodNormalizer
from opentelemetry_ext_internalhttp._metric_attributes import SharedAttributes, shared_attributes
from opentelemetry_ext_internalhttp._options import CODE_OPT_INS, METRIC_OPT_INS, SPAN_OPT_INS
from opentelemetry_ext_internalhttp._proxies import Origin, server_of
from opentelemetry_ext_internalhttp._serving_metrics import QUEUE_TIME_ATTRIBUTE

# Shared attributes are cached per (method, route, scheme, version): all of
# them bounded, but the cache is bounded too, should a bug make one not be.
_SHARED_CACHE_LIMIT = 1024
# Distinct (address, port) pairs of the local server recorded on metrics.
_METRIC_SERVER_ADDRESS_LIMIT = 16
# Distinct servers a client addressed (Host, forwarded port) whose span
# attributes are kept ready per shared set; others are worked out per request.
_ADDRESSED_LIMIT = 8
_SPAN_OPT_INS = frozenset(SPAN_OPT_INS)
_METRIC_OPT_INS = frozenset(METRIC_OPT_INS)


class RequestReading:
    """Turns requests into attributes, as one configuration asks."""

    __slots__ = (
        "_adds_more",
        "_method_key",
        "_methods",
        "_redacted_query",
        "_server_addresses",
        "_settings",
        "_shared",
        "_shared_seen",
        "body_content",
        "code_opt_ins",
        "keys",
        "metric_opt_ins",
        "reads_response",
        "span_opt_ins",
        "wants_request_size",
    )

    def __init__(self, keys: AttributeKeys, settings: Settings) -> None:
        self.keys = keys
        self._settings = settings
        self._redacted_query = settings.redacted_query_params
        opt_in = settings.opt_in
        self.span_opt_ins = _SPAN_OPT_INS & opt_in
        self.metric_opt_ins = _METRIC_OPT_INS & opt_in if keys.new else frozenset()
        self.wants_request_size = bool(opt_in & {"http.request.body.size", "http.server.request.body.size"})
        self._methods = MethodNormalizer(settings.known_methods, settings.capture_all_methods)
        self._server_addresses: BoundedValues[tuple[Optional[str], Optional[int]]] = BoundedValues(
            _METRIC_SERVER_ADDRESS_LIMIT
        )
        self._shared: dict[tuple[Any, ...], SharedAttributes] = {}
        # The same sets by the request's own (method, route, status, location,
        # prefix, scheme) and HTTP version, for methods the normalizer knows.
        self._shared_seen: dict[tuple[Any, ...], SharedAttributes] = {}
        # The body content opt-ins, recorded in the stable conventions only
        # (their attributes are of those conventions, and of schema 1.45.0).
        self.body_content = frozenset(BODY_CONTENT_ATTRIBUTES) & opt_in if keys.new else frozenset()
        self.code_opt_ins = frozenset(CODE_OPT_INS) & opt_in
        # The key whose value, when not the method as sent, makes http.request.method_original.
        self._method_key = keys.method[-1] if keys.new else None
        self._adds_more = bool(settings.captured_request_headers or self.span_opt_ins or self.body_content)
        # Whether response_attributes can find anything: most configurations
        # capture nothing from the response, and then it is not asked.
        self.reads_response = bool(
            settings.captured_response_headers
            or "http.response.body.size" in self.span_opt_ins
            or HTTP_RESPONSE_BODY_CONTENT in self.body_content
        )

    def is_excluded(self, excluded: ExcludeList, request: Request, origin: Origin) -> bool:
        """Whether a pattern matches the path or ``scheme://host[:port]/path`` (never the query).

        The path is the one the client sees, the application root included.
        Patterns are shared with every instrumentation in the process
        (``OTEL_PYTHON_EXCLUDED_URLS``) and written either way there.
        """
        _client, _forwarded, scheme, host, _port, prefix = origin
        path = prefix + request.path
        if excluded.url_disabled(path):
            return True
        host = host or request.connection.server_address
        return bool(host) and excluded.url_disabled(f"{scheme}://{host}{path}")

    def shared_for(self, server: InternalHTTPServer, request: Request, origin: Origin) -> SharedAttributes:
        """The attributes every request with this method, route, scheme and version shares.

        Found first by the request's values as they came, which is enough
        for a known method and HTTP version: the usual request is not
        normalized.
        """
        found = request.match
        method = request.method
        version = request.connection.protocol_version
        _client, _forwarded, scheme, _host, _port, prefix = origin
        seen = (method, found.route, found.status, found.location, prefix, scheme, version)
        # Anything but text is recorded as _OTHER or no version, and may not even be hashable.
        text = type(method) is str and (version is None or type(version) is str)
        shared = self._shared_seen.get(seen) if text else None
        if shared is None:
            shared = self._normalized_shared(server, request, origin)
            # Kept for a known method and HTTP version only: then every server
            # records the same, and no client's made-up value takes an entry.
            known_version = version is None or protocol_version(version) is not None
            usual = text and known_version and self._methods.knows(method)
            if usual and len(self._shared_seen) < _SHARED_CACHE_LIMIT:
                self._shared_seen[seen] = shared
        return shared

    def _normalized_shared(
        self, server: InternalHTTPServer, request: Request, origin: Origin
    ) -> SharedAttributes:
        method = self._methods.normalize(request.method, getattr(server, "methods", NO_METHODS))
        found = request.match
        _client, _forwarded, scheme, _host, _port, prefix = origin
        route = prefix + found.route if found.route is not None and found.status != 404 else None
        version = protocol_version(request.connection.protocol_version)
        # The handler's location: two servers may route one template to two handlers.
        location = found.location if self.code_opt_ins else None
        key = (method, route, scheme, version, location)
        shared = self._shared.get(key)
        if shared is None:
            shared = shared_attributes(self.keys, method, route, scheme, version)
            if location is not None:
                # Worked out when the route was registered; each request copies them with the rest.
                shared.span.update(code_attributes(location, self.code_opt_ins))
            if len(self._shared) < _SHARED_CACHE_LIMIT:
                self._shared[key] = shared
        return shared

    def span_attributes(
        self,
        shared: SharedAttributes,
        request: Request,
        headers: Mapping[str, str],
        origin: Origin,
        nested: bool,
        body: Optional[bytes],
    ) -> dict[str, Any]:
        """Every span attribute known when the request starts (so samplers see them).

        Per request, never on metrics: clients vary them at will.
        """
        keys = self.keys
        connection = request.connection
        client, forwarded, _scheme, host, port, prefix = origin
        key = (host, port, connection.server_address, connection.server_port)
        addressed = shared.addressed.get(key)
        if addressed is None:
            addressed = self._addressed(shared, key, origin)
        attributes = dict(addressed)
        # The path as the client sent it, the application root first, secret
        # path parameters redacted: the route's template says which segment
        # holds which parameter (with none, nothing is known to be a secret).
        path = request.path
        if path and request.match.params:
            path = redact_path(path, request.match.route or "", self._settings.redacted_path_params)
        add_url(attributes, keys, prefix + path if path else "", request.query, self._redacted_query)
        client_port = "client.port" in self.span_opt_ins
        add_client(attributes, keys, client, forwarded, connection, client_port=client_port)
        user_agent = headers.get("user-agent")
        if user_agent:
            for name in keys.user_agent:  # user_agent.original, or the old http.user_agent
                attributes[name] = user_agent
        if self._method_key is not None and attributes[self._method_key] != request.method:
            attributes[HTTP_REQUEST_METHOD_ORIGINAL] = request.method
        queue_time = connection.queue_time  # known from the socket server only
        if queue_time is not None and self._settings.additions.serving_metrics:
            attributes[QUEUE_TIME_ATTRIBUTE] = queue_time
        if self._adds_more:
            self._add_more_attributes(attributes, request, headers, nested, body)
        return attributes

    def _addressed(
        self,
        shared: SharedAttributes,
        key: tuple[Optional[str], Optional[int], Optional[str], Optional[int]],
        origin: Origin,
    ) -> dict[str, Any]:
        """The span's shared attributes and the server the client addressed, remembered in ``shared``."""
        addressed = dict(shared.span)
        server = server_of(origin)
        if server[0] is None:
            # No host named: the socket's own address stands in.
            server = (key[2], key[3])
        _client, _forwarded, _scheme, host, _port, _prefix = origin
        add_server(addressed, self.keys, host, server)
        if len(shared.addressed) < _ADDRESSED_LIMIT:
            shared.addressed[key] = addressed
        return addressed

    def _add_more_attributes(
        self,
        attributes: dict[str, Any],
        request: Request,
        headers: Mapping[str, str],
        nested: bool,
        body: Optional[bytes],
    ) -> None:
        """What only some configurations record: captured headers, the span opt-ins."""
        # Captured headers belong to the server span; a nested span would repeat them.
        patterns = self._settings.captured_request_headers
        if patterns and not nested:
            attributes.update(self.captured(headers, patterns, request=True))
        if self.span_opt_ins or self.body_content:
            self._add_opt_in_attributes(attributes, request, body)

    def _add_opt_in_attributes(
        self, attributes: dict[str, Any], request: Request, body: Optional[bytes]
    ) -> None:
        opted = self.span_opt_ins
        connection = request.connection
        add_local(attributes, connection, "network.local.address" in opted, "network.local.port" in opted)
        if "network.transport" in opted and connection != UNKNOWN_CONNECTION:
            attributes[NETWORK_TRANSPORT] = connection.transport
        if "user_agent.synthetic.type" in opted:
            synthetic = synthetic_type(request.headers.lowered())
            if synthetic:
                attributes[USER_AGENT_SYNTHETIC_TYPE] = synthetic
        if "http.request.body.size" in opted:
            size = body_size(body)
            if size is not None:
                attributes[HTTP_REQUEST_BODY_SIZE] = size
        if HTTP_REQUEST_BODY_CONTENT in self.body_content:
            headers = request.headers.lowered()
            content = body_content(
                body,
                headers.get("content-type"),
                headers.get("content-encoding"),
                self._settings.body_capture_limit,
            )
            if content is not None:
                attributes[HTTP_REQUEST_BODY_CONTENT] = content

    def metric_extras(self, request: Request) -> Optional[dict[str, Any]]:
        """The opt-in metric attributes of this request, each bounded."""
        extras: dict[str, Any] = {}
        connection = request.connection
        # The serving layer's local address, not the client's Host: bounded
        # by the machine, and by BoundedValues should a layer report otherwise.
        local = self._server_addresses.admit((connection.server_address, connection.server_port))
        if local is not None:
            if "server.address" in self.metric_opt_ins and local[0]:
                extras[SERVER_ADDRESS] = local[0]
            if "server.port" in self.metric_opt_ins and local[1]:
                extras[SERVER_PORT] = local[1]
        if "user_agent.synthetic.type" in self.metric_opt_ins:
            synthetic = synthetic_type(request.headers.lowered())
            if synthetic:
                extras[USER_AGENT_SYNTHETIC_TYPE] = synthetic
        return extras or None

    def response_attributes(self, response: NormalizedResponse) -> dict[str, Any]:
        """Captured response headers, as the client receives them, and the opt-in body size."""
        attributes: dict[str, Any] = {}
        patterns = self._settings.captured_response_headers
        if patterns:
            attributes.update(self.captured(Headers(response.headers), patterns, request=False))
        if "http.response.body.size" in self.span_opt_ins:
            attributes[HTTP_RESPONSE_BODY_SIZE] = len(response.body)
        if HTTP_RESPONSE_BODY_CONTENT in self.body_content:
            headers = Headers(response.headers)
            content = body_content(
                response.body,
                headers.get("content-type"),
                headers.get("content-encoding"),
                self._settings.body_capture_limit,
            )
            if content is not None:
                attributes[HTTP_RESPONSE_BODY_CONTENT] = content
        return attributes

    def captured(
        self, headers: Mapping[str, str], patterns: tuple[str, ...], request: bool
    ) -> dict[str, Any]:
        """Attributes for the headers users asked to capture, sanitised.

        The old conventions spell ``http.request.header.x_request_id``; the
        stable ones keep the dash, ``http.request.header.x-request-id``. The
        ``http/dup`` mode records both.
        """
        captured: dict[str, Any] = {}
        sanitizer = self._settings.sanitizer
        if self.keys.old:
            old_name = normalise_request_header_name if request else normalise_response_header_name
            captured.update(sanitizer.sanitize_header_values(headers, list(patterns), old_name))
        if self.keys.new:
            prefix = "http.request.header." if request else "http.response.header."
            captured.update(sanitizer.sanitize_header_values(headers, list(patterns), prefix.__add__))
        return captured
