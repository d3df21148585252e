"""Issue #3, lifecycle: with only the OpenTelemetry API (no-op tracer and
meter providers, passed explicitly) the instrumentation stays out of the way:
requests are answered as before, exceptions propagate, nothing is logged as
an error.

Every test runs once with a server traced through ``instrument()`` and once
with one traced through ``instrument_app()``.
"""

from __future__ import annotations

import logging
from typing import Any

import internalhttp.server
import pytest
from lifecycle_testing import USER_RESPONSE, get_user, users_server
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.trace import NoOpTracerProvider
from otel_testing import PARENT_ID, TRACE_ID, TRACEPARENT

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

NO_OP_PROVIDERS = {"tracer_provider": NoOpTracerProvider(), "meter_provider": NoOpMeterProvider()}


class HandlerFailure(Exception):
    pass


@pytest.fixture
def hook_calls() -> list[str]:
    return []


@pytest.fixture
def plain_server() -> Any:
    """An uninstrumented server with the same route, made before anything is instrumented."""
    return users_server(internalhttp.server.InternalHTTPServer)


@pytest.fixture(params=["instrument", "instrument_app"])
def server(
    request: pytest.FixtureRequest,
    instrumentor: InternalHTTPInstrumentor,
    hook_calls: list[str],
    plain_server: Any,
) -> Any:
    """A server with the users route, instrumented with no-op providers and probe hooks."""
    config: dict[str, Any] = {
        **NO_OP_PROVIDERS,
        "request_hook": lambda span, view: hook_calls.append("request_hook"),
        "response_hook": lambda span, view, response: hook_calls.append("response_hook"),
    }
    if request.param == "instrument":
        instrumentor.instrument(**config)
        server = users_server(internalhttp.server.InternalHTTPServer)
    else:
        server = users_server(internalhttp.server.InternalHTTPServer)
        InternalHTTPInstrumentor.instrument_app(server, **config)
    return server


def test_the_instrumentation_runs_with_no_op_providers(server: Any, hook_calls: list[str]) -> None:
    # The probe that keeps the other tests honest: telemetry code is on the
    # request path even though nothing is recorded.
    get_user(server)

    assert hook_calls == ["request_hook", "response_hook"]


def test_a_request_is_answered_with_no_op_providers(server: Any) -> None:
    assert get_user(server) == USER_RESPONSE


def test_the_handler_response_object_is_returned_unchanged(server: Any) -> None:
    sent = {"status": 201, "body": b"created", "headers": {"X-Id": "7"}}
    server.add_route("/things", lambda headers, body: sent, method="POST")

    assert server.handle_request("POST", "/things", {}, b"") is sent
    assert sent == {"status": 201, "body": b"created", "headers": {"X-Id": "7"}}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/nowhere", 404), ("DELETE", "/users/42", 405)],
)
def test_framework_error_responses_are_unchanged(
    server: Any, plain_server: Any, method: str, path: str, status: int
) -> None:
    expected = plain_server.handle_request(method, path, {}, b"")
    assert expected["status"] == status

    assert server.handle_request(method, path, {}, b"") == expected


def test_a_handler_exception_propagates_unchanged(server: Any) -> None:
    raised = HandlerFailure("boom")

    def fail(headers: Any, body: Any) -> Any:
        raise raised

    server.add_route("/fail", fail)

    with pytest.raises(HandlerFailure) as caught:
        server.handle_request("GET", "/fail", {}, b"")
    assert caught.value is raised


def test_nothing_is_logged_as_an_error_with_no_op_providers(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server.add_route("/fail", lambda headers, body: 1 / 0)
    server.add_route("/odd", lambda headers, body: {"status": "teapot"})

    with caplog.at_level(logging.DEBUG):
        get_user(server)
        server.handle_request("GET", "/nowhere", {"traceparent": TRACEPARENT}, b"")
        server.handle_request("GET", "/odd", {}, b"")
        with pytest.raises(ZeroDivisionError):
            server.handle_request("GET", "/fail", {}, b"")

    errors = [
        f"{record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.ERROR
    ]
    assert errors == []


def _trace_context_seen_by_handler(server_factory: Any) -> tuple[Any, Any]:
    """Dispatch one request carrying TRACEPARENT; return the span context inside the handler and after."""
    from opentelemetry import trace

    seen: dict[str, Any] = {}

    def handler(headers: Any, body: Any) -> Any:
        seen["inside"] = trace.get_current_span().get_span_context()
        return {"status": 200}

    server = server_factory()
    server.add_route("/traced", handler)
    server.handle_request("GET", "/traced", {"TraceParent": TRACEPARENT}, b"")
    return seen["inside"], trace.get_current_span().get_span_context()


@pytest.mark.parametrize(
    "providers",
    [
        NO_OP_PROVIDERS,
        {},  # the global providers, with no SDK ever installed behind them
    ],
    ids=["no-op providers", "unset global providers"],
)
def test_with_no_sdk_the_handler_still_runs_in_the_callers_trace_context(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any]
) -> None:
    from opentelemetry import trace

    instrumentor.instrument(**providers)

    inside, after = _trace_context_seen_by_handler(lambda: internalhttp.server.InternalHTTPServer("shop"))

    assert inside.trace_id == TRACE_ID
    assert inside.span_id == PARENT_ID
    assert after == trace.INVALID_SPAN.get_span_context()


@pytest.mark.parametrize(
    "exclusion",
    [{"excluded_urls": "traced"}, {"excluded_methods": "GET"}],
    ids=["excluded URL", "excluded method"],
)
def test_with_no_sdk_an_excluded_request_does_not_carry_the_callers_trace_context(
    instrumentor: InternalHTTPInstrumentor, exclusion: dict[str, Any]
) -> None:
    from opentelemetry import trace

    instrumentor.instrument(**NO_OP_PROVIDERS, **exclusion)

    inside, _ = _trace_context_seen_by_handler(lambda: internalhttp.server.InternalHTTPServer("shop"))

    assert inside == trace.INVALID_SPAN.get_span_context()


def test_with_no_sdk_a_request_inside_a_current_span_keeps_that_span_current(
    instrumentor: InternalHTTPInstrumentor,
) -> None:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    instrumentor.instrument(**NO_OP_PROVIDERS)
    outer = SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(1))

    with trace.use_span(NonRecordingSpan(outer)):
        inside, after = _trace_context_seen_by_handler(lambda: internalhttp.server.InternalHTTPServer("shop"))

    assert inside == outer
    assert after == outer
