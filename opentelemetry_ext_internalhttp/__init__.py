"""OpenTelemetry instrumentation for the ``internalhttp`` framework.

Every request an ``internalhttp`` server dispatches becomes one SERVER span,
named after its route template (``GET /users/<user_id>``), with the HTTP
semantic-convention attributes, W3C trace context taken from the request
headers, and the HTTP server metrics ``http.server.request.duration`` (or the
older ``http.server.duration``) and ``http.server.active_requests``.

Usage
-----
Instrument every server created from now on. Call it before the application
imports ``InternalHTTPServer`` (see Limitations):

.. code-block:: python

    from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

    InternalHTTPInstrumentor().instrument()

    from internalhttp.server import InternalHTTPServer

    server = InternalHTTPServer("shop")

    @server.route("/users/<user_id>")
    def get_user(headers, body, user_id):
        return {"status": 200, "body": {"id": user_id}}

Or with no code change at all, through the ``opentelemetry_instrumentor``
entry point::

    opentelemetry-instrument --traces_exporter console python app.py

Instrument one server that already exists (created before ``instrument()``,
from a class reference taken before it, or of your own subclass):

.. code-block:: python

    InternalHTTPInstrumentor.instrument_app(server)
    ...
    InternalHTTPInstrumentor.uninstrument_app(server)

``InternalHTTPInstrumentor().uninstrument()`` restores the original class;
servers created while instrumented stop recording too, and record again,
with the new configuration, after the next ``instrument()``. Servers
instrumented with ``instrument_app`` keep their own configuration until
``uninstrument_app``; a server switched off with ``uninstrument_app`` stays
off through later ``instrument()`` calls until ``instrument_app`` is called
on it again. Instrumenting what is already instrumented, or the reverse,
logs a warning and changes nothing.

Configuration
-------------
``instrument()`` and ``instrument_app()`` take the same keyword arguments:

=====================  ==========================================  ========================
Argument               Meaning                                     Default
=====================  ==========================================  ========================
``tracer_provider``    where spans go                              the global provider
``meter_provider``     where metrics go                            the global provider
``excluded_urls``      comma-separated regexes searched in the     the environment (below)
                       request *path* (never the query)
``request_hook``       ``hook(span, request)`` after the span      none
                       starts
``response_hook``      ``hook(span, request, response)`` before    none
                       the span ends, when the handler returned
=====================  ==========================================  ========================

``request`` is a read-only ``RequestView`` with ``method``, ``path`` (the
request target), ``headers`` (lower-case names), ``body`` and ``server``. A hook
that raises is logged and ignored.

Environment variables, read when ``instrument()`` / ``instrument_app()`` runs:

============================================================  ==========================
Variable                                                      Effect
============================================================  ==========================
``OTEL_PYTHON_INTERNALHTTP_EXCLUDED_URLS``                    excluded paths (falls back
                                                              to ``OTEL_PYTHON_EXCLUDED_URLS``)
``OTEL_SEMCONV_STABILITY_OPT_IN``                             unset: old conventions;
                                                              ``http``: stable; ``http/dup``: both
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST``  request headers to record
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE`` response headers to record
``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS`` headers recorded as
                                                              ``[REDACTED]``
``OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS``      keep non-standard methods
                                                              instead of ``_OTHER``
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=internalhttp``        ``opentelemetry-instrument``
                                                              skips this package
============================================================  ==========================

Captured headers are comma-separated, case-insensitive regexes matched
against the whole header name. Values are recorded as lists of strings, with
the attribute name ``http.request.header.<name>`` in lower case: the stable
conventions keep dashes (``http.request.header.x-request-id``), the old ones
turn them into underscores (``http.request.header.x_request_id``).

What is recorded
----------------
- Span name ``{method} {route}``; ``{method}`` when no route matched (404);
  ``HTTP {route}`` / ``HTTP`` for a method outside the standard set, which is
  recorded as ``_OTHER`` with the method as sent in
  ``http.request.method_original``.
- Kind SERVER, its parent taken from the request headers by the global
  propagator. When a span is already current (the server runs inside another
  instrumented layer) the span is INTERNAL and a child of that one.
- Status ERROR for 5xx responses and for exceptions (recorded as an
  exception event, ``error.type`` the exception's class name; the exception
  propagates unchanged); 4xx leaves it UNSET. The status code comes from the
  response dict's ``status`` (200 when absent). A non-dict response records
  no status code and leaves the span status UNSET; a ``status`` that is not
  an integer records ``error.type`` with that value and status ERROR.
- The values of ``AWSAccessKeyId``, ``Signature``, ``sig`` and
  ``X-Goog-Signature`` in the query become ``REDACTED``.
- Metrics carry only bounded attributes: method, scheme, route, status code,
  ``error.type``, protocol version (and, in the old conventions, the host as
  their schema 1.11.0 lists it: ``http.host``, ``net.host.name``,
  ``net.host.port``), never the path or the query. ``url.scheme`` believes a
  proxy's ``X-Forwarded-Proto`` / ``Forwarded: proto=`` only for ``http`` and
  ``https``. The duration is recorded inside the span's context, so its
  exemplars link to the trace. An excluded or suppressed request
  (``suppress_instrumentation()``, ``suppress_http_instrumentation()``)
  records nothing at all.
- A handler that raises gets no status code: the 500 is the serving layer's
  answer, sent after ``handle_request`` has raised. ``error.type`` (stable
  conventions) and the span's ERROR status mark it instead.
- With no SDK behind the API (no provider passed and none installed, or
  no-op providers) and no hooks, only the trace context is carried: the
  handler still runs in the caller's trace, and no attribute is computed.
- An invalid regular expression in ``excluded_urls`` or in one of the
  environment variables above makes ``instrument()`` / ``instrument_app()``
  raise ``ValueError`` naming the setting.

Limitations
-----------
``instrument()`` replaces the class *binding*
``internalhttp.server.InternalHTTPServer`` (and ``internalhttp.InternalHTTPServer``).
A name imported before it still refers to the original class, so servers
made from it are not traced:

.. code-block:: python

    from internalhttp.server import InternalHTTPServer   # taken too early
    InternalHTTPInstrumentor().instrument()
    server = InternalHTTPServer("shop")                    # not traced

Either call ``instrument()`` (or run under ``opentelemetry-instrument``)
before the framework is imported, or instrument such servers with
``InternalHTTPInstrumentor.instrument_app(server)``. The same holds for your
own subclasses: one defined before ``instrument()`` derives from the original
class. While instrumented, ``isinstance(old_server,
internalhttp.server.InternalHTTPServer)`` is false for servers made from the
original class, since the name now refers to the subclass; compare with a
class reference taken at import time if that matters.

``instrument_app`` on a server of the original class sets that server's own
``handle_request`` attribute (the class is left alone); a copy of such a
server shares it, so instrument copies separately.

API
---
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, TypedDict, Union, cast

import internalhttp
import internalhttp.server
from internalhttp.response import Outcome
from internalhttp.server import Request
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
        telemetry = _telemetry_of(self)
        if telemetry is None:
            return super().handle_request(method, path, headers, body, connection=connection)
        return telemetry.handle_request(self, method, path, headers, body, connection, self.dispatch)

    def respond(self, request: Request, body: Any = b"", *, raise_exceptions: bool = False) -> Outcome:
        telemetry = _telemetry_of(self)
        if telemetry is None:
            return super().respond(request, body, raise_exceptions=raise_exceptions)
        return telemetry.respond(self, request, body, raise_exceptions, super().respond)

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


# The instance attributes instrument_app sets on a server of another class.
_INSTANCE_METHODS = {
    "handle_request": _instance_handle_request,
    "respond": _instance_respond,
    "log_failure": _instance_log_failure,
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
