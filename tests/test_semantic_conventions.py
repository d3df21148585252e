"""The server span, as the OpenTelemetry HTTP semantic conventions specify it.

Each test drives the real framework: ``instrument()`` first, then an
``InternalHTTPServer`` built from ``internalhttp.server`` and a call to its
``handle_request``.
"""

from __future__ import annotations

from typing import Any

import internalhttp
import internalhttp.server
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import (
    HTTP_CLIENT_IP,
    HTTP_FLAVOR,
    HTTP_HOST,
    HTTP_METHOD,
    HTTP_SCHEME,
    HTTP_STATUS_CODE,
    HTTP_TARGET,
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
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from opentelemetry.trace import SpanKind, StatusCode
from otel_testing import ALL_MODES, OLD, STABLE, STABLE_MODES, one_server_span

SOCKET = internalhttp.ConnectionInfo(
    client_address="192.0.2.10",
    client_port=50321,
    server_address="10.0.0.5",
    server_port=8443,
    scheme="http",
    protocol_version="1.1",
)
# A reverse proxy on the private network: trusted by default, so its
# forwarding headers are believed (test_trusted_proxies.py has the rules).
PROXY = internalhttp.ConnectionInfo(
    client_address="10.1.2.3",
    client_port=40000,
    server_address="10.0.0.5",
    server_port=8443,
    scheme="http",
    protocol_version="1.1",
)

NOT_A_DICT = ["plain", "text"]


@pytest.fixture
def shop(instrumentor: Any, providers: dict[str, Any], semconv_mode: str) -> Any:
    """An instrumented server with one route per kind of answer."""
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/users/<user_id>", lambda headers, body, user_id: {"status": 200, "body": user_id})
    server.add_route("/users/<user_id>", lambda headers, body, user_id: {"status": 204}, method="FOO")
    server.add_route("/defaults", lambda headers, body: {"body": "no status given"})
    server.add_route("/created", lambda headers, body: {"status": "201", "body": "status as text"})
    server.add_route("/teapot", lambda headers, body: {"status": 418})
    server.add_route("/unavailable", lambda headers, body: {"status": 503})
    server.add_route("/not-a-dict", lambda headers, body: NOT_A_DICT)
    server.add_route("/status-word", lambda headers, body: {"status": "teapot"})
    server.add_route("/status-superscript", lambda headers, body: {"status": "\u00b2"})
    return server


def get(server: Any, path: str, headers: Any = None, **kwargs: Any) -> Any:
    return server.handle_request("GET", path, headers or {}, b"", **kwargs)


# -- kind and name ------------------------------------------------------------


@ALL_MODES
def test_a_request_becomes_exactly_one_span_of_kind_server(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/users/42")

    assert one_server_span(span_exporter).kind is SpanKind.SERVER


@ALL_MODES
def test_the_span_is_named_after_the_method_and_route_template_never_the_raw_path(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/users/42?verbose=1")

    span = one_server_span(span_exporter)
    assert span.name == "GET /users/<user_id>"
    assert span.attributes[HTTP_ROUTE] == "/users/<user_id>"


@ALL_MODES
def test_a_path_no_route_matches_is_named_after_the_method_alone_without_http_route(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    response = get(shop, "/nowhere/42")

    span = one_server_span(span_exporter)
    assert response["status"] == 404
    assert span.name == "GET"
    assert HTTP_ROUTE not in span.attributes


@STABLE
def test_an_unknown_method_is_recorded_as_other_with_the_method_as_sent_kept_aside(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    response = shop.handle_request("BREW", "/users/42", {}, b"")

    span = one_server_span(span_exporter)
    assert response["status"] == 405
    assert span.name == "HTTP /users/<user_id>"
    assert span.attributes[HTTP_REQUEST_METHOD] == "_OTHER"
    assert span.attributes[HTTP_REQUEST_METHOD_ORIGINAL] == "BREW"


@ALL_MODES
def test_a_method_the_servers_own_routes_register_is_known_and_recorded_as_sent(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    # The application bounds the methods of its routes: FOO is not _OTHER here.
    response = shop.handle_request("FOO", "/users/42", {}, b"")

    span = one_server_span(span_exporter)
    assert response == {"status": 204}
    assert span.name == "FOO /users/<user_id>"
    assert span.attributes.get(HTTP_REQUEST_METHOD, span.attributes.get(HTTP_METHOD)) == "FOO"
    assert HTTP_REQUEST_METHOD_ORIGINAL not in span.attributes


@STABLE
def test_a_registered_method_is_known_on_a_path_no_route_matches_too(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    shop.handle_request("FOO", "/nowhere", {}, b"")

    assert one_server_span(span_exporter).attributes[HTTP_REQUEST_METHOD] == "FOO"


@STABLE
def test_an_unknown_method_to_a_path_no_route_matches_is_named_http(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    shop.handle_request("BREW", "/nowhere", {}, b"")

    span = one_server_span(span_exporter)
    assert span.name == "HTTP"
    assert span.attributes[HTTP_REQUEST_METHOD] == "_OTHER"
    assert span.attributes[HTTP_REQUEST_METHOD_ORIGINAL] == "BREW"
    assert HTTP_ROUTE not in span.attributes


@STABLE
def test_a_known_method_is_recorded_without_http_request_method_original(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/users/42")

    span = one_server_span(span_exporter)
    assert span.attributes[HTTP_REQUEST_METHOD] == "GET"
    assert HTTP_REQUEST_METHOD_ORIGINAL not in span.attributes


@STABLE
@pytest.mark.parametrize("method", ["get", "Post", "po\u017ft"])  # LONG S: "po\u017ft".upper() == "POST"
def test_methods_are_case_sensitive_so_a_method_that_is_not_exactly_a_known_one_is_other(
    shop: Any, span_exporter: InMemorySpanExporter, method: str
) -> None:
    # HTTP methods are case-sensitive (RFC 9110, 9.1) and so is this
    # framework's router: the semantic conventions require http.request.method
    # to match a known method exactly, or to be _OTHER.
    response = shop.handle_request(method, "/users/42", {}, b"")

    span = one_server_span(span_exporter)
    assert response["status"] == 405
    assert span.attributes[HTTP_REQUEST_METHOD] == "_OTHER"
    assert span.attributes[HTTP_REQUEST_METHOD_ORIGINAL] == method
    assert span.name == "HTTP /users/<user_id>"


# -- attributes per mode ------------------------------------------------------

FULL_REQUEST_HEADERS = {"Host": "shop.example:8080", "User-Agent": "curl/8.5.0"}

STABLE_ATTRIBUTES = {
    HTTP_REQUEST_METHOD: "GET",
    URL_SCHEME: "http",
    URL_PATH: "/users/42",
    URL_QUERY: "verbose=1&lang=en",
    HTTP_ROUTE: "/users/<user_id>",
    HTTP_RESPONSE_STATUS_CODE: 200,
    SERVER_ADDRESS: "shop.example",
    SERVER_PORT: 8080,
    CLIENT_ADDRESS: "192.0.2.10",
    NETWORK_PEER_ADDRESS: "192.0.2.10",
    NETWORK_PEER_PORT: 50321,
    USER_AGENT_ORIGINAL: "curl/8.5.0",
    NETWORK_PROTOCOL_VERSION: "1.1",
}

OLD_ATTRIBUTES = {
    HTTP_METHOD: "GET",
    HTTP_SCHEME: "http",
    HTTP_TARGET: "/users/42?verbose=1&lang=en",
    HTTP_ROUTE: "/users/<user_id>",
    HTTP_STATUS_CODE: 200,
    HTTP_HOST: "shop.example:8080",
    NET_HOST_NAME: "shop.example",
    NET_HOST_PORT: 8080,
    NET_PEER_IP: "192.0.2.10",
    NET_PEER_PORT: 50321,
    HTTP_USER_AGENT: "curl/8.5.0",
    HTTP_FLAVOR: "1.1",
}


@pytest.mark.parametrize(
    ("semconv_mode", "expected"),
    [
        ("", OLD_ATTRIBUTES),
        ("http", STABLE_ATTRIBUTES),
        ("http/dup", {**OLD_ATTRIBUTES, **STABLE_ATTRIBUTES}),
    ],
    indirect=["semconv_mode"],
    ids=["old-by-default", "stable", "dup-records-both"],
)
def test_each_mode_records_exactly_its_own_conventions_attributes(
    shop: Any, span_exporter: InMemorySpanExporter, expected: dict[str, Any]
) -> None:
    get(shop, "/users/42?verbose=1&lang=en", FULL_REQUEST_HEADERS, connection=SOCKET)

    assert dict(one_server_span(span_exporter).attributes) == expected


@STABLE_MODES
def test_a_request_without_query_records_no_url_query(shop: Any, span_exporter: InMemorySpanExporter) -> None:
    get(shop, "/users/42")

    attributes = one_server_span(span_exporter).attributes
    assert attributes[URL_PATH] == "/users/42"
    assert URL_QUERY not in attributes


@STABLE_MODES
def test_server_address_and_port_come_from_an_ipv6_host_header_without_brackets(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/users/42", {"Host": "[::1]:8080"})

    attributes = one_server_span(span_exporter).attributes
    assert attributes[SERVER_ADDRESS] == "::1"
    assert attributes[SERVER_PORT] == 8080


@OLD
def test_the_old_conventions_keep_the_host_header_as_sent_and_split_net_host(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/users/42", {"Host": "[::1]:8080"})

    attributes = one_server_span(span_exporter).attributes
    assert attributes[HTTP_HOST] == "[::1]:8080"
    assert attributes[NET_HOST_NAME] == "::1"
    assert attributes[NET_HOST_PORT] == 8080


@STABLE
@pytest.mark.parametrize(("scheme", "port"), [("http", 80), ("https", 443)])
def test_a_host_header_without_port_records_the_default_port_of_the_scheme(
    shop: Any, span_exporter: InMemorySpanExporter, scheme: str, port: int
) -> None:
    get(shop, "/users/42", {"Host": "shop.example"}, connection=internalhttp.ConnectionInfo(scheme=scheme))

    attributes = one_server_span(span_exporter).attributes
    assert attributes[SERVER_ADDRESS] == "shop.example"
    assert attributes[SERVER_PORT] == port
    assert attributes[URL_SCHEME] == scheme


@STABLE
def test_without_a_host_header_the_server_address_is_the_local_socket(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/users/42", connection=SOCKET)

    attributes = one_server_span(span_exporter).attributes
    assert attributes[SERVER_ADDRESS] == "10.0.0.5"
    assert attributes[SERVER_PORT] == 8443


@STABLE
def test_an_in_process_request_without_host_or_connection_records_no_server_or_client_address(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/users/42")

    attributes = one_server_span(span_exporter).attributes
    for key in (SERVER_ADDRESS, SERVER_PORT, CLIENT_ADDRESS, CLIENT_PORT, NETWORK_PEER_ADDRESS):
        assert key not in attributes


@STABLE
def test_client_address_comes_from_the_socket_when_no_proxy_header_is_present(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/users/42", connection=SOCKET)

    attributes = one_server_span(span_exporter).attributes
    assert attributes[CLIENT_ADDRESS] == "192.0.2.10"
    assert CLIENT_PORT not in attributes  # opt-in: see test_opt_in


@STABLE
@pytest.mark.parametrize(
    ("headers", "client"),
    [
        ({"X-Forwarded-For": "203.0.113.9, 10.0.0.9"}, "203.0.113.9"),
        ({"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"),
        # Not the family written by default: a client's own Forwarded changes nothing.
        ({"Forwarded": "for=198.51.100.7", "X-Forwarded-For": "203.0.113.9"}, "203.0.113.9"),
    ],
    ids=["through-two-proxies", "through-one-proxy", "forwarded-ignored"],
)
def test_client_address_is_the_original_client_named_by_the_proxy_headers(
    shop: Any, span_exporter: InMemorySpanExporter, headers: dict[str, str], client: str
) -> None:
    get(shop, "/users/42", headers, connection=PROXY)

    attributes = one_server_span(span_exporter).attributes
    assert attributes[CLIENT_ADDRESS] == client
    # The proxy's socket stays the network peer, and its port is not the client's.
    assert attributes[NETWORK_PEER_ADDRESS] == "10.1.2.3"
    assert CLIENT_PORT not in attributes


@OLD
def test_the_old_conventions_record_the_forwarded_client_as_http_client_ip(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/users/42", {"X-Forwarded-For": "203.0.113.9, 10.0.0.9"}, connection=PROXY)

    attributes = one_server_span(span_exporter).attributes
    assert attributes[HTTP_CLIENT_IP] == "203.0.113.9"
    assert attributes[NET_PEER_IP] == "10.1.2.3"


@STABLE
def test_url_scheme_is_the_original_one_named_by_x_forwarded_proto(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/users/42", {"X-Forwarded-Proto": "https", "Host": "shop.example"}, connection=PROXY)

    attributes = one_server_span(span_exporter).attributes
    assert attributes[URL_SCHEME] == "https"
    assert attributes[SERVER_PORT] == 443


@STABLE
@pytest.mark.parametrize(
    ("headers", "scheme"),
    [
        ({"X-Forwarded-Proto": "HTTPS"}, "https"),
        ({"X-Forwarded-Proto": "https, http"}, "http"),  # one value per hop: our peer wrote the last
        ({"X-Forwarded-Proto": "gopher"}, "http"),  # not a scheme of HTTP: the connection's instead
        ({"X-Forwarded-Proto": "javascript:alert(1)"}, "http"),
    ],
)
def test_url_scheme_from_proxy_headers_is_only_ever_http_or_https(
    shop: Any, span_exporter: InMemorySpanExporter, headers: dict[str, str], scheme: str
) -> None:
    get(shop, "/users/42", headers, connection=PROXY)

    assert one_server_span(span_exporter).attributes[URL_SCHEME] == scheme


@STABLE
def test_user_agent_and_protocol_version_are_recorded_as_sent(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    connection = internalhttp.ConnectionInfo(protocol_version="1.0")
    get(shop, "/users/42", {"user-agent": "Mozilla/5.0 (X11; Linux x86_64)"}, connection=connection)

    attributes = one_server_span(span_exporter).attributes
    assert attributes[USER_AGENT_ORIGINAL] == "Mozilla/5.0 (X11; Linux x86_64)"
    assert attributes[NETWORK_PROTOCOL_VERSION] == "1.0"


# -- schema URL ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("semconv_mode", "schema_url"),
    [
        ("", "https://opentelemetry.io/schemas/1.11.0"),
        ("http", "https://opentelemetry.io/schemas/1.44.0"),
        ("http/dup", "https://opentelemetry.io/schemas/1.44.0"),
    ],
    indirect=["semconv_mode"],
)
def test_the_tracer_and_meter_declare_the_schema_url_of_the_conventions_they_follow(
    shop: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader, schema_url: str
) -> None:
    get(shop, "/users/42")

    assert one_server_span(span_exporter).instrumentation_scope.schema_url == schema_url
    data = metric_reader.get_metrics_data()
    scopes = [scope.scope for resource in data.resource_metrics for scope in resource.scope_metrics]
    assert [scope.schema_url for scope in scopes] == [schema_url]


# -- status -------------------------------------------------------------------


@ALL_MODES
@pytest.mark.parametrize(
    ("path", "status_code"),
    [("/users/42", StatusCode.UNSET), ("/defaults", StatusCode.UNSET), ("/teapot", StatusCode.UNSET)],
    ids=["2xx", "default-200", "4xx"],
)
def test_a_2xx_or_4xx_response_leaves_the_server_span_status_unset(
    shop: Any, span_exporter: InMemorySpanExporter, path: str, status_code: StatusCode
) -> None:
    get(shop, path)

    assert one_server_span(span_exporter).status.status_code is status_code


@ALL_MODES
def test_a_404_leaves_the_server_span_status_unset(shop: Any, span_exporter: InMemorySpanExporter) -> None:
    get(shop, "/nowhere")

    assert one_server_span(span_exporter).status.status_code is StatusCode.UNSET


@ALL_MODES
def test_a_5xx_response_sets_the_span_status_to_error(shop: Any, span_exporter: InMemorySpanExporter) -> None:
    get(shop, "/unavailable")

    assert one_server_span(span_exporter).status.status_code is StatusCode.ERROR


@STABLE
def test_a_5xx_response_records_the_status_code_as_error_type(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(shop, "/unavailable")

    attributes = one_server_span(span_exporter).attributes
    assert attributes[HTTP_RESPONSE_STATUS_CODE] == 503
    assert attributes[ERROR_TYPE] == "503"


@STABLE
def test_a_4xx_response_records_no_error_type(shop: Any, span_exporter: InMemorySpanExporter) -> None:
    get(shop, "/teapot")

    attributes = one_server_span(span_exporter).attributes
    assert attributes[HTTP_RESPONSE_STATUS_CODE] == 418
    assert ERROR_TYPE not in attributes


@ALL_MODES
def test_a_response_without_status_is_recorded_as_200(shop: Any, span_exporter: InMemorySpanExporter) -> None:
    get(shop, "/defaults")

    attributes = one_server_span(span_exporter).attributes
    assert attributes.get(HTTP_RESPONSE_STATUS_CODE, attributes.get(HTTP_STATUS_CODE)) == 200


@STABLE
def test_a_status_given_as_decimal_text_is_recorded_as_that_integer(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    response = get(shop, "/created")

    span = one_server_span(span_exporter)
    assert response == {"status": "201", "body": "status as text"}
    assert span.attributes[HTTP_RESPONSE_STATUS_CODE] == 201
    assert span.status.status_code is StatusCode.UNSET
