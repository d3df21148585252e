"""The HTTP server metrics: request duration, active requests, bounded attributes."""

from __future__ import annotations

import time
from typing import Any

import internalhttp
import internalhttp.server
import pytest
from opentelemetry.instrumentation._semconv import HTTP_DURATION_HISTOGRAM_BUCKETS_NEW
from opentelemetry.sdk.metrics import AlwaysOnExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.semconv._incubating.attributes.http_attributes import (
    HTTP_CLIENT_IP,
    HTTP_FLAVOR,
    HTTP_HOST,
    HTTP_METHOD,
    HTTP_SCHEME,
    HTTP_STATUS_CODE,
    HTTP_TARGET,
    HTTP_URL,
    HTTP_USER_AGENT,
)
from opentelemetry.semconv._incubating.attributes.net_attributes import (
    NET_HOST_NAME,
    NET_HOST_PORT,
    NET_PEER_IP,
    NET_PEER_PORT,
)
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS, CLIENT_PORT
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.network_attributes import (
    NETWORK_PEER_ADDRESS,
    NETWORK_PEER_PORT,
    NETWORK_PROTOCOL_VERSION,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL, URL_PATH, URL_QUERY, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from otel_testing import (
    ALL_MODES,
    BEHIND_PROXY,
    DUP,
    OLD,
    OLD_AND_STABLE,
    STABLE,
    metric_points,
    one_server_span,
    point_attributes,
)

NEW_DURATION = "http.server.request.duration"
OLD_DURATION = "http.server.duration"
ACTIVE = "http.server.active_requests"


SOCKET = internalhttp.ConnectionInfo(
    client_address="192.0.2.10",
    client_port=50321,
    server_address="10.0.0.5",
    server_port=8080,
    protocol_version="1.1",
)
HEADERS = {"Host": "shop.example:8080", "User-Agent": "curl/8.5.0"}


class Inventory:
    class OutOfStock(Exception):
        """Raised by a handler; its __qualname__ is ``Inventory.OutOfStock``."""


def metrics_by_name(reader: InMemoryMetricReader) -> dict[str, Metric]:
    data = reader.get_metrics_data()
    if data is None:
        return {}
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def only_point(reader: InMemoryMetricReader, name: str) -> Any:
    points = metric_points(reader, name)
    assert len(points) == 1, f"expected one {name} point, got {[dict(p.attributes) for p in points]}"
    return points[0]


@pytest.fixture
def seen_in_handler() -> dict[str, Any]:
    """What a handler observed while it ran."""
    return {}


@pytest.fixture
def shop(
    instrumentor: Any,
    providers: dict[str, Any],
    semconv_mode: str,
    metric_reader: InMemoryMetricReader,
    seen_in_handler: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> Any:
    # Opt-in in the stable conventions; these tests look at it in every mode.
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_OPT_IN", "http.server.active_requests")
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")

    def get_user(headers: Any, body: Any, user_id: str) -> dict[str, Any]:
        return {"status": 200, "body": user_id}

    def slow(headers: Any, body: Any) -> dict[str, Any]:
        time.sleep(0.03)
        return {"status": 200}

    def out_of_stock(headers: Any, body: Any) -> dict[str, Any]:
        raise Inventory.OutOfStock("sold out")

    def counting(headers: Any, body: Any) -> dict[str, Any]:
        seen_in_handler["active"] = [
            (p.value, dict(p.attributes)) for p in metric_points(metric_reader, ACTIVE)
        ]
        return {"status": 200}

    server.add_route("/users/<user_id>", get_user)
    server.add_route("/slow", slow)
    server.add_route("/out-of-stock", out_of_stock)
    server.add_route("/broken", lambda headers, body: {"status": 500})
    server.add_route("/counting", counting)
    return server


# -- which histogram, in which unit ------------------------------------------


@STABLE
def test_the_stable_conventions_record_request_duration_in_seconds_with_the_semconv_buckets(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    shop.handle_request("GET", "/users/42", HEADERS, b"")

    metrics = metrics_by_name(metric_reader)
    assert OLD_DURATION not in metrics
    duration = metrics[NEW_DURATION]
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert point.count == 1
    assert tuple(point.explicit_bounds) == tuple(HTTP_DURATION_HISTOGRAM_BUCKETS_NEW)


@OLD
def test_the_old_conventions_record_http_server_duration_in_milliseconds_by_default(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    shop.handle_request("GET", "/users/42", HEADERS, b"")

    metrics = metrics_by_name(metric_reader)
    assert NEW_DURATION not in metrics
    assert metrics[OLD_DURATION].unit == "ms"
    (point,) = metrics[OLD_DURATION].data.data_points
    assert point.count == 1


@DUP
def test_the_dup_mode_records_both_histograms_for_the_same_request(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    shop.handle_request("GET", "/slow", HEADERS, b"")

    new = only_point(metric_reader, NEW_DURATION)
    old = only_point(metric_reader, OLD_DURATION)
    assert (new.count, old.count) == (1, 1)
    assert old.sum == pytest.approx(new.sum * 1000.0)


@DUP
def test_the_duration_covers_the_whole_handler(shop: Any, metric_reader: InMemoryMetricReader) -> None:
    shop.handle_request("GET", "/slow", HEADERS, b"")

    assert only_point(metric_reader, NEW_DURATION).sum >= 0.03
    assert only_point(metric_reader, OLD_DURATION).sum >= 30.0


# -- duration attributes -----------------------------------------------------


@STABLE
def test_the_stable_duration_carries_method_scheme_route_status_and_protocol_version(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    shop.handle_request("GET", "/users/42?verbose=1", HEADERS, b"", connection=SOCKET)

    assert point_attributes(metric_reader, NEW_DURATION) == [
        {
            HTTP_REQUEST_METHOD: "GET",
            URL_SCHEME: "http",
            HTTP_ROUTE: "/users/<user_id>",
            HTTP_RESPONSE_STATUS_CODE: 200,
            NETWORK_PROTOCOL_VERSION: "1.1",
        }
    ]


@OLD
def test_the_old_duration_carries_method_scheme_status_flavor_and_route_but_no_client_chosen_host(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    shop.handle_request("GET", "/users/42?verbose=1", HEADERS, b"", connection=SOCKET)

    # The Host header is the client's to choose: on the span, never on a metric.
    assert point_attributes(metric_reader, OLD_DURATION) == [
        {
            HTTP_METHOD: "GET",
            HTTP_SCHEME: "http",
            HTTP_STATUS_CODE: 200,
            HTTP_FLAVOR: "1.1",
            HTTP_ROUTE: "/users/<user_id>",
        }
    ]


UNBOUNDED_KEYS = {
    URL_PATH,
    URL_QUERY,
    URL_FULL,
    HTTP_TARGET,
    HTTP_URL,
    CLIENT_ADDRESS,
    CLIENT_PORT,
    NETWORK_PEER_ADDRESS,
    NETWORK_PEER_PORT,
    NET_PEER_IP,
    NET_PEER_PORT,
    HTTP_CLIENT_IP,
    USER_AGENT_ORIGINAL,
    HTTP_USER_AGENT,
    HTTP_REQUEST_METHOD_ORIGINAL,
    # The host is the client's to choose (Host, X-Forwarded-Host, Forwarded).
    HTTP_HOST,
    NET_HOST_NAME,
    NET_HOST_PORT,
    SERVER_ADDRESS,
    SERVER_PORT,
}


@ALL_MODES
def test_metric_attributes_never_hold_the_path_the_query_the_host_or_the_client(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    for user in range(5):
        connection = internalhttp.ConnectionInfo(client_address=f"192.0.2.{user}", client_port=40000 + user)
        headers = {
            **HEADERS,
            "Host": f"h{user}.example:{8000 + user}",
            "User-Agent": f"agent/{user}",
            "X-Forwarded-For": f"203.0.113.{user}",
        }
        shop.handle_request("GET", f"/users/u{user}?token=t{user}", headers, b"", connection=connection)

    for name in (NEW_DURATION, OLD_DURATION, ACTIVE):
        for attributes in point_attributes(metric_reader, name):
            assert not UNBOUNDED_KEYS & attributes.keys(), name
            for value in attributes.values():
                assert "/users/u" not in str(value)
                assert "token" not in str(value)
    # Five paths, five clients, one route: one duration stream per histogram.
    for name in (NEW_DURATION, OLD_DURATION):
        assert [point.count for point in metric_points(metric_reader, name)] in ([], [5])


@STABLE
def test_unknown_methods_share_one_other_stream_instead_of_one_stream_each(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    shop.handle_request("BREW", "/users/1", {}, b"")
    shop.handle_request("BAR", "/users/2", {}, b"")

    point = only_point(metric_reader, NEW_DURATION)
    assert point.count == 2
    assert (point.attributes[HTTP_REQUEST_METHOD], point.attributes[HTTP_RESPONSE_STATUS_CODE]) == (
        "_OTHER",
        405,
    )


@STABLE
def test_the_stable_duration_has_one_stream_whatever_host_header_clients_send(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    for host in ("a.example", "b.example:81", "[::1]:8080"):
        shop.handle_request("GET", "/users/1", {"Host": host}, b"")

    assert only_point(metric_reader, NEW_DURATION).count == 3


@STABLE
def test_the_scheme_on_metrics_stays_bounded_whatever_x_forwarded_proto_a_trusted_proxy_sends(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    # "https, http": the proxy that is our peer appended "http" (the last item).
    for proto in ("https", "HTTPS", "https, http", "gopher", "x" * 50, "", "javascript:1"):
        shop.handle_request("GET", "/users/1", {"X-Forwarded-Proto": proto}, b"", connection=BEHIND_PROXY)

    schemes = {
        point.attributes[URL_SCHEME]: point.count for point in metric_points(metric_reader, NEW_DURATION)
    }
    assert schemes == {"https": 2, "http": 5}
    assert {point.attributes[URL_SCHEME] for point in metric_points(metric_reader, ACTIVE)} == {
        "https",
        "http",
    }


# -- errors ------------------------------------------------------------------


@STABLE
def test_a_handler_exception_is_recorded_on_the_duration_as_error_type_with_the_500_sent(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    with pytest.raises(Inventory.OutOfStock):
        shop.handle_request("GET", "/out-of-stock", {}, b"")

    attributes = only_point(metric_reader, NEW_DURATION).attributes
    assert attributes[ERROR_TYPE] == f"{Inventory.__module__}.Inventory.OutOfStock"
    assert attributes[HTTP_RESPONSE_STATUS_CODE] == 500


@STABLE
def test_a_5xx_response_is_recorded_on_the_duration_with_its_status_code_as_error_type(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    shop.handle_request("GET", "/broken", {}, b"")

    attributes = only_point(metric_reader, NEW_DURATION).attributes
    assert attributes[HTTP_RESPONSE_STATUS_CODE] == 500
    assert attributes[ERROR_TYPE] == "500"


@STABLE
def test_a_successful_response_carries_no_error_type(shop: Any, metric_reader: InMemoryMetricReader) -> None:
    shop.handle_request("GET", "/users/1", {}, b"")

    assert ERROR_TYPE not in only_point(metric_reader, NEW_DURATION).attributes


@OLD
def test_the_old_conventions_time_a_request_whose_handler_raised_with_the_500_sent(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    with pytest.raises(Inventory.OutOfStock):
        shop.handle_request("GET", "/out-of-stock", {}, b"")

    point = only_point(metric_reader, OLD_DURATION)
    assert point.count == 1
    # The old conventions have no error.type: the 500 is what marks the failure.
    assert point.attributes[HTTP_STATUS_CODE] == 500
    assert ERROR_TYPE not in point.attributes


@STABLE
def test_a_request_whose_span_is_sampled_out_is_still_measured_with_its_status_and_error_type(
    instrumentor: Any, meter_provider: Any, metric_reader: InMemoryMetricReader
) -> None:
    instrumentor.instrument(tracer_provider=TracerProvider(sampler=ALWAYS_OFF), meter_provider=meter_provider)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/broken", lambda headers, body: {"status": 502})

    server.handle_request("GET", "/broken", {}, b"")

    attributes = only_point(metric_reader, NEW_DURATION).attributes
    assert (attributes[HTTP_RESPONSE_STATUS_CODE], attributes[ERROR_TYPE]) == (502, "502")
    assert attributes[HTTP_ROUTE] == "/broken"


@DUP
def test_each_of_many_statuses_is_recorded_with_its_own_status_in_both_histograms(
    instrumentor: Any, providers: dict[str, Any], metric_reader: InMemoryMetricReader
) -> None:
    # More statuses than the per-outcome attribute cache keeps (64): each
    # request's points carry its own status, cached or not.
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/status/<code>", lambda headers, body, code: {"status": int(code)})
    statuses = range(200, 300)

    for status in statuses:
        server.handle_request("GET", f"/status/{status}", {}, b"")

    new_points = metric_points(metric_reader, NEW_DURATION)
    old_points = metric_points(metric_reader, OLD_DURATION)
    new = {point.attributes[HTTP_RESPONSE_STATUS_CODE]: point.count for point in new_points}
    old = {point.attributes[HTTP_STATUS_CODE]: point.count for point in old_points}
    assert new == old == dict.fromkeys(statuses, 1)


# -- active requests ----------------------------------------------------------


@pytest.mark.parametrize(
    ("semconv_mode", "expected_attributes"),
    [
        ("http", {HTTP_REQUEST_METHOD: "GET", URL_SCHEME: "http"}),
        ("", {HTTP_METHOD: "GET", HTTP_SCHEME: "http", HTTP_FLAVOR: "1.1"}),
    ],
    indirect=["semconv_mode"],
    ids=["stable", "old"],
)
def test_active_requests_is_one_while_the_handler_runs_and_zero_once_it_returned(
    shop: Any,
    metric_reader: InMemoryMetricReader,
    seen_in_handler: dict[str, Any],
    expected_attributes: dict[str, Any],
) -> None:
    shop.handle_request("GET", "/counting", HEADERS, b"", connection=SOCKET)

    assert seen_in_handler["active"] == [(1, expected_attributes)]
    assert [(p.value, dict(p.attributes)) for p in metric_points(metric_reader, ACTIVE)] == [
        (0, expected_attributes)
    ]


@ALL_MODES
def test_active_requests_goes_back_to_zero_after_a_handler_exception(
    shop: Any, metric_reader: InMemoryMetricReader
) -> None:
    with pytest.raises(Inventory.OutOfStock):
        shop.handle_request("GET", "/out-of-stock", {}, b"")

    assert [point.value for point in metric_points(metric_reader, ACTIVE)] == [0]


# -- recorded inside the span --------------------------------------------------


@pytest.fixture
def exemplar_reader() -> Any:
    """A reader on a MeterProvider that keeps an exemplar of every measurement."""
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], exemplar_filter=AlwaysOnExemplarFilter())
    yield reader, meter_provider
    meter_provider.shutdown()


@OLD_AND_STABLE
def test_the_duration_is_recorded_inside_the_span_so_its_exemplar_names_the_span(
    instrumentor: Any,
    tracer_provider: Any,
    span_exporter: InMemorySpanExporter,
    semconv_mode: str,
    exemplar_reader: Any,
) -> None:
    reader, meter_provider = exemplar_reader
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/users/<user_id>", lambda headers, body, user_id: {"status": 200})

    server.handle_request("GET", "/users/7", {}, b"")

    span_context = one_server_span(span_exporter).context
    point = only_point(reader, NEW_DURATION if semconv_mode else OLD_DURATION)
    assert [(e.trace_id, e.span_id) for e in point.exemplars] == [
        (span_context.trace_id, span_context.span_id)
    ]
