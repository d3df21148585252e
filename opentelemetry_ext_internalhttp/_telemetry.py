"""What one request records: a server span and the HTTP server metrics.

``_RequestTelemetry`` holds everything decided once, when ``instrument()``
or ``instrument_app()`` runs (tracer, instruments, semantic-convention
mode, settings, hooks). A request flows one way through it:

    request (framework's ``prepare``) → span start → dispatch → finish

Two framework seams lead here. A serving layer ends every request in
``InternalHTTPServer.respond``, which sees the response as the client gets
it: ``respond`` below starts the span there and finishes it with that
response, and the ``handle_request`` call nested inside it answers the
request respond() prepared (``InternalHTTPServer.prepared_request``) without
starting a second span. A direct ``handle_request`` call
(a test, an embedding) has no serving layer: it gets its span there, and
the status is the one the framework's rule gives the handler's value.

Every telemetry step is guarded (``_guard``): a failure is logged and the
request goes on with the handler's own result.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping
from contextvars import Token
from timeit import default_timer
from typing import Any, NamedTuple, Optional

from internalhttp.response import NormalizedResponse, Outcome, response_for
from internalhttp.routing import NOT_FOUND, split_target
from internalhttp.server import Headers, Refusal, Request
from opentelemetry import context, trace
from opentelemetry._logs import SeverityNumber, get_logger
from opentelemetry.context import Context
from opentelemetry.environment_variables import OTEL_PYTHON_METER_PROVIDER, OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.instrumentation._labeler import enrich_metric_attributes, get_labeler_attributes
from opentelemetry.instrumentation._semconv import (
    HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
    _get_schema_url,
    _report_new,
    _report_old,
    _StabilityMode,
)
from opentelemetry.instrumentation.propagators import get_global_response_propagator
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
from opentelemetry.metrics import NoOpMeter, get_meter, get_meter_provider
from opentelemetry.propagators.textmap import Setter
from opentelemetry.semconv._incubating.attributes.http_attributes import (
    HTTP_REQUEST_BODY_SIZE,
    HTTP_RESPONSE_BODY_SIZE,
)
from opentelemetry.semconv._incubating.attributes.user_agent_attributes import USER_AGENT_SYNTHETIC_TYPE
from opentelemetry.semconv._incubating.metrics.http_metrics import (
    HTTP_SERVER_REQUEST_BODY_SIZE,
    HTTP_SERVER_RESPONSE_BODY_SIZE,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_METHOD_ORIGINAL
from opentelemetry.semconv.attributes.network_attributes import NETWORK_TRANSPORT
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.metrics import MetricInstruments
from opentelemetry.semconv.metrics.http_metrics import HTTP_SERVER_REQUEST_DURATION
from opentelemetry.trace import (
    INVALID_SPAN,
    Link,
    NoOpTracer,
    ProxyTracerProvider,
    Span,
    SpanKind,
    Status,
    StatusCode,
)
from opentelemetry.util.http import normalise_request_header_name, normalise_response_header_name

from opentelemetry_ext_internalhttp import _guard
from opentelemetry_ext_internalhttp._attributes import (
    AttributeKeys,
    BoundedValues,
    add_client,
    add_local,
    add_server,
    add_url,
    add_user_agent,
    body_size,
    protocol_version,
    synthetic_type,
)
from opentelemetry_ext_internalhttp._config import METRIC_OPT_INS, SPAN_OPT_INS, UNTRUSTED, Settings
from opentelemetry_ext_internalhttp._methods import NO_METHODS, MethodNormalizer
from opentelemetry_ext_internalhttp._metric_attributes import SharedAttributes, shared_attributes
from opentelemetry_ext_internalhttp._proxies import Origin, server_of
from opentelemetry_ext_internalhttp._trace_context import extract_from_request, install_filter
from opentelemetry_ext_internalhttp.version import __version__

# The API modules whose set-once globals say whether an SDK was installed.
# Private, so a future API without them only takes the public, slower path.
_TRACE_API_GLOBALS: Any = trace if hasattr(trace, "_TRACER_PROVIDER") else None
try:
    import opentelemetry.metrics._internal as _metrics_internal
except ImportError:  # pragma: no cover
    _metrics_internal = None  # type: ignore[assignment]
_METRICS_API_GLOBALS: Any = (
    _metrics_internal
    if _metrics_internal is not None and hasattr(_metrics_internal, "_METER_PROVIDER")
    else None
)

try:
    # Where the labeler lives in the context; private to contrib, so its
    # absence only costs building the (empty) attributes on every request.
    from opentelemetry.instrumentation._labeler._internal import LABELER_CONTEXT_KEY as _LABELER_KEY
except ImportError:  # pragma: no cover
    _LABELER_KEY = None  # type: ignore[assignment]

try:
    # The global meter provider before an SDK is set. Private to the API, so
    # its absence only turns the no-SDK shortcut off.
    from opentelemetry.metrics._internal import _ProxyMeterProvider
except ImportError:  # pragma: no cover - a future API may move it
    _ProxyMeterProvider = None  # type: ignore[assignment,misc]

_INSTRUMENTATION_NAME = "opentelemetry_ext_internalhttp"
# Shared attributes are cached per (method, route, scheme, version): all of
# them bounded, but the cache is bounded too, should a bug make one not be.
_SHARED_CACHE_LIMIT = 1024
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
_EXCEPTION_EVENT = "http.server.request.exception"
_SPAN_OPT_INS = frozenset(SPAN_OPT_INS)
_METRIC_OPT_INS = frozenset(METRIC_OPT_INS)
# Distinct (address, port) pairs of the local server recorded on metrics.
_METRIC_SERVER_ADDRESS_LIMIT = 16
# Distinct application roots a trusted proxy may name (X-Forwarded-Prefix):
# the root is part of http.route, a metric attribute, and a proxy passes on
# a client's own prefix header when it sets none itself.
_PREFIX_LIMIT = 16

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


class _RequestState:
    """One request's telemetry between span start and finish."""

    __slots__ = (
        "metric_extras",
        "request_size",
        "server_span_recording",
        "shared",
        "span",
        "start",
        "token",
        "view",
    )

    def __init__(
        self,
        span: Span,
        token: Optional[Token[Context]],
        shared: Optional[SharedAttributes],
        view: Optional[RequestView],
        server_span_recording: bool,
    ) -> None:
        self.span = span
        self.token = token
        # None when nothing records (no SDK behind the API): see _nothing_records.
        self.shared = shared
        self.view = view
        # Response headers are captured on a recording SERVER span only.
        self.server_span_recording = server_span_recording
        # Opt-in, per-request metric attributes (bounded), and the request
        # body's size when an opt-in wants it.
        self.metric_extras: Optional[dict[str, Any]] = None
        self.request_size: Optional[int] = None
        self.start = default_timer()


def _error_type(error: BaseException) -> str:
    """The exception's type as the SDK writes ``exception.type``: fully qualified, builtins bare.

    >>> _error_type(ValueError()), _error_type(TimeoutError())
    ('ValueError', 'TimeoutError')
    """
    cls = type(error)
    module = cls.__module__
    return f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__


class _RequestTelemetry:
    """Tracer, instruments and configuration for one ``instrument*()`` call."""

    def __init__(
        self,
        *,
        sem_conv_opt_in_mode: _StabilityMode,
        settings: Settings,
        tracer_provider: Optional[trace.TracerProvider] = None,
        meter_provider: Any = None,
        request_hook: Optional[RequestHook] = None,
        response_hook: Optional[ResponseHook] = None,
        logger_provider: Any = None,
    ) -> None:
        self._keys = AttributeKeys.for_mode(
            _report_old(sem_conv_opt_in_mode), _report_new(sem_conv_opt_in_mode)
        )
        # The stable conventions as this code follows them (docs/http in
        # semantic-conventions v1.44.0); the old ones as their last schema.
        schema_url = _get_schema_url(sem_conv_opt_in_mode) if not self._keys.new else _SCHEMA_URL
        self._tracer = trace.get_tracer(
            _INSTRUMENTATION_NAME, __version__, tracer_provider, schema_url=schema_url
        )
        meter = get_meter(_INSTRUMENTATION_NAME, __version__, meter_provider, schema_url=schema_url)
        self._duration_ms = None
        self._duration_s = None
        if self._keys.old:
            self._duration_ms = meter.create_histogram(
                name=MetricInstruments.HTTP_SERVER_DURATION,
                unit="ms",
                description="Duration of HTTP server requests.",
            )
        if self._keys.new:
            self._duration_s = meter.create_histogram(
                name=HTTP_SERVER_REQUEST_DURATION,
                unit="s",
                description="Duration of HTTP server requests.",
                explicit_bucket_boundaries_advisory=HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
            )
        opt_in = settings.opt_in
        self._active_requests = None
        # Opt-in in the stable conventions (v1.44); what users of the old
        # ones have always had, so kept there and in http/dup.
        if self._keys.old or "http.server.active_requests" in opt_in:
            self._active_requests = meter.create_up_down_counter(
                name=MetricInstruments.HTTP_SERVER_ACTIVE_REQUESTS,
                unit="{request}",
                description="Number of active HTTP server requests.",
            )
        self._body_sizes = _BodySizeHistograms(meter, self._keys, opt_in)
        self._settings = settings
        self.sensitive_query_parameters = settings.redacted_query_params
        # With exceptions as log events, the event is the request's error
        # record: the framework's own error line would say it a second time.
        self.exceptions_as_logs = settings.exception_logs
        self._exception_logger = None
        if settings.exception_logs:
            self._exception_logger = get_logger(
                _INSTRUMENTATION_NAME, __version__, logger_provider, schema_url=schema_url
            )
        self._span_opt_ins = _SPAN_OPT_INS & opt_in
        self._metric_opt_ins = _METRIC_OPT_INS & opt_in if self._keys.new else frozenset()
        self._server_addresses = BoundedValues(_METRIC_SERVER_ADDRESS_LIMIT)
        self._wants_request_size = bool(opt_in & {"http.request.body.size", "http.server.request.body.size"})
        self._excluded = settings.excluded
        self._proxies = settings.proxies
        self._prefixes = BoundedValues(_PREFIX_LIMIT)
        self._public_endpoint = settings.public_endpoint
        install_filter()
        self._methods = MethodNormalizer(settings.known_methods, settings.capture_all_methods)
        self._request_hook = request_hook
        self._response_hook = response_hook
        self._hookless = request_hook is None and response_hook is None
        # Whether the no-SDK shortcut may still apply (hooks always need a span).
        self._maybe_no_sdk = self._hookless
        # A provider named in the environment is loaded on first use, which
        # only the public getters do; otherwise the globals can be read.
        self._read_globals = not {OTEL_PYTHON_TRACER_PROVIDER, OTEL_PYTHON_METER_PROVIDER} & set(os.environ)
        # Whether an SDK stands behind the tracer and the meter: known now
        # for explicit providers, asked per request for the global ones,
        # which an SDK may be installed behind at any time.
        self._tracer_is_noop = isinstance(self._tracer, NoOpTracer)
        self._tracer_follows_global = tracer_provider is None
        self._meter_is_noop = isinstance(meter, NoOpMeter)
        self._meter_follows_global = meter_provider is None and _ProxyMeterProvider is not None
        # A sampler that drops every span whatever it is shown (ALWAYS_OFF):
        # then no span attribute is worth building; metrics are still recorded.
        sampler = getattr(self._tracer, "sampler", None)
        self._never_sampled = sampler is not None and sampler.get_description() == "AlwaysOffSampler"
        self._shared: dict[tuple[str, Optional[str], str, Optional[str]], SharedAttributes] = {}

    # -- the two entry points -----------------------------------------------

    def handle_request(
        self,
        server: Any,
        method: Any,
        target: Any,
        headers: Any,
        body: Any,
        connection: Any,
        answer: Callable[[Request, Any], Any],
    ) -> Any:
        """``handle_request`` of an instrumented server: ``answer`` the request inside a span.

        Returns ``answer``'s value, or re-raises its exception, unchanged.
        """
        prepared = server.prepared_request(method, target, headers)
        if prepared is not None:
            # The call respond() made: that records the request already.
            return answer(prepared, body)
        try:
            request = server.prepare(method, target, headers, connection)
        except Exception as error:
            # The framework cannot read this request (not a str target, not
            # headers at all): it raises, as it would uninstrumented, and the
            # request is still recorded with what can be read of it.
            self._record_unreadable(server, method, target, connection, error)
            raise
        state = None
        with _guard.START:
            state = self._start(server, request, body)
        if state is None:
            return answer(request, body)
        try:
            value = answer(request, body)
        except BaseException as error:
            self._finish(state, None, error, None)
            raise
        if state.shared is None:
            self._finish(state, None, None, value)
        else:
            # No serving layer to ask: the framework's own rule says what it would send.
            outcome = response_for(value)
            self._finish(state, outcome.response, outcome.error, value)
        return value

    def respond(
        self,
        server: Any,
        request: Request,
        body: Any,
        raise_exceptions: bool,
        respond: Callable[..., Outcome],
    ) -> Outcome:
        """``respond`` of an instrumented server: the whole request, ended with the response as sent."""
        state = None
        with _guard.START:
            state = self._start(server, request, body)
        if state is None:
            return respond(request, body, raise_exceptions=raise_exceptions)
        try:
            outcome = respond(request, body, raise_exceptions=raise_exceptions)
        except BaseException as error:
            self._finish(state, None, error, None)
            raise
        if state.shared is not None:
            with _guard.INJECT_RESPONSE_CONTEXT:
                _inject_traceresponse(outcome.response)
        self._finish(state, outcome.response, outcome.error, outcome.value)
        return outcome

    def record_refusal(self, server: Any, refusal: Refusal) -> None:
        """A request the serving layer refused itself: a span and metric points with the status sent.

        Only what the serving layer could read is recorded: no headers (so no
        client-chosen attribute names), no route, and no hooks, which are
        for requests the application sees.
        """
        state = None
        with _guard.START:
            path, query = split_target(refusal.target) if refusal.target.startswith("/") else ("", None)
            request = Request(
                refusal.method, refusal.target, path, query, Headers(), refusal.connection, NOT_FOUND
            )
            state = self._start(server, request, None, run_hooks=False)
        if state is not None:
            self._finish(state, NormalizedResponse(refusal.status, [], b""), None, None)

    def _record_unreadable(
        self, server: Any, method: Any, target: Any, connection: Any, error: Exception
    ) -> None:
        state = None
        with _guard.START:
            text = target if isinstance(target, str) else ""
            path, query = split_target(text) if text else ("", None)
            request = Request(method, text, path, query, Headers(), connection, NOT_FOUND)
            state = self._start(server, request, None)
        if state is not None:
            self._finish(state, None, error, None)

    # -- span start ----------------------------------------------------------

    def _start(
        self, server: Any, request: Request, body: Any, run_hooks: bool = True
    ) -> Optional[_RequestState]:
        if not is_http_instrumentation_enabled():
            return None
        origin = self._origin_of(request)
        if self._excluded is not None and self._is_excluded(request, origin):
            return None
        nested = trace.get_current_span() is not INVALID_SPAN
        # Behind another instrumented layer that already made the server
        # span, nest under it instead of claiming a second one.
        parent, links = (None, None) if nested else self._parent_of(server, request, body)
        if self._maybe_no_sdk and self._nothing_records():
            # No SDK behind the API: only the caller's trace context needs
            # carrying, so that the handler's outgoing calls stay in its trace.
            token = None if parent is None else context.attach(parent)
            return _RequestState(INVALID_SPAN, token, None, None, False)
        shared = self._shared_for(server, request, origin)
        attributes = None
        if not self._never_sampled:
            attributes = dict(shared.span)
            with _guard.BUILD_ATTRIBUTES:
                self._add_request_attributes(attributes, request, origin, nested)
                if self._span_opt_ins:
                    self._add_opt_in_attributes(attributes, request, body)
        kind = SpanKind.INTERNAL if nested else SpanKind.SERVER
        span = self._tracer.start_span(
            shared.span_name, context=parent, kind=kind, attributes=attributes, links=links
        )
        # Counted outside the span's context (here, and after it is detached
        # in _finish): an exemplar of a +1 or -1 says nothing, and offering
        # one costs as much as the count itself. The duration is recorded
        # inside, where its exemplar links to the trace.
        if self._active_requests is not None:
            with _guard.COUNT_ACTIVE:
                self._active_requests.add(1, shared.active)
        token = context.attach(trace.set_span_in_context(span, parent))
        view = None
        if not self._hookless and run_hooks:
            view = RequestView(request.method, request.target, request.headers.lowered(), body, server)
        state = _RequestState(span, token, shared, view, span.is_recording() and not nested)
        if self._metric_opt_ins or self._wants_request_size:
            with _guard.BUILD_ATTRIBUTES:
                self._add_opt_in_state(state, request, body)
        if self._request_hook is not None and run_hooks:
            self._run_request_hook(state)
        return state

    def _run_request_hook(self, state: _RequestState) -> None:
        try:
            with _guard.LogAndRecordOnSpan("run request_hook", state.span):
                self._request_hook(state.span, state.view)  # type: ignore[misc,arg-type]  # set with the hook
        except BaseException as interrupt:
            # KeyboardInterrupt, SystemExit: let it through, but not with
            # the span open, counted active and its context attached.
            self._finish(state, None, interrupt, None)
            raise

    def _origin_of(self, request: Request) -> Origin:
        """Who sent the request and what it addressed, believing only trusted proxies."""
        connection = request.connection
        root = getattr(connection, "root_path", "") or ""
        origin = self._proxies.origin(
            request.target,
            request.headers.lowered(),
            getattr(connection, "client_address", None),
            getattr(connection, "transport", "tcp"),
            getattr(connection, "scheme", None),
            root,
        )
        if origin.prefix != root and self._prefixes.admit(origin.prefix) is None:
            origin = origin._replace(prefix=root)
        return origin

    def _parent_of(self, server: Any, request: Request, body: Any) -> tuple[Context, Optional[list[Link]]]:
        """The span's parent context, and its links.

        A public request starts a new trace: the caller's span context is
        only linked, its baggage dropped, and sampling decided as for a root.
        """
        caller = extract_from_request(request.headers.lowered())
        if not self._is_public(server, request, body):
            return caller, None
        caller_span = trace.get_current_span(caller).get_span_context()
        return Context(), [Link(caller_span)] if caller_span.is_valid else None

    def _is_public(self, server: Any, request: Request, body: Any) -> bool:
        public = self._public_endpoint
        if isinstance(public, bool):
            return public
        if public == UNTRUSTED:
            connection = request.connection
            return not self._proxies.trusts_peer(
                getattr(connection, "client_address", None), getattr(connection, "transport", "tcp")
            )
        decision = True  # a callable that fails: public, the side that trusts no one
        with _guard.DECIDE_PUBLIC:
            view = RequestView(request.method, request.target, request.headers.lowered(), body, server)
            decision = bool(public(view))  # type: ignore[operator]  # the callable case
        return decision

    def _shared_for(self, server: Any, request: Request, origin: Origin) -> SharedAttributes:
        """The attributes every request with this method, route, scheme and version shares."""
        method = self._methods.normalize(request.method, getattr(server, "methods", NO_METHODS))
        found = request.match
        route = origin.prefix + found.route if found.route is not None and found.status != 404 else None
        connection = request.connection
        scheme = origin.scheme
        version = protocol_version(getattr(connection, "protocol_version", None))
        key = (method, route, scheme, version)
        shared = self._shared.get(key)
        if shared is None:
            shared = shared_attributes(self._keys, method, route, scheme, version)
            if len(self._shared) < _SHARED_CACHE_LIMIT:
                self._shared[key] = shared
        return shared

    def _add_request_attributes(
        self, attributes: dict[str, Any], request: Request, origin: Origin, nested: bool
    ) -> None:
        """The per-request span attributes (never on metrics: clients vary them at will)."""
        keys = self._keys
        headers = request.headers.lowered()
        method = request.method
        if keys.new and attributes[keys.method[-1]] != method:
            attributes[HTTP_REQUEST_METHOD_ORIGINAL] = method
        path = origin.prefix + request.path if request.path else ""
        add_url(attributes, keys, path, request.query, self._settings.redacted_query_params)
        connection = request.connection
        server = server_of(origin)
        if server[0] is None:
            # No host named: the socket's own address stands in.
            server = (getattr(connection, "server_address", None), getattr(connection, "server_port", None))
        add_server(attributes, keys, origin.host, server)
        add_client(
            attributes,
            keys,
            origin.client,
            origin.forwarded,
            connection,
            client_port="client.port" in self._span_opt_ins,
        )
        add_user_agent(attributes, keys, headers)
        # Captured headers belong to the server span; a nested span would repeat them.
        if self._settings.captured_request_headers and not nested:
            attributes.update(self._captured(headers, self._settings.captured_request_headers, True))

    def _is_excluded(self, request: Request, origin: Origin) -> bool:
        """Whether a pattern matches the path or ``scheme://host[:port]/path`` (never the query).

        The path is the one the client sees, the application root included.
        Patterns are shared with every instrumentation in the process
        (``OTEL_PYTHON_EXCLUDED_URLS``) and written either way there.
        """
        excluded = self._excluded
        assert excluded is not None
        path = origin.prefix + request.path
        if excluded.url_disabled(path):
            return True
        host = origin.host or getattr(request.connection, "server_address", None)
        return bool(host) and excluded.url_disabled(f"{origin.scheme}://{host}{path}")

    def _add_opt_in_attributes(self, attributes: dict[str, Any], request: Request, body: Any) -> None:
        """The opt-in span attributes known when the request starts (so samplers see them)."""
        opted = self._span_opt_ins
        connection = request.connection
        add_local(attributes, connection, "network.local.address" in opted, "network.local.port" in opted)
        if "network.transport" in opted and connection is not None:
            attributes[NETWORK_TRANSPORT] = getattr(connection, "transport", "tcp")
        if "user_agent.synthetic.type" in opted:
            synthetic = synthetic_type(request.headers.lowered())
            if synthetic:
                attributes[USER_AGENT_SYNTHETIC_TYPE] = synthetic
        if "http.request.body.size" in opted:
            size = body_size(body)
            if size is not None:
                attributes[HTTP_REQUEST_BODY_SIZE] = size

    def _add_opt_in_state(self, state: _RequestState, request: Request, body: Any) -> None:
        """The opt-in metric attributes of this request, each bounded, and its body size."""
        state.request_size = body_size(body)
        extras: dict[str, Any] = {}
        connection = request.connection
        # The serving layer's local address, not the client's Host: bounded
        # by the machine, and by BoundedValues should a layer report otherwise.
        local = self._server_addresses.admit(
            (getattr(connection, "server_address", None), getattr(connection, "server_port", None))
        )
        if local is not None:
            if "server.address" in self._metric_opt_ins and local[0]:
                extras[SERVER_ADDRESS] = local[0]
            if "server.port" in self._metric_opt_ins and local[1]:
                extras[SERVER_PORT] = local[1]
        if "user_agent.synthetic.type" in self._metric_opt_ins:
            synthetic = synthetic_type(request.headers.lowered())
            if synthetic:
                extras[USER_AGENT_SYNTHETIC_TYPE] = synthetic
        state.metric_extras = extras or None

    def _captured(
        self, headers: Mapping[str, str], patterns: tuple[str, ...], request: bool
    ) -> dict[str, Any]:
        """Attributes for the headers users asked to capture, sanitised.

        The old conventions spell ``http.request.header.x_request_id``; the
        stable ones keep the dash, ``http.request.header.x-request-id``. The
        ``http/dup`` mode records both.
        """
        captured: dict[str, Any] = {}
        sanitizer = self._settings.sanitizer
        if self._keys.old:
            old_name = normalise_request_header_name if request else normalise_response_header_name
            captured.update(sanitizer.sanitize_header_values(headers, list(patterns), old_name))
        if self._keys.new:
            prefix = "http.request.header." if request else "http.response.header."
            captured.update(sanitizer.sanitize_header_values(headers, list(patterns), prefix.__add__))
        return captured

    def _nothing_records(self) -> bool:
        """True when neither spans nor metrics reach an SDK (the API's no-op or unset global providers).

        A global provider is set once and for all, so once one is seen the
        answer is kept instead of asked again on every request.
        """
        traces_off = self._tracer_is_noop or (
            self._tracer_follows_global and _global_tracer_provider_unset(self._read_globals)
        )
        if not traces_off:
            self._maybe_no_sdk = False  # an SDK records: this shortcut is never taken again
            return False
        metrics_off = self._meter_is_noop or (
            self._meter_follows_global and _global_meter_provider_unset(self._read_globals)
        )
        if not metrics_off:
            self._maybe_no_sdk = False
        return metrics_off

    # -- finish ----------------------------------------------------------------

    def _finish(
        self,
        state: _RequestState,
        response: Optional[NormalizedResponse],
        error: Optional[BaseException],
        value: Any,
    ) -> None:
        shared = state.shared
        if shared is None:
            # Started by the no-SDK path: only the context to give back.
            if state.token is not None:
                context.detach(state.token)
            return
        span = state.span
        try:
            status = response.status if response is not None else None
            if status is None and isinstance(error, Exception):
                # Every serving layer answers a handler's exception with a 500.
                status = 500
            error_type: Optional[str] = None
            with _guard.RECORD_RESPONSE:
                error_type = self._record_outcome(span, status, error)
                if response is not None and state.server_span_recording:
                    self._record_response_headers(span, response)
                    if "http.response.body.size" in self._span_opt_ins:
                        span.set_attribute(HTTP_RESPONSE_BODY_SIZE, len(response.body))
            if error is None and self._response_hook is not None and state.view is not None:
                with _guard.LogAndRecordOnSpan("run response_hook", span):
                    self._response_hook(span, state.view, value)
            if error is not None and self._exception_logger is not None:
                with _guard.EMIT_EXCEPTION:
                    self._emit_exception(error)
            with _guard.RECORD_DURATION:
                self._record_metrics(state, shared, status, error_type, response)
        finally:
            with _guard.END_SPAN:
                # end() runs every span processor's on_end, and the SDK lets
                # their exceptions through: one must not replace the
                # handler's response or exception.
                span.end()
            context.detach(state.token)  # type: ignore[arg-type]  # always set when shared is
            if self._active_requests is not None:
                with _guard.COUNT_ACTIVE:
                    self._active_requests.add(-1, shared.active)

    def _record_outcome(
        self, span: Span, status: Optional[int], error: Optional[BaseException]
    ) -> Optional[str]:
        """Status code, ``error.type`` and span status on the span; returns the ``error.type``."""
        error_type = _error_type(error) if error is not None else None
        if error_type is None and status is not None and status >= 500:
            error_type = str(status)
        if not span.is_recording():
            return error_type
        if status is not None:
            span.set_attributes(dict.fromkeys(self._keys.status, status))
        if error_type is not None:
            if self._keys.new:
                # error.type exists only in the stable conventions.
                span.set_attribute(ERROR_TYPE, error_type)
            if error is not None and self._settings.exception_span_events:
                span.record_exception(error)
            # The description is the message alone: the type is in
            # error.type and in the exception event already.
            span.set_status(Status(StatusCode.ERROR, str(error) if error is not None else None))
        return error_type

    def _emit_exception(self, error: BaseException) -> None:
        """The ``http.server.request.exception`` log event, in the request's span context."""
        assert self._exception_logger is not None
        self._exception_logger.emit(
            event_name=_EXCEPTION_EVENT,
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            context=context.get_current(),
            attributes={
                EXCEPTION_TYPE: _error_type(error),
                EXCEPTION_MESSAGE: str(error),
                EXCEPTION_STACKTRACE: "".join(
                    traceback.format_exception(type(error), error, error.__traceback__)
                ),
            },
        )

    def _record_response_headers(self, span: Span, response: NormalizedResponse) -> None:
        patterns = self._settings.captured_response_headers
        if patterns:
            captured = self._captured(Headers(response.headers), patterns, request=False)
            if captured:
                span.set_attributes(captured)

    def _record_metrics(
        self,
        state: _RequestState,
        shared: SharedAttributes,
        status: Optional[int],
        error_type: Optional[str],
        response: Optional[NormalizedResponse],
    ) -> None:
        duration_s = max(default_timer() - state.start, 0.0)
        # Attributes a handler added for its request through contrib's
        # labeler: the application's own, and its to keep bounded.
        labeled = _has_labels()
        new = old = None
        if self._duration_s is not None:
            new = shared.duration_new_with(status, error_type)
            if state.metric_extras:
                new = {**new, **state.metric_extras}  # the shared dict stays as made
            if labeled:
                new = enrich_metric_attributes(new)
            self._duration_s.record(duration_s, new)
        if self._duration_ms is not None:
            old = shared.duration_old_with(status)
            if labeled:
                old = enrich_metric_attributes(old)
            self._duration_ms.record(duration_s * 1000.0, old)
        if self._body_sizes.enabled:
            response_size = len(response.body) if response is not None else None
            self._body_sizes.record(state.request_size, response_size, new, old)


def _global_tracer_provider_unset(read_globals: bool) -> bool:
    # The API's set-once global, read directly: get_tracer_provider() also
    # looks in os.environ on every call while none is set.
    if read_globals and _TRACE_API_GLOBALS is not None:
        return _TRACE_API_GLOBALS._TRACER_PROVIDER is None
    return isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


def _global_meter_provider_unset(read_globals: bool) -> bool:
    if read_globals and _METRICS_API_GLOBALS is not None:
        return _METRICS_API_GLOBALS._METER_PROVIDER is None
    return isinstance(get_meter_provider(), _ProxyMeterProvider)


def _has_labels() -> bool:
    """Whether the request's handler added labeler attributes (cheaper than building them)."""
    if _LABELER_KEY is None:  # pragma: no cover - a contrib release that moved the key
        return bool(get_labeler_attributes())
    labeler = context.get_value(_LABELER_KEY)
    return labeler is not None and len(labeler) > 0  # type: ignore[arg-type]


class _AppendHeader(Setter[list[tuple[str, str]]]):
    """Adds a header to a response's list of ``(name, value)`` pairs."""

    def set(self, carrier: list[tuple[str, str]], key: str, value: str) -> None:
        carrier.append((key, value))


_APPEND_HEADER = _AppendHeader()


def _inject_traceresponse(response: NormalizedResponse) -> None:
    """Add the global response propagator's headers (``traceresponse``) to the response as sent.

    Only the serving layer's copy changes: the value ``handle_request``
    returned is left as the handler made it.
    """
    propagator = get_global_response_propagator()  # type: ignore[no-untyped-call]  # untyped in contrib
    if propagator is not None:
        propagator.inject(response.headers, setter=_APPEND_HEADER)


class _BodySizeHistograms:
    """The opt-in request and response body size histograms of each convention."""

    def __init__(self, meter: Any, keys: AttributeKeys, opt_in: frozenset[str]) -> None:
        self.instruments: dict[tuple[str, str], Any] = {}
        for direction, new_name, old_name in (
            ("request", HTTP_SERVER_REQUEST_BODY_SIZE, MetricInstruments.HTTP_SERVER_REQUEST_SIZE),
            ("response", HTTP_SERVER_RESPONSE_BODY_SIZE, MetricInstruments.HTTP_SERVER_RESPONSE_SIZE),
        ):
            if new_name not in opt_in:
                continue
            description = f"Size of HTTP server {direction} bodies."
            if keys.new:
                self.instruments[direction, "new"] = meter.create_histogram(new_name, "By", description)
            if keys.old:
                self.instruments[direction, "old"] = meter.create_histogram(old_name, "By", description)
        self.enabled = bool(self.instruments)

    def record(
        self,
        request_size: Optional[int],
        response_size: Optional[int],
        new: Optional[dict[str, Any]],
        old: Optional[dict[str, Any]],
    ) -> None:
        for (direction, convention), histogram in self.instruments.items():
            size = request_size if direction == "request" else response_size
            attributes = new if convention == "new" else old
            if size is not None:
                histogram.record(size, attributes)
