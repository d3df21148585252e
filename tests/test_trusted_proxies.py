"""Forwarding headers are believed only from trusted proxies, and only as far as trusted hops wrote them.

Driven through ``handle_request`` with the connection a serving layer would
report; tests/test_behind_nginx.py checks the same rules behind a real nginx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from internalhttp.server import ConnectionInfo, InternalHTTPServer
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import (
    HTTP_CLIENT_IP,
    HTTP_HOST,
    HTTP_SCHEME,
)
from opentelemetry.semconv._incubating.attributes.net_attributes import (
    NET_HOST_NAME,
    NET_HOST_PORT,
    NET_PEER_IP,
)
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PEER_ADDRESS
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_SCHEME
from otel_testing import INSTRUMENTATION_LOGGER, OLD, STABLE, STABLE_MODES, one_server_span, point_attributes

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor
from opentelemetry_ext_internalhttp._proxies import ProxyRules, TrustedProxies

NEW_DURATION = "http.server.request.duration"
PUBLIC_CLIENT = "203.0.113.9"  # documentation range: never a trusted proxy by default
PROXY = "10.1.2.3"  # private range: trusted by default


def connection(peer: str | None = PROXY, **fields: Any) -> ConnectionInfo:
    return ConnectionInfo(client_address=peer, client_port=40000, protocol_version="1.1", **fields)


@pytest.fixture
def make_app(providers: dict[str, Any]) -> Callable[..., InternalHTTPServer]:
    """An instrument_app'ed server with one route, configured by keyword arguments."""

    def make(**options: Any) -> InternalHTTPServer:
        server = InternalHTTPServer("shop")
        server.add_route("/users/<user_id>", lambda headers, body, user_id: user_id)
        InternalHTTPInstrumentor.instrument_app(server, **providers, **options)
        return server

    return make


def request(server: InternalHTTPServer, headers: dict[str, str], peer: str | None = PROXY) -> Any:
    server.handle_request("GET", "/users/42", headers, b"", connection=connection(peer))
    return None


# -- who is the client ---------------------------------------------------------------


@STABLE
def test_the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app()

    # The client forged 1.2.3.4; nginx appended the real client; a second proxy the first.
    request(server, {"X-Forwarded-For": f"1.2.3.4, {PUBLIC_CLIENT}, 10.0.0.8"})

    attributes = one_server_span(span_exporter).attributes
    assert attributes[CLIENT_ADDRESS] == PUBLIC_CLIENT
    assert attributes[NETWORK_PEER_ADDRESS] == PROXY


@STABLE
def test_when_every_address_is_a_trusted_proxy_the_leftmost_is_the_client(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    request(make_app(), {"X-Forwarded-For": "192.168.1.20, 10.0.0.8"})

    assert one_server_span(span_exporter).attributes[CLIENT_ADDRESS] == "192.168.1.20"


@STABLE
def test_forwarding_headers_from_an_untrusted_peer_are_ignored(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    headers = {
        "Host": "shop.example",
        "X-Forwarded-For": "1.2.3.4",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Port": "9443",
    }

    request(make_app(), headers, peer=PUBLIC_CLIENT)

    attributes = one_server_span(span_exporter).attributes
    assert attributes[CLIENT_ADDRESS] == PUBLIC_CLIENT
    assert (attributes[URL_SCHEME], attributes[SERVER_ADDRESS], attributes[SERVER_PORT]) == (
        "http",
        "shop.example",
        80,
    )


@OLD
def test_the_old_conventions_record_a_forged_client_nowhere(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    request(make_app(), {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"}, peer=PUBLIC_CLIENT)

    attributes = one_server_span(span_exporter).attributes
    assert HTTP_CLIENT_IP not in attributes
    assert attributes[NET_PEER_IP] == PUBLIC_CLIENT
    assert attributes[HTTP_SCHEME] == "http"


@STABLE
def test_an_in_process_request_with_no_peer_believes_no_forwarding_header(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    make_app().handle_request("GET", "/users/42", {"X-Forwarded-For": "1.2.3.4"}, b"")

    assert CLIENT_ADDRESS not in one_server_span(span_exporter).attributes


@STABLE
@pytest.mark.parametrize("unknown", ["unknown", "_hidden", "not-an-address", "999.1.1.1"])
def test_a_hop_that_names_no_address_stops_the_walk_and_is_not_recorded(
    make_app: Any, span_exporter: InMemorySpanExporter, unknown: str
) -> None:
    request(make_app(forwarded_headers="forwarded"), {"Forwarded": f"for=1.2.3.4, for={unknown}"})

    attributes = one_server_span(span_exporter).attributes
    assert CLIENT_ADDRESS not in attributes
    assert attributes[NETWORK_PEER_ADDRESS] == PROXY


@OLD
def test_the_old_conventions_record_no_http_client_ip_for_an_unknown_client(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    request(make_app(forwarded_headers="forwarded"), {"Forwarded": "for=unknown"})

    assert HTTP_CLIENT_IP not in one_server_span(span_exporter).attributes


@STABLE
@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ('for="203.0.113.9:4711"', "203.0.113.9"),
        ('for="[2001:db8::1]";proto=https, for="[fd00::5]:80"', "2001:db8::1"),
        ('For="203.0.113.9";Proto=HTTPS', "203.0.113.9"),
    ],
    ids=["ipv6-with-port", "ipv4-with-port", "ipv6-via-private-ipv6-proxy", "names-any-case"],
)
def test_forwarded_nodes_are_read_with_quotes_brackets_and_ports(
    make_app: Any, span_exporter: InMemorySpanExporter, forwarded: str, client: str
) -> None:
    request(make_app(forwarded_headers="forwarded"), {"Forwarded": forwarded})

    assert one_server_span(span_exporter).attributes[CLIENT_ADDRESS] == client


# -- which header family ---------------------------------------------------------------


@STABLE
def test_by_default_a_client_sent_forwarded_header_changes_nothing(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    headers = {
        "Forwarded": "for=6.6.6.6;proto=https;host=evil.example",
        "X-Forwarded-For": PUBLIC_CLIENT,
        "X-Forwarded-Proto": "http",
        "Host": "shop.example",
    }

    request(make_app(), headers)

    attributes = one_server_span(span_exporter).attributes
    assert (attributes[CLIENT_ADDRESS], attributes[URL_SCHEME], attributes[SERVER_ADDRESS]) == (
        PUBLIC_CLIENT,
        "http",
        "shop.example",
    )


@STABLE
def test_with_the_forwarded_family_x_forwarded_headers_change_nothing(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    headers = {"Forwarded": f"for={PUBLIC_CLIENT};proto=https", "X-Forwarded-For": "6.6.6.6"}

    request(make_app(forwarded_headers="forwarded"), headers)

    attributes = one_server_span(span_exporter).attributes
    assert (attributes[CLIENT_ADDRESS], attributes[URL_SCHEME]) == (PUBLIC_CLIENT, "https")


@STABLE
def test_with_both_families_forwarded_comes_first_and_x_forwarded_fills_in(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    headers = {
        "Forwarded": f"for={PUBLIC_CLIENT};proto=https",
        "X-Forwarded-For": "198.51.100.7",
        "X-Forwarded-Host": "shop.example",
    }

    request(make_app(forwarded_headers="both"), headers)

    attributes = one_server_span(span_exporter).attributes
    assert (attributes[CLIENT_ADDRESS], attributes[URL_SCHEME], attributes[SERVER_ADDRESS]) == (
        PUBLIC_CLIENT,
        "https",
        "shop.example",
    )


@STABLE
def test_one_forged_element_before_an_appending_proxy_does_not_change_scheme_or_host(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    # The client sent its own element; the proxy appended the truth (RFC 7239, section 4).
    forwarded = f"for=6.6.6.6;proto=http;host=evil.example, for={PUBLIC_CLIENT};proto=https;host=shop.example"

    request(make_app(forwarded_headers="forwarded"), {"Forwarded": forwarded})

    attributes = one_server_span(span_exporter).attributes
    assert (attributes[CLIENT_ADDRESS], attributes[URL_SCHEME]) == (PUBLIC_CLIENT, "https")
    assert (attributes[SERVER_ADDRESS], attributes[SERVER_PORT]) == ("shop.example", 443)


# -- what the client addressed ------------------------------------------------------------


@STABLE
def test_x_forwarded_port_sets_the_server_port(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    headers = {"X-Forwarded-Host": "shop.example", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "8443"}

    request(make_app(), headers)

    attributes = one_server_span(span_exporter).attributes
    assert (attributes[SERVER_ADDRESS], attributes[SERVER_PORT]) == ("shop.example", 8443)


@OLD
def test_the_old_conventions_name_the_forwarded_host(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    headers = {"Host": "10.0.0.5:8000", "X-Forwarded-Host": "shop.example", "X-Forwarded-Port": "8443"}

    request(make_app(), headers)

    attributes = one_server_span(span_exporter).attributes
    assert (attributes[HTTP_HOST], attributes[NET_HOST_NAME], attributes[NET_HOST_PORT]) == (
        "shop.example",
        "shop.example",
        8443,
    )


@STABLE
def test_the_outermost_trusted_hop_names_the_scheme_not_a_value_the_client_sent_before_it(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    # Two trusted proxies each appended one value; the client's own came first.
    headers = {"X-Forwarded-For": f"{PUBLIC_CLIENT}, 10.0.0.8", "X-Forwarded-Proto": "http, https, http"}

    request(make_app(), headers)

    assert one_server_span(span_exporter).attributes[URL_SCHEME] == "https"


@STABLE
def test_an_untrusted_client_cannot_put_a_scheme_on_the_duration_metric(
    make_app: Any, metric_reader: InMemoryMetricReader
) -> None:
    request(make_app(), {"X-Forwarded-Proto": "https"}, peer=PUBLIC_CLIENT)

    assert [point[URL_SCHEME] for point in point_attributes(metric_reader, NEW_DURATION)] == ["http"]


# -- configuration ---------------------------------------------------------------------------


@STABLE
@pytest.mark.parametrize(
    ("trusted", "believed"),
    [("203.0.113.0/24", True), (PUBLIC_CLIENT, True), ("*", True), ("", False), ("10.9.0.0/16", False)],
)
def test_trusted_proxies_is_read_from_the_environment(
    make_app: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    trusted: str,
    believed: bool,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_TRUSTED_PROXIES", trusted)

    request(make_app(), {"X-Forwarded-For": "198.51.100.7"}, peer=PUBLIC_CLIENT)

    expected = "198.51.100.7" if believed else PUBLIC_CLIENT
    assert one_server_span(span_exporter).attributes[CLIENT_ADDRESS] == expected


@STABLE
def test_an_empty_trusted_proxies_keyword_trusts_not_even_loopback(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    request(make_app(trusted_proxies=[]), {"X-Forwarded-For": PUBLIC_CLIENT}, peer="127.0.0.1")

    assert one_server_span(span_exporter).attributes[CLIENT_ADDRESS] == "127.0.0.1"


@STABLE
@pytest.mark.instrumentation_errors
def test_an_invalid_trusted_proxies_item_is_named_and_the_valid_ones_are_trusted(
    make_app: Any, span_exporter: InMemorySpanExporter, instrumentation_errors: Any
) -> None:
    server = make_app(trusted_proxies="203.0.113.0/24, not-a-network")

    request(server, {"X-Forwarded-For": "198.51.100.7"}, peer=PUBLIC_CLIENT)

    [record] = instrumentation_errors.records
    assert "trusted_proxies='203.0.113.0/24, not-a-network': 'not-a-network' ignored" in record.getMessage()
    assert one_server_span(span_exporter).attributes[CLIENT_ADDRESS] == "198.51.100.7"


@pytest.mark.instrumentation_errors
def test_an_unknown_forwarded_headers_keyword_is_named_with_the_choices(
    make_app: Any, instrumentation_errors: Any
) -> None:
    make_app(forwarded_headers="x-real-ip")

    [record] = instrumentation_errors.records
    assert record.getMessage() == (
        "forwarded_headers='x-real-ip': 'x-real-ip' ignored (valid: x-forwarded, forwarded, both);"
        " the default applies"
    )


def test_a_trusted_proxies_keyword_of_the_wrong_type_raises_naming_it(make_app: Any) -> None:
    with pytest.raises(ValueError, match="trusted_proxies=5"):
        make_app(trusted_proxies=5)


@STABLE
def test_a_unix_socket_peer_is_a_trusted_proxy(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    server = make_app(trusted_proxies="")
    unix = ConnectionInfo(server_address="/run/app.sock", transport="unix")

    server.handle_request("GET", "/users/42", {"X-Forwarded-For": PUBLIC_CLIENT}, b"", connection=unix)

    assert one_server_span(span_exporter).attributes[CLIENT_ADDRESS] == PUBLIC_CLIENT


def test_trust_in_an_address_is_decided_once_and_canonically() -> None:
    trusted = TrustedProxies.parse(["10.0.0.0/8", "2001:db8::/32"])
    rules = ProxyRules(trusted, "x-forwarded")

    assert [
        rules.trusts_peer(peer, "tcp")
        for peer in ("10.0.0.1", "::ffff:10.0.0.1", "2001:DB8::5", "11.0.0.1", None)
    ] == [True, True, True, False, False]


def test_a_chain_of_thousands_of_trusted_hops_is_walked_to_its_leftmost_address() -> None:
    rules = ProxyRules(TrustedProxies.parse(["*"]), "x-forwarded")
    chain = ", ".join(f"10.{i // 256 % 256}.{i % 256}.7" for i in range(5000))

    client, *_rest = rules.origin("/", {"x-forwarded-for": chain}, ConnectionInfo(client_address="10.0.0.1"))

    assert client == "10.0.0.7"


def test_an_unterminated_quote_in_forwarded_names_no_client() -> None:
    rules = ProxyRules(TrustedProxies.parse(["*"]), "forwarded")

    client, forwarded, *_rest = rules.origin(
        "/", {"forwarded": 'for="' * 2000}, ConnectionInfo(client_address="10.0.0.1")
    )

    assert (client, forwarded) == (None, True)


@STABLE_MODES
def test_no_client_input_makes_the_proxy_rules_log(
    make_app: Any, span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_app(forwarded_headers="both")
    odd = ["", ",", '"', "for=", "for=[", 'for="[::1', ";;;", "\x00", "for=1.2.3.4:99999", "\u00e9" * 300]

    with caplog.at_level(logging.DEBUG):
        for value in odd:
            headers = {"Forwarded": value, "X-Forwarded-For": value, "X-Forwarded-Port": value}
            request(server, headers)

    assert len(span_exporter.get_finished_spans()) == len(odd)
    assert [r for r in caplog.records if r.name.startswith(INSTRUMENTATION_LOGGER)] == []
