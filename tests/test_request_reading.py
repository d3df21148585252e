"""Each request is read once, as the framework reads it, and the caller's input is left alone.

The route is matched and the headers parsed once per request, by the
framework, and the instrumentation reads the result; request targets in
absolute form route and record like their path; headers passed as a one-shot
iterator still reach the handler.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import internalhttp
import internalhttp.server
import pytest
from internalhttp.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_TARGET
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY
from opentelemetry.trace import SpanKind
from otel_testing import one_server_span
from wire_client import WireClient

ALL_MODES = pytest.mark.parametrize("semconv_mode", ["", "http", "http/dup"], indirect=True)
STABLE = pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
OLD = pytest.mark.parametrize("semconv_mode", [""], indirect=True)


@pytest.fixture
def shop(instrumentor: Any, providers: dict[str, Any], semconv_mode: str) -> Any:
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": dict(headers)})
    return server


@pytest.fixture
def running(shop: Any) -> Iterator[Any]:
    with internalhttp.serve(shop) as running:
        yield running


@pytest.fixture
def route_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every path the route table is searched for (white box: counting is the point)."""
    searched: list[str] = []
    original = internalhttp.server.InternalHTTPServer._candidates

    def counting(self: Any, request_path: str) -> Any:
        searched.append(request_path)
        return original(self, request_path)

    monkeypatch.setattr(internalhttp.server.InternalHTTPServer, "_candidates", counting)
    return searched


# -- read once -----------------------------------------------------------------


@ALL_MODES
def test_a_request_over_a_socket_is_routed_once(running: Any, route_lookups: list[str]) -> None:
    with WireClient(running.host, running.port) as client:
        assert client.request("GET", "/items/7", {"Host": "shop"}).status == 200

    assert route_lookups == ["/items/7"]


@ALL_MODES
def test_a_direct_handle_request_call_is_routed_once(shop: Any, route_lookups: list[str]) -> None:
    shop.handle_request("GET", "/items/7?x=1", {}, b"")

    assert route_lookups == ["/items/7"]


@STABLE
def test_a_test_client_request_is_routed_once(shop: Any, route_lookups: list[str]) -> None:
    assert TestClient(shop).get("/items/7").status == 200

    assert route_lookups == ["/items/7"]


# -- absolute-form targets (RFC 9112, 3.2.2) -------------------------------------


@STABLE
def test_an_absolute_form_target_routes_and_records_like_its_path_and_query(
    running: Any, span_exporter: InMemorySpanExporter
) -> None:
    with WireClient(running.host, running.port) as client:
        response = client.request("GET", "http://shop.example:8080/items/7?q=1#frag", {"Host": "other"})

    assert response.status == 200
    span = one_server_span(span_exporter)
    assert span.name == "GET /items/<item_id>"
    assert span.attributes[HTTP_ROUTE] == "/items/<item_id>"
    assert (span.attributes[URL_PATH], span.attributes[URL_QUERY]) == ("/items/7", "q=1")
    # The target's authority is the one the client addressed (RFC 9112, 3.2.2).
    assert (span.attributes[SERVER_ADDRESS], span.attributes[SERVER_PORT]) == ("shop.example", 8080)


@OLD
def test_the_old_target_of_an_absolute_form_request_is_its_path_and_query(
    running: Any, span_exporter: InMemorySpanExporter
) -> None:
    with WireClient(running.host, running.port) as client:
        client.request("GET", "HTTP://shop.example/items/7?q=1", {"Host": "shop.example"})

    assert one_server_span(span_exporter).attributes[HTTP_TARGET] == "/items/7?q=1"


@OLD
def test_an_empty_query_keeps_its_question_mark_in_the_old_target(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    shop.handle_request("GET", "/items/7?", {}, b"")

    assert one_server_span(span_exporter).attributes[HTTP_TARGET] == "/items/7?"


@STABLE
def test_an_empty_query_records_no_url_query(shop: Any, span_exporter: InMemorySpanExporter) -> None:
    shop.handle_request("GET", "/items/7?", {}, b"")

    assert URL_QUERY not in one_server_span(span_exporter).attributes


# -- the caller's input ---------------------------------------------------------


@ALL_MODES
def test_headers_passed_as_a_generator_reach_the_handler_whole(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    pairs = (pair for pair in [("X-Request-Id", "r-1"), ("traceparent", traceparent)])

    response = shop.handle_request("GET", "/items/7", pairs, b"")

    assert response["body"] == {"X-Request-Id": "r-1", "traceparent": traceparent}
    assert one_server_span(span_exporter).context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C


@STABLE
def test_captured_request_headers_go_on_the_server_span_only_not_on_a_nested_one(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-request-id")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", "x-served-by")
    instrumentor.instrument(**providers)
    inner = internalhttp.server.InternalHTTPServer("inner")
    inner.add_route("/inner", lambda headers, body: {"headers": {"X-Served-By": "inner"}})
    outer = internalhttp.server.InternalHTTPServer("outer")
    outer.add_route(
        "/outer",
        lambda headers, body: (
            inner.handle_request("GET", "/inner", headers, b"") and {"headers": {"X-Served-By": "outer"}}
        ),
    )

    outer.handle_request("GET", "/outer", {"X-Request-Id": "r-1"}, b"")

    spans = {span.kind: span for span in span_exporter.get_finished_spans()}
    assert spans[SpanKind.SERVER].attributes["http.request.header.x-request-id"] == ("r-1",)
    assert spans[SpanKind.SERVER].attributes["http.response.header.x-served-by"] == ("outer",)
    nested = spans[SpanKind.INTERNAL].attributes
    assert not [key for key in nested if key.startswith(("http.request.header.", "http.response.header."))]
