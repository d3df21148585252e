"""OpenTelemetry instrumentation for the internalhttp framework.

Every request an internalhttp server dispatches becomes one SERVER span
named after its route template ("GET /users/<user_id>"), with the HTTP
semantic-convention attributes, W3C trace context taken from the request
headers, the HTTP server metrics, and the framework's log lines written in
the span's context so that logs, traces and metrics line up.

Usage
-----
Instrument every server created from now on, before the application
imports InternalHTTPServer (see Limitations):

    from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

    InternalHTTPInstrumentor().instrument()

    from internalhttp.server import InternalHTTPServer

    server = InternalHTTPServer("shop")

    @server.route("/users/<user_id>")
    def get_user(headers, body, user_id):
        return {"status": 200, "body": {"id": user_id}}

Or with no code change, through the opentelemetry_instrumentor entry point
(console output; see the README for OTLP):

    opentelemetry-instrument --traces_exporter console --metrics_exporter console \
        --logs_exporter console --service_name shop python app.py

Instrument one server that already exists (made before instrument(), from
a class reference taken before it, or of your own subclass), and undo it:

    InternalHTTPInstrumentor.instrument_app(server, tracer_provider=provider)
    InternalHTTPInstrumentor.uninstrument_app(server)

InternalHTTPInstrumentor().uninstrument() restores the original class;
servers created while instrumented stop recording too, and record again,
with the new configuration, after the next instrument(). A server given its
own configuration by instrument_app keeps it until uninstrument_app; one
switched off by uninstrument_app stays off through later instrument()
calls. Instrumenting what is instrumented, or the reverse, logs a warning
and changes nothing.

Configuration
-------------
instrument() and instrument_app(server) take the same keyword arguments
(typed as InstrumentOptions); an unknown keyword is named in a warning.
Each falls back to its environment variable, read when instrument() or
instrument_app() runs, then to the default.

  tracer_provider      where spans go. Default: the global provider.
  meter_provider       where metrics go. Default: the global provider.
  logger_provider      where exception log events go (see Logs).
                       Default: the global provider.
  excluded_urls        comma-separated regexes; a request is not recorded
                       when one matches its path or scheme://host[:port]/path
                       (never the query). Env: OTEL_PYTHON_INTERNALHTTP_EXCLUDED_URLS,
                       else OTEL_PYTHON_EXCLUDED_URLS. Default: none.
  request_hook         hook(span, request) after the span starts.
  response_hook        hook(span, request, response) before the span ends,
                       when the handler returned; response is its value.
                       A hook's request is a read-only RequestView: method,
                       path (the target as sent), headers (lower-case names),
                       body, server.
  http_capture_headers_server_request
                       request headers to record, regexes (string or list).
                       Env: OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST.
  http_capture_headers_server_response
                       response headers to record, as the client receives
                       them (Content-Type and Content-Length included).
                       Env: OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE.
  http_capture_headers_sanitize_fields
                       captured headers recorded as "[REDACTED]".
                       Env: OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS.
  known_methods        the methods recorded as sent; replaces the default
                       list CONNECT, DELETE, GET, HEAD, OPTIONS, PATCH, POST,
                       PUT, QUERY, TRACE (case-sensitive).
                       Env: OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS.
  sensitive_query_parameters
                       query parameters whose values become REDACTED, on
                       spans and in the framework's log lines; replaces the
                       default AWSAccessKeyId, Signature, sig, X-Goog-Signature,
                       X-Amz-Signature, X-Amz-Credential, X-Amz-Security-Token.
                       Env: OTEL_PYTHON_INTERNALHTTP_SENSITIVE_QUERY_PARAMETERS.
  opt_in               opt-in attributes and metrics to record (string or
                       list), "all" for every one. Env: OTEL_PYTHON_INTERNALHTTP_OPT_IN.
                       Default: none. The names:
                         client.port, network.local.address, network.local.port,
                         network.transport, user_agent.synthetic.type,
                         http.request.body.size, http.response.body.size
                                          span attributes;
                         http.server.request.body.size,
                         http.server.response.body.size
                                          histograms (old conventions:
                                          http.server.request.size / .response.size);
                         server.address, server.port
                                          on the metrics, from the serving
                                          layer's local address, at most 16 pairs;
                         user_agent.synthetic.type
                                          on the duration metric too;
                         http.server.active_requests
                                          the counter in the "http" mode.
  trusted_proxies      the peers whose forwarding headers are believed (see
                       Proxies and trust): IP addresses and CIDR ranges
                       (string or list), "*" for every peer, "" or [] for
                       none. Env: OTEL_PYTHON_INTERNALHTTP_TRUSTED_PROXIES.
                       Default: 127.0.0.0/8, ::1, 10.0.0.0/8, 172.16.0.0/12,
                       192.168.0.0/16, fc00::/7 (what Rails trusts).
  forwarded_headers    the header family the trusted proxies write:
                       "x-forwarded" (X-Forwarded-For, -Proto, -Host, -Port,
                       -Prefix), "forwarded" (RFC 7239), or "both" (Forwarded
                       first). Env: OTEL_PYTHON_INTERNALHTTP_FORWARDED_HEADERS.
                       Default: x-forwarded.
  public_endpoint      True: every request starts a new trace and only links
                       the caller's; "untrusted": so do requests whose peer
                       is not a trusted proxy; a callable: given the
                       RequestView, returns whether the request is public
                       (one that raises counts as public, and is logged).
                       Env: OTEL_PYTHON_INTERNALHTTP_PUBLIC_ENDPOINT (true,
                       false, untrusted). Default: false.
  skip_dep_check       (instrument() only) instrument even if the installed
                       internalhttp is outside >= 2.0, < 3.0. Default: False.

Other environment variables:

  OTEL_SEMCONV_STABILITY_OPT_IN          unset: the old conventions (schema
                                         1.11.0); "http": the stable ones as of
                                         semantic conventions v1.44.0 (schema
                                         1.44.0); "http/dup": both.
  OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN   unset: a handler's exception is a span
                                         event; "logs": a log event instead;
                                         "logs/dup": both.
  OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS
                                         keep unknown methods as sent (at most 32
                                         distinct ones; later ones are _OTHER).
  OTEL_PYTHON_DISABLED_INSTRUMENTATIONS  "internalhttp" turns this package off
                                         under opentelemetry-instrument.

An invalid keyword argument (a bad regex, an unknown opt-in) raises
ValueError naming it. An invalid environment variable is logged as an
error naming it and only that setting is ignored, so that under
opentelemetry-instrument the other instrumentations still load.

Captured headers become http.request.header.<name> / http.response.header.<name>
in lower case: dashes kept in the stable conventions (x-request-id),
underscores in the old ones (x_request_id). They go on the SERVER span only.

What is recorded
----------------
Span: named "{method} {route}", "{method}" when no route matched, "HTTP ..."
for a method that is not known (recorded as _OTHER, with the method as
sent in http.request.method_original). A method some route of the server
answers is known (a PURGE /cache route records PURGE). Kind SERVER, its
parent from the request headers (the global propagator); INTERNAL, and a
child, when a span is already current. Every attribute known at the start,
opt-ins and captured request headers included, is given to the sampler.

The route and the headers are the framework's own reading of the request
(InternalHTTPServer.prepare): routed once, whatever the target's form
(an absolute-form target "GET http://h/p?q" records url.path /p).

Status: the status the client received, whatever the handler returned:

  handler returns                        status recorded   error.type
  a dict, status given or 200            that status       the status, if 5xx
  "text" or b"bytes"                     200
  None                                   204
  {"status": 200.0}, HTTPStatus.OK       200
  a value the framework cannot send      500               its exception's type
  (bad status, body not JSON, ...)
  raises                                 500               the exception's type

Span status ERROR for 5xx and exceptions (the description is the exception
message alone), UNSET otherwise (4xx included). error.type (stable
conventions only) is an exception's fully qualified type, as the SDK writes
exception.type. The exception propagates unchanged; the handler's value is
returned unchanged.

Metrics: http.server.request.duration (s, stable) and http.server.duration
(ms, old), recorded inside the span's context so that exemplars link to the
trace; http.server.active_requests in the old and dup modes (opt-in in
"http"). Their attributes are bounded whatever a client sends: method
(known, _OTHER, or one of at most 32 captured), url.scheme (http or https:
X-Forwarded-Proto and Forwarded: proto= are believed for those only), route,
status code, error.type, and the HTTP version when it is 1.0, 1.1, 2 or 3.
Never the path, the query, the client, or the host (Host, X-Forwarded-Host,
Forwarded: host=, :authority stay on the span). url.scheme is the
connection's unless a trusted proxy says http or https; the application
root a trusted proxy names (X-Forwarded-Prefix) is part of http.route, at
most 16 distinct roots per instrumentation (a later one is left out). Attributes a handler adds
with contrib's labeler (opentelemetry.instrumentation._labeler.get_labeler)
are added to its request's duration point: the application owns their
cardinality.

Query credentials (see sensitive_query_parameters) are REDACTED in url.query
and http.target. Excluded and suppressed requests (suppress_instrumentation(),
suppress_http_instrumentation()) record nothing. With no SDK behind the API
and no hooks, only the caller's trace context is carried into the handler.
A failure inside the telemetry is logged and the request goes on; no
request content makes the instrumentation log at WARNING or above. A hook
that raises is logged, recorded as an exception event on the span, and
ignored.

Proxies and trust
-----------------
Forwarding headers are text any client can send, so they are believed only
when the connection's peer is a trusted proxy (trusted_proxies; a peer on
a unix socket is always trusted, as gunicorn does), and only the family
the proxies write (forwarded_headers): behind the usual nginx, a client's
own Forwarded header changes nothing. Through trusted proxies:

  client.address (old http.client_ip)
      the rightmost address of X-Forwarded-For (or Forwarded for=) that is
      not a trusted proxy, walking from the right as nginx's
      real_ip_recursive and Rails' RemoteIp do; the leftmost when every one
      is trusted. "unknown", "_hidden" and anything that is not an IP
      address stop the walk and are not recorded (client.address is then
      left out). network.peer.address is always the socket's peer.
  url.scheme, server.address, server.port, the application root
      what the outermost trusted hop wrote: X-Forwarded-Proto, -Host,
      -Port (wins over the host's port) and -Prefix, each counted from the
      right past one item per trusted hop, so an item a client sent before
      them is skipped; or the Forwarded element whose for= is the client.
      Without them, Host (or an absolute-form target) and the connection's
      scheme and local address.

From any other peer, the connection's own values are recorded. The
application root is X-Forwarded-Prefix followed by the serving layer's
root (a WSGI SCRIPT_NAME): url.path, http.target and http.route (so the
span name and the metric's route) include it, "/api/users/<user_id>";
routing itself is unchanged. network.local.address / .port and the metrics'
server.address / .port come from the accepted socket only (never a
wildcard bind address or a Host header); on a unix socket,
network.transport is "unix" and the local address is the socket's path.

public_endpoint draws a trust boundary for trace context, as Go's
otelhttp.WithPublicEndpoint does: a public request starts a new trace (a
root SERVER span, sampled as a root) with a span link to the caller's
span context, the caller's baggage is dropped, and traceresponse carries
the new trace. Whatever the setting, a traceparent or tracestate over 512
characters is treated as absent, and what the API's propagators would say
about malformed trace headers is logged at DEBUG, so that no client makes
any logger write a WARNING.

Logs
----
The framework writes each request's access line (internalhttp.access, INFO)
and the error record of a failed request (internalhttp, ERROR) inside the
request's span context, in every serving layer, so a logging bridge gives
them the span's trace and span ids: install opentelemetry-instrumentation-logging
and opentelemetry-instrument attaches its handler to the root logger (or add
its LoggingHandler yourself). Python's loggers pass only WARNING and up by default:
set logging.getLogger("internalhttp").setLevel(logging.INFO) to send the
access lines too. Those lines never show a query credential and write a
client's control characters escaped. With OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN
set to logs or logs/dup, a handler's exception is the log event
http.server.request.exception (severity ERROR, exception.type,
exception.message, exception.stacktrace, in the span's context), and the
framework's own error line is not written, so it is said once. With a global
response propagator set (opentelemetry.instrumentation.propagators.
set_global_response_propagator), every response carries traceresponse and
Access-Control-Expose-Headers: traceresponse.

Limitations
-----------
instrument() replaces the class binding internalhttp.server.InternalHTTPServer
(and internalhttp.InternalHTTPServer). A name imported before it still
refers to the original class, so servers made from it are not traced:

    from internalhttp.server import InternalHTTPServer   # taken too early
    InternalHTTPInstrumentor().instrument()
    server = InternalHTTPServer("shop")                   # not traced

Either call instrument() (or run under opentelemetry-instrument) before the
framework is imported, or instrument such servers with instrument_app. The
same holds for your own subclasses: one defined before instrument() derives
from the original class. While instrumented, isinstance(old_server,
internalhttp.server.InternalHTTPServer) is false for servers made from the
original class; compare with a class reference taken at import time.

instrument_app on a server of the original class sets attributes on that
server (the class is left alone); a copy of it shares them, so instrument
copies separately.

Requests a serving layer refuses before the application sees them (a
malformed request line, 413, 414, 431, 505) reach the telemetry through
InternalHTTPServer.refused: each is a span and a duration point with the
status sent, named after its method, with no route, no headers and no
hooks (nothing a client sent becomes an attribute name).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, TypedDict, Union, cast

import internalhttp
import internalhttp.server
from internalhttp.response import Outcome
from internalhttp.server import Refusal, Request
from opentelemetry._logs import LoggerProvider
from opentelemetry.instrumentation._semconv import (
    _get_semconv_opt_in_modes,
    _OpenTelemetryStabilitySignalType,
)
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from opentelemetry_ext_internalhttp._config import read_settings
from opentelemetry_ext_internalhttp._telemetry import (
    RequestHook,
    RequestView,
    ResponseHook,
    _RequestTelemetry,
)
from opentelemetry_ext_internalhttp.package import _instruments
from opentelemetry_ext_internalhttp.version import __version__

if TYPE_CHECKING:
    from internalhttp.server import InternalHTTPServer
    from typing_extensions import Unpack

__all__ = [
    "InstrumentOptions",
    "InternalHTTPInstrumentor",
    "RequestHook",
    "RequestView",
    "ResponseHook",
    "__version__",
]

_logger = logging.getLogger(__name__)

_OriginalInternalHTTPServer = internalhttp.server.InternalHTTPServer
_original_handle_request = _OriginalInternalHTTPServer.handle_request
_original_respond = _OriginalInternalHTTPServer.respond

# Every module attribute through which applications reach the class. One
# table drives both instrument and uninstrument so they cannot drift apart.
_CLASS_BINDINGS = (
    ("internalhttp.server", "InternalHTTPServer"),
    ("internalhttp", "InternalHTTPServer"),
)

# A server's own telemetry lives in its __dict__ under this key: a
# _RequestTelemetry from instrument_app, or None after uninstrument_app.
# Without the key, a server follows its class (see _telemetry_of).
_INSTANCE_TELEMETRY = "_opentelemetry_telemetry"


class InstrumentOptions(TypedDict, total=False):
    """The keyword arguments of ``instrument()`` and ``instrument_app()``.

    Each defaults to its environment variable (see the manual), then to the
    behaviour the semantic conventions ask for.
    """

    tracer_provider: Optional[TracerProvider]
    meter_provider: Optional[MeterProvider]
    excluded_urls: Optional[str]
    request_hook: Optional[RequestHook]
    response_hook: Optional[ResponseHook]
    http_capture_headers_server_request: Optional[Union[str, list[str]]]
    http_capture_headers_server_response: Optional[Union[str, list[str]]]
    http_capture_headers_sanitize_fields: Optional[Union[str, list[str]]]
    known_methods: Optional[Union[str, list[str]]]
    sensitive_query_parameters: Optional[Union[str, list[str]]]
    opt_in: Optional[Union[str, list[str]]]
    logger_provider: Optional[LoggerProvider]
    trusted_proxies: Optional[Union[str, list[str]]]
    forwarded_headers: Optional[str]
    public_endpoint: Optional[Union[bool, str, Callable[[RequestView], bool]]]


# What BaseInstrumentor.instrument() itself takes, beside our options.
_BASE_INSTRUMENTOR_OPTIONS = frozenset({"skip_dep_check", "raise_exception_on_conflict"})
_OPTIONS = frozenset(InstrumentOptions.__annotations__)


def _build_telemetry(options: InstrumentOptions) -> _RequestTelemetry:
    """The one place where tracer, meters and configuration are built."""
    mode = _get_semconv_opt_in_modes((_OpenTelemetryStabilitySignalType.HTTP,))[
        _OpenTelemetryStabilitySignalType.HTTP
    ]
    settings = read_settings(
        excluded_urls=options.get("excluded_urls"),
        http_capture_headers_server_request=options.get("http_capture_headers_server_request"),
        http_capture_headers_server_response=options.get("http_capture_headers_server_response"),
        http_capture_headers_sanitize_fields=options.get("http_capture_headers_sanitize_fields"),
        known_methods=options.get("known_methods"),
        sensitive_query_parameters=options.get("sensitive_query_parameters"),
        opt_in=options.get("opt_in"),
        trusted_proxies=options.get("trusted_proxies"),
        forwarded_headers=options.get("forwarded_headers"),
        public_endpoint=options.get("public_endpoint"),
    )
    return _RequestTelemetry(
        sem_conv_opt_in_mode=mode,
        settings=settings,
        tracer_provider=options.get("tracer_provider"),
        meter_provider=options.get("meter_provider"),
        request_hook=options.get("request_hook"),
        response_hook=options.get("response_hook"),
        logger_provider=options.get("logger_provider"),
    )


def _warn_unknown(options: Any, known: frozenset[str]) -> None:
    """Name a keyword argument nothing reads: a misspelt option must not pass in silence."""
    unknown = sorted(set(options) - known)
    if unknown:
        _logger.warning(
            "InternalHTTPInstrumentor ignores unknown keyword argument(s) %s; known: %s",
            ", ".join(unknown),
            ", ".join(sorted(_OPTIONS)),
        )


def _telemetry_of(server: Any) -> Optional[_RequestTelemetry]:
    """What ``server`` records with now, or None when it is not instrumented.

    The one reader of the state: a server's own setting (instrument_app,
    uninstrument_app) wins; otherwise a server of the replacement class
    follows the class, switched by instrument() and uninstrument().
    """
    own = server.__dict__
    if _INSTANCE_TELEMETRY in own:
        return own[_INSTANCE_TELEMETRY]  # type: ignore[no-any-return]
    if isinstance(server, _InstrumentedInternalHTTPServer):
        return _InstrumentedInternalHTTPServer._class_telemetry
    return None


class _InstrumentedInternalHTTPServer(_OriginalInternalHTTPServer):
    """The class ``instrument()`` puts in place of ``InternalHTTPServer``."""

    # Shared by every instance: set by instrument(), None after uninstrument(),
    # so instances made while instrumented go quiet without being tracked.
    _class_telemetry: ClassVar[Optional[_RequestTelemetry]] = None

    @property
    def _is_instrumented_by_opentelemetry(self) -> bool:
        return _telemetry_of(self) is not None

    def handle_request(
        self,
        method: Any,
        path: Any,
        headers: Any = None,
        body: Any = b"",
        *,
        connection: Any = None,
    ) -> Any:
        prepared = self.prepared_request(method, path, headers)
        if prepared is not None:
            # The call respond() made, which records the request (if anything does).
            return self.dispatch(prepared, body)
        telemetry = _telemetry_of(self)
        if telemetry is None:
            # The framework's own method, not super(): this runs on every request.
            return _original_handle_request(self, method, path, headers, body, connection=connection)
        return telemetry.handle_request(self, method, path, headers, body, connection, self.dispatch)

    def respond(self, request: Request, body: Any = b"", *, raise_exceptions: bool = False) -> Outcome:
        telemetry = _telemetry_of(self)
        if telemetry is None:
            return _original_respond(self, request, body, raise_exceptions=raise_exceptions)
        return telemetry.respond(self, request, body, raise_exceptions, super().respond)

    def refused(self, refusal: Refusal) -> None:
        telemetry = _telemetry_of(self)
        if telemetry is not None:
            telemetry.record_refusal(self, refusal)

    def log_failure(self, request: Request, error: BaseException) -> None:
        telemetry = _telemetry_of(self)
        if telemetry is None or not telemetry.exceptions_as_logs:
            super().log_failure(request, error)

    @property
    def sensitive_query_parameters(self) -> tuple[str, ...]:  # type: ignore[override]  # read-only here
        """The telemetry's list while instrumented, so log lines and spans redact alike."""
        telemetry = _telemetry_of(self)
        if telemetry is None:
            return _OriginalInternalHTTPServer.sensitive_query_parameters
        return telemetry.sensitive_query_parameters


def _answer_of(server: Any) -> Callable[[Request, Any], Any]:
    """How to answer a prepared request the way ``server``'s own class would.

    The framework's ``dispatch`` when the class keeps the framework's
    ``handle_request``; the class's override otherwise, so that it still runs.
    """
    own_handle_request = type(server).handle_request
    if own_handle_request is _OriginalInternalHTTPServer.handle_request:
        return server.dispatch  # type: ignore[no-any-return]

    def answer(request: Request, body: Any) -> Any:
        return own_handle_request(
            server, request.method, request.target, request.headers, body, connection=request.connection
        )

    return answer


def _instance_handle_request(
    server: Any, method: Any, path: Any, headers: Any = None, body: Any = b"", *, connection: Any = None
) -> Any:
    """``handle_request`` of a server of the original class, after ``instrument_app``.

    It is bound to the server and stored on it, a reference cycle that the
    garbage collector frees. A weak reference would break the cycle but
    also the server: code that keeps only ``server.handle_request`` (as a
    serving layer may) must keep the server alive, as the plain method does.
    """
    telemetry = _telemetry_of(server)
    answer = _answer_of(server)
    if telemetry is None:
        return answer(server.prepare(method, path, headers, connection), body)
    return telemetry.handle_request(server, method, path, headers, body, connection, answer)


def _instance_respond(
    server: Any, request: Request, body: Any = b"", *, raise_exceptions: bool = False
) -> Outcome:
    """``respond`` of a server of the original class, after ``instrument_app``."""
    respond = type(server).respond.__get__(server)
    telemetry = _telemetry_of(server)
    if telemetry is None:
        return respond(request, body, raise_exceptions=raise_exceptions)  # type: ignore[no-any-return]
    return telemetry.respond(server, request, body, raise_exceptions, respond)


def _instance_log_failure(server: Any, request: Request, error: BaseException) -> None:
    """``log_failure`` of a server of the original class, after ``instrument_app``."""
    telemetry = _telemetry_of(server)
    if telemetry is None or not telemetry.exceptions_as_logs:
        type(server).log_failure(server, request, error)


def _instance_refused(server: Any, refusal: Refusal) -> None:
    """``refused`` of a server of the original class, after ``instrument_app``."""
    telemetry = _telemetry_of(server)
    if telemetry is not None:
        telemetry.record_refusal(server, refusal)
    type(server).refused(server, refusal)


# The instance attributes instrument_app sets on a server of another class.
_INSTANCE_METHODS = {
    "handle_request": _instance_handle_request,
    "respond": _instance_respond,
    "log_failure": _instance_log_failure,
    "refused": _instance_refused,
}


class InternalHTTPInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """An instrumentor for ``internalhttp``.

    See the module documentation for usage and configuration.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        _warn_unknown(kwargs, _OPTIONS | _BASE_INSTRUMENTOR_OPTIONS)
        _InstrumentedInternalHTTPServer._class_telemetry = _build_telemetry(cast(InstrumentOptions, kwargs))
        for module_name, attribute in _CLASS_BINDINGS:
            module = importlib.import_module(module_name)
            if getattr(module, attribute, None) is _OriginalInternalHTTPServer:
                setattr(module, attribute, _InstrumentedInternalHTTPServer)

    def _uninstrument(self, **kwargs: Any) -> None:
        for module_name, attribute in _CLASS_BINDINGS:
            module = importlib.import_module(module_name)
            if getattr(module, attribute, None) is _InstrumentedInternalHTTPServer:
                setattr(module, attribute, _OriginalInternalHTTPServer)
        _InstrumentedInternalHTTPServer._class_telemetry = None

    @staticmethod
    def instrument_app(server: InternalHTTPServer, **options: Unpack[InstrumentOptions]) -> None:
        """Instrument one existing server, whatever class it was made from.

        Takes the same keyword arguments as ``instrument()`` (``InstrumentOptions``).
        """
        _warn_unknown(options, _OPTIONS)
        if _telemetry_of(server) is not None:
            _logger.warning("Attempting to instrument %r while already instrumented", server)
            return
        telemetry = _build_telemetry(options)
        setattr(server, _INSTANCE_TELEMETRY, telemetry)
        if not isinstance(server, _InstrumentedInternalHTTPServer):
            # Instance attributes shadow the class's, so this reaches every
            # caller of the two seams and leaves the class untouched.
            for name, function in _INSTANCE_METHODS.items():
                setattr(server, name, function.__get__(server))
            server.sensitive_query_parameters = telemetry.sensitive_query_parameters
            setattr(server, "_is_instrumented_by_opentelemetry", True)  # noqa: B010  # not a declared attribute

    @staticmethod
    def uninstrument_app(server: InternalHTTPServer) -> None:
        """Stop one server's telemetry, whether instrument_app or instrument() started it."""
        if _telemetry_of(server) is None:
            _logger.warning("Attempting to uninstrument %r while already uninstrumented", server)
            return
        if isinstance(server, _InstrumentedInternalHTTPServer):
            # An explicit "off" for this instance, which wins over the class.
            setattr(server, _INSTANCE_TELEMETRY, None)
        else:
            own = vars(server)
            for name in (*_INSTANCE_METHODS, _INSTANCE_TELEMETRY, "sensitive_query_parameters"):
                own.pop(name, None)
            setattr(server, "_is_instrumented_by_opentelemetry", False)  # noqa: B010  # not a declared attribute
