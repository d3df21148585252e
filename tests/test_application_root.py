"""Where the application is mounted, and the socket a request came on, as the client and the server see them.

The path prefix (a WSGI ``SCRIPT_NAME``, a trusted ``X-Forwarded-Prefix``) is
part of ``url.path`` and ``http.route``; routing is unchanged. Local-address
opt-ins come from the accepted socket only.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from typing import Any
from wsgiref.util import setup_testing_defaults

import internalhttp
import pytest
from internalhttp.server import ConnectionInfo, InternalHTTPServer
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_TARGET
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.semconv.attributes.network_attributes import (
    NETWORK_LOCAL_ADDRESS,
    NETWORK_LOCAL_PORT,
    NETWORK_TRANSPORT,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH
from otel_testing import ALL_MODES, OLD, STABLE, one_server_span, point_attributes

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

NEW_DURATION = "http.server.request.duration"
OLD_DURATION = "http.server.duration"
PROXY = "10.1.2.3"


@pytest.fixture
def make_app(providers: dict[str, Any]) -> Callable[..., InternalHTTPServer]:
    def make(**options: Any) -> InternalHTTPServer:
        server = InternalHTTPServer("shop")
        server.add_route("/users/<user_id>", lambda headers, body, user_id: user_id)
        InternalHTTPInstrumentor.instrument_app(server, **providers, **options)
        return server

    return make


def wsgi_get(server: InternalHTTPServer, script_name: str, path_info: str, **environ: Any) -> list[str]:
    request: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "wsgi.input": io.BytesIO(b""),
        **environ,
    }
    setup_testing_defaults(request)
    statuses: list[str] = []
    internalhttp.make_wsgi_app(server)(request, lambda status, headers: statuses.append(status))
    return statuses


@ALL_MODES
def test_a_wsgi_script_name_is_part_of_the_route_and_the_span_name(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    statuses = wsgi_get(make_app(), "/api", "/users/42")

    span = one_server_span(span_exporter)
    assert statuses == ["200 OK"]  # routed on the path below the root, as before
    assert (span.name, span.attributes[HTTP_ROUTE]) == ("GET /api/users/<user_id>", "/api/users/<user_id>")


@STABLE
def test_a_wsgi_script_name_is_part_of_url_path(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    wsgi_get(make_app(), "/api/", "/users/42")

    assert one_server_span(span_exporter).attributes[URL_PATH] == "/api/users/42"


@OLD
def test_a_wsgi_script_name_is_part_of_the_old_target(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    wsgi_get(make_app(), "/api", "/users/42", QUERY_STRING="page=2")

    assert one_server_span(span_exporter).attributes[HTTP_TARGET] == "/api/users/42?page=2"


@STABLE
def test_the_application_root_is_on_the_duration_metrics_route(
    make_app: Any, metric_reader: InMemoryMetricReader
) -> None:
    wsgi_get(make_app(), "/api", "/users/42")

    assert [point[HTTP_ROUTE] for point in point_attributes(metric_reader, NEW_DURATION)] == [
        "/api/users/<user_id>"
    ]


@ALL_MODES
def test_a_trusted_x_forwarded_prefix_comes_before_the_application_root(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    behind_proxy = ConnectionInfo(client_address=PROXY, root_path="/v2")

    make_app().handle_request(
        "GET", "/users/42", {"X-Forwarded-Prefix": "/shop/"}, b"", connection=behind_proxy
    )

    span = one_server_span(span_exporter)
    assert span.attributes[HTTP_ROUTE] == "/shop/v2/users/<user_id>"


@STABLE
def test_an_untrusted_peers_x_forwarded_prefix_changes_nothing(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    public = ConnectionInfo(client_address="203.0.113.9")

    make_app().handle_request("GET", "/users/42", {"X-Forwarded-Prefix": "/evil"}, b"", connection=public)

    attributes = one_server_span(span_exporter).attributes
    assert (attributes[URL_PATH], attributes[HTTP_ROUTE]) == ("/users/42", "/users/<user_id>")


@STABLE
def test_the_routes_a_proxy_passes_prefixes_through_for_stay_bounded(
    make_app: Any, metric_reader: InMemoryMetricReader
) -> None:
    server = make_app()
    behind_proxy = ConnectionInfo(client_address=PROXY)

    for index in range(200):
        server.handle_request(
            "GET", "/users/1", {"X-Forwarded-Prefix": f"/p{index}"}, b"", connection=behind_proxy
        )

    routes = {point[HTTP_ROUTE] for point in point_attributes(metric_reader, NEW_DURATION)}
    assert len(routes) == 17  # 16 distinct roots, then the route without one
    assert "/users/<user_id>" in routes


@STABLE
def test_a_404_has_no_route_whatever_the_application_root(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    wsgi_get(make_app(), "/api", "/nowhere")

    span = one_server_span(span_exporter)
    assert (span.name, HTTP_ROUTE in span.attributes) == ("GET", False)
    assert span.attributes[URL_PATH] == "/api/nowhere"


# -- the local address --------------------------------------------------------------------


@STABLE
def test_the_local_address_opt_ins_come_from_the_socket_gunicorn_hands_over(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    with listener, socket.create_connection(listener.getsockname()) as client:
        accepted, _ = listener.accept()
        with accepted:
            # gunicorn fills SERVER_NAME from the client's Host; the socket tells the truth.
            wsgi_get(
                make_app(opt_in="network.local.address,network.local.port,network.transport"),
                "",
                "/users/42",
                SERVER_NAME="evil.example",
                HTTP_HOST="evil.example",
                **{"gunicorn.socket": accepted},
            )
        del client

    attributes = one_server_span(span_exporter).attributes
    assert attributes[NETWORK_LOCAL_ADDRESS] == "127.0.0.1"
    assert attributes[NETWORK_LOCAL_PORT] == port
    assert attributes[NETWORK_TRANSPORT] == "tcp"


@STABLE
def test_a_unix_socket_is_the_transport_and_its_path_the_local_address(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    unix = ConnectionInfo(server_address="/run/shop.sock", transport="unix")

    make_app(opt_in="all").handle_request("GET", "/users/42", {"Host": "evil.example"}, b"", connection=unix)

    attributes = one_server_span(span_exporter).attributes
    assert (attributes[NETWORK_TRANSPORT], attributes[NETWORK_LOCAL_ADDRESS]) == ("unix", "/run/shop.sock")
    assert NETWORK_LOCAL_PORT not in attributes


@STABLE
def test_no_client_host_reaches_the_metrics_server_address_on_a_unix_socket(
    make_app: Any, metric_reader: InMemoryMetricReader
) -> None:
    server = make_app(opt_in="server.address,server.port")
    unix = ConnectionInfo(server_address="/run/shop.sock", transport="unix")

    for index in range(40):
        server.handle_request("GET", "/users/42", {"Host": f"h{index}.example"}, b"", connection=unix)

    addresses = {point.get(SERVER_ADDRESS) for point in point_attributes(metric_reader, NEW_DURATION)}
    ports = {point.get(SERVER_PORT) for point in point_attributes(metric_reader, NEW_DURATION)}
    assert (addresses, ports) == ({"/run/shop.sock"}, {None})
