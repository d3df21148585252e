"""The status recorded is the status the client received, for every response shape.

Each shape a handler may return (or an exception) is served through every
way a request reaches the application: a direct ``handle_request`` call,
the ``TestClient``, the WSGI adapter and the socket server. Whatever status
the client gets, the span and the duration metric carry it.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any
from wsgiref.util import setup_testing_defaults

import internalhttp
import internalhttp.server
import pytest
from internalhttp.testing import TestClient
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_STATUS_CODE
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import StatusCode
from otel_testing import metric_points, one_server_span

TIMEOUT = 10.0


class Unserialisable:
    """A body no JSON encoder takes: the framework answers 500."""


def _raise() -> Any:
    raise RuntimeError("database is down")


# name: (what the handler does, the status the client gets, error.type)
SHAPES: dict[str, tuple[Callable[[], Any], int, str | None]] = {
    "text": (lambda: "hello", 200, None),
    "bytes": (lambda: b"hello", 200, None),
    "none": (lambda: None, 204, None),
    "dict-without-status": (lambda: {"body": "x"}, 200, None),
    "float-status": (lambda: {"status": 200.0}, 200, None),
    "text-status": (lambda: {"status": "201"}, 201, None),
    "enum-status": (lambda: {"status": HTTPStatus.SERVICE_UNAVAILABLE}, 503, "503"),
    "word-status": (lambda: {"status": "teapot"}, 500, "ValueError"),
    "out-of-range-status": (lambda: {"status": 99}, 500, "ValueError"),
    "list": (lambda: ["not", "a", "response"], 500, "TypeError"),
    "unserialisable-body": (lambda: {"body": Unserialisable()}, 500, "TypeError"),
    "raises": (_raise, 500, "RuntimeError"),
}


def call_directly(server: Any) -> int:
    try:
        value = server.handle_request("GET", "/shape", {}, b"")
    except RuntimeError:
        return 500  # what every serving layer answers
    return internalhttp.response.response_for(value).response.status


def call_test_client(server: Any) -> int:
    return TestClient(server, raise_server_exceptions=False).get("/shape").status


def call_wsgi(server: Any) -> int:
    environ: dict[str, Any] = {"PATH_INFO": "/shape", "wsgi.input": io.BytesIO(b"")}
    setup_testing_defaults(environ)
    statuses: list[str] = []
    internalhttp.make_wsgi_app(server)(environ, lambda status, headers: statuses.append(status))
    return int(statuses[0].split()[0])


def call_socket(server: Any) -> int:
    with internalhttp.serve(server) as running:
        connection = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        try:
            connection.request("GET", "/shape")
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()


LAYERS = {"direct": call_directly, "test-client": call_test_client, "wsgi": call_wsgi, "socket": call_socket}


@pytest.fixture
def shaped_server(instrumentor: Any, providers: dict[str, Any], semconv_mode: str) -> Iterator[Any]:
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shapes")
    shape: dict[str, Callable[[], Any]] = {}
    server.add_route("/shape", lambda headers, body: shape["make"]())
    server.shape = shape
    yield server


@pytest.fixture(autouse=True)
def quiet_framework_errors(caplog: pytest.LogCaptureFixture) -> None:
    # The framework logs each 500 it answers: expected here, not noise.
    caplog.set_level(100, logger="internalhttp")


@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("shape", SHAPES)
def test_the_span_and_the_duration_carry_the_status_the_client_received(
    shaped_server: Any,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    layer: str,
    shape: str,
) -> None:
    make, expected_status, expected_error_type = SHAPES[shape]
    shaped_server.shape["make"] = make

    received = LAYERS[layer](shaped_server)

    assert received == expected_status
    span = one_server_span(span_exporter)
    assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == received
    assert span.attributes.get(ERROR_TYPE) == expected_error_type
    assert span.status.status_code is (StatusCode.ERROR if received >= 500 else StatusCode.UNSET)
    [point] = metric_points(metric_reader, "http.server.request.duration")
    assert point.attributes[HTTP_RESPONSE_STATUS_CODE] == received
    assert point.attributes.get(ERROR_TYPE) == expected_error_type


@pytest.mark.parametrize("semconv_mode", [""], indirect=True)
@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("shape", ["text", "none", "word-status", "raises"])
def test_the_old_conventions_record_the_status_the_client_received_too(
    shaped_server: Any,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    layer: str,
    shape: str,
) -> None:
    shaped_server.shape["make"] = SHAPES[shape][0]

    received = LAYERS[layer](shaped_server)

    assert one_server_span(span_exporter).attributes[HTTP_STATUS_CODE] == received
    [point] = metric_points(metric_reader, "http.server.duration")
    assert point.attributes[HTTP_STATUS_CODE] == received


@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
@pytest.mark.parametrize("layer", ["test-client", "wsgi", "socket"])
def test_an_unsendable_value_is_recorded_as_the_exception_the_framework_raised_translating_it(
    shaped_server: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    shaped_server.shape["make"] = SHAPES["word-status"][0]

    LAYERS[layer](shaped_server)

    [event] = one_server_span(span_exporter).events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "ValueError"


@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
def test_a_handler_exception_propagates_unchanged_from_handle_request_with_500_recorded(
    shaped_server: Any, span_exporter: InMemorySpanExporter
) -> None:
    shaped_server.shape["make"] = _raise

    with pytest.raises(RuntimeError, match="database is down"):
        shaped_server.handle_request("GET", "/shape", {}, b"")

    span = one_server_span(span_exporter)
    assert (span.attributes[HTTP_RESPONSE_STATUS_CODE], span.status.description) == (500, "database is down")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("semconv_mode", ["http/dup"], indirect=True)
def test_each_span_carries_its_own_status_past_the_statuses_whose_attributes_are_kept_made(
    shaped_server: Any, span_exporter: InMemorySpanExporter
) -> None:
    # 100 to 599: more distinct statuses than the per-status attribute dicts kept (64).
    statuses = list(range(100, 600, 5))
    for status in statuses:
        shaped_server.shape["make"] = lambda status=status: {"status": status}
        TestClient(shaped_server).get("/shape")

    spans = span_exporter.get_finished_spans()
    recorded = [
        (span.attributes[HTTP_RESPONSE_STATUS_CODE], span.attributes[HTTP_STATUS_CODE]) for span in spans
    ]
    assert recorded == [(status, status) for status in statuses]
