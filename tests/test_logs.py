"""Logs that belong to their trace, and the response as the client sees it.

Over every serving layer (socket server, WSGI adapter, ``TestClient``): the
framework's access line and error record carry the server span's trace and
span ids through the standard logging bridge; an exception is recorded once
per signal chosen with ``OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN``; no
framework log line carries a query credential or a raw control byte;
response header capture and ``traceresponse`` see the response as sent.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import internalhttp
import internalhttp.server
import pytest
from internalhttp.testing import TestClient
from opentelemetry._logs import SeverityNumber
from opentelemetry.instrumentation.propagators import (
    TraceResponsePropagator,
    get_global_response_propagator,
    set_global_response_propagator,
)
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_testing import one_server_span
from wire_client import WireClient

EXCEPTION_SIGNAL = "OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def send_socket(server: Any, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    with internalhttp.serve(server) as running, WireClient(running.host, running.port) as client:
        response = client.request("GET", target, {"Host": "shop", **headers})
    return response.status, response.headers


def send_wsgi(server: Any, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    path, _, query = target.partition("?")
    environ: dict[str, Any] = {"PATH_INFO": path, "QUERY_STRING": query, "RAW_URI": target}
    environ["wsgi.input"] = io.BytesIO(b"")
    environ.update({f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()})
    setup_testing_defaults(environ)
    started: list[Any] = []
    internalhttp.make_wsgi_app(server)(
        environ, lambda status, response_headers: started.append((status, response_headers))
    )
    status, response_headers = started[0]
    return int(status.split()[0]), {name.lower(): value for name, value in response_headers}


def send_test_client(server: Any, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    response = TestClient(server, raise_server_exceptions=False).get(target, headers)
    return response.status, {name.lower(): response.headers[name] for name in response.headers}


LAYERS: dict[str, Callable[[Any, str, dict[str, str]], tuple[int, dict[str, str]]]] = {
    "socket": send_socket,
    "wsgi": send_wsgi,
    "test-client": send_test_client,
}


class PaymentDeclined(Exception):
    pass


def decline(headers: Any, body: Any) -> Any:
    raise PaymentDeclined("card declined")


@pytest.fixture
def shop(instrumentor: Any, providers: dict[str, Any], logger_provider: Any, semconv_mode: str) -> Any:
    instrumentor.instrument(logger_provider=logger_provider, **providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": {"id": item_id}})
    server.add_route("/pay", decline)
    return server


def framework_records(exporter: InMemoryLogRecordExporter, logger_name: str) -> list[Any]:
    return [
        record.log_record
        for record in exporter.get_finished_logs()
        if record.instrumentation_scope is not None and record.instrumentation_scope.name == logger_name
    ]


def exception_events(exporter: InMemoryLogRecordExporter) -> list[Any]:
    return [
        record.log_record
        for record in exporter.get_finished_logs()
        if record.log_record.event_name == "http.server.request.exception"
    ]


# -- correlated with the span --------------------------------------------------------


@pytest.mark.usefixtures("framework_logs")
@pytest.mark.parametrize("semconv_mode", ["", "http"], indirect=True)
@pytest.mark.parametrize("layer", LAYERS)
def test_the_access_line_carries_the_server_spans_trace_and_span_ids(
    shop: Any, span_exporter: InMemorySpanExporter, log_exporter: InMemoryLogRecordExporter, layer: str
) -> None:
    LAYERS[layer](shop, "/items/7", {"traceparent": TRACEPARENT})

    span = one_server_span(span_exporter)
    [access] = framework_records(log_exporter, "internalhttp.access")
    assert (access.trace_id, access.span_id) == (span.context.trace_id, span.context.span_id)
    assert access.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert '"GET /items/7" 200' in access.body


@pytest.mark.usefixtures("framework_logs")
@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
@pytest.mark.parametrize("layer", LAYERS)
def test_by_default_the_exception_is_a_span_event_and_one_correlated_framework_error_record(
    shop: Any, span_exporter: InMemorySpanExporter, log_exporter: InMemoryLogRecordExporter, layer: str
) -> None:
    status, _ = LAYERS[layer](shop, "/pay", {})

    span = one_server_span(span_exporter)
    assert status == 500
    assert [event.name for event in span.events] == ["exception"]
    [error] = framework_records(log_exporter, "internalhttp")
    assert error.severity_number is SeverityNumber.ERROR
    assert (error.trace_id, error.span_id) == (span.context.trace_id, span.context.span_id)
    assert exception_events(log_exporter) == []


@pytest.mark.usefixtures("framework_logs")
@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
@pytest.mark.parametrize(("signal", "span_events"), [("logs", []), ("logs/dup", ["exception"])])
@pytest.mark.parametrize("layer", LAYERS)
def test_with_exceptions_as_logs_one_request_exception_event_replaces_the_framework_error_line(
    instrumentor: Any,
    providers: dict[str, Any],
    logger_provider: Any,
    span_exporter: InMemorySpanExporter,
    log_exporter: InMemoryLogRecordExporter,
    monkeypatch: pytest.MonkeyPatch,
    signal: str,
    span_events: list[str],
    layer: str,
) -> None:
    monkeypatch.setenv(EXCEPTION_SIGNAL, signal)
    instrumentor.instrument(logger_provider=logger_provider, **providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/pay", decline)

    status, _ = LAYERS[layer](server, "/pay", {})

    span = one_server_span(span_exporter)
    assert status == 500
    assert [event.name for event in span.events] == span_events
    [event] = exception_events(log_exporter)
    assert (event.severity_number, event.severity_text) == (SeverityNumber.ERROR, "ERROR")
    assert event.attributes["exception.type"] == f"{__name__}.PaymentDeclined"
    assert event.attributes["exception.message"] == "card declined"
    assert "PaymentDeclined" in event.attributes["exception.stacktrace"]
    assert (event.trace_id, event.span_id) == (span.context.trace_id, span.context.span_id)
    assert framework_records(log_exporter, "internalhttp") == []  # said once, by the event


# -- what a framework log line may show ------------------------------------------------


@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
@pytest.mark.parametrize("layer", LAYERS)
def test_no_framework_log_line_carries_a_query_credential_or_a_raw_control_byte(
    shop: Any, layer: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="internalhttp"):
        LAYERS[layer](shop, "/pay?sig=s3cret&X-Amz-Credential=AKIA&note=\x1b[2J\x07", {})
        LAYERS[layer](shop, "/items/7?Signature=s3cret&x=\x1b]0;owned\x07", {})

    lines = [record.getMessage() for record in caplog.records if record.name.startswith("internalhttp")]
    assert len(lines) == 3  # an error line and two access lines
    for line in lines:
        assert "s3cret" not in line
        assert "AKIA" not in line
        assert not any(ord(character) < 0x20 or 0x7F <= ord(character) < 0xA0 for character in line)
    assert "sig=REDACTED" in lines[0]
    assert "\\x1b[2J" in lines[1]


# -- the response as the client sees it -------------------------------------------------


@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
@pytest.mark.parametrize("layer", LAYERS)
def test_response_header_capture_sees_the_content_type_the_serving_layer_sends(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    layer: str,
) -> None:
    monkeypatch.setenv(
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "content-type,content-length"
    )
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": {"id": item_id}})

    LAYERS[layer](server, "/items/7", {})

    attributes = one_server_span(span_exporter).attributes
    assert attributes["http.response.header.content-type"] == ("application/json",)
    assert attributes["http.response.header.content-length"] == ("10",)


@pytest.fixture
def response_propagator() -> Iterator[None]:
    previous = get_global_response_propagator()
    set_global_response_propagator(TraceResponsePropagator())
    yield
    set_global_response_propagator(previous)


SHAPES: dict[str, Callable[[], Any]] = {
    "dict-with-headers": lambda: {"body": "x", "headers": {"X-A": "1"}},
    "dict-without-headers": lambda: {"status": 201},
    "text": lambda: "hello",
    "bytes": lambda: b"hello",
    "none": lambda: None,
    "raises": lambda: decline(None, None),
}


@pytest.mark.usefixtures("response_propagator")
@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_response_shape_carries_traceresponse_naming_the_server_span(
    instrumentor: Any, providers: dict[str, Any], span_exporter: InMemorySpanExporter, layer: str, shape: str
) -> None:
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    returned: list[Any] = []

    def handler(headers: Any, body: Any) -> Any:
        returned.append(SHAPES[shape]())
        return returned[-1]

    server.add_route("/shape", handler)
    with _quiet_framework():
        _, headers = LAYERS[layer](server, "/shape", {"traceparent": TRACEPARENT})

    context = one_server_span(span_exporter).context
    assert (
        headers["traceresponse"]
        == f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
    assert headers["access-control-expose-headers"] == "traceresponse"


@pytest.mark.usefixtures("response_propagator")
@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
def test_traceresponse_leaves_the_value_handle_request_returns_unchanged(
    instrumentor: Any, providers: dict[str, Any]
) -> None:
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    response = {"body": "x", "headers": {"X-A": "1"}}
    server.add_route("/shape", lambda headers, body: response)

    test_response = TestClient(server).get("/shape")

    assert test_response.raw is response
    assert response == {"body": "x", "headers": {"X-A": "1"}}
    assert "traceresponse" in test_response.headers


class _quiet_framework:  # a context manager, named like one
    """The framework logs the 500 of the raising shape: expected here."""

    def __enter__(self) -> None:
        self._level = logging.getLogger("internalhttp").level
        logging.getLogger("internalhttp").setLevel(logging.CRITICAL)

    def __exit__(self, *exc_info: object) -> None:
        logging.getLogger("internalhttp").setLevel(self._level)
