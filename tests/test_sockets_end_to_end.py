"""Real sockets: ``internalhttp.serve`` on 127.0.0.1, stdlib ``http.client`` clients.

Concurrent requests each continue their own caller's trace, with no
cross-talk between threads, and the span attributes come from the real
connection.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import internalhttp
import internalhttp.server
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS, CLIENT_PORT
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PEER_ADDRESS, NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_SCHEME
from opentelemetry.trace import SpanKind, StatusCode
from otel_testing import metric_points, one_server_span

CLIENTS = 8
TIMEOUT = 10.0
ACTIVE = "http.server.active_requests"

pytestmark = pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)


def traceparent(client: int) -> tuple[int, int, str]:
    trace_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736 + client
    span_id = 0x00F067AA0BA90200 + client
    return trace_id, span_id, f"00-{trace_id:032x}-{span_id:016x}-01"


class Rendezvous:
    """Holds every handler until all CLIENTS requests are in flight at once."""

    def __init__(self) -> None:
        self.all_in_flight = threading.Barrier(CLIENTS + 1, timeout=TIMEOUT)
        self.release = threading.Event()

    def handler_arrives(self) -> None:
        self.all_in_flight.wait()
        if not self.release.wait(TIMEOUT):
            raise TimeoutError("the test never released the handlers")


@pytest.fixture
def rendezvous() -> Iterator[Rendezvous]:
    rendezvous = Rendezvous()
    yield rendezvous
    # Whatever happened, never leave a handler (and so shutdown()) waiting.
    rendezvous.release.set()
    rendezvous.all_in_flight.abort()


@pytest.fixture
def running(
    instrumentor: Any,
    providers: dict[str, Any],
    semconv_mode: str,
    rendezvous: Rendezvous,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Any]:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_OPT_IN", "client.port,http.server.active_requests")
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")

    def get_user(headers: Any, body: Any, user_id: str) -> dict[str, Any]:
        return {"status": 200, "body": {"id": user_id}}

    def together(headers: Any, body: Any, user_id: str) -> dict[str, Any]:
        rendezvous.handler_arrives()
        return {"status": 200, "body": {"id": user_id}}

    def broken(headers: Any, body: Any) -> dict[str, Any]:
        raise RuntimeError("database is down")

    server.add_route("/users/<user_id>", get_user)
    server.add_route("/together/<user_id>", together)
    server.add_route("/broken", broken)
    with internalhttp.serve(server, host="127.0.0.1", port=0) as handle:
        yield handle


def request(port: int, path: str, headers: dict[str, str]) -> tuple[int, bytes, int]:
    """One request on a fresh connection: status, body and the client's own port."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        client_port = connection.sock.getsockname()[1]
        return response.status, response.read(), client_port
    finally:
        connection.close()


def test_concurrent_requests_each_continue_their_own_callers_trace_with_no_cross_talk(
    running: Any,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    rendezvous: Rendezvous,
) -> None:
    results: dict[int, tuple[int, bytes, int]] = {}
    failures: list[BaseException] = []

    def client(number: int) -> None:
        try:
            headers = {"traceparent": traceparent(number)[2]}
            results[number] = request(running.port, f"/together/{number}", headers)
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=client, args=(number,), daemon=True) for number in range(CLIENTS)]
    for thread in threads:
        thread.start()
    rendezvous.all_in_flight.wait()  # every handler is running now
    in_flight = [point.value for point in metric_points(metric_reader, ACTIVE)]
    rendezvous.release.set()
    for thread in threads:
        thread.join(TIMEOUT)

    assert failures == []
    assert in_flight == [CLIENTS]
    assert {number: (status, json.loads(body)) for number, (status, body, _) in results.items()} == {
        number: (200, {"id": str(number)}) for number in range(CLIENTS)
    }
    spans = span_exporter.get_finished_spans()
    assert len(spans) == CLIENTS
    for span in spans:
        number = int(span.attributes[URL_PATH].rsplit("/", 1)[1])
        trace_id, parent_span_id, _ = traceparent(number)
        assert span.kind is SpanKind.SERVER
        assert span.context.trace_id == trace_id
        assert span.parent.span_id == parent_span_id
        assert span.parent.is_remote
        assert span.attributes[CLIENT_PORT] == results[number][2]
    assert [point.value for point in metric_points(metric_reader, ACTIVE)] == [0]


def test_the_span_records_the_real_connection(running: Any, span_exporter: InMemorySpanExporter) -> None:
    status, _, client_port = request(running.port, "/users/7", {})

    attributes = one_server_span(span_exporter).attributes
    assert status == 200
    assert attributes[CLIENT_ADDRESS] == "127.0.0.1"
    assert attributes[CLIENT_PORT] == client_port
    assert attributes[NETWORK_PEER_ADDRESS] == "127.0.0.1"
    assert attributes[NETWORK_PROTOCOL_VERSION] == "1.1"
    assert attributes[SERVER_ADDRESS] == "127.0.0.1"
    assert attributes[SERVER_PORT] == running.port
    assert attributes[URL_SCHEME] == "http"
    assert attributes[HTTP_ROUTE] == "/users/<user_id>"
    assert attributes[HTTP_RESPONSE_STATUS_CODE] == 200


def test_a_kept_alive_connection_does_not_carry_one_requests_trace_into_the_next(
    running: Any, span_exporter: InMemorySpanExporter
) -> None:
    trace_id, parent_span_id, header = traceparent(0)
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=TIMEOUT)
    try:
        connection.request("GET", "/users/1", headers={"traceparent": header})
        connection.getresponse().read()
        connection.request("GET", "/users/2")
        connection.getresponse().read()
    finally:
        connection.close()

    first, second = sorted(span_exporter.get_finished_spans(), key=lambda span: span.attributes[URL_PATH])
    assert (first.context.trace_id, first.parent.span_id) == (trace_id, parent_span_id)
    assert second.parent is None
    assert second.context.trace_id != trace_id


def test_a_handler_exception_over_sockets_is_a_500_for_the_client_and_an_error_span(
    running: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    status, _, _ = request(running.port, "/broken", {})

    span = one_server_span(span_exporter)
    assert status == 500
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes[ERROR_TYPE] == "RuntimeError"
    assert [event.name for event in span.events] == ["exception"]
    assert [point.value for point in metric_points(metric_reader, ACTIVE)] == [0]
