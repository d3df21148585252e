"""Cardinality: many distinct paths, one span name and one metric stream per outcome."""

from __future__ import annotations

from typing import Any

import internalhttp.server
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_STATUS_CODE
from opentelemetry.semconv.attributes.http_attributes import HTTP_RESPONSE_STATUS_CODE
from opentelemetry.util.http import OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS
from otel_testing import OLD_AND_STABLE, STABLE, metric_points

from opentelemetry_ext_internalhttp._methods import CAPTURED_METHODS_LIMIT

REQUESTS = 2_000
DURATION = {"": "http.server.duration", "http": "http.server.request.duration"}
STATUS_KEY = {"": HTTP_STATUS_CODE, "http": HTTP_RESPONSE_STATUS_CODE}


@pytest.fixture
def shop(instrumentor: Any, providers: dict[str, Any], semconv_mode: str) -> Any:
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    # Every third item is out of stock: two outcomes over thousands of paths.
    server.add_route(
        "/items/<item_id>", lambda headers, body, item_id: {"status": 409 if int(item_id) % 3 == 0 else 200}
    )
    return server


@OLD_AND_STABLE
def test_thousands_of_paths_of_one_route_make_one_span_name_and_one_duration_stream_per_status(
    shop: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader, semconv_mode: str
) -> None:
    for item in range(REQUESTS):
        shop.handle_request("GET", f"/items/{item}?page={item}", {}, b"")

    spans = span_exporter.get_finished_spans()
    assert len(spans) == REQUESTS
    assert {span.name for span in spans} == {"GET /items/<item_id>"}
    counts = {
        point.attributes[STATUS_KEY[semconv_mode]]: point.count
        for point in metric_points(metric_reader, DURATION[semconv_mode])
    }
    out_of_stock = len(range(0, REQUESTS, 3))
    assert counts == {200: REQUESTS - out_of_stock, 409: out_of_stock}
    assert len(metric_points(metric_reader, "http.server.active_requests")) == (0 if semconv_mode else 1)


@STABLE
def test_thousands_of_unknown_paths_make_one_span_name_and_one_duration_stream(
    shop: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    for item in range(REQUESTS):
        shop.handle_request("GET", f"/scan/{item}/wp-admin.php", {}, b"")

    assert {span.name for span in span_exporter.get_finished_spans()} == {"GET"}
    (point,) = metric_points(metric_reader, DURATION["http"])
    assert (point.attributes[HTTP_RESPONSE_STATUS_CODE], point.count) == (404, REQUESTS)


@STABLE
def test_thousands_of_unknown_methods_make_one_span_name_and_one_duration_stream(
    shop: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    for item in range(REQUESTS):
        shop.handle_request(f"M{item}", "/items/1", {}, b"")

    assert {span.name for span in span_exporter.get_finished_spans()} == {"HTTP /items/<item_id>"}
    assert len(metric_points(metric_reader, DURATION["http"])) == 1


@STABLE
def test_capturing_all_methods_keeps_a_bounded_number_of_them_and_records_the_rest_as_other(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Opting in to every method makes span names follow what clients send;
    # the method is a metric attribute, so only so many are kept as sent.
    monkeypatch.setenv(OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS, "true")
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"status": 200})

    for item in range(REQUESTS):
        server.handle_request(f"M{item}", "/items/1", {}, b"")

    names = [span.name for span in span_exporter.get_finished_spans()]
    assert names[0] == "M0 /items/<item_id>"
    assert names[-1] == "HTTP /items/<item_id>"
    kept = {
        point.attributes["http.request.method"] for point in metric_points(metric_reader, DURATION["http"])
    }
    assert len(kept) == CAPTURED_METHODS_LIMIT + 1  # and _OTHER
    assert "_OTHER" in kept


def test_thousands_of_host_headers_are_each_recorded_on_their_span_and_open_no_metric_stream(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"status": 200})

    for item in range(REQUESTS):
        server.handle_request("GET", "/items/1", {"Host": f"h{item}.example:{1000 + item}"}, b"")

    spans = span_exporter.get_finished_spans()
    assert (spans[0].attributes["net.host.name"], spans[0].attributes["net.host.port"]) == (
        "h0.example",
        1000,
    )
    assert spans[-1].attributes["net.host.name"] == f"h{REQUESTS - 1}.example"
    assert spans[-1].attributes["net.host.port"] == 1000 + REQUESTS - 1
    assert len(metric_points(metric_reader, DURATION[""])) == 1
    assert len(metric_points(metric_reader, "http.server.active_requests")) == 1


@STABLE
def test_a_method_one_server_routes_is_recorded_as_sent_there_and_as_other_on_a_server_without_it(
    shop: Any, span_exporter: InMemorySpanExporter, semconv_mode: str
) -> None:
    shop.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": "purged"}, method="PURGE")
    other = internalhttp.server.InternalHTTPServer("other")
    other.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": "ok"})

    for server in (shop, other, shop, other):
        server.handle_request("PURGE", "/items/1", {}, b"")

    methods = [span.attributes["http.request.method"] for span in span_exporter.get_finished_spans()]
    assert methods == ["PURGE", "_OTHER", "PURGE", "_OTHER"]


@STABLE
def test_made_up_methods_and_http_versions_take_no_place_among_the_remembered_attribute_sets(
    shop: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader, semconv_mode: str
) -> None:
    from internalhttp.server import ConnectionInfo

    from opentelemetry_ext_internalhttp._instrumented import telemetry_of

    for item in range(REQUESTS):
        connection = ConnectionInfo(protocol_version=f"1.{item + 2}")
        shop.handle_request(f"M{item}", f"/items/{item}", {}, b"", connection=connection)
        shop.handle_request("GET", f"/items/{item}", {}, b"", connection=connection)

    remembered = telemetry_of(shop)._reading._shared_seen  # white box: the bound is the point
    assert len(remembered) == 0
    shop.handle_request("GET", "/items/1", {}, b"", connection=ConnectionInfo(protocol_version="1.1"))
    shop.handle_request("GET", "/items/1", {}, b"")  # no connection: no version, still the usual request
    assert len(remembered) == 2
    assert len(metric_points(metric_reader, DURATION[semconv_mode])) <= 4


@STABLE
@pytest.mark.parametrize("version", [["1.1"], b"1.1", 11])
def test_an_http_version_that_is_not_text_is_recorded_without_one_and_logs_nothing(
    shop: Any, span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture, version: Any
) -> None:
    from internalhttp.server import ConnectionInfo

    for _ in range(2):
        shop.handle_request("GET", "/items/1", {}, b"", connection=ConnectionInfo(protocol_version=version))

    assert [span.name for span in span_exporter.get_finished_spans()] == ["GET /items/<item_id>"] * 2
    assert "network.protocol.version" not in span_exporter.get_finished_spans()[0].attributes
    assert not [record for record in caplog.records if record.name.startswith("opentelemetry_ext")]
