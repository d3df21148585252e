"""A response hook sees the handler's response before it is sent, and what it changes reaches the client.

The usual use: a header carrying the trace id, set from the hook. Checked
through every serving layer and a direct ``handle_request`` call alike.
"""

from __future__ import annotations

import http.client
import io
from typing import Any, Callable
from wsgiref.util import setup_testing_defaults

import internalhttp
import pytest
from internalhttp.server import InternalHTTPServer
from internalhttp.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from otel_testing import STABLE, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

TIMEOUT = 10


def call_directly(server: InternalHTTPServer) -> dict[str, str]:
    value = server.handle_request("GET", "/order", {}, b"")
    return {name.lower(): text for name, text in internalhttp.response.normalize_response(value).headers}


def call_test_client(server: InternalHTTPServer) -> dict[str, str]:
    return {name.lower(): text for name, text in TestClient(server).get("/order").headers.items()}


def call_wsgi(server: InternalHTTPServer) -> dict[str, str]:
    environ: dict[str, Any] = {"PATH_INFO": "/order", "wsgi.input": io.BytesIO(b"")}
    setup_testing_defaults(environ)
    sent: list[list[tuple[str, str]]] = []
    internalhttp.make_wsgi_app(server)(environ, lambda status, headers: sent.append(headers))
    return {name.lower(): text for name, text in sent[0]}


def call_socket(server: InternalHTTPServer) -> dict[str, str]:
    with internalhttp.serve(server) as running:
        connection = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        try:
            connection.request("GET", "/order")
            response = connection.getresponse()
            response.read()
            return {name.lower(): text for name, text in response.getheaders()}
        finally:
            connection.close()


LAYERS: dict[str, Callable[[InternalHTTPServer], dict[str, str]]] = {
    "direct": call_directly,
    "test-client": call_test_client,
    "wsgi": call_wsgi,
    "socket": call_socket,
}


def trace_id_header(span: Any, request: Any, response: Any) -> None:
    if isinstance(response, dict):
        response.setdefault("headers", {})["X-Trace-Id"] = format(span.get_span_context().trace_id, "032x")


@pytest.fixture
def make_app(providers: dict[str, Any]) -> Callable[..., InternalHTTPServer]:
    def make(handler: Callable[..., Any], **options: Any) -> InternalHTTPServer:
        server = InternalHTTPServer("shop")
        server.add_route("/order", handler)
        InternalHTTPInstrumentor.instrument_app(server, **providers, **options)
        return server

    return make


@pytest.mark.parametrize("layer", LAYERS)
def test_a_header_the_response_hook_adds_reaches_the_client(
    make_app: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    server = make_app(lambda headers, body: {"status": 201, "body": "made"}, response_hook=trace_id_header)

    received = LAYERS[layer](server)

    assert received["x-trace-id"] == format(one_server_span(span_exporter).context.trace_id, "032x")


@STABLE
@pytest.mark.parametrize("layer", LAYERS)
def test_the_span_records_the_response_the_hook_left(
    make_app: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    def degrade(span: Any, request: Any, response: Any) -> None:
        response["status"] = 503

    server = make_app(lambda headers, body: {"status": 200, "body": "ok"}, response_hook=degrade)

    LAYERS[layer](server)

    assert one_server_span(span_exporter).attributes[HTTP_RESPONSE_STATUS_CODE] == 503


@pytest.mark.parametrize("layer", LAYERS)
def test_a_response_that_is_not_a_dict_reaches_the_client_as_the_handler_made_it(
    make_app: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    seen: list[Any] = []

    def record(span: Any, request: Any, response: Any) -> None:
        seen.append(response)

    server = make_app(lambda headers, body: "plain text", response_hook=record)

    received = LAYERS[layer](server)

    assert seen == ["plain text"]
    assert received["content-type"].startswith("text/plain")


def test_the_response_hook_runs_inside_the_span_before_it_ends(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    recording: list[bool] = []

    def check(span: Any, request: Any, response: Any) -> None:
        recording.append(span.is_recording())

    TestClient(make_app(lambda headers, body: {"body": "x"}, response_hook=check)).get("/order")

    assert recording == [True]
    assert len(span_exporter.get_finished_spans()) == 1
