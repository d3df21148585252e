"""Choosing what is recorded by more than the path: ``exclude=`` and ``excluded_methods=``.

``exclude`` is given the request's view (as the hooks are) and returns
whether to skip the request; ``excluded_methods`` (or
``OTEL_PYTHON_INTERNALHTTP_EXCLUDED_METHODS``) names methods never recorded,
such as CORS ``OPTIONS`` preflights and ``HEAD`` probes. A skipped request
has no span and no metric point, and is answered as it would be
uninstrumented. An ``exclude`` that raises is logged and the request is
recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from internalhttp.server import InternalHTTPServer
from layer_testing import LAYERS, call_directly, call_socket
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_testing import ALL_MODES, DUP_MODE, INSTRUMENTATION_LOGGER, metric_points, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

METHODS_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_EXCLUDED_METHODS"
DURATIONS = ("http.server.request.duration", "http.server.duration")


@pytest.fixture
def make_app(providers: dict[str, Any]) -> Callable[..., InternalHTTPServer]:
    """A server answering GET, POST, OPTIONS and HEAD on /orders, instrumented with ``options``."""

    def make(**options: Any) -> InternalHTTPServer:
        server = InternalHTTPServer("shop")
        for method in ("GET", "POST", "OPTIONS", "HEAD"):
            server.add_route(
                "/orders", lambda headers, body: {"status": 200, "body": "orders"}, method=method
            )
        InternalHTTPInstrumentor.instrument_app(server, **providers, **options)
        return server

    return make


def recorded_points(reader: InMemoryMetricReader) -> int:
    return sum(len(metric_points(reader, name)) for name in DURATIONS)


def points_for_one_request(semconv_mode: str) -> int:
    """The duration points one recorded request makes: one per convention reported."""
    return 2 if semconv_mode == DUP_MODE else 1


@ALL_MODES
@pytest.mark.parametrize("layer", LAYERS)
def test_a_request_exclude_returns_true_for_has_no_span_and_no_metric_point(
    make_app: Any,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    layer: str,
) -> None:
    server = make_app(exclude=lambda request: request.headers.get("user-agent") == "kube-probe/1.29")

    received = LAYERS[layer](server, "GET", "/orders", {"User-Agent": "kube-probe/1.29"}, b"")

    assert (received.status, received.body) == (200, b"orders")
    assert span_exporter.get_finished_spans() == ()
    assert recorded_points(metric_reader) == 0


@ALL_MODES
def test_a_request_exclude_returns_false_for_is_recorded(
    make_app: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader, semconv_mode: str
) -> None:
    server = make_app(exclude=lambda request: request.headers.get("user-agent") == "kube-probe/1.29")

    call_directly(server, "GET", "/orders", {"User-Agent": "curl/8.5"}, b"")

    assert one_server_span(span_exporter).name == "GET /orders"
    assert recorded_points(metric_reader) == points_for_one_request(semconv_mode)


def test_exclude_is_given_the_request_view(make_app: Any) -> None:
    seen: list[Any] = []

    def exclude(request: Any) -> bool:
        seen.append(request)
        return False

    server = make_app(exclude=exclude)

    call_socket(server, "POST", "/orders?page=2", {"X-Tenant": "acme"}, b"item=tea")

    [view] = seen
    assert (view.method, view.path, view.body) == ("POST", "/orders?page=2", b"item=tea")
    assert view.headers["x-tenant"] == "acme"
    assert view.server is server


@pytest.mark.instrumentation_errors
@pytest.mark.parametrize("layer", LAYERS)
def test_an_exclude_that_raises_is_logged_and_the_request_recorded(
    make_app: Any, span_exporter: InMemorySpanExporter, instrumentation_errors: Any, layer: str
) -> None:
    def exclude(request: Any) -> bool:
        raise KeyError("tenant")

    server = make_app(exclude=exclude)

    received = LAYERS[layer](server, "GET", "/orders", {}, b"")

    assert (received.status, received.body) == (200, b"orders")
    assert one_server_span(span_exporter).name == "GET /orders"
    [record] = instrumentation_errors.records
    assert record.name == INSTRUMENTATION_LOGGER
    assert "exclude" in record.getMessage()


@ALL_MODES
@pytest.mark.parametrize("method", ["OPTIONS", "HEAD"])
@pytest.mark.parametrize("layer", LAYERS)
def test_an_excluded_method_is_not_recorded(
    make_app: Any,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    method: str,
    layer: str,
) -> None:
    server = make_app(excluded_methods=["OPTIONS", "HEAD"])

    received = LAYERS[layer](server, method, "/orders", {}, b"")

    assert received.status == 200
    assert span_exporter.get_finished_spans() == ()
    assert recorded_points(metric_reader) == 0


@ALL_MODES
def test_other_methods_are_recorded_beside_excluded_ones(
    make_app: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader, semconv_mode: str
) -> None:
    server = make_app(excluded_methods="OPTIONS,HEAD")

    call_directly(server, "GET", "/orders", {}, b"")

    assert one_server_span(span_exporter).name == "GET /orders"
    assert recorded_points(metric_reader) == points_for_one_request(semconv_mode)


def test_excluded_methods_are_compared_case_sensitively(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    # RFC 9110: methods are case-sensitive; "options" is not OPTIONS.
    server = make_app(excluded_methods="options")

    call_directly(server, "OPTIONS", "/orders", {}, b"")

    assert one_server_span(span_exporter).name == "OPTIONS /orders"


def test_the_variable_names_the_excluded_methods(
    make_app: Any, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(METHODS_VARIABLE, "OPTIONS, HEAD")
    server = make_app()

    call_socket(server, "OPTIONS", "/orders", {}, b"")
    call_socket(server, "HEAD", "/orders", {}, b"")
    call_socket(server, "GET", "/orders", {}, b"")

    assert [span.name for span in span_exporter.get_finished_spans()] == ["GET /orders"]


@pytest.mark.instrumentation_errors
def test_an_invalid_method_in_the_variable_is_logged_and_the_others_kept(
    make_app: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv(METHODS_VARIABLE, "OPTIONS,NOT A METHOD")
    server = make_app()

    call_directly(server, "OPTIONS", "/orders", {}, b"")

    assert span_exporter.get_finished_spans() == ()
    [record] = instrumentation_errors.records
    assert METHODS_VARIABLE in record.getMessage() and "'NOT A METHOD'" in record.getMessage()


def test_the_keyword_wins_over_the_variable(
    make_app: Any, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(METHODS_VARIABLE, "OPTIONS")
    server = make_app(excluded_methods="HEAD")

    call_directly(server, "OPTIONS", "/orders", {}, b"")

    assert one_server_span(span_exporter).name == "OPTIONS /orders"


def test_nothing_is_excluded_by_method_by_default(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    server = make_app()

    call_directly(server, "OPTIONS", "/orders", {}, b"")
    call_directly(server, "HEAD", "/orders", {}, b"")

    assert [span.name for span in span_exporter.get_finished_spans()] == ["OPTIONS /orders", "HEAD /orders"]


def test_exclude_must_be_callable(make_app: Any) -> None:
    with pytest.raises(ValueError, match="exclude"):
        make_app(exclude="kube-probe")
