"""What one request records: a server span and the HTTP server metrics.

``_RequestTelemetry`` holds everything that is decided once, when
``instrument()`` or ``instrument_app()`` runs (tracer, instruments, the
semantic-convention mode, excluded URLs, captured headers, hooks), and
``handle`` wraps one dispatch with it. Every telemetry step is guarded: a
failure is logged and the request goes on with the handler's own result.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from timeit import default_timer
from types import MappingProxyType
from typing import Any, NamedTuple, Optional, TypeVar
from urllib.parse import unquote_plus

from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation._semconv import (
    HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
    _get_schema_url,
    _report_new,
    _report_old,
    _server_active_requests_count_attrs_new,
    _server_active_requests_count_attrs_old,
    _server_duration_attrs_new,
    _server_duration_attrs_old,
    _StabilityMode,
)
from opentelemetry.instrumentation.utils import http_status_to_status_code, is_http_instrumentation_enabled
from opentelemetry.metrics import NoOpMeter, get_meter, get_meter_provider
from opentelemetry.propagate import extract
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
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.network_attributes import (
    NETWORK_PEER_ADDRESS,
    NETWORK_PEER_PORT,
    NETWORK_PROTOCOL_VERSION,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from opentelemetry.semconv.metrics import MetricInstruments
from opentelemetry.semconv.metrics.http_metrics import HTTP_SERVER_REQUEST_DURATION
from opentelemetry.trace import (
    INVALID_SPAN,
    NoOpTracer,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
    OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS,
    PARAMS_TO_REDACT,
    ExcludeList,
    SanitizeValue,
    get_custom_headers,
    get_excluded_urls,
    normalise_request_header_name,
    normalise_response_header_name,
    parse_excluded_urls,
    sanitize_method,
)

from opentelemetry_ext_internalhttp.version import __version__

try:
    # The global meter provider before an SDK is set. Private to the API, so
    # its absence only turns the no-SDK shortcut off.
    from opentelemetry.metrics._internal import _ProxyMeterProvider
except ImportError:  # pragma: no cover - a future API may move it
    _ProxyMeterProvider = None  # type: ignore[assignment,misc]

_logger = logging.getLogger(__name__)

_INSTRUMENTATION_NAME = "opentelemetry_ext_internalhttp"
_OTHER_METHOD = "_OTHER"
# The name of a span no SDK will ever see.
_UNRECORDED_SPAN_NAME = "HTTP"
_REDACTED = "REDACTED"
# Every name in PARAMS_TO_REDACT contains one of these, so a query holding
# none of them is left as sent without being split. "%" is one too: a name
# is compared decoded, and "s%69g" is "sig" spelled otherwise.
_REDACTION_HINTS = ("AWSAccessKeyId", "ig", "%")
# Where util-http's get_excluded_urls looks, in its order.
_EXCLUDED_URLS_VARIABLES = ("OTEL_PYTHON_INTERNALHTTP_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Standard methods map to themselves; the cache of what sanitize_method made
# of anything else is bounded, because the method is client-controlled.
_METHOD_CACHE_LIMIT = 64
# Span names are cached per (method, route). Routes are the application's,
# but with OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS the method is
# the client's: without a bound, every new method would be kept forever.
_SPAN_NAME_CACHE_LIMIT = 512
_HOST_CACHE_LIMIT = 256

_T = TypeVar("_T")

RequestHook = Callable[[Span, "RequestView"], None]
ResponseHook = Callable[[Span, "RequestView", Any], None]


class RequestView(NamedTuple):
    """The read-only view of a request that hooks receive.

    ``headers`` is a read-only mapping with lower-case names, whatever shape
    the caller passed them in.
    """

    method: Any
    path: Any
    headers: Mapping[str, str]
    body: Any
    server: Any


class _RequestState(NamedTuple):
    span: Span
    token: Token[Context]
    start: float
    # None when nothing records (no SDK behind the API): see _nothing_records.
    attributes: Optional[dict]
    active_attributes: Optional[dict]
    view: Optional[RequestView]


def _header_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("latin-1")
    if isinstance(value, (list, tuple)):
        return ",".join(_header_value(item) for item in value)
    return str(value)


def _lower_headers(headers: Any) -> dict[str, str]:
    """Return ``headers`` as a dict of lower-case names to string values.

    Accepts any mapping or an iterable of ``(name, value)`` pairs; repeated
    names are joined with ``,`` as RFC 9110 allows. Anything that is not a
    pair of a name and a value is skipped rather than trusted.

    >>> _lower_headers([("Accept", "a"), ("ACCEPT", b"b"), ("X-N", 1)])
    {'accept': 'a,b', 'x-n': '1'}
    """
    if not headers:
        return {}
    pairs: Iterable[Any]
    # A dict is the common case, and cheaper to recognise than any Mapping.
    if type(headers) is dict or isinstance(headers, Mapping):
        pairs = headers.items()
    else:
        try:
            pairs = iter(headers)
        except TypeError:
            # Not headers at all (a response's "headers": 5): nothing to read,
            # and no reason to log an instrumentation error and lose the span.
            return {}
    lowered: dict[str, str] = {}
    for pair in pairs:
        try:
            name, value = pair
        except (TypeError, ValueError):
            continue
        if type(name) is not str:
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            elif not isinstance(name, str):
                continue
        key = name.lower()
        text = value if type(value) is str else _header_value(value)
        lowered[key] = f"{lowered[key]},{text}" if key in lowered else text
    return lowered


def _redact_query(query: str) -> str:
    """Replace the values of signature-like query parameters, keep the rest as sent.

    >>> _redact_query("a=1&sig=abc&b=&X-Goog-Signature=xyz")
    'a=1&sig=REDACTED&b=&X-Goog-Signature=REDACTED'
    """
    if not any(hint in query for hint in _REDACTION_HINTS):
        return query
    parts = query.split("&")
    for index, part in enumerate(parts):
        name, equals, _ = part.partition("=")
        if equals and unquote_plus(name) in PARAMS_TO_REDACT:
            parts[index] = f"{name}={_REDACTED}"
    return "&".join(parts)


def _split_host(host: str) -> tuple[str, Optional[int]]:
    """Split a Host header into address and port.

    >>> _split_host("[::1]:8080"), _split_host("example.com"), _split_host("h:x")
    (('::1', 8080), ('example.com', None), ('h', None))
    """
    host = host.strip()
    if host.startswith("["):
        address, _, rest = host[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif host.count(":") == 1:
        address, _, port_text = host.partition(":")
    else:
        address, port_text = host, ""
    port = int(port_text) if port_text.isdigit() and int(port_text) <= 65535 else None
    return address, port


def _forwarded_param(forwarded: str, param: str) -> Optional[str]:
    """Return ``param`` of the first element of a ``Forwarded`` header (RFC 7239)."""
    first_element = forwarded.split(",", 1)[0]
    for pair in first_element.split(";"):
        name, equals, value = pair.strip().partition("=")
        if equals and name.lower() == param:
            return value.strip().strip('"') or None
    return None


def _first_forwarded_for(headers: Mapping[str, str]) -> Optional[str]:
    forwarded = headers.get("forwarded")
    if forwarded:
        client = _forwarded_param(forwarded, "for")
        if client:
            # A node may carry a port, IPv4 too ("192.0.2.60:4711", RFC 7239,
            # 6); client.address is the address alone.
            return _split_host(client)[0] or None
    x_forwarded_for = headers.get("x-forwarded-for")
    if x_forwarded_for:
        return x_forwarded_for.split(",", 1)[0].strip() or None
    return None


def _pick(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The metric attributes: those of ``keys`` that ``attributes`` has."""
    return {key: attributes[key] for key in keys if key in attributes}


def _setting(variable: str) -> str:
    """How an environment setting is named in an error: ``NAME='value'``."""
    return f"{variable}={os.environ.get(variable)!r}"


def _checked(setting: str, build: Callable[[Any], _T], patterns: Any) -> _T:
    """``build(patterns)``, with an invalid regular expression reported as a ValueError naming ``setting``."""
    try:
        return build(patterns)
    except re.error as exc:
        raise ValueError(f"{setting}: not a valid regular expression ({exc})") from exc


class _RequestTelemetry:
    """Tracer, instruments and configuration for one ``instrument*()`` call."""

    def __init__(
        self,
        *,
        sem_conv_opt_in_mode: _StabilityMode,
        tracer_provider: Optional[trace.TracerProvider] = None,
        meter_provider: Any = None,
        excluded_urls: Optional[str] = None,
        request_hook: Optional[RequestHook] = None,
        response_hook: Optional[ResponseHook] = None,
    ) -> None:
        self._mode = sem_conv_opt_in_mode
        self._report_old = _report_old(sem_conv_opt_in_mode)
        self._report_new = _report_new(sem_conv_opt_in_mode)
        schema_url = _get_schema_url(sem_conv_opt_in_mode)
        self._tracer = trace.get_tracer(
            _INSTRUMENTATION_NAME, __version__, tracer_provider, schema_url=schema_url
        )
        meter = get_meter(_INSTRUMENTATION_NAME, __version__, meter_provider, schema_url=schema_url)
        self._duration_ms = None
        self._duration_s = None
        if self._report_old:
            self._duration_ms = meter.create_histogram(
                name=MetricInstruments.HTTP_SERVER_DURATION,
                unit="ms",
                description="Duration of HTTP server requests.",
            )
        if self._report_new:
            self._duration_s = meter.create_histogram(
                name=HTTP_SERVER_REQUEST_DURATION,
                unit="s",
                description="Duration of HTTP server requests.",
                explicit_bucket_boundaries_advisory=HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
            )
        self._active_requests = meter.create_up_down_counter(
            name=MetricInstruments.HTTP_SERVER_ACTIVE_REQUESTS,
            unit="{request}",
            description="Number of active HTTP server requests.",
        )
        # Metric attributes are the bounded subset of the span's: never the
        # path, the query or anything else a client can vary at will. The
        # old ones are those of the conventions their schema (1.11.0) names,
        # host included, plus the route.
        self._duration_ms_keys = (*_server_duration_attrs_old, HTTP_ROUTE)
        self._duration_s_keys = tuple(_server_duration_attrs_new)
        active_keys: list[str] = []
        if self._report_old:
            active_keys += _server_active_requests_count_attrs_old
        if self._report_new:
            active_keys += _server_active_requests_count_attrs_new
        self._active_keys = tuple(active_keys)

        def keys(old_key: str, new_key: str) -> tuple[str, ...]:
            return (old_key,) * self._report_old + (new_key,) * self._report_new

        self._method_keys = keys(HTTP_METHOD, HTTP_REQUEST_METHOD)
        self._scheme_keys = keys(HTTP_SCHEME, URL_SCHEME)
        self._host_name_keys = keys(NET_HOST_NAME, SERVER_ADDRESS)
        self._host_port_keys = keys(NET_HOST_PORT, SERVER_PORT)
        self._user_agent_keys = keys(HTTP_USER_AGENT, USER_AGENT_ORIGINAL)
        self._protocol_keys = keys(HTTP_FLAVOR, NETWORK_PROTOCOL_VERSION)
        self._status_keys = keys(HTTP_STATUS_CODE, HTTP_RESPONSE_STATUS_CODE)

        if excluded_urls is None:
            variable = next((name for name in _EXCLUDED_URLS_VARIABLES if os.environ.get(name)), "")
            excluded = _checked(_setting(variable), get_excluded_urls, "INTERNALHTTP")
        else:
            excluded = _checked(f"excluded_urls={excluded_urls!r}", parse_excluded_urls, excluded_urls)
        self._excluded: Optional[ExcludeList] = excluded if excluded._excluded_urls else None
        self._captured_request_headers = get_custom_headers(
            OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST
        )
        self._captured_response_headers = get_custom_headers(
            OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE
        )
        for variable, patterns in (
            (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST, self._captured_request_headers),
            (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE, self._captured_response_headers),
        ):
            # util-http compiles these on every request; a bad one is
            # reported here, once, instead of failing every request.
            _checked(_setting(variable), re.compile, "|".join(patterns))
        self._sanitizer = _checked(
            _setting(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS),
            SanitizeValue,
            get_custom_headers(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS),
        )
        self._request_hook = request_hook
        self._response_hook = response_hook
        self._hookless = request_hook is None and response_hook is None
        # Whether an SDK stands behind the tracer and the meter: known now
        # for explicit providers, asked per request for the global ones,
        # which an SDK may be installed behind at any time.
        self._tracer_is_noop = isinstance(self._tracer, NoOpTracer)
        self._tracer_follows_global = tracer_provider is None
        self._meter_is_noop = isinstance(meter, NoOpMeter)
        self._meter_follows_global = meter_provider is None and _ProxyMeterProvider is not None
        self._capture_all_methods = bool(os.environ.get(OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS))
        self._methods: dict[str, str] = {}
        self._span_names: dict[tuple[str, Optional[str]], str] = {}
        self._hosts: dict[str, tuple[str, Optional[int]]] = {}
        self._shared_attributes: dict[tuple[str, Optional[str], str], dict[str, Any]] = {}

    # -- the request ------------------------------------------------------

    def handle(
        self,
        server: Any,
        dispatch: Callable[..., Any],
        method: Any,
        path: Any,
        headers: Any,
        body: Any,
        extra: dict[str, Any],
    ) -> Any:
        """Run ``dispatch`` inside a span; return its result or re-raise its exception unchanged."""
        try:
            state = self._start(server, method, path, headers, body, extra.get("connection"))
        except Exception:
            _logger.exception("internalhttp instrumentation failed to start telemetry for a request")
            state = None
        if state is None:
            return dispatch(method, path, headers, body, **extra)
        response = None
        error: Optional[BaseException] = None
        try:
            response = dispatch(method, path, headers, body, **extra)
            return response
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._finish(state, response, error)

    def _start(
        self, server: Any, method: Any, target: Any, headers: Any, body: Any, connection: Any
    ) -> Optional[_RequestState]:
        if not is_http_instrumentation_enabled():
            return None
        target_text = target if isinstance(target, str) else _header_value(target)
        url_path, _, query = target_text.partition("?")
        if self._excluded is not None and self._excluded.url_disabled(url_path):
            return None

        lowered = _lower_headers(headers)
        if trace.get_current_span() is INVALID_SPAN:
            parent = extract(lowered)
            kind = SpanKind.SERVER
        else:
            # Behind another instrumented layer that already made the server
            # span: nest under it instead of claiming a second one.
            parent = None
            kind = SpanKind.INTERNAL
        if self._hookless and self._nothing_records():
            # No SDK behind the API: only the trace context is kept, so that
            # the handler's outgoing calls still carry the caller's trace.
            span = self._tracer.start_span(_UNRECORDED_SPAN_NAME, context=parent, kind=kind)
            token = context.attach(trace.set_span_in_context(span, parent))
            return _RequestState(span, token, 0.0, None, None, None)

        route = self._route(server, method, target)
        normalized_method = self._normalize_method(method)
        attributes = self._request_attributes(
            method, normalized_method, route, url_path, query, lowered, connection
        )
        if self._captured_request_headers:
            attributes.update(self._captured_headers(lowered, self._captured_request_headers, request=True))
        span = self._tracer.start_span(
            self._span_name(normalized_method, route), context=parent, kind=kind, attributes=attributes
        )
        active_attributes = _pick(attributes, self._active_keys)
        # Counted outside the span's context (here, and after it is detached
        # in _finish): an exemplar of a +1 or -1 says nothing, and offering
        # one costs as much as the count itself. The duration is recorded
        # inside, where its exemplar links to the trace.
        try:
            self._active_requests.add(1, active_attributes)
        except Exception:
            _logger.exception("internalhttp instrumentation failed to count an active request")
        token = context.attach(trace.set_span_in_context(span, parent))
        view = None
        if self._request_hook is not None or self._response_hook is not None:
            view = RequestView(method, target, MappingProxyType(lowered), body, server)
        state = _RequestState(span, token, default_timer(), attributes, active_attributes, view)
        if self._request_hook is not None:
            try:
                self._request_hook(span, view)  # type: ignore[arg-type]  # set whenever a hook is
            except Exception:
                _logger.exception("internalhttp request_hook raised; the request goes on")
            except BaseException as interrupt:
                # KeyboardInterrupt, SystemExit: let it through, but not with
                # the span open, counted active and its context attached.
                self._finish(state, None, interrupt)
                raise
        return state

    def _finish(self, state: _RequestState, response: Any, error: Optional[BaseException]) -> None:
        span = state.span
        metric_attributes = state.attributes
        if metric_attributes is None:
            # Started by the no-SDK path: nothing to record, only to end.
            try:
                span.end()
            finally:
                context.detach(state.token)
            return
        try:
            try:
                if error is not None:
                    self._record_exception(span, metric_attributes, error)
                else:
                    self._record_response(span, metric_attributes, response)
            except Exception:
                _logger.exception("internalhttp instrumentation failed to record a response")
            if error is None and self._response_hook is not None:
                try:
                    self._response_hook(span, state.view, response)  # type: ignore[arg-type]
                except Exception:
                    _logger.exception("internalhttp response_hook raised; the response is unchanged")
            try:
                self._record_duration(state, metric_attributes)
            except Exception:
                _logger.exception("internalhttp instrumentation failed to record a request duration")
        finally:
            try:
                span.end()
            except Exception:
                # end() runs every span processor's on_end, and the SDK lets
                # their exceptions through: one must not replace the
                # handler's response or exception.
                _logger.exception("internalhttp instrumentation failed to end a span")
            finally:
                context.detach(state.token)
                try:
                    self._active_requests.add(-1, state.active_attributes)
                except Exception:
                    _logger.exception("internalhttp instrumentation failed to count an active request")

    # -- pieces -----------------------------------------------------------

    def _nothing_records(self) -> bool:
        """True when neither spans nor metrics reach an SDK (the API's no-op or unset global providers)."""
        traces_off = self._tracer_is_noop or (
            self._tracer_follows_global and isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
        )
        return traces_off and (
            self._meter_is_noop
            or (self._meter_follows_global and isinstance(get_meter_provider(), _ProxyMeterProvider))
        )

    def _route(self, server: Any, method: Any, target: Any) -> Optional[str]:
        try:
            found = server.match(method, target)
        except Exception:
            # An odd target the router cannot read is reported without a
            # route; the framework's own answer to it is not our concern.
            _logger.debug("internalhttp could not match %r %r to a route", method, target, exc_info=True)
            return None
        return found.route if found.status != 404 else None

    def _normalize_method(self, method: Any) -> str:
        if not isinstance(method, str):
            return _OTHER_METHOD
        normalized = self._methods.get(method)
        if normalized is None:
            normalized = sanitize_method(method)
            if normalized not in (method, _OTHER_METHOD):
                # sanitize_method upper-cases first, but methods are
                # case-sensitive (RFC 9110, 9.1), as is the router: "get", or
                # "po\u017ft" whose upper() is "POST", is not a GET/POST. The
                # conventions want _OTHER unless it is exactly a known method
                # (or, when all methods are captured, the method as sent).
                normalized = method if self._capture_all_methods else _OTHER_METHOD
            if len(self._methods) < _METHOD_CACHE_LIMIT:
                self._methods[method] = normalized
        return normalized

    def _span_name(self, normalized_method: str, route: Optional[str]) -> str:
        key = (normalized_method, route)
        name = self._span_names.get(key)
        if name is None:
            # Span names stay low-cardinality: the route template, never the
            # raw path, and "HTTP" for a method outside the known set.
            prefix = "HTTP" if normalized_method == _OTHER_METHOD else normalized_method
            name = f"{prefix} {route}" if route else prefix
            if len(self._span_names) < _SPAN_NAME_CACHE_LIMIT:
                self._span_names[key] = name
        return name

    def _request_attributes(
        self,
        method: Any,
        normalized_method: str,
        route: Optional[str],
        url_path: str,
        query: str,
        headers: Mapping[str, str],
        connection: Any,
    ) -> dict[str, Any]:
        # The same keys, per mode, that the _semconv setters write; written
        # directly from keys worked out once per configuration, because this
        # runs on every request.
        forwarded = headers.get("forwarded")
        claimed = (forwarded and _forwarded_param(forwarded, "proto")) or headers.get("x-forwarded-proto")
        # A client's header, but url.scheme is a metric attribute: only an
        # HTTP scheme is believed (the first proxy's, case-folded), or any
        # value a client makes up would open a new metric stream.
        scheme = (claimed or "").split(",", 1)[0].strip().lower()
        if scheme not in _DEFAULT_PORTS:
            scheme = getattr(connection, "scheme", None) or "http"

        attributes = self._route_attributes(normalized_method, route, scheme).copy()
        if self._report_new and isinstance(method, str) and method != normalized_method:
            attributes[HTTP_REQUEST_METHOD_ORIGINAL] = method

        host = (
            (forwarded and _forwarded_param(forwarded, "host"))
            or headers.get("x-forwarded-host")
            or headers.get(":authority")
            or headers.get("host")
        )
        address: Any
        port: Any
        if host:
            address, port = self._split_host(host)
            if self._report_old:
                attributes[HTTP_HOST] = host
            if port is None:
                port = _DEFAULT_PORTS.get(scheme)
        else:
            address = getattr(connection, "server_address", None)
            port = getattr(connection, "server_port", None)
        if address:
            for key in self._host_name_keys:
                attributes[key] = address
        if port and isinstance(port, int):
            for key in self._host_port_keys:
                attributes[key] = port

        redacted_query = _redact_query(query) if query else ""
        if self._report_old and url_path:
            attributes[HTTP_TARGET] = f"{url_path}?{redacted_query}" if redacted_query else url_path
        if self._report_new:
            if url_path:
                attributes[URL_PATH] = url_path
            if redacted_query:
                attributes[URL_QUERY] = redacted_query

        self._set_client(attributes, headers, connection)

        user_agent = headers.get("user-agent")
        if user_agent:
            for key in self._user_agent_keys:
                attributes[key] = user_agent
        protocol_version = getattr(connection, "protocol_version", None)
        if protocol_version:
            for key in self._protocol_keys:
                attributes[key] = protocol_version
        return attributes

    def _split_host(self, host: str) -> tuple[str, Optional[int]]:
        split = self._hosts.get(host)
        if split is None:
            split = _split_host(host.split(",", 1)[0])
            # The Host header is the client's to vary, so the cache is bounded.
            if len(self._hosts) < _HOST_CACHE_LIMIT:
                self._hosts[host] = split
        return split

    def _route_attributes(self, normalized_method: str, route: Optional[str], scheme: str) -> dict[str, Any]:
        """The attributes every request with this method, route and scheme shares."""
        cache_key = (normalized_method, route, scheme)
        shared = self._shared_attributes.get(cache_key)
        if shared is None:
            shared = {key: normalized_method for key in self._method_keys}
            shared.update((key, scheme) for key in self._scheme_keys)
            if route is not None:
                shared[HTTP_ROUTE] = route
            # Bounded like the span names, for the same reason.
            if len(self._shared_attributes) < _SPAN_NAME_CACHE_LIMIT:
                self._shared_attributes[cache_key] = shared
        return shared

    def _set_client(self, attributes: dict[str, Any], headers: Mapping[str, str], connection: Any) -> None:
        peer_address = getattr(connection, "client_address", None)
        peer_port = getattr(connection, "client_port", None)
        forwarded_client = _first_forwarded_for(headers)
        if self._report_old:
            if peer_address:
                attributes[NET_PEER_IP] = peer_address
            if peer_port:
                attributes[NET_PEER_PORT] = peer_port
            if forwarded_client:
                attributes[HTTP_CLIENT_IP] = forwarded_client
        if self._report_new:
            # client.address is the original client behind any proxies;
            # network.peer.* is the socket the request actually came from.
            if forwarded_client:
                attributes[CLIENT_ADDRESS] = forwarded_client
            elif peer_address:
                attributes[CLIENT_ADDRESS] = peer_address
                if peer_port:
                    attributes[CLIENT_PORT] = peer_port
            if peer_address:
                attributes[NETWORK_PEER_ADDRESS] = peer_address
            if peer_port:
                attributes[NETWORK_PEER_PORT] = peer_port

    def _captured_headers(
        self, headers: Mapping[str, str], patterns: list[str], request: bool
    ) -> dict[str, Any]:
        """Attributes for the headers users asked to capture, sanitised.

        The old conventions spell ``http.request.header.x_request_id``; the
        stable ones keep the dash, ``http.request.header.x-request-id``. The
        ``http/dup`` mode records both.
        """
        captured: dict[str, Any] = {}
        if self._report_old:
            old_name = normalise_request_header_name if request else normalise_response_header_name
            captured.update(self._sanitizer.sanitize_header_values(headers, patterns, old_name))
        if self._report_new:
            prefix = "http.request.header." if request else "http.response.header."
            captured.update(self._sanitizer.sanitize_header_values(headers, patterns, prefix.__add__))
        return captured

    def _record_response(self, span: Span, metric_attributes: dict[str, Any], response: Any) -> None:
        if type(response) is not dict and not isinstance(response, Mapping):
            # Not a response dict: the status the client will see is decided
            # by the serving layer, so none is claimed here.
            return
        status = response.get("status", 200)
        if isinstance(status, int) and not isinstance(status, bool):
            code = status
        elif isinstance(status, str) and status.strip().isdecimal():
            # isdecimal, not isdigit: "\u00b2".isdigit() is true yet int() rejects it.
            code = int(status)
        else:
            code = -1
        self._record_status(span, metric_attributes, code, str(status))
        if self._captured_response_headers and span.is_recording():
            captured = self._captured_headers(
                _lower_headers(response.get("headers")), self._captured_response_headers, request=False
            )
            if captured:
                span.set_attributes(captured)

    def _record_status(self, span: Span, metric_attributes: dict[str, Any], code: int, status: str) -> None:
        recording = span.is_recording()
        if code < 0:
            # Not an integer: the status itself is the error's type.
            self._record_error_type(span, metric_attributes, status, recording)
            if recording:
                span.set_status(Status(StatusCode.ERROR, f"Non-integer HTTP status: {status}"))
            return
        is_error = http_status_to_status_code(code, server_span=True) is StatusCode.ERROR
        for key in self._status_keys:
            metric_attributes[key] = code
            if recording:
                span.set_attribute(key, code)
        if is_error:
            self._record_error_type(span, metric_attributes, status, recording)
            if recording:
                span.set_status(Status(StatusCode.ERROR))

    def _record_error_type(
        self, span: Span, metric_attributes: dict[str, Any], error_type: str, recording: bool
    ) -> None:
        # error.type exists only in the stable conventions.
        if self._report_new:
            metric_attributes[ERROR_TYPE] = error_type
            if recording:
                span.set_attribute(ERROR_TYPE, error_type)

    def _record_exception(self, span: Span, metric_attributes: dict[str, Any], error: BaseException) -> None:
        error_type = type(error).__qualname__
        recording = span.is_recording()
        self._record_error_type(span, metric_attributes, error_type, recording)
        if recording:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{error_type}: {error}"))

    def _record_duration(self, state: _RequestState, metric_attributes: dict[str, Any]) -> None:
        duration_s = max(default_timer() - state.start, 0.0)
        if self._duration_s is not None:
            self._duration_s.record(duration_s, _pick(metric_attributes, self._duration_s_keys))
        if self._duration_ms is not None:
            self._duration_ms.record(duration_s * 1000.0, _pick(metric_attributes, self._duration_ms_keys))
