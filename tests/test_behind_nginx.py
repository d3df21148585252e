"""Behind a real nginx: what a request records is the truth, whatever the client claims.

Every party has its own loopback address (tests/nginx_testing.py): the
client connects from 127.0.0.2, nginx listens on 127.0.0.3 and reaches the
application from 127.0.0.4, the application listens on 127.0.0.5. Only
127.0.0.4 is a trusted proxy (and, in front of it, 127.0.0.7 in a chain of
two), so each test knows which address, host, port, scheme, path and route
is true, and checks every one of them on the span and on the duration
metric, in the old and in the stable conventions. gunicorn runs the shop's
backend mounted at /api, on a unix socket behind nginx and on 0.0.0.0.

The nginx configurations are the README's recipes ("Behind a reverse
proxy"); a recipe that stops working here is a README that stopped being true.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import re
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import internalhttp
import internalhttp.server
import pytest
from nginx_testing import (
    APP,
    CLIENT,
    PROXY,
    PROXY_OUT,
    Certificate,
    Nginx,
    Response,
    free_port,
    get,
    ipv6_loopback,
    make_certificate,
    nginx_binary,
)
from nginx_testing import running_nginx as _running_nginx
from opentelemetry import baggage
from opentelemetry.instrumentation.propagators import (
    TraceResponsePropagator,
    get_global_response_propagator,
    set_global_response_propagator,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, TraceState
from otel_testing import (
    OLD_AND_STABLE,
    OLD_MODE,
    PARENT_ID,
    STABLE_MODE,
    TRACE_ID,
    one_server_span,
    point_attributes,
)
from readme_blocks import code_blocks, readme_section

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

HOST = "shop.example"  # the name the client addresses nginx by
OPT_IN = "client.port,network.local.address,network.local.port,network.transport,server.address,server.port"
NEW_DURATION = "http.server.request.duration"
OLD_DURATION = "http.server.duration"

# -- what is true, and what a mode records of it ----------------------------------


class AnyPortBut:
    """A port the test cannot know (nginx's outgoing one), that must not be any port it knows."""

    def __init__(self, *known: int) -> None:
        self.known = set(known)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and 0 < other < 65536 and other not in self.known

    def __repr__(self) -> str:
        return f"<a port other than {sorted(self.known)}>"


@dataclass(frozen=True)
class Truth:
    """One request as it really happened; None for what nobody can know."""

    client: Optional[str]  # the original client's address
    client_port: Optional[int]  # its port, known only when it connected directly
    peer: Optional[str]  # the address the application's socket was connected from
    peer_port: Any
    host: str  # the host and port the client addressed
    port: int
    claimed_host: str  # old http.host: the host as the trusted party wrote it
    scheme: str
    path: str
    query: Optional[str]
    route: str
    local: Any  # the application's own end of the connection
    local_port: Optional[int]
    transport: str = "tcp"
    protocol: str = "1.0"  # nginx speaks HTTP/1.0 to the application by default
    forwarded: bool = True  # whether the client's address came from a trusted proxy

    @property
    def span_name(self) -> str:
        return f"GET {self.route}"

    def span(self, mode: str) -> dict[str, Any]:
        local = {
            "network.local.address": self.local,
            "network.local.port": self.local_port,
            "network.transport": self.transport,
        }
        if mode == OLD_MODE:
            return {
                # Old: the original client only as a proxy reported it.
                "http.client_ip": self.client if self.forwarded else None,
                "net.peer.ip": self.peer,
                "net.peer.port": self.peer_port,
                "http.host": self.claimed_host,
                "net.host.name": self.host,
                "net.host.port": self.port,
                "http.scheme": self.scheme,
                "http.target": f"{self.path}?{self.query}" if self.query else self.path,
                "http.route": self.route,
                "http.flavor": self.protocol,
                **local,
            }
        return {
            "client.address": self.client,
            "client.port": self.client_port,
            "network.peer.address": self.peer,
            "network.peer.port": self.peer_port,
            "server.address": self.host,
            "server.port": self.port,
            "url.scheme": self.scheme,
            "url.path": self.path,
            "url.query": self.query,
            "http.route": self.route,
            "network.protocol.version": self.protocol,
            **local,
        }

    def duration(self, mode: str) -> dict[str, Any]:
        """The duration's attributes; the opt-in server.address/.port: the socket, never a Host."""
        if mode == OLD_MODE:
            return {
                "http.method": "GET",
                "http.scheme": self.scheme,
                "http.status_code": 200,
                "http.flavor": self.protocol,
                "http.route": self.route,
            }
        return {
            "http.request.method": "GET",
            "url.scheme": self.scheme,
            "http.route": self.route,
            "http.response.status_code": 200,
            "network.protocol.version": self.protocol,
            "server.address": self.local,
            "server.port": self.local_port,
        }


def recorded(attributes: Any, expected: dict[str, Any]) -> dict[str, Any]:
    """The recorded values of the keys the truth speaks about (None: not recorded)."""
    return {key: attributes.get(key) for key in expected}


def matches_exactly(attributes: Any, expected: dict[str, Any]) -> bool:
    """Every key as expected (None: absent), and no key the truth does not speak about."""
    return expected == recorded(attributes, expected) and set(attributes) <= set(expected)


def assert_recorded(
    truth: Truth, mode: str, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    span = one_server_span(span_exporter)
    expected_span = truth.span(mode)
    assert expected_span == recorded(span.attributes, expected_span)
    assert span.name == truth.span_name
    assert span.kind is SpanKind.SERVER
    duration = OLD_DURATION if mode == OLD_MODE else NEW_DURATION
    points = point_attributes(metric_reader, duration)
    assert len(points) == 1, points
    assert truth.duration(mode) == recorded(points[0], truth.duration(mode))
    assert set(points[0]) <= set(truth.duration(mode)), points[0]


# -- the application and the proxy -------------------------------------------------


@dataclass
class App:
    port: int
    seen_baggage: list[dict[str, object]]


@pytest.fixture
def serve_app(providers: dict[str, Any]) -> Iterator[Callable[..., App]]:
    """Start the instrumented application on APP, trusting PROXY_OUT only, with extra settings."""
    with contextlib.ExitStack() as stack:

        def start(**settings: Any) -> App:
            server = internalhttp.server.InternalHTTPServer("shop")
            seen_baggage: list[dict[str, object]] = []

            def get_user(headers: Any, body: Any, user_id: str) -> dict[str, Any]:
                seen_baggage.append(dict(baggage.get_all()))
                return {"status": 200, "body": {"id": user_id}}

            server.add_route("/users/<user_id>", get_user)
            options = {"trusted_proxies": PROXY_OUT, "opt_in": OPT_IN, **providers, **settings}
            InternalHTTPInstrumentor.instrument_app(server, **options)
            stack.callback(InternalHTTPInstrumentor.uninstrument_app, server)
            running = stack.enter_context(internalhttp.serve(server, host=APP, port=0))
            return App(running.port, seen_baggage)

        yield start


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """Start nginx with a server block's body (and more for the http block); stopped after the test."""
    with contextlib.ExitStack() as stack:

        def start(server: str, http: str = "", ssl: bool = False) -> Nginx:
            return stack.enter_context(_running_nginx(tmp_path, server, http, ssl))

        yield start


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"), HOST)


def client_tls(certificate: Certificate) -> ssl.SSLContext:
    # The client checks nginx's certificate against itself: it is its own CA.
    return ssl.create_default_context(cafile=str(certificate.cert))


def honest_headers(nginx: Nginx) -> dict[str, str]:
    return {"Host": f"{HOST}:{nginx.port}"}


def through(nginx: Nginx, extra: Optional[dict[str, str]] = None, **options: Any) -> Response:
    response = get(nginx.port, "/users/42?lang=en", {**honest_headers(nginx), **(extra or {})}, **options)
    assert response.status == 200, response
    return response


# The README's nginx recipes, as written there: a README that stops being true
# fails here.
README_RECIPES = code_blocks(readme_section("Behind a reverse proxy"), "nginx")


def readme_recipe(containing: str) -> str:
    (block,) = [block for block in README_RECIPES if containing in block]
    return block


def header_lines(block: str) -> list[str]:
    return [line.strip() for line in block.splitlines() if line.strip().startswith("proxy_set_header ")]


# X-Forwarded-*: nginx sets every header it is responsible for (a client's own
# values are replaced), appends the peer to X-Forwarded-For, and strips the
# X-Forwarded-Prefix it does not write.
X_FORWARDED = "\n".join(header_lines(readme_recipe('X-Forwarded-Prefix ""')))
# A proxy behind another trusted one appends its item to each header.
X_FORWARDED_INNER = "\n".join(header_lines(readme_recipe("$http_x_forwarded_proto, $scheme")))


def x_forwarded_site(app: App, tls: Optional[Certificate] = None) -> str:
    certificate = f"ssl_certificate {tls.cert};\n        ssl_certificate_key {tls.key};" if tls else ""
    return f"""
        {certificate}
        location / {{
            proxy_pass http://{APP}:{app.port};
{X_FORWARDED}
        }}
"""


def proxied_truth(nginx: Nginx, app: App, response: Response, **changes: Any) -> Truth:
    """A request from CLIENT through nginx, addressed to HOST on nginx's port, forwarded honestly."""
    truth = Truth(
        client=CLIENT,
        client_port=None,  # behind a proxy the client's port is not known
        peer=PROXY_OUT,
        peer_port=AnyPortBut(response.client_port, nginx.port, app.port),
        host=HOST,
        port=nginx.port,
        claimed_host=HOST,
        scheme="http",
        path="/users/42",
        query="lang=en",
        route="/users/<user_id>",
        local=APP,
        local_port=app.port,
    )
    return replace(truth, **changes)


# -- X-Forwarded-* (the default family) ---------------------------------------------

FORGED_BY_THE_CLIENT = {
    "nothing": {},
    "x-forwarded-for": {"X-Forwarded-For": "1.2.3.4"},
    "forwarded": {"Forwarded": "for=6.6.6.6;proto=https;host=evil.example"},
    "x-forwarded-host": {"X-Forwarded-Host": "evil.example"},
    "x-forwarded-proto-and-port": {"X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"},
    "x-forwarded-prefix": {"X-Forwarded-Prefix": "/evil"},
}


@OLD_AND_STABLE
@pytest.mark.parametrize("forged", list(FORGED_BY_THE_CLIENT))
def test_behind_nginx_with_x_forwarded_headers_the_request_is_recorded_as_it_happened(
    forged: str,
    semconv_mode: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    app = serve_app()
    nginx = proxy(x_forwarded_site(app))

    response = through(nginx, FORGED_BY_THE_CLIENT[forged])

    assert_recorded(proxied_truth(nginx, app, response), semconv_mode, span_exporter, metric_reader)


@OLD_AND_STABLE
def test_a_client_connecting_directly_is_believed_nothing_it_claims(
    semconv_mode: str,
    serve_app: Callable[..., App],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    app = serve_app(forwarded_headers="both")
    claims = {
        "Host": f"{HOST}:{app.port}",
        "X-Forwarded-For": "1.2.3.4",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Port": "443",
        "X-Forwarded-Prefix": "/evil",
        "Forwarded": "for=6.6.6.6;proto=https;host=evil.example",
    }

    response = get(app.port, "/users/42?lang=en", claims, host=APP)

    assert response.status == 200
    truth = Truth(
        client=CLIENT,
        client_port=response.client_port,
        peer=CLIENT,
        peer_port=response.client_port,
        host=HOST,  # the Host header: what the client addressed, on the span only
        port=app.port,
        claimed_host=f"{HOST}:{app.port}",
        scheme="http",
        path="/users/42",
        query="lang=en",
        route="/users/<user_id>",
        local=APP,
        local_port=app.port,
        protocol="1.1",
        forwarded=False,
    )
    assert_recorded(truth, semconv_mode, span_exporter, metric_reader)


# -- Forwarded (RFC 7239), forwarded_headers="forwarded" ------------------------------

# Forwarded: the maps of the http block that build nginx's element, and the
# two ways of sending it: appended to a well-formed Forwarded from the client
# (or an earlier proxy), or replacing it.
FORWARDED_MAPS = readme_recipe("map $remote_addr")
(FORWARDED_APPENDED,) = [
    line for line in header_lines(readme_recipe("Forwarded ")) if "$forwarded_before" in line
]
(FORWARDED_WRITTEN,) = [
    line for line in header_lines(readme_recipe("Forwarded ")) if "$forwarded_before" not in line
]
FORWARDED_RECIPES = {"written": FORWARDED_WRITTEN, "appended": FORWARDED_APPENDED}


def forwarded_site(app: App, recipe: str, tls: Optional[Certificate] = None) -> str:
    certificate = f"ssl_certificate {tls.cert};\n        ssl_certificate_key {tls.key};" if tls else ""
    return f"""
        {certificate}
        location / {{
            proxy_pass http://{APP}:{app.port};
            proxy_set_header Host $host;
{recipe}
        }}
"""


FORGED_ELEMENTS = {
    "nothing": {},
    "forwarded-element": {"Forwarded": "for=6.6.6.6;proto=https;host=evil.example"},
    "two-forwarded-elements": {
        "Forwarded": 'for=6.6.6.6;proto=https, for="[2001:db8::6]:66";host=evil.example'
    },
    "open-quote": {"Forwarded": 'for="6.6.6.6'},
    "escaped-quote": {"Forwarded": 'for="6.6.6.6\\";proto=https'},
    "x-forwarded-for": {"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https"},
}


@OLD_AND_STABLE
@pytest.mark.parametrize("forged", list(FORGED_ELEMENTS))
@pytest.mark.parametrize("recipe", list(FORWARDED_RECIPES))
def test_behind_nginx_with_forwarded_the_request_is_recorded_as_it_happened(
    recipe: str,
    forged: str,
    semconv_mode: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    app = serve_app(forwarded_headers="forwarded")
    nginx = proxy(forwarded_site(app, FORWARDED_RECIPES[recipe]), http=FORWARDED_MAPS)

    response = through(nginx, FORGED_ELEMENTS[forged])

    truth = proxied_truth(nginx, app, response, claimed_host=f"{HOST}:{nginx.port}")
    assert_recorded(truth, semconv_mode, span_exporter, metric_reader)


@OLD_AND_STABLE
@pytest.mark.parametrize("recipe", list(FORWARDED_RECIPES))
def test_a_host_header_cannot_write_a_forwarded_element_of_its_own(
    recipe: str,
    semconv_mode: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    app = serve_app(forwarded_headers="forwarded")
    nginx = proxy(forwarded_site(app, FORWARDED_RECIPES[recipe]), http=FORWARDED_MAPS)

    through(nginx, {"Host": 'evil",for=6.6.6.6;proto=https;host="evil.example'})

    client, scheme = (
        ("http.client_ip", "http.scheme") if semconv_mode == OLD_MODE else ("client.address", "url.scheme")
    )
    duration = OLD_DURATION if semconv_mode == OLD_MODE else NEW_DURATION
    attributes = one_server_span(span_exporter).attributes
    assert (attributes.get(client), attributes.get(scheme)) == (CLIENT, "http")
    assert [point[scheme] for point in point_attributes(metric_reader, duration)] == ["http"]


IPV6_CLIENT = "::1"
IPV6_RECIPES = {
    "x-forwarded": ("x-forwarded", X_FORWARDED),
    "forwarded-written": ("forwarded", FORWARDED_WRITTEN),
    "forwarded-appended": ("forwarded", FORWARDED_APPENDED),
}


@pytest.mark.skipif(not ipv6_loopback(), reason="this machine has no IPv6 loopback address (::1)")
@OLD_AND_STABLE
@pytest.mark.parametrize("recipe", list(IPV6_RECIPES))
def test_an_ipv6_client_is_recorded_through_each_recipe(
    recipe: str,
    semconv_mode: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    family, headers = IPV6_RECIPES[recipe]
    app = serve_app(forwarded_headers=family)
    port = free_port(IPV6_CLIENT)
    site = f"""
        listen [{IPV6_CLIENT}]:{port};
        location / {{
            proxy_pass http://{APP}:{app.port};
            proxy_set_header Host $host;
{headers}
        }}
"""
    nginx = proxy(site, http=FORWARDED_MAPS)

    response = get(
        port, "/users/42?lang=en", {"Host": f"{HOST}:{port}"}, host=IPV6_CLIENT, source=IPV6_CLIENT
    )

    assert response.status == 200
    claimed = HOST if family == "x-forwarded" else f"{HOST}:{port}"
    truth = proxied_truth(nginx, app, response, client=IPV6_CLIENT, port=port, claimed_host=claimed)
    assert_recorded(truth, semconv_mode, span_exporter, metric_reader)


# -- TLS terminated by nginx -----------------------------------------------------------


@OLD_AND_STABLE
def test_tls_terminated_by_nginx_is_recorded_as_https_on_the_span_and_the_metric(
    semconv_mode: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    certificate: Certificate,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    app = serve_app()
    nginx = proxy(x_forwarded_site(app, tls=certificate), ssl=True)

    response = through(nginx, tls=client_tls(certificate))

    assert_recorded(
        proxied_truth(nginx, app, response, scheme="https"), semconv_mode, span_exporter, metric_reader
    )


@OLD_AND_STABLE
def test_a_forged_forwarded_element_cannot_turn_a_tls_request_into_plain_http(
    semconv_mode: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    certificate: Certificate,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    app = serve_app(forwarded_headers="forwarded")
    site = forwarded_site(app, FORWARDED_APPENDED, tls=certificate)
    nginx = proxy(site, http=FORWARDED_MAPS, ssl=True)

    response = through(
        nginx, {"Forwarded": "for=6.6.6.6;proto=http;host=shop.example"}, tls=client_tls(certificate)
    )

    truth = proxied_truth(nginx, app, response, scheme="https", claimed_host=f"{HOST}:{nginx.port}")
    assert_recorded(truth, semconv_mode, span_exporter, metric_reader)


# -- a chain of proxies ------------------------------------------------------------------

EDGE_OUT = "127.0.0.7"  # the outer nginx's address towards the inner one


def chain_of_two(app: App, inner_port: int, certificate: Certificate) -> tuple[str, str]:
    """An edge terminating TLS (the main server) in front of an inner proxy on ``inner_port``."""
    edge = f"""
        ssl_certificate {certificate.cert};
        ssl_certificate_key {certificate.key};
        location / {{
            proxy_pass http://{PROXY}:{inner_port};
            proxy_bind {EDGE_OUT};
{X_FORWARDED}
        }}
"""
    inner = f"""
    server {{
        listen {PROXY}:{inner_port};
        location / {{
            proxy_pass http://{APP}:{app.port};
{X_FORWARDED_INNER}
        }}
    }}
"""
    return edge, inner


@OLD_AND_STABLE
def test_through_a_chain_of_trusted_proxies_the_outermost_hop_says_what_the_client_did(
    semconv_mode: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    certificate: Certificate,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    app = serve_app(trusted_proxies=f"{PROXY_OUT},{EDGE_OUT}")
    edge, inner = chain_of_two(app, free_port(PROXY), certificate)
    nginx = proxy(edge, http=inner, ssl=True)

    response = through(nginx, {"X-Forwarded-For": "1.2.3.4"}, tls=client_tls(certificate))

    assert_recorded(
        proxied_truth(nginx, app, response, scheme="https"), semconv_mode, span_exporter, metric_reader
    )


@OLD_AND_STABLE
def test_an_untrusted_hop_in_the_chain_is_the_client_and_says_nothing(
    semconv_mode: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    certificate: Certificate,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    app = serve_app(trusted_proxies=PROXY_OUT)  # the inner proxy only
    inner_port = free_port(PROXY)
    edge, inner = chain_of_two(app, inner_port, certificate)
    nginx = proxy(edge, http=inner, ssl=True)

    response = through(nginx, tls=client_tls(certificate))

    # What the inner proxy saw: a plain-http request from the edge, to its own port.
    truth = proxied_truth(nginx, app, response, client=EDGE_OUT, port=inner_port)
    assert_recorded(truth, semconv_mode, span_exporter, metric_reader)


# -- a path prefix ----------------------------------------------------------------------


@OLD_AND_STABLE
def test_a_path_prefix_from_nginx_is_part_of_the_path_the_route_and_the_span_name(
    semconv_mode: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    app = serve_app()
    nginx = proxy(f"""
        location /api/ {{
            proxy_pass http://{APP}:{app.port}/;
{X_FORWARDED}
            proxy_set_header X-Forwarded-Prefix /api;
        }}
""")

    response = get(nginx.port, "/api/users/42?lang=en", honest_headers(nginx))

    assert response.status == 200
    truth = proxied_truth(nginx, app, response, path="/api/users/42", route="/api/users/<user_id>")
    assert_recorded(truth, semconv_mode, span_exporter, metric_reader)


# -- public_endpoint: the caller's trace is linked, not continued -------------------------

CALLER_TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"
UNSAMPLED_CALLER_TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-00"


@pytest.fixture
def response_propagator() -> Iterator[None]:
    previous = get_global_response_propagator()
    set_global_response_propagator(TraceResponsePropagator())
    yield
    set_global_response_propagator(previous)


@pytest.mark.usefixtures("response_propagator")
@OLD_AND_STABLE
def test_a_public_endpoint_behind_nginx_starts_a_new_trace_linked_to_the_callers(
    semconv_mode: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    app = serve_app(public_endpoint=True)
    nginx = proxy(x_forwarded_site(app))

    response = through(nginx, {"traceparent": CALLER_TRACEPARENT, "baggage": "tenant=acme"})

    span = one_server_span(span_exporter)
    assert span.parent is None
    assert span.context.trace_id != TRACE_ID
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [(TRACE_ID, PARENT_ID)]
    assert app.seen_baggage == [{}]
    context = span.context
    assert response.headers["traceresponse"] == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
    assert_recorded(proxied_truth(nginx, app, response), semconv_mode, span_exporter, metric_reader)


@OLD_AND_STABLE
def test_with_public_endpoint_untrusted_a_caller_behind_the_trusted_proxy_continues_its_trace(
    serve_app: Callable[..., App], proxy: Callable[..., Nginx], span_exporter: InMemorySpanExporter
) -> None:
    app = serve_app(public_endpoint="untrusted")
    nginx = proxy(x_forwarded_site(app))

    through(nginx, {"traceparent": CALLER_TRACEPARENT, "baggage": "tenant=acme"})

    span = one_server_span(span_exporter)
    assert (span.context.trace_id, span.parent.span_id if span.parent else None) == (TRACE_ID, PARENT_ID)
    assert span.links == ()
    assert app.seen_baggage == [{"tenant": "acme"}]


@OLD_AND_STABLE
def test_with_public_endpoint_untrusted_a_caller_connecting_directly_starts_a_new_trace(
    serve_app: Callable[..., App], span_exporter: InMemorySpanExporter
) -> None:
    app = serve_app(public_endpoint="untrusted")

    get(app.port, "/users/42", {"traceparent": CALLER_TRACEPARENT, "baggage": "tenant=acme"}, host=APP)

    span = one_server_span(span_exporter)
    assert span.parent is None
    assert [(link.context.trace_id, link.context.span_id) for link in span.links] == [(TRACE_ID, PARENT_ID)]
    assert app.seen_baggage == [{}]


OVERLONG_TRACE_HEADERS = {
    "traceparent": {"traceparent": CALLER_TRACEPARENT + "-" + "f" * 600},
    "tracestate": {"traceparent": CALLER_TRACEPARENT, "tracestate": "vendor=" + "a" * 600},
}


@pytest.mark.parametrize("overlong", list(OVERLONG_TRACE_HEADERS))
def test_overlong_trace_headers_through_nginx_are_ignored_and_no_logger_warns(
    overlong: str,
    serve_app: Callable[..., App],
    proxy: Callable[..., Nginx],
    span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = serve_app()
    nginx = proxy(x_forwarded_site(app))
    caplog.set_level(logging.WARNING)

    through(nginx, OVERLONG_TRACE_HEADERS[overlong])

    span = one_server_span(span_exporter)
    assert span.context.trace_state == TraceState()
    if overlong == "traceparent":
        assert span.parent is None
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


@OLD_AND_STABLE
def test_a_public_endpoint_samples_as_for_a_root_whatever_the_callers_flags(
    serve_app: Callable[..., App], proxy: Callable[..., Nginx], span_exporter: InMemorySpanExporter
) -> None:
    app = serve_app(public_endpoint=True)
    nginx = proxy(x_forwarded_site(app))

    through(nginx, {"traceparent": UNSAMPLED_CALLER_TRACEPARENT})

    span = one_server_span(span_exporter)
    assert span.context.trace_flags.sampled
    assert [link.context.trace_id for link in span.links] == [TRACE_ID]


# -- gunicorn: SCRIPT_NAME, a unix socket behind nginx, a wildcard bind ----------------------
#
# The shop's backend (examples/shop/backend.py, GET /items/<item_id>) under
# `opentelemetry-instrument gunicorn`, mounted at /api (SCRIPT_NAME), bound
# both to a unix socket that nginx proxies to (gunicorn's documented nginx
# set-up) and to 0.0.0.0, which a client reaches directly on 127.0.0.6: the
# one address only the accepted socket knows. Its spans and metrics come
# back over OTLP once gunicorn is stopped.

WILDCARD_REACHED_AT = "127.0.0.6"
GUNICORN_TIMEOUT_S = 15.0


@dataclass
class GunicornRun:
    mode: str
    socket_path: str
    nginx_port: int
    tcp_port: int
    via_unix_socket: Response
    direct: Response
    spans: list[Any]  # otlp_tree.Span
    durations: list[dict[str, Any]]

    def span(self, path: str) -> Any:
        key = "http.target" if self.mode == OLD_MODE else "url.path"
        found = [span for span in self.spans if str(span.attributes.get(key, "")).startswith(path)]
        assert len(found) == 1, [span.attributes for span in self.spans]
        return found[0]


def _wait_for_log(log: Path, pattern: str, process: Any) -> str:
    deadline = time.monotonic() + GUNICORN_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"gunicorn did not log {pattern!r}:\n{log.read_text(errors='replace')}")


def _gunicorn_site(socket_path: str) -> tuple[str, str]:
    upstream = f"    upstream gunicorn {{ server unix:{socket_path}; }}\n"
    server = f"""
        location / {{
            proxy_pass http://gunicorn;
            proxy_bind off;  # a unix socket has no address of ours to bind
{X_FORWARDED}
        }}
"""
    return upstream, server


@pytest.fixture(scope="module", params=[OLD_MODE, STABLE_MODE], ids=["old", "stable"])
def gunicorn_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GunicornRun]:
    pytest.importorskip("gunicorn", reason="gunicorn is not installed (the tox 'tests' env installs it)")
    nginx_binary()  # before gunicorn starts: a skip (or a failure in CI) if there is no nginx
    from launch import BIN_DIR, EXAMPLES_DIR, OPENTELEMETRY_INSTRUMENT, otel_environment, stop_process
    from otlp_tree import Receiver

    mode = request.param
    folder = tmp_path_factory.mktemp("gunicorn")
    socket_path = str(folder / "app.sock")
    log = folder / "gunicorn.log"
    command = [
        OPENTELEMETRY_INSTRUMENT,
        str(BIN_DIR / "gunicorn"),
        "-c",
        str(EXAMPLES_DIR / "gunicorn.conf.py"),
    ]
    command += ["-w", "1", "-b", f"unix:{socket_path}", "-b", "0.0.0.0:0", "shop.backend:wsgi_app"]
    upstream, site = _gunicorn_site(socket_path)
    with Receiver() as receiver, open(log, "wb") as log_file:
        env = otel_environment(
            "backend",
            receiver.endpoint,
            OTEL_PYTHON_INTERNALHTTP_TRUSTED_PROXIES=PROXY_OUT,
            OTEL_PYTHON_INTERNALHTTP_OPT_IN=OPT_IN,
            OTEL_SEMCONV_STABILITY_OPT_IN=mode,
            SCRIPT_NAME="/api",
        )
        process = subprocess.Popen(
            command, env=env, cwd=EXAMPLES_DIR, stdout=log_file, stderr=subprocess.STDOUT
        )
        try:
            tcp_port = int(_wait_for_log(log, r"Listening at: \S*http://0\.0\.0\.0:(\d+)", process))
            _wait_for_log(log, r"Booting worker with pid: (\d+)", process)
            with _running_nginx(folder, site, upstream) as nginx:
                via_unix_socket = get(nginx.port, "/api/items/42?lang=en", {"Host": f"{HOST}:{nginx.port}"})
            direct = get(
                tcp_port, "/api/items/7?lang=en", {"Host": f"{HOST}:{tcp_port}"}, host=WILDCARD_REACHED_AT
            )
        finally:
            stop_process(process)  # SIGTERM: the worker exits normally and the SDK flushes
        duration = OLD_DURATION if mode == OLD_MODE else NEW_DURATION
        receiver.wait_until(lambda r: len(r.spans(kind="SERVER")) >= 2, timeout=GUNICORN_TIMEOUT_S)
        yield GunicornRun(
            mode,
            socket_path,
            nginx.port,
            tcp_port,
            via_unix_socket,
            direct,
            receiver.spans(kind="SERVER"),
            [dict(point.attributes) for point in receiver.latest_histogram_points(duration)],
        )


def _sdk_forks() -> bool:
    version = importlib.metadata.version("opentelemetry-sdk").split(".")[:2]
    return tuple(int(part) for part in version) >= (1, 44)


# As in test_gunicorn.py: before SDK 1.44 a forked worker exports nothing of its own.
needs_forking_sdk = pytest.mark.skipif(
    not _sdk_forks(), reason="before opentelemetry-sdk 1.44 workers do not export"
)


def unix_socket_truth(run: GunicornRun) -> Truth:
    return Truth(
        client=CLIENT,
        client_port=None,
        peer=None,  # a unix socket's peer has no address
        peer_port=None,
        host=HOST,
        port=run.nginx_port,
        claimed_host=HOST,
        scheme="http",
        path="/api/items/42",
        query="lang=en",
        route="/api/items/<item_id>",
        local=run.socket_path,  # the socket's own name: never the client's Host
        local_port=None,
        transport="unix",
    )


def wildcard_truth(run: GunicornRun) -> Truth:
    return Truth(
        client=CLIENT,
        client_port=run.direct.client_port,
        peer=CLIENT,
        peer_port=run.direct.client_port,
        host=HOST,
        port=run.tcp_port,
        claimed_host=f"{HOST}:{run.tcp_port}",
        scheme="http",
        path="/api/items/7",
        query="lang=en",
        route="/api/items/<item_id>",
        local=WILDCARD_REACHED_AT,  # the accepted socket, not the 0.0.0.0 it was bound to
        local_port=run.tcp_port,
        protocol="1.1",
        forwarded=False,
    )


@needs_forking_sdk
def test_gunicorn_on_a_unix_socket_behind_nginx_records_the_root_the_transport_and_no_client_host(
    gunicorn_run: GunicornRun,
) -> None:
    truth = unix_socket_truth(gunicorn_run)
    span = gunicorn_run.span("/api/items/42")

    assert gunicorn_run.via_unix_socket.status == 200
    assert truth.span(gunicorn_run.mode) == recorded(span.attributes, truth.span(gunicorn_run.mode))
    assert span.name == "GET /api/items/<item_id>"
    assert [
        point for point in gunicorn_run.durations if matches_exactly(point, truth.duration(gunicorn_run.mode))
    ]


@needs_forking_sdk
def test_gunicorn_bound_to_the_wildcard_address_records_the_address_the_client_reached(
    gunicorn_run: GunicornRun,
) -> None:
    truth = wildcard_truth(gunicorn_run)
    span = gunicorn_run.span("/api/items/7")

    assert gunicorn_run.direct.status == 200
    assert truth.span(gunicorn_run.mode) == recorded(span.attributes, truth.span(gunicorn_run.mode))
    assert span.name == "GET /api/items/<item_id>"
    assert [
        point for point in gunicorn_run.durations if matches_exactly(point, truth.duration(gunicorn_run.mode))
    ]
