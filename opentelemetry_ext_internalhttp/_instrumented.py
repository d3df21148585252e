"""Where telemetry meets a server: the instrumented class and per-server instrumentation.

``instrument()`` swaps ``InternalHTTPServer`` for
``_InstrumentedInternalHTTPServer``, a subclass that overrides
``handle_request`` with span and metric logic; ``instrument_app`` puts the
same interceptions on one server as instance attributes. Each interception
is written once, below, and used both ways:

* ``handle_request``: the one entry of a request that reaches the
  application; its span starts and ends there, the framework's prepare,
  dispatch and conclude in between;
* ``refused``: a request a serving layer answered itself;
* ``log_failure``: the framework's error line, not written when the
  exception is emitted as a log event instead.

Each reads the server's telemetry through :func:`telemetry_of` and, with
none, does what the class below it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Optional

import internalhttp.server
from internalhttp.server import ConnectionInfo, Refusal, Request

from opentelemetry_ext_internalhttp._request_state import Answer, _answer_and_conclude
from opentelemetry_ext_internalhttp._telemetry import _RequestTelemetry

_OriginalInternalHTTPServer = internalhttp.server.InternalHTTPServer

# Where a server's telemetry is read: an attribute of the replacement class
# (set by instrument(), None after uninstrument()), shadowed by the same
# name on a server that has its own (instrument_app: a _RequestTelemetry;
# uninstrument_app: None). So one attribute read finds the one that counts.
_TELEMETRY = "_opentelemetry_telemetry"


def telemetry_of(server: _OriginalInternalHTTPServer) -> Optional[_RequestTelemetry]:
    """What ``server`` records with now, or None when it is not instrumented.

    The one reader of the state: a server's own setting (instrument_app,
    uninstrument_app) wins; otherwise a server of the replacement class
    follows the class, switched by instrument() and uninstrument().
    """
    telemetry: Optional[_RequestTelemetry] = getattr(server, _TELEMETRY, None)
    return telemetry


def _below(server: _OriginalInternalHTTPServer) -> type[_OriginalInternalHTTPServer]:
    """The class whose methods an interception stands in front of.

    For the replacement class, the framework's own; for a server
    instrumented by instrument_app, its own class (perhaps the
    application's subclass, whose overrides then still run).
    """
    if isinstance(server, _InstrumentedInternalHTTPServer):
        return _OriginalInternalHTTPServer
    return type(server)


def _answer_of(server: _OriginalInternalHTTPServer) -> Optional[Answer]:
    """How to answer a prepared request the way the class below would.

    None, the framework's ``dispatch``, when that class keeps the
    framework's ``handle_request``; the class's override otherwise, so that
    it still runs.
    """
    own_handle_request = _below(server).handle_request
    if own_handle_request is _OriginalInternalHTTPServer.handle_request:
        return None

    def answer(request: Request, body: bytes) -> Any:
        return own_handle_request(
            server, request.method, request.target, request.headers, body, connection=request.connection
        )

    return answer


def handle_request(
    server: _OriginalInternalHTTPServer,
    method: str,
    path: str,
    headers: Optional[Mapping[str, str]] = None,
    body: bytes = b"",
    *,
    connection: Optional[ConnectionInfo] = None,
) -> Any:
    """``handle_request``, instrumented: the request inside its span, the handler's value unchanged.

    The framework prepares the request, the span starts, the framework
    dispatches it, the response hook runs, the framework concludes it (the
    response as sent, the log lines) and the span ends with what was sent.
    The hook runs before the framework concludes, so what it changes in the
    handler's value is what the client gets. The handler's exception is
    re-raised unchanged.
    """
    # telemetry_of, written out: this runs on every request.
    telemetry: Optional[_RequestTelemetry] = getattr(server, _TELEMETRY, None)
    if telemetry is None:
        return _below(server).handle_request(server, method, path, headers, body, connection=connection)
    # A server of the replacement class answers with the framework's dispatch (None).
    answer = None if isinstance(server, _InstrumentedInternalHTTPServer) else _answer_of(server)
    try:
        request = server.prepare(method, path, headers, connection)
    except Exception as error:
        # The framework cannot read this request (not a str target, not
        # headers at all): it raises, as it would uninstrumented, and the
        # request is still recorded with what can be read of it.
        telemetry.record_unreadable(server, method, path, connection, error)
        raise
    state = telemetry.start(server, request, body)
    if state is None:
        return _answer_and_conclude(server, request, body, answer)
    try:
        value = server.dispatch(request, body) if answer is None else answer(request, body)
    except Exception as error:
        telemetry.conclude(state, server, request, None, error)
        raise
    except BaseException as interrupt:  # KeyboardInterrupt, SystemExit: nothing was sent
        telemetry.finish(state, None, interrupt)
        raise
    if telemetry.response_hook is not None:
        telemetry.run_response_hook(state, value)
    telemetry.conclude(state, server, request, value, None)
    return value


def refused(server: _OriginalInternalHTTPServer, refusal: Refusal) -> None:
    """``refused``, instrumented: a span and metric points for a request the serving layer answered."""
    telemetry = telemetry_of(server)
    if telemetry is not None:
        telemetry.record_refusal(server, refusal)
    _below(server).refused(server, refusal)


def log_failure(server: _OriginalInternalHTTPServer, request: Request, error: BaseException) -> None:
    """``log_failure``, instrumented: not written when the exception is emitted as a log event."""
    telemetry = telemetry_of(server)
    if telemetry is None or not telemetry.exceptions_as_logs:
        _below(server).log_failure(server, request, error)


class _InstrumentedInternalHTTPServer(_OriginalInternalHTTPServer):
    """The class ``instrument()`` puts in place of ``InternalHTTPServer``.

    A subclass that overrides ``handle_request`` with span and metric logic
    (and ``refused`` and ``log_failure``; see the module documentation).
    """

    # Shared by every instance (see _TELEMETRY): set by instrument(), None
    # after uninstrument(), so instances made while instrumented go quiet
    # without being tracked.
    _opentelemetry_telemetry: ClassVar[Optional[_RequestTelemetry]] = None

    handle_request = handle_request
    refused = refused
    log_failure = log_failure

    @property
    def _is_instrumented_by_opentelemetry(self) -> bool:
        return telemetry_of(self) is not None


# The interceptions instrument_app sets on a server of another class.
_INTERCEPTIONS = {"handle_request": handle_request, "refused": refused, "log_failure": log_failure}
# What the telemetry puts in place of the framework's while it records: the
# redaction lists, so that log lines and spans redact alike, and the serving
# observer that turns what the socket server tells into metrics.
_REDACTION = ("sensitive_query_parameters", "sensitive_path_parameters", "serving_observer")


def set_class_telemetry(telemetry: Optional[_RequestTelemetry]) -> None:
    """What every server of the replacement class records with (instrument(); None: uninstrument())."""
    cls = _InstrumentedInternalHTTPServer
    cls._opentelemetry_telemetry = telemetry
    for name in _REDACTION:
        if telemetry is not None:
            setattr(cls, name, getattr(telemetry, name))
        elif name in vars(cls):
            delattr(cls, name)  # the framework's list again


def instrument_server(server: _OriginalInternalHTTPServer, telemetry: _RequestTelemetry) -> None:
    """Give one server its own telemetry (instrument_app)."""
    setattr(server, _TELEMETRY, telemetry)
    for name in _REDACTION:
        setattr(server, name, getattr(telemetry, name))
    if not isinstance(server, _InstrumentedInternalHTTPServer):
        # Instance attributes shadow the class's, so this reaches every
        # caller of the seams and leaves the class untouched.
        for name, function in _INTERCEPTIONS.items():
            setattr(server, name, function.__get__(server))
        setattr(server, "_is_instrumented_by_opentelemetry", True)  # noqa: B010  # not a declared attribute


def uninstrument_server(server: _OriginalInternalHTTPServer) -> None:
    """Stop one server's telemetry, whichever way it was started (uninstrument_app)."""
    if isinstance(server, _InstrumentedInternalHTTPServer):
        # An explicit "off" for this instance, which wins over the class.
        setattr(server, _TELEMETRY, None)
        for name in _REDACTION:
            setattr(server, name, getattr(_OriginalInternalHTTPServer, name))
        return
    own = vars(server)
    for name in (*_INTERCEPTIONS, *_REDACTION, _TELEMETRY):
        own.pop(name, None)
    setattr(server, "_is_instrumented_by_opentelemetry", False)  # noqa: B010  # not a declared attribute
