"""``Server-Timing: traceparent`` on every response sent, for real-user monitoring in browsers.

With ``server_timing=True`` (or ``OTEL_PYTHON_INTERNALHTTP_SERVER_TIMING=true``)
each response a serving layer sends carries
``Server-Timing: traceparent;desc="00-<trace-id>-<span-id>-<flags>"`` naming
the SERVER span, and ``Access-Control-Expose-Headers: Server-Timing``.
``Timing-Allow-Origin`` is the application's to set. Off by default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from internalhttp.server import InternalHTTPServer
from layer_testing import SERVING_LAYERS, Received, call_directly, call_socket
from opentelemetry.instrumentation.propagators import (
    TraceResponsePropagator,
    get_global_response_propagator,
    set_global_response_propagator,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_testing import ALL_MODES, STABLE, TRACE_ID, TRACEPARENT, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

VARIABLE = "OTEL_PYTHON_INTERNALHTTP_SERVER_TIMING"


@pytest.fixture
def make_app(providers: dict[str, Any]) -> Callable[..., InternalHTTPServer]:
    def make(
        handler: Callable[..., Any] = lambda headers, body: {"body": "ok"}, **options: Any
    ) -> InternalHTTPServer:
        server = InternalHTTPServer("shop")
        server.add_route("/page", handler)
        InternalHTTPInstrumentor.instrument_app(server, **providers, **options)
        return server

    return make


@pytest.fixture
def response_propagator() -> Iterator[None]:
    previous = get_global_response_propagator()
    set_global_response_propagator(TraceResponsePropagator())
    yield
    set_global_response_propagator(previous)


def get(send: Any, server: InternalHTTPServer, **headers: str) -> Received:
    return send(server, "GET", "/page", headers, b"")  # type: ignore[no-any-return]


def traceparent_of(span: Any) -> str:
    context = span.context
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def exposed(received: Received) -> list[str]:
    """Every header name the response exposes to scripts, however many header lines name them."""
    return [
        name.strip().lower()
        for line in received.values("Access-Control-Expose-Headers")
        for name in line.split(",")
        if name.strip()
    ]


@ALL_MODES
@pytest.mark.parametrize("layer", SERVING_LAYERS)
def test_the_response_names_the_server_span_in_server_timing(
    make_app: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    received = get(SERVING_LAYERS[layer], make_app(server_timing=True))

    span = one_server_span(span_exporter)
    assert received.values("Server-Timing") == [f'traceparent;desc="{traceparent_of(span)}"']


@pytest.mark.parametrize("layer", SERVING_LAYERS)
def test_server_timing_is_exposed_to_scripts_of_other_origins(make_app: Any, layer: str) -> None:
    received = get(SERVING_LAYERS[layer], make_app(server_timing=True))

    assert exposed(received) == ["server-timing"]


@pytest.mark.usefixtures("response_propagator")
@pytest.mark.parametrize("layer", SERVING_LAYERS)
def test_server_timing_is_sent_beside_traceresponse(
    make_app: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    received = get(SERVING_LAYERS[layer], make_app(server_timing=True))

    traceparent = traceparent_of(one_server_span(span_exporter))
    assert received.values("traceresponse") == [traceparent]
    assert received.values("Server-Timing") == [f'traceparent;desc="{traceparent}"']
    assert sorted(exposed(received)) == ["server-timing", "traceresponse"]


@pytest.mark.parametrize("layer", SERVING_LAYERS)
def test_no_server_timing_by_default(make_app: Any, span_exporter: InMemorySpanExporter, layer: str) -> None:
    received = get(SERVING_LAYERS[layer], make_app())

    assert received.values("Server-Timing") == []
    assert exposed(received) == []
    assert len(span_exporter.get_finished_spans()) == 1


@STABLE
def test_the_variable_turns_server_timing_on(
    make_app: Any, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, "TRUE")

    received = get(call_socket, make_app())

    assert received.values("Server-Timing") == [
        f'traceparent;desc="{traceparent_of(one_server_span(span_exporter))}"'
    ]


def test_the_keyword_wins_over_the_variable(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VARIABLE, "true")

    received = get(call_socket, make_app(server_timing=False))

    assert received.values("Server-Timing") == []


@pytest.mark.instrumentation_errors
def test_an_invalid_variable_is_logged_and_leaves_server_timing_off(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, instrumentation_errors: Any
) -> None:
    monkeypatch.setenv(VARIABLE, "yes")

    received = get(call_socket, make_app())

    assert received.values("Server-Timing") == []
    [record] = instrumentation_errors.records
    assert VARIABLE in record.getMessage() and "'yes'" in record.getMessage()


@pytest.mark.parametrize("layer", SERVING_LAYERS)
def test_a_server_timing_header_of_the_handler_is_kept(make_app: Any, layer: str) -> None:
    def handler(headers: Any, body: Any) -> Any:
        return {"body": "ok", "headers": {"Server-Timing": "db;dur=53"}}

    received = get(SERVING_LAYERS[layer], make_app(handler, server_timing=True))

    timings = [item.strip() for line in received.values("Server-Timing") for item in line.split(",")]
    assert "db;dur=53" in timings
    assert any(item.startswith('traceparent;desc="00-') for item in timings)


def test_the_trace_id_is_the_callers_when_the_request_continues_a_trace(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    received = get(call_socket, make_app(server_timing=True), traceparent=TRACEPARENT)

    [timing] = received.values("Server-Timing")
    # Sampled (01); SDK 1.42 also sets the W3C random flag (02) on the caller's trace.
    assert re.fullmatch(rf'traceparent;desc="00-{TRACE_ID:032x}-[0-9a-f]{{16}}-0[13]"', timing)
    assert timing == f'traceparent;desc="{traceparent_of(one_server_span(span_exporter))}"'


def test_timing_allow_origin_is_left_to_the_application(make_app: Any) -> None:
    received = get(call_socket, make_app(server_timing=True))

    assert received.values("Timing-Allow-Origin") == []


def test_a_direct_call_returns_the_handlers_value_unchanged(make_app: Any) -> None:
    made = {"body": "ok", "headers": {"X-A": "1"}}
    server = make_app(lambda headers, body: made, server_timing=True)

    value = server.handle_request("GET", "/page", {}, b"")

    assert value == {"body": "ok", "headers": {"X-A": "1"}}
    assert call_directly(server, "GET", "/page", {}, b"").values("Server-Timing") == []


def test_an_excluded_request_gets_no_server_timing(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    received = get(call_socket, make_app(server_timing=True, excluded_urls="/page"))

    assert received.values("Server-Timing") == []
    assert span_exporter.get_finished_spans() == ()


def _raise(headers: Any, body: Any) -> Any:
    raise RuntimeError("database is down")


@pytest.mark.parametrize("layer", SERVING_LAYERS)
@pytest.mark.parametrize(("handler", "target", "status"), [(_raise, "/page", 500), (None, "/missing", 404)])
def test_an_error_response_carries_server_timing_too(
    make_app: Any,
    span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    layer: str,
    handler: Any,
    target: str,
    status: int,
) -> None:
    caplog.set_level(100, logger="internalhttp")  # the framework's error line for the 500: expected
    server = make_app(handler, server_timing=True) if handler else make_app(server_timing=True)

    received = SERVING_LAYERS[layer](server, "GET", target, {}, b"")

    assert received.status == status
    assert received.values("Server-Timing") == [
        f'traceparent;desc="{traceparent_of(one_server_span(span_exporter))}"'
    ]
