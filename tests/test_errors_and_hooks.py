"""Handler exceptions, request/response hooks, and telemetry that fails.

Whatever goes wrong on the telemetry side, the application sees exactly what
it would have seen without instrumentation: the handler's own response
object, or the handler's own exception.
"""

from __future__ import annotations

import logging
from typing import Any

import internalhttp.server
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import SpanProcessor, Tracer, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_STATUS_CODE
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE
from opentelemetry.trace import INVALID_SPAN, StatusCode
from otel_testing import OLD_MODES, STABLE, metric_points, one_server_span

RESPONSE = {"status": 201, "body": {"id": "42"}, "headers": {"X-Served-By": "shop-1"}}


class Inventory:
    class OutOfStock(Exception):
        """Its ``__qualname__`` is ``Inventory.OutOfStock``."""


@pytest.fixture
def raised() -> list[BaseException]:
    """The exceptions the handlers raised, to compare with what callers get."""
    return []


def build_shop(raised: list[BaseException]) -> Any:
    server = internalhttp.server.InternalHTTPServer("shop")

    def create_user(headers: Any, body: Any, user_id: str) -> Any:
        return RESPONSE

    def out_of_stock(headers: Any, body: Any) -> Any:
        error = Inventory.OutOfStock("sold out")
        raised.append(error)
        raise error

    def interrupted(headers: Any, body: Any) -> Any:
        raise KeyboardInterrupt

    server.add_route("/users/<user_id>", create_user, method="POST")
    server.add_route("/out-of-stock", out_of_stock)
    server.add_route("/interrupted", interrupted)
    return server


@pytest.fixture
def shop(instrumentor: Any, providers: dict[str, Any], semconv_mode: str, raised: list[BaseException]) -> Any:
    instrumentor.instrument(**providers)
    return build_shop(raised)


def post_user(server: Any) -> Any:
    return server.handle_request(
        "POST", "/users/42?notify=1", {"Content-Type": "application/json", "X-Request-Id": "r-1"}, b'{"a": 1}'
    )


# -- handler exceptions --------------------------------------------------------


def test_a_handler_exception_reaches_the_caller_as_the_same_object_with_its_traceback(
    shop: Any, raised: list[BaseException]
) -> None:
    with pytest.raises(Inventory.OutOfStock) as caught:
        shop.handle_request("GET", "/out-of-stock", {}, b"")

    assert caught.value is raised[0]
    assert "out_of_stock" in [entry.name for entry in caught.traceback]


def test_a_handler_exception_sets_status_error_described_by_its_message_alone(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(Inventory.OutOfStock):
        shop.handle_request("GET", "/out-of-stock", {}, b"")

    status = one_server_span(span_exporter).status
    assert status.status_code is StatusCode.ERROR
    # The type is in error.type and the exception event; not repeated here.
    assert status.description == "sold out"


def test_a_handler_exception_is_recorded_as_exactly_one_exception_event(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(Inventory.OutOfStock):
        shop.handle_request("GET", "/out-of-stock", {}, b"")

    events = one_server_span(span_exporter).events
    assert [event.name for event in events] == ["exception"]
    assert events[0].attributes[EXCEPTION_MESSAGE] == "sold out"
    assert "out_of_stock" in events[0].attributes[EXCEPTION_STACKTRACE]


@STABLE
def test_a_handler_exception_records_error_type_as_the_exception_events_fully_qualified_type(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(Inventory.OutOfStock):
        shop.handle_request("GET", "/out-of-stock", {}, b"")

    span = one_server_span(span_exporter)
    assert span.attributes[ERROR_TYPE] == f"{Inventory.__module__}.Inventory.OutOfStock"
    assert span.attributes[ERROR_TYPE] == span.events[0].attributes[EXCEPTION_TYPE]


@pytest.mark.parametrize("semconv_mode", ["", "http", "http/dup"], indirect=True)
def test_a_handler_exception_records_the_500_every_serving_layer_answers_it_with(
    shop: Any, span_exporter: InMemorySpanExporter, semconv_mode: str
) -> None:
    with pytest.raises(Inventory.OutOfStock):
        shop.handle_request("GET", "/out-of-stock", {}, b"")

    attributes = one_server_span(span_exporter).attributes
    keys = {"": [HTTP_STATUS_CODE], "http": [HTTP_RESPONSE_STATUS_CODE]}.get(
        semconv_mode, [HTTP_STATUS_CODE, HTTP_RESPONSE_STATUS_CODE]
    )
    assert [attributes[key] for key in keys] == [500] * len(keys)


def test_a_keyboard_interrupt_in_the_handler_still_ends_the_span_and_detaches_its_context(
    shop: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    with pytest.raises(KeyboardInterrupt):
        shop.handle_request("GET", "/interrupted", {}, b"")

    assert one_server_span(span_exporter).status.status_code is StatusCode.ERROR
    assert trace.get_current_span() is INVALID_SPAN
    assert [point.value for point in metric_points(metric_reader, "http.server.active_requests")] == [0]


# -- hooks ---------------------------------------------------------------------


def test_the_request_hook_gets_the_server_span_and_a_read_only_view_of_the_request(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    raised: list[BaseException],
) -> None:
    calls: list[tuple[Any, Any]] = []

    def request_hook(span: Any, request: Any) -> None:
        calls.append((span, request))
        span.set_attribute("app.request_id", request.headers["x-request-id"])

    instrumentor.instrument(request_hook=request_hook, **providers)
    server = build_shop(raised)

    post_user(server)

    ((span, request),) = calls
    exported = one_server_span(span_exporter)
    assert span.get_span_context() == exported.context
    assert exported.attributes["app.request_id"] == "r-1"
    assert (request.method, request.path, request.body, request.server) == (
        "POST",
        "/users/42?notify=1",
        b'{"a": 1}',
        server,
    )
    assert dict(request.headers) == {"content-type": "application/json", "x-request-id": "r-1"}
    with pytest.raises(TypeError):
        request.headers["x-request-id"] = "forged"  # type: ignore[index]
    with pytest.raises(AttributeError):
        request.path = "/elsewhere"


def test_the_response_hook_gets_the_span_before_it_ends_the_request_view_and_the_response_object(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    raised: list[BaseException],
) -> None:
    calls: list[tuple[Any, Any, Any, bool]] = []

    def response_hook(span: Any, request: Any, response: Any) -> None:
        calls.append((span, request, response, span.is_recording()))
        span.set_attribute("app.served_by", response["headers"]["X-Served-By"])

    instrumentor.instrument(response_hook=response_hook, **providers)
    server = build_shop(raised)

    returned = post_user(server)

    ((span, request, response, recording),) = calls
    exported = one_server_span(span_exporter)
    assert response is RESPONSE
    assert returned is RESPONSE
    assert recording
    assert span.get_span_context() == exported.context
    assert exported.attributes["app.served_by"] == "shop-1"
    assert (request.method, request.path) == ("POST", "/users/42?notify=1")


def test_the_response_hook_is_not_called_when_the_handler_raised(
    instrumentor: Any, providers: dict[str, Any], raised: list[BaseException]
) -> None:
    calls: list[Any] = []
    instrumentor.instrument(response_hook=lambda *args: calls.append(args), **providers)
    server = build_shop(raised)

    with pytest.raises(Inventory.OutOfStock):
        server.handle_request("GET", "/out-of-stock", {}, b"")

    assert calls == []


def failing_hook(*args: Any) -> None:
    raise RuntimeError("hook bug")


@pytest.mark.instrumentation_errors
@STABLE
@pytest.mark.parametrize("hook", ["request_hook", "response_hook"])
def test_a_hook_that_raises_is_logged_and_changes_neither_the_response_nor_the_span(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    instrumentation_errors: Any,
    raised: list[BaseException],
    hook: str,
) -> None:
    instrumentor.instrument(**{hook: failing_hook}, **providers)
    server = build_shop(raised)

    returned = post_user(server)

    span = one_server_span(span_exporter)
    assert returned is RESPONSE
    assert returned == {"status": 201, "body": {"id": "42"}, "headers": {"X-Served-By": "shop-1"}}
    assert span.name == "POST /users/<user_id>"
    assert span.attributes[HTTP_ROUTE] == "/users/<user_id>"
    assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == 201
    assert span.status.status_code is StatusCode.UNSET
    assert [record.exc_info[1].args for record in instrumentation_errors.records] == [("hook bug",)]
    assert hook in instrumentation_errors.records[0].getMessage()


def interrupting_hook(*args: Any) -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize("hook", ["request_hook", "response_hook"])
def test_a_keyboard_interrupt_in_a_hook_propagates_with_the_span_ended_and_its_context_detached(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    raised: list[BaseException],
    hook: str,
) -> None:
    instrumentor.instrument(**{hook: interrupting_hook}, **providers)
    server = build_shop(raised)

    with pytest.raises(KeyboardInterrupt):
        post_user(server)

    assert one_server_span(span_exporter).name == "POST /users/<user_id>"
    assert trace.get_current_span() is INVALID_SPAN
    assert [point.value for point in metric_points(metric_reader, "http.server.active_requests")] == [0]


# -- telemetry that fails --------------------------------------------------------


@pytest.mark.instrumentation_errors
def test_a_tracer_that_cannot_start_spans_is_logged_and_the_handler_response_is_returned_unchanged(
    shop: Any,
    span_exporter: InMemorySpanExporter,
    instrumentation_errors: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    def start_span(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer bug")

    monkeypatch.setattr(Tracer, "start_span", start_span)

    returned = post_user(shop)

    assert returned is RESPONSE
    assert span_exporter.get_finished_spans() == ()
    assert trace.get_current_span() is INVALID_SPAN
    assert len(instrumentation_errors.records) == 1
    assert instrumentation_errors.records[0].levelno == logging.ERROR


@pytest.mark.instrumentation_errors
def test_a_tracer_that_cannot_start_spans_lets_the_handler_exception_through_unchanged(
    shop: Any, instrumentation_errors: Any, monkeypatch: pytest.MonkeyPatch, raised: list[BaseException]
) -> None:
    monkeypatch.setattr(Tracer, "start_span", failing_hook)

    with pytest.raises(Inventory.OutOfStock) as caught:
        shop.handle_request("GET", "/out-of-stock", {}, b"")

    assert caught.value is raised[0]


class _ExplodingHistogram:
    def record(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("histogram bug")


class _MeterWithBrokenHistograms:
    def __init__(self, meter: Any) -> None:
        self._meter = meter

    def create_histogram(self, *args: Any, **kwargs: Any) -> _ExplodingHistogram:
        return _ExplodingHistogram()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meter, name)


class _MeterProviderWithBrokenHistograms:
    """A real MeterProvider, except that every histogram's record() raises."""

    def __init__(self, meter_provider: MeterProvider) -> None:
        self._meter_provider = meter_provider

    def get_meter(self, *args: Any, **kwargs: Any) -> _MeterWithBrokenHistograms:
        return _MeterWithBrokenHistograms(self._meter_provider.get_meter(*args, **kwargs))


@pytest.mark.instrumentation_errors
@OLD_MODES
def test_a_histogram_that_cannot_record_is_logged_and_the_request_and_span_are_unaffected(
    instrumentor: Any,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    span_exporter: InMemorySpanExporter,
    instrumentation_errors: Any,
    raised: list[BaseException],
) -> None:
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=_MeterProviderWithBrokenHistograms(meter_provider)
    )
    server = build_shop(raised)

    returned = post_user(server)

    assert returned is RESPONSE
    assert one_server_span(span_exporter).name == "POST /users/<user_id>"
    assert trace.get_current_span() is INVALID_SPAN
    assert [point.value for point in metric_points(metric_reader, "http.server.active_requests")] == [0]
    assert len(instrumentation_errors.records) == 1


class _ExplodingCounter:
    def add(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("counter bug")


class _MeterProviderWithBrokenCounters(_MeterProviderWithBrokenHistograms):
    """A real MeterProvider, except that every up-down counter's add() raises."""

    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        meter = self._meter_provider.get_meter(*args, **kwargs)
        meter.create_up_down_counter = lambda *args, **kwargs: _ExplodingCounter()
        return meter


@pytest.mark.instrumentation_errors
def test_an_active_requests_counter_that_cannot_count_is_logged_and_the_request_is_still_timed(
    instrumentor: Any,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    metric_reader: InMemoryMetricReader,
    span_exporter: InMemorySpanExporter,
    instrumentation_errors: Any,
    raised: list[BaseException],
) -> None:
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=_MeterProviderWithBrokenCounters(meter_provider)
    )
    server = build_shop(raised)

    returned = post_user(server)

    assert returned is RESPONSE
    assert one_server_span(span_exporter).name == "POST /users/<user_id>"
    assert [point.count for point in metric_points(metric_reader, "http.server.duration")] == [1]
    # Once when the request starts, once when it ends.
    assert [record.exc_info[1].args for record in instrumentation_errors.records] == [("counter bug",)] * 2


@pytest.mark.instrumentation_errors
def test_a_span_that_cannot_take_its_status_code_is_logged_and_the_request_is_still_timed_and_ended(
    shop: Any,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    instrumentation_errors: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A 2xx needs no span status, only the status code attribute.
    monkeypatch.setattr(SdkSpan, "set_attribute", failing_hook)
    monkeypatch.setattr(SdkSpan, "set_attributes", failing_hook)

    returned = post_user(shop)

    assert returned is RESPONSE
    assert one_server_span(span_exporter).name == "POST /users/<user_id>"
    assert [point.count for point in metric_points(metric_reader, "http.server.duration")] == [1]
    assert trace.get_current_span() is INVALID_SPAN
    assert len(instrumentation_errors.records) == 1


class _FailingSpanProcessor(SpanProcessor):
    def __init__(self, when: str) -> None:
        self.when = when

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.when == "on_start":
            raise RuntimeError("span processor bug")

    def on_end(self, span: Any) -> None:
        if self.when == "on_end":
            raise RuntimeError("span processor bug")


@pytest.mark.instrumentation_errors
@pytest.mark.parametrize("when", ["on_start", "on_end"])
def test_a_span_processor_that_raises_is_logged_and_the_handler_response_is_returned_unchanged(
    instrumentor: Any,
    providers: dict[str, Any],
    tracer_provider: TracerProvider,
    metric_reader: InMemoryMetricReader,
    instrumentation_errors: Any,
    raised: list[BaseException],
    when: str,
) -> None:
    tracer_provider.add_span_processor(_FailingSpanProcessor(when))
    instrumentor.instrument(**providers)
    server = build_shop(raised)

    returned = post_user(server)

    assert returned is RESPONSE
    assert trace.get_current_span() is INVALID_SPAN
    assert [point.value for point in metric_points(metric_reader, "http.server.active_requests")] in ([], [0])
    assert len(instrumentation_errors.records) == 1


@pytest.mark.instrumentation_errors
def test_a_span_processor_that_raises_on_end_lets_the_handler_exception_through_unchanged(
    instrumentor: Any,
    providers: dict[str, Any],
    tracer_provider: TracerProvider,
    instrumentation_errors: Any,
    raised: list[BaseException],
) -> None:
    tracer_provider.add_span_processor(_FailingSpanProcessor("on_end"))
    instrumentor.instrument(**providers)
    server = build_shop(raised)

    with pytest.raises(Inventory.OutOfStock) as caught:
        server.handle_request("GET", "/out-of-stock", {}, b"")

    assert caught.value is raised[0]
    assert trace.get_current_span() is INVALID_SPAN
