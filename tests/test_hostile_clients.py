"""No client chooses a metric attribute, hides a request, or makes the instrumentation log.

Over real sockets on 127.0.0.1, clients send many distinct values of every
input they control: hosts (``Host``, ``X-Forwarded-Host``, ``Forwarded``,
``:authority``), schemes, HTTP versions and methods. The number of metric
streams stays within routes x methods x statuses and the process does not
grow; every request the application sees is one span with its metric
points, and the instrumentation logs nothing at WARNING or above.
"""

from __future__ import annotations

import gc
import logging
import os
import random
from collections.abc import Iterator
from typing import Any

import internalhttp
import internalhttp.server
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.util.http import OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS
from otel_testing import metric_points
from wire_client import WireClient

from opentelemetry_ext_internalhttp._methods import CAPTURED_METHODS_LIMIT, DEFAULT_KNOWN_METHODS

VALUES = 10_000
WARM_UP = 500
RSS_BUDGET = 5 * 1024 * 1024
DURATION = {"": "http.server.duration", "http": "http.server.request.duration"}
ACTIVE = "http.server.active_requests"
# The application's routes, and the statuses they and the framework answer.
ROUTES = 2
STATUSES = {200, 404, 405}

MODES = pytest.mark.parametrize("semconv_mode", ["", "http"], indirect=True)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class CountingExporter(SpanExporter):
    """Counts spans without keeping them, so that memory measures the instrumentation alone."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Any) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


@pytest.fixture
def span_counter() -> CountingExporter:
    return CountingExporter()


@pytest.fixture
def counting_providers(span_counter: CountingExporter, meter_provider: Any) -> dict[str, Any]:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_counter))
    return {"tracer_provider": tracer_provider, "meter_provider": meter_provider}


@pytest.fixture
def shop(instrumentor: Any, counting_providers: dict[str, Any], semconv_mode: str) -> Any:
    instrumentor.instrument(**counting_providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": item_id})
    server.add_route("/items", lambda headers, body: {"status": 200}, method="POST")
    return server


@pytest.fixture
def client(shop: Any) -> Iterator[WireClient]:
    with internalhttp.serve(shop) as running, WireClient(running.host, running.port) as client:
        yield client


@pytest.fixture
def warnings_logged() -> Iterator[list[logging.LogRecord]]:
    """Everything the instrumentation logs at WARNING or above."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("opentelemetry_ext_internalhttp")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def stream_count(reader: InMemoryMetricReader, semconv_mode: str) -> int:
    return len(metric_points(reader, DURATION[semconv_mode])) + len(metric_points(reader, ACTIVE))


def send_all(client: WireClient, requests: Iterator[tuple[str, str, dict[str, str], str]]) -> list[int]:
    return [
        client.request(method, target, headers, version).status
        for method, target, headers, version in requests
    ]


def hostile_headers(value: int) -> dict[str, str]:
    return {
        "Host": f"h{value}.example:{1 + value % 65535}",
        "X-Forwarded-Host": f"x{value}.example",
        "Forwarded": f'host="f{value}.example";proto=p{value};for=198.51.100.{value % 256}',
        ":authority": f"a{value}.example",
        "X-Forwarded-Proto": f"scheme{value}",
        "User-Agent": f"agent/{value}",
    }


@MODES
@pytest.mark.timeout(180)
def test_distinct_hosts_schemes_and_agents_open_no_metric_stream_and_no_memory(
    client: WireClient, metric_reader: InMemoryMetricReader, semconv_mode: str
) -> None:
    send_all(
        client, (("GET", f"/items/{value}", hostile_headers(value), "HTTP/1.1") for value in range(WARM_UP))
    )
    gc.collect()
    before = rss_bytes()

    statuses = send_all(
        client, (("GET", f"/items/{v}?q={v}", hostile_headers(v), "HTTP/1.1") for v in range(VALUES))
    )

    gc.collect()
    assert set(statuses) == {200}
    # One duration stream, and one active-requests stream where that counter is on.
    assert stream_count(metric_reader, semconv_mode) == (1 if semconv_mode == "http" else 2)
    assert rss_bytes() - before < RSS_BUDGET


@MODES
@pytest.mark.timeout(180)
def test_distinct_http_versions_open_no_metric_stream(
    client: WireClient, metric_reader: InMemoryMetricReader, semconv_mode: str
) -> None:
    versions = (f"HTTP/1.{'0' * (value % 50)}{value}" for value in range(VALUES))

    statuses = send_all(client, (("GET", "/items/1", {"Host": "shop"}, version) for version in versions))

    assert 0 not in statuses
    # A version the server accepts records as 1.0 or 1.1, or not at all.
    assert stream_count(metric_reader, semconv_mode) <= 2 * 3


@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
@pytest.mark.timeout(180)
def test_distinct_methods_with_every_method_captured_stay_within_a_bounded_set(
    instrumentor: Any, counting_providers: dict[str, Any], monkeypatch: pytest.MonkeyPatch, metric_reader: Any
) -> None:
    monkeypatch.setenv(OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS, "true")
    instrumentor.instrument(**counting_providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": item_id})
    server.add_route("/items", lambda headers, body: {"status": 200}, method="POST")

    with internalhttp.serve(server) as running, WireClient(running.host, running.port) as client:
        statuses = send_all(
            client, ((f"M{value}", "/items/1", {"Host": "shop"}, "HTTP/1.1") for value in range(VALUES))
        )

    assert set(statuses) == {405}
    methods = len(DEFAULT_KNOWN_METHODS) + CAPTURED_METHODS_LIMIT + 1  # _OTHER
    assert len(metric_points(metric_reader, DURATION["http"])) <= ROUTES * methods * len(STATUSES)
    kept = {
        point.attributes["http.request.method"] for point in metric_points(metric_reader, DURATION["http"])
    }
    assert len(kept) == CAPTURED_METHODS_LIMIT + 1


# -- fuzz: every request the application sees is one span ---------------------------

ODD_HOSTS = [
    "x:\u00b2",
    "h:" + "9" * 5000,
    "[::1",
    "[::1]:x",
    "h:99999",
    ":",
    "",
    "a:b:c",
    "\u00e9t\u00e9:80",
    "h:-1",
]
ODD_TARGETS = [
    "/items/1",
    "/items/%ZZ",
    "/items/\u00e9",
    "*",
    "http://h:1/items/2",
    "/items/1?" + "&" * 100,
    "//items",
]
ODD_METHODS = ["GET", "get", "POST", "BREW", "M-SEARCH", "G\u00c9T", "PO\u017fT", "_OTHER", "X" * 100]
ODD_VERSIONS = [
    "HTTP/1.1",
    "HTTP/1.0",
    "HTTP/1.0000000001",
    "HTTP/0.9",
    "HTTP/2.0",
    "HTTP/9",
    "http/1.1",
    "HTTP/1.1x",
]
ODD_HEADER_VALUES = ["\x00", "\x1b[31m", "v\xff", " ", "a" * 8000, "00-garbage", "k=v;p,=x,%ZZ", "for=;host="]
ODD_HEADER_NAMES = ["Host", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "traceparent", "baggage"]


def fuzz_request(chance: random.Random) -> bytes:
    headers = [f"Host: {chance.choice(ODD_HOSTS)}"]
    for _ in range(chance.randrange(4)):
        headers.append(f"{chance.choice(ODD_HEADER_NAMES)}: {chance.choice(ODD_HEADER_VALUES)}")
    line = f"{chance.choice(ODD_METHODS)} {chance.choice(ODD_TARGETS)} {chance.choice(ODD_VERSIONS)}"
    return ("\r\n".join([line, *headers]) + "\r\n\r\n").encode("utf-8", "surrogateescape")


@MODES
@pytest.mark.timeout(120)
def test_every_malformed_request_is_one_span_dispatched_or_refused_and_no_instrumentation_log_line(
    shop: Any,
    span_counter: CountingExporter,
    metric_reader: InMemoryMetricReader,
    semconv_mode: str,
    warnings_logged: list[logging.LogRecord],
) -> None:
    dispatched: list[Any] = []
    refused: list[Any] = []
    framework_dispatch = shop.dispatch
    instrumented_refused = shop.refused

    def counting_dispatch(request: Any, body: Any) -> Any:
        dispatched.append(request)
        return framework_dispatch(request, body)

    def counting_refused(refusal: Any) -> None:
        refused.append(refusal)
        instrumented_refused(refusal)

    shop.dispatch = counting_dispatch
    shop.refused = counting_refused
    chance = random.Random(20261121)
    with internalhttp.serve(shop) as running:
        for _ in range(1_000):
            with WireClient(running.host, running.port) as client:
                client.send(fuzz_request(chance))

    assert len(dispatched) > 100  # the fuzz reached the application
    assert len(refused) > 100  # and the serving layer's refusals
    assert span_counter.exported == len(dispatched) + len(refused)
    recorded = sum(point.count for point in metric_points(metric_reader, DURATION[semconv_mode]))
    assert recorded == len(dispatched) + len(refused)
    assert [record.getMessage() for record in warnings_logged] == []
