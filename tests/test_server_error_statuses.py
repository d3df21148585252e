"""What counts as an error: ``server_error_statuses=`` and ``OTEL_PYTHON_INTERNALHTTP_SERVER_ERROR_STATUSES``.

By default every 5xx makes the SERVER span ERROR, with ``error.type`` (the
status code) on the span and the duration metric, as the conventions say.
The setting narrows that set with codes and ranges, ``!`` leaving some out
(``500-599,!501,!505``); it never widens it: a 4xx item is rejected and
logged, since a 4xx is the client's error. An exception is always an error.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from typing import Any

import internalhttp
import pytest
from internalhttp.server import InternalHTTPServer
from layer_testing import LAYERS, TIMEOUT, call_directly
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.trace import StatusCode
from otel_testing import ALL_MODES, STABLE, STABLE_MODES, metric_points, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

VARIABLE = "OTEL_PYTHON_INTERNALHTTP_SERVER_ERROR_STATUSES"
DURATION = "http.server.request.duration"
SCANNER_QUIET = "500-599,!501,!505"


@pytest.fixture(autouse=True)
def quiet_framework_errors(caplog: pytest.LogCaptureFixture) -> None:
    # The framework logs each exception it answers with a 500: expected here.
    caplog.set_level(100, logger="internalhttp")


@pytest.fixture
def make_app(providers: dict[str, Any]) -> Callable[..., InternalHTTPServer]:
    """A server whose ``/status/<code>`` answers with that status, and ``/fail`` raises."""

    def make(**options: Any) -> InternalHTTPServer:
        server = InternalHTTPServer("shop")
        server.add_route("/status/<code>", lambda headers, body, code: {"status": int(code), "body": code})
        server.add_route("/fail", lambda headers, body: _raise())
        InternalHTTPInstrumentor.instrument_app(server, **providers, **options)
        return server

    return make


def _raise() -> Any:
    raise RuntimeError("database is down")


def answer(server: InternalHTTPServer, status: int) -> None:
    received = call_directly(server, "GET", f"/status/{status}", {}, b"")
    assert received.status == status


@ALL_MODES
@pytest.mark.parametrize("status", [500, 501, 503, 505, 599])
def test_every_5xx_is_an_error_by_default(
    make_app: Any, span_exporter: InMemorySpanExporter, status: int
) -> None:
    answer(make_app(), status)

    assert one_server_span(span_exporter).status.status_code is StatusCode.ERROR


@STABLE
@pytest.mark.parametrize("status", [500, 505])
def test_a_5xx_error_carries_its_status_as_error_type_by_default(
    make_app: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader, status: int
) -> None:
    answer(make_app(), status)

    assert one_server_span(span_exporter).attributes[ERROR_TYPE] == str(status)
    [point] = metric_points(metric_reader, DURATION)
    assert point.attributes[ERROR_TYPE] == str(status)


@ALL_MODES
@pytest.mark.parametrize("status", [400, 404, 429, 499])
def test_a_4xx_is_not_an_error(make_app: Any, span_exporter: InMemorySpanExporter, status: int) -> None:
    answer(make_app(), status)

    span = one_server_span(span_exporter)
    assert span.status.status_code is StatusCode.UNSET
    assert ERROR_TYPE not in span.attributes


@ALL_MODES
@pytest.mark.parametrize("status", [501, 505])
@pytest.mark.parametrize("layer", LAYERS)
def test_statuses_left_out_leave_the_span_unset(
    make_app: Any, span_exporter: InMemorySpanExporter, status: int, layer: str
) -> None:
    server = make_app(server_error_statuses=SCANNER_QUIET)

    received = LAYERS[layer](server, "GET", f"/status/{status}", {}, b"")

    span = one_server_span(span_exporter)
    assert (received.status, span.attributes[_status_key(span)]) == (status, status)
    assert span.status.status_code is StatusCode.UNSET
    assert ERROR_TYPE not in span.attributes


def _status_key(span: Any) -> str:
    return HTTP_RESPONSE_STATUS_CODE if HTTP_RESPONSE_STATUS_CODE in span.attributes else "http.status_code"


@STABLE_MODES
@pytest.mark.parametrize("status", [501, 505])
def test_statuses_left_out_carry_no_error_type_on_the_duration_metric(
    make_app: Any, metric_reader: InMemoryMetricReader, status: int
) -> None:
    answer(make_app(server_error_statuses=SCANNER_QUIET), status)

    [point] = metric_points(metric_reader, DURATION)
    assert point.attributes[HTTP_RESPONSE_STATUS_CODE] == status
    assert ERROR_TYPE not in point.attributes


@STABLE
@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_the_other_5xx_stay_errors(make_app: Any, span_exporter: InMemorySpanExporter, status: int) -> None:
    answer(make_app(server_error_statuses=SCANNER_QUIET), status)

    span = one_server_span(span_exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[ERROR_TYPE] == str(status)


@STABLE
def test_exclusions_alone_are_taken_out_of_the_whole_5xx_range(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app(server_error_statuses="!503")

    answer(server, 503)
    answer(server, 500)

    assert [span.status.status_code for span in span_exporter.get_finished_spans()] == [
        StatusCode.UNSET,
        StatusCode.ERROR,
    ]


@STABLE
def test_a_list_names_only_those_statuses(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    server = make_app(server_error_statuses=["500", "502-504"])

    for status in (500, 501, 503, 505):
        answer(server, status)

    assert [span.status.status_code for span in span_exporter.get_finished_spans()] == [
        StatusCode.ERROR,
        StatusCode.UNSET,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]


@STABLE
def test_the_variable_narrows_the_error_statuses(
    make_app: Any, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VARIABLE, SCANNER_QUIET)
    server = make_app()

    answer(server, 505)

    span = one_server_span(span_exporter)
    assert span.status.status_code is StatusCode.UNSET
    assert ERROR_TYPE not in span.attributes


@STABLE
@pytest.mark.instrumentation_errors
@pytest.mark.parametrize("item", ["404", "400-499", "499-500", "5xx", "600"])
def test_an_item_outside_the_5xx_is_rejected_with_an_error_naming_it(
    make_app: Any, span_exporter: InMemorySpanExporter, instrumentation_errors: Any, item: str
) -> None:
    server = make_app(server_error_statuses=f"{item},!503")

    answer(server, 503)

    assert one_server_span(span_exporter).status.status_code is StatusCode.UNSET  # the valid part kept
    [record] = instrumentation_errors.records
    assert f"'{item}'" in record.getMessage()
    assert "server_error_statuses" in record.getMessage()


@STABLE
@pytest.mark.instrumentation_errors
@pytest.mark.parametrize("item", ["404", "400-499"])
def test_a_4xx_item_never_makes_a_4xx_an_error(
    make_app: Any, span_exporter: InMemorySpanExporter, instrumentation_errors: Any, item: str
) -> None:
    server = make_app(server_error_statuses=item)

    answer(server, 404)
    answer(server, 500)

    assert [span.status.status_code for span in span_exporter.get_finished_spans()] == [
        StatusCode.UNSET,
        StatusCode.ERROR,  # nothing valid: the default, every 5xx
    ]
    assert ERROR_TYPE not in span_exporter.get_finished_spans()[0].attributes


@STABLE
@pytest.mark.instrumentation_errors
def test_an_invalid_variable_is_logged_naming_it(
    make_app: Any, monkeypatch: pytest.MonkeyPatch, instrumentation_errors: Any
) -> None:
    monkeypatch.setenv(VARIABLE, "404")

    make_app()

    [record] = instrumentation_errors.records
    assert VARIABLE in record.getMessage() and "'404'" in record.getMessage()


@ALL_MODES
@pytest.mark.parametrize("layer", LAYERS)
def test_an_exception_is_always_an_error(
    make_app: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    server = make_app(server_error_statuses="!500")

    received = LAYERS[layer](server, "GET", "/fail", {}, b"")

    span = one_server_span(span_exporter)
    assert received.status == 500
    assert span.status.status_code is StatusCode.ERROR


@STABLE
def test_an_exception_carries_its_type_as_error_type_whatever_the_statuses(
    make_app: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    server = make_app(server_error_statuses="!500")

    call_directly(server, "GET", "/fail", {}, b"")

    assert one_server_span(span_exporter).attributes[ERROR_TYPE] == "RuntimeError"
    [point] = metric_points(metric_reader, DURATION)
    assert point.attributes[ERROR_TYPE] == "RuntimeError"


def refused_http_2(server: InternalHTTPServer) -> bytes:
    """``GET / HTTP/2.0`` over HTTP/1.1 to the socket server, which answers 505 itself."""
    chunks: list[bytes] = []
    with internalhttp.serve(server) as running:
        sock = socket.create_connection((running.host, running.port), timeout=TIMEOUT)
        with sock, contextlib.suppress(ConnectionResetError):
            sock.sendall(b"GET / HTTP/2.0\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


@STABLE
def test_the_socket_servers_own_505_is_not_an_error_when_left_out(
    make_app: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    sent = refused_http_2(make_app(server_error_statuses=SCANNER_QUIET))

    assert sent.startswith(b"HTTP/1.1 505 ")
    span = one_server_span(span_exporter)
    assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == 505
    assert span.status.status_code is StatusCode.UNSET
    assert ERROR_TYPE not in span.attributes
    [point] = metric_points(metric_reader, DURATION)
    assert ERROR_TYPE not in point.attributes


@STABLE
def test_the_socket_servers_own_505_is_an_error_by_default(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    refused_http_2(make_app())

    span = one_server_span(span_exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[ERROR_TYPE] == "505"
