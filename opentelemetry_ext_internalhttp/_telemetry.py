"""What one request records: its span's lifecycle, around the framework's own steps.

``_RequestTelemetry`` holds everything decided once, when ``instrument()``
or ``instrument_app()`` runs (tracer, instruments, semantic-convention
mode, settings, hooks). The instrumented ``handle_request`` (``_instrumented``)
takes a request one way through it, between the framework's steps:

    prepare (framework) → start → dispatch (framework) → run_response_hook
    → conclude (the framework's conclude: the response as sent, the log
    lines; then the response headers) → finish

``start`` returns the request's state (``_request_state.RequestState``),
which the later steps take. The attributes come from
``_request_attributes``, the points go to ``_instruments``, how the
request ended to ``_outcome``. Every telemetry step is guarded
(``_guard``): a failure is logged and the request goes on with the
handler's own result.
"""

from __future__ import annotations

from collections.abc import Mapping
from timeit import default_timer
from typing import Any, Callable, Optional, cast

from internalhttp.response import NormalizedResponse, Outcome
from internalhttp.routing import NOT_FOUND, split_target
from internalhttp.server import (
    UNKNOWN_CONNECTION,
    ConnectionInfo,
    Headers,
    InternalHTTPServer,
    Refusal,
    Request,
)
from opentelemetry import context, trace
from opentelemetry._logs import LoggerProvider, get_logger
from opentelemetry.context import Context
from opentelemetry.instrumentation.propagators import get_global_response_propagator
from opentelemetry.instrumentation.utils import is_http_instrumentation_enabled
from opentelemetry.metrics import MeterProvider, get_meter
from opentelemetry.trace import INVALID_SPAN, Link, SpanKind

from opentelemetry_ext_internalhttp import _guard
from opentelemetry_ext_internalhttp._attributes import AttributeKeys, body_size
from opentelemetry_ext_internalhttp._bodies import BODY_CONTENT_ATTRIBUTES, BODY_CONTENT_SCHEMA_URL
from opentelemetry_ext_internalhttp._config import Settings
from opentelemetry_ext_internalhttp._instruments import Instruments
from opentelemetry_ext_internalhttp._internals import (
    SdkPresence,
    _get_schema_url,
    _report_new,
    _report_old,
    _StabilityMode,
    never_samples,
)
from opentelemetry_ext_internalhttp._options import UNTRUSTED
from opentelemetry_ext_internalhttp._outcome import OutcomeRecording, status_sent
from opentelemetry_ext_internalhttp._proxies import Origin
from opentelemetry_ext_internalhttp._request_attributes import RequestReading
from opentelemetry_ext_internalhttp._request_state import (
    RequestHook,
    RequestState,
    RequestView,
    ResponseHook,
)
from opentelemetry_ext_internalhttp._response_headers import add_response_headers
from opentelemetry_ext_internalhttp._serving_metrics import ServingMetrics
from opentelemetry_ext_internalhttp._trace_context import extract_from_request, install_filter
from opentelemetry_ext_internalhttp.version import __version__

_INSTRUMENTATION_NAME = "opentelemetry_ext_internalhttp"
_SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
# The span kinds as module constants: CPython 3.11 reads an Enum member
# through Python code (about 1,000 machine instructions), a global directly.
_SERVER = SpanKind.SERVER
_INTERNAL = SpanKind.INTERNAL


class _RequestTelemetry:
    """Tracer, instruments and configuration for one ``instrument*()`` call."""

    def __init__(
        self,
        *,
        sem_conv_opt_in_mode: _StabilityMode,
        settings: Settings,
        tracer_provider: Optional[trace.TracerProvider] = None,
        meter_provider: Optional[MeterProvider] = None,
        request_hook: Optional[RequestHook] = None,
        response_hook: Optional[ResponseHook] = None,
        logger_provider: Optional[LoggerProvider] = None,
    ) -> None:
        keys = AttributeKeys.for_mode(_report_old(sem_conv_opt_in_mode), _report_new(sem_conv_opt_in_mode))
        schema_url = _schema_url(sem_conv_opt_in_mode, keys, settings)
        self._tracer = trace.get_tracer(
            _INSTRUMENTATION_NAME, __version__, tracer_provider, schema_url=schema_url
        )
        meter = get_meter(_INSTRUMENTATION_NAME, __version__, meter_provider, schema_url=schema_url)
        self._instruments = Instruments(meter, keys, settings.opt_in)
        # What the socket server tells about connections and queueing (see _instrumented).
        self.serving_observer = ServingMetrics(meter) if settings.additions.serving_metrics else None
        self._reading = RequestReading(keys, settings)
        self._settings = settings
        self.sensitive_query_parameters = settings.redacted_query_params
        self.sensitive_path_parameters = settings.redacted_path_params
        # With exceptions as log events, the event is the request's error
        # record: the framework's own error line would say it a second time.
        self.exceptions_as_logs = settings.exception_signal.logs
        exception_logger = None
        if settings.exception_signal.logs:
            exception_logger = get_logger(
                _INSTRUMENTATION_NAME, __version__, logger_provider, schema_url=schema_url
            )
        self._outcomes = OutcomeRecording(
            keys, settings.server_error_statuses, settings.exception_signal.span_events, exception_logger
        )
        self._request_hook = request_hook
        self.response_hook = response_hook
        self._hookless = request_hook is None and response_hook is None
        self._sdk = SdkPresence(
            self._tracer, tracer_provider is not None, meter, meter_provider is not None, self._hookless
        )
        # A sampler that drops every span whatever it is shown (ALWAYS_OFF):
        # then no span attribute is worth building; metrics are still recorded.
        self._never_sampled = never_samples(self._tracer)
        filters = settings.filters
        self._filtering = filters.urls is not None or bool(filters.methods) or filters.function is not None
        install_filter()

    # -- the entries -----------------------------------------------------------
    #
    # The instrumented handle_request (_instrumented) calls start, then
    # run_response_hook and conclude (or finish, for an interrupt) around the
    # framework's dispatch, and record_unreadable for a request the framework
    # cannot read; the serving layer's refusals come to record_refusal.

    def record_refusal(self, server: InternalHTTPServer, refusal: Refusal) -> None:
        """A request the serving layer refused itself: a span and metric points with the status sent.

        Only what the serving layer could read is recorded: no headers (so no
        client-chosen attribute names), no route, and no hooks, which are
        for requests the application sees.
        """
        request = None
        with _guard.START:
            path, query = split_target(refusal.target) if refusal.target.startswith("/") else ("", None)
            request = Request(
                refusal.method,
                refusal.target,
                path,
                query,
                Headers(),
                refusal.connection or UNKNOWN_CONNECTION,
                NOT_FOUND,
            )
        state = self.start(server, request, None, run_hooks=False) if request is not None else None
        if state is not None:
            self.finish(state, NormalizedResponse(refusal.status, [], b""), None)

    def record_unreadable(
        self,
        server: InternalHTTPServer,
        method: object,
        target: object,
        connection: Optional[ConnectionInfo],
        error: Exception,
    ) -> None:
        """A request the framework could not read: recorded with what can be read of it."""
        request = None
        with _guard.START:
            text = target if isinstance(target, str) else ""
            path, query = split_target(text) if text else ("", None)
            # The method as it came, whatever it is: the normalizer records a non-token as _OTHER.
            known = connection if connection is not None else UNKNOWN_CONNECTION
            request = Request(cast(str, method), text, path, query, Headers(), known, NOT_FOUND)
        state = self.start(server, request, None) if request is not None else None
        if state is not None:
            self.finish(state, None, error)

    # -- span start ----------------------------------------------------------

    def start(
        self, server: InternalHTTPServer, request: Request, body: Optional[bytes], run_hooks: bool = True
    ) -> Optional[RequestState]:
        """The request's span started and made current, or None when the request is not recorded.

        A failure is logged (``_guard.START``) and the request goes on unrecorded.
        """
        try:  # per request: a try, not a with (see _guard)
            if not is_http_instrumentation_enabled():
                return None
            # A dict of its own: the reads below (trace context, Host, User-Agent)
            # each cost a mapping proxy's get about twice a dict's.
            headers = request.headers.lowered().copy()
            if self._sdk.maybe_none and self._sdk.nothing_records():
                return self._carry_context(server, request, headers, body)
            origin = self._settings.proxies.origin(request.target, headers, request.connection)
            if self._filtering and self._is_skipped(server, request, body, origin):
                return None
            nested = trace.get_current_span() is not INVALID_SPAN
            # Behind another instrumented layer that already made the server
            # span, nest under it instead of claiming a second one.
            if nested:
                parent, links = None, None
            elif self._settings.public_endpoint is False:
                # The default, decided here without _parent_of's calls: this runs on every request.
                parent, links = extract_from_request(headers), None
            else:
                parent, links = self._parent_of(server, request, headers, body)
            return self._open(server, request, headers, body, origin, nested, parent, links, run_hooks)
        except Exception:
            _guard.START.failed()
            return None

    def _carry_context(
        self, server: InternalHTTPServer, request: Request, headers: Mapping[str, str], body: Optional[bytes]
    ) -> Optional[RequestState]:
        """No SDK behind the API: only the caller's trace context needs carrying.

        So that the handler's outgoing calls stay in the caller's trace; the
        request's origin is read only when a filter needs it.
        """
        if self._filtering:
            origin = self._settings.proxies.origin(request.target, headers, request.connection)
            if self._is_skipped(server, request, body, origin):
                return None
        token = None  # nested in a current span: nothing to carry
        if trace.get_current_span() is INVALID_SPAN:
            token = context.attach(self._parent_of(server, request, headers, body)[0])
        return (INVALID_SPAN, token, None, None, False, None, None, 0.0)

    def _open(
        self,
        server: InternalHTTPServer,
        request: Request,
        headers: Mapping[str, str],
        body: Optional[bytes],
        origin: Origin,
        nested: bool,
        parent: Optional[Context],
        links: Optional[list[Link]],
        run_hooks: bool,
    ) -> RequestState:
        """The span started, counted active and made current: the request's state."""
        reading = self._reading
        shared = reading.shared_for(server, request, origin)
        attributes = None
        if not self._never_sampled:
            try:
                attributes = reading.span_attributes(shared, request, headers, origin, nested, body)
            except Exception:  # per request: a try, not a with (see _guard)
                _guard.BUILD_ATTRIBUTES.failed()
        kind = _INTERNAL if nested else _SERVER
        span = self._tracer.start_span(
            shared.span_name, context=parent, kind=kind, attributes=attributes, links=links
        )
        # Counted outside the span's context; the duration is recorded inside.
        active = self._instruments.active
        if active is not None:
            try:  # per request: a try, not a with (see _guard)
                active.add(1, shared.active)
            except Exception:
                _guard.COUNT_ACTIVE.failed()
        token = context.attach(trace.set_span_in_context(span, parent))
        started = default_timer()
        view = None
        if not self._hookless and run_hooks:
            view = RequestView(request.method, request.target, request.headers.lowered(), body, server)
        metric_extras: Optional[dict[str, Any]] = None
        request_size: Optional[int] = None
        if reading.metric_opt_ins or reading.wants_request_size:
            with _guard.BUILD_ATTRIBUTES:
                metric_extras = reading.metric_extras(request)
                request_size = body_size(body)
        recording = span.is_recording() and not nested
        state = (span, token, shared, view, recording, metric_extras, request_size, started)
        if self._request_hook is not None and run_hooks:
            self._run_hook(state, self._request_hook)
        return state

    def _is_skipped(
        self, server: InternalHTTPServer, request: Request, body: Optional[bytes], origin: Origin
    ) -> bool:
        """Whether the request is not to be recorded: by URL, by method, or by the exclude function."""
        filters = self._settings.filters
        if filters.urls is not None and self._reading.is_excluded(filters.urls, request, origin):
            return True
        if request.method in filters.methods:
            return True
        if filters.function is None:
            return False
        skipped = False  # a function that fails records the request: telemetry is not lost to a bug
        with _guard.DECIDE_EXCLUDED:
            view = RequestView(request.method, request.target, request.headers.lowered(), body, server)
            skipped = bool(filters.function(view))
        return skipped

    def _parent_of(
        self, server: InternalHTTPServer, request: Request, headers: Mapping[str, str], body: Optional[bytes]
    ) -> tuple[Context, Optional[list[Link]]]:
        """The span's parent context, and its links.

        A public request starts a new trace: the caller's span context is
        only linked, its baggage dropped, and sampling decided as for a root.
        """
        caller = extract_from_request(headers)
        if not self._is_public(server, request, body):
            return caller, None
        caller_span = trace.get_current_span(caller).get_span_context()
        return Context(), [Link(caller_span)] if caller_span.is_valid else None

    def _is_public(self, server: InternalHTTPServer, request: Request, body: Optional[bytes]) -> bool:
        public = self._settings.public_endpoint
        if isinstance(public, bool):
            return public
        if public == UNTRUSTED:
            connection = request.connection
            return not self._settings.proxies.trusts_peer(connection.client_address, connection.transport)
        decision = True  # a callable that fails: public, the side that trusts no one
        with _guard.DECIDE_PUBLIC:
            view = RequestView(request.method, request.target, request.headers.lowered(), body, server)
            decision = bool(public(view))  # type: ignore[operator]  # the callable case
        return decision

    def run_response_hook(self, state: RequestState, value: object) -> None:
        """The response hook, before the framework concludes: what it changes in ``value`` the client gets."""
        if self.response_hook is not None and state[3] is not None:  # state[3]: the view
            self._run_hook(state, self.response_hook, value)

    def _run_hook(self, state: RequestState, hook: Callable[..., None], *response: object) -> None:
        """A hook, guarded: its exception is logged and recorded on the span, and the request goes on."""
        name = "run response_hook" if response else "run request_hook"
        span, _token, _shared, view, *_ = state
        try:
            with _guard.LogAndRecordOnSpan(name, span):
                hook(span, view, *response)
        except BaseException as interrupt:
            # KeyboardInterrupt, SystemExit: let it through, but not with
            # the span open, counted active and its context attached.
            self.finish(state, None, interrupt)
            raise

    # -- finish ----------------------------------------------------------------

    def conclude(
        self,
        state: RequestState,
        server: InternalHTTPServer,
        request: Request,
        value: object,
        error: Optional[Exception],
    ) -> None:
        """The framework ends the request inside the span; the span ends with the response as sent."""
        try:
            outcome: Outcome = server.conclude(request, value, error)
        except BaseException as failure:  # the framework's own logging failed: the span still ends
            self.finish(state, None, failure)
            raise
        response = outcome.response
        if state[2] is not None and request.exchange is not None:  # state[2]: the shared attributes
            try:  # per request: a try, not a with (see _guard)
                propagator = get_global_response_propagator()  # type: ignore[no-untyped-call]  # untyped in contrib
                server_timing = self._settings.additions.server_timing
                if propagator is not None or server_timing:  # most often neither: no call
                    add_response_headers(response, state[0], propagator, server_timing)
            except Exception:
                _guard.INJECT_RESPONSE_CONTEXT.failed()
        self.finish(state, response, outcome.error)

    def finish(
        self, state: RequestState, response: Optional[NormalizedResponse], error: Optional[BaseException]
    ) -> None:
        """The span ends with what the client got (``response``; None when nothing was sent)."""
        span, token, shared, _view, server_span_recording, metric_extras, request_size, started = state
        if shared is None:
            # Started by the no-SDK path: only the context to give back.
            if token is not None:
                context.detach(token)
            return
        # A try per step, so that one failing still lets the others record.
        try:
            status = response.status if response is not None else status_sent(None, error)
            error_type: Optional[str] = None
            try:
                error_type = self._outcomes.on_span(span, status, error)
                if response is not None and server_span_recording and self._reading.reads_response:
                    span.set_attributes(self._reading.response_attributes(response))
            except Exception:
                _guard.RECORD_RESPONSE.failed()
            if error is not None:
                with _guard.EMIT_EXCEPTION:
                    self._outcomes.emit_exception(error)
            try:
                duration = default_timer() - started  # a monotonic clock: never below 0
                self._instruments.record(
                    duration, shared, status, error_type, metric_extras, request_size, response
                )
            except Exception:
                _guard.RECORD_DURATION.failed()
        finally:
            try:  # the SDK lets a span processor's exception through end()
                span.end()
            except Exception:
                _guard.END_SPAN.failed()
            context.detach(token)  # type: ignore[arg-type]  # always set when shared is
            active = self._instruments.active
            if active is not None:
                try:
                    active.add(-1, shared.active)
                except Exception:
                    _guard.COUNT_ACTIVE.failed()


def _schema_url(mode: _StabilityMode, keys: AttributeKeys, settings: Settings) -> str:
    """The schema the recorded attributes follow.

    The stable conventions as this code follows them (docs/http in
    semantic-conventions v1.44.0), or the schema in which the opted-in body
    content attributes appear; the old conventions as their last schema.
    """
    if not keys.new:
        return str(_get_schema_url(mode))
    if settings.opt_in & set(BODY_CONTENT_ATTRIBUTES):
        return BODY_CONTENT_SCHEMA_URL
    return _SCHEMA_URL
