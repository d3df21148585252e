"""Configuration: excluded URLs, captured headers, query redaction, suppression."""

from __future__ import annotations

from typing import Any

import internalhttp.server
import pytest
from opentelemetry.instrumentation.utils import suppress_http_instrumentation, suppress_instrumentation
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_TARGET
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_METHOD
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from opentelemetry.util.http import (
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST,
    OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE,
)
from otel_testing import ALL_MODES, BEHIND_PROXY, OLD_MODES, STABLE, metric_points, one_server_span

SPECIFIC_EXCLUDED = "OTEL_PYTHON_INTERNALHTTP_EXCLUDED_URLS"
GENERIC_EXCLUDED = "OTEL_PYTHON_EXCLUDED_URLS"
METRICS = ("http.server.duration", "http.server.request.duration", "http.server.active_requests")


HEALTHY = {"status": 200, "body": "ok"}
ORDERS = {"status": 200, "body": []}


@pytest.fixture
def seen_in_handler() -> dict[str, Any]:
    return {}


@pytest.fixture
def make_shop(seen_in_handler: dict[str, Any], metric_reader: InMemoryMetricReader) -> Any:
    """Build the server (call it after instrument())."""

    def healthz(headers: Any, body: Any) -> Any:
        seen_in_handler["active"] = [point.value for point in metric_points(metric_reader, METRICS[2])]
        return HEALTHY

    def build() -> Any:
        server = internalhttp.server.InternalHTTPServer("shop")
        server.add_route("/healthz", healthz)
        server.add_route("/internal/metrics", lambda headers, body: HEALTHY)
        server.add_route("/orders", lambda headers, body: ORDERS)
        server.add_route(
            "/users/<user_id>",
            lambda headers, body, user_id: {
                "status": 200,
                "headers": {"X-Served-By": "shop-1", "Set-Cookie": "session=abc", "X-Internal": "no"},
            },
        )
        server.add_route("/search", lambda headers, body: {"status": 200})
        return server

    return build


def traced_paths(exporter: InMemorySpanExporter) -> list[str]:
    return [
        span.attributes.get(HTTP_TARGET) or span.attributes.get(URL_PATH)
        for span in exporter.get_finished_spans()
    ]


def no_metric_points(reader: InMemoryMetricReader) -> bool:
    return all(metric_points(reader, name) == [] for name in METRICS)


# -- excluded URLs -----------------------------------------------------------------


def test_paths_matching_the_internalhttp_excluded_urls_are_not_traced(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SPECIFIC_EXCLUDED, "healthz, ^/internal/")
    instrumentor.instrument(**providers)
    server = make_shop()

    assert server.handle_request("GET", "/healthz", {}, b"") is HEALTHY
    assert server.handle_request("GET", "/internal/metrics", {}, b"") is HEALTHY
    assert server.handle_request("GET", "/orders", {}, b"") is ORDERS

    assert traced_paths(span_exporter) == ["/orders"]


@pytest.mark.parametrize(
    ("specific", "generic", "argument", "traced"),
    [
        pytest.param(
            None, "healthz", None, ["/orders"], id="the generic variable applies when no specific one is set"
        ),
        pytest.param(
            "orders", "healthz", None, ["/healthz"], id="the internalhttp variable wins over the generic one"
        ),
        pytest.param(
            "healthz", "healthz", "orders", ["/healthz"], id="the excluded_urls argument wins over both"
        ),
    ],
)
def test_the_most_specific_excluded_urls_setting_applies(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    specific: Any,
    generic: str,
    argument: Any,
    traced: list[str],
) -> None:
    if specific is None:
        monkeypatch.delenv(SPECIFIC_EXCLUDED, raising=False)
    else:
        monkeypatch.setenv(SPECIFIC_EXCLUDED, specific)
    monkeypatch.setenv(GENERIC_EXCLUDED, generic)
    config = {} if argument is None else {"excluded_urls": argument}
    instrumentor.instrument(**config, **providers)
    server = make_shop()

    server.handle_request("GET", "/healthz", {}, b"")
    server.handle_request("GET", "/orders", {}, b"")

    assert traced_paths(span_exporter) == traced


def test_excluded_urls_are_matched_against_the_path_never_the_query(
    instrumentor: Any, providers: dict[str, Any], make_shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(excluded_urls="healthz", **providers)
    server = make_shop()

    server.handle_request("GET", "/orders?next=/healthz", {}, b"")

    assert one_server_span(span_exporter).name == "GET /orders"


def test_excluded_urls_are_read_when_instrument_runs_not_when_a_request_arrives(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SPECIFIC_EXCLUDED, "healthz")  # set after import, before instrument()
    instrumentor.instrument(**providers)
    monkeypatch.setenv(SPECIFIC_EXCLUDED, "orders")  # too late to matter
    server = make_shop()

    server.handle_request("GET", "/healthz", {}, b"")
    server.handle_request("GET", "/orders", {}, b"")

    assert traced_paths(span_exporter) == ["/orders"]


@ALL_MODES
def test_an_excluded_request_records_no_span_no_metric_and_never_counts_as_active(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    seen_in_handler: dict[str, Any],
    semconv_mode: str,
) -> None:
    instrumentor.instrument(excluded_urls="healthz", **providers)
    server = make_shop()

    assert server.handle_request("GET", "/healthz", {}, b"") is HEALTHY

    assert seen_in_handler["active"] == []
    assert span_exporter.get_finished_spans() == ()
    assert no_metric_points(metric_reader)


# -- captured headers ---------------------------------------------------------------


@pytest.fixture
def capture_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST, "X-Request-Id, x-tenant-.*")
    monkeypatch.setenv(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE, "x-served-by,SET-COOKIE")
    monkeypatch.setenv(
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS, "x-tenant-secret,set-cookie"
    )


REQUEST_HEADERS = {
    "x-request-id": "r-1",
    "X-Tenant-Name": "acme",
    "X-TENANT-SECRET": "hunter2",
    "X-Other": "not captured",
}

STABLE_HEADER_ATTRIBUTES = {
    "http.request.header.x-request-id": ("r-1",),
    "http.request.header.x-tenant-name": ("acme",),
    "http.request.header.x-tenant-secret": ("[REDACTED]",),
    "http.response.header.x-served-by": ("shop-1",),
    "http.response.header.set-cookie": ("[REDACTED]",),
}
OLD_HEADER_ATTRIBUTES = {
    "http.request.header.x_request_id": ("r-1",),
    "http.request.header.x_tenant_name": ("acme",),
    "http.request.header.x_tenant_secret": ("[REDACTED]",),
    "http.response.header.x_served_by": ("shop-1",),
    "http.response.header.set_cookie": ("[REDACTED]",),
}


@pytest.mark.parametrize(
    ("semconv_mode", "expected"),
    [
        ("", OLD_HEADER_ATTRIBUTES),
        ("http", STABLE_HEADER_ATTRIBUTES),
        ("http/dup", {**OLD_HEADER_ATTRIBUTES, **STABLE_HEADER_ATTRIBUTES}),
    ],
    indirect=["semconv_mode"],
    ids=["old-underscores", "stable-dashes", "dup-both"],
)
def test_configured_headers_are_captured_case_insensitively_as_lists_of_strings_with_sensitive_ones_redacted(
    capture_headers: None,
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    expected: dict[str, Any],
) -> None:
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", "/users/1", REQUEST_HEADERS, b"")

    attributes = one_server_span(span_exporter).attributes
    captured = {key: value for key, value in attributes.items() if ".header." in key}
    assert captured == expected


@STABLE
def test_a_header_pattern_must_match_the_whole_header_name(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST, "x-request,tenant")
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", "/users/1", REQUEST_HEADERS, b"")

    attributes = one_server_span(span_exporter).attributes
    assert not [key for key in attributes if key.startswith("http.request.header.")]


@STABLE
def test_no_header_is_captured_unless_configured(
    instrumentor: Any, providers: dict[str, Any], make_shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", "/users/1", REQUEST_HEADERS, b"")

    assert not [key for key in one_server_span(span_exporter).attributes if ".header." in key]


class AttributeRecordingSampler(Sampler):
    """Samples everything, remembering the attributes each span was started with."""

    def __init__(self) -> None:
        self.attributes_at_start: list[dict[str, Any]] = []

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Any = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        self.attributes_at_start.append(dict(attributes or {}))
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "AttributeRecordingSampler"


@STABLE
def test_the_attributes_that_matter_for_sampling_including_captured_headers_are_given_at_span_creation(
    capture_headers: None, instrumentor: Any, meter_provider: Any, make_shop: Any
) -> None:
    sampler = AttributeRecordingSampler()
    tracer_provider = TracerProvider(sampler=sampler)
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    server = make_shop()

    server.handle_request(
        "GET",
        "/users/1?page=2",
        {
            **REQUEST_HEADERS,
            "Host": "shop.example:8080",
            "User-Agent": "curl/8.5.0",
            "X-Forwarded-For": "203.0.113.9",
        },
        b"",
        connection=BEHIND_PROXY,
    )

    (at_start,) = sampler.attributes_at_start
    assert at_start["http.request.header.x-request-id"] == ["r-1"]
    assert at_start["http.request.header.x-tenant-secret"] == ["[REDACTED]"]
    assert {
        key: at_start.get(key)
        for key in (
            HTTP_REQUEST_METHOD,
            URL_PATH,
            URL_QUERY,
            URL_SCHEME,
            SERVER_ADDRESS,
            SERVER_PORT,
            CLIENT_ADDRESS,
            USER_AGENT_ORIGINAL,
        )
    } == {
        HTTP_REQUEST_METHOD: "GET",
        URL_PATH: "/users/1",
        URL_QUERY: "page=2",
        URL_SCHEME: "http",
        SERVER_ADDRESS: "shop.example",
        SERVER_PORT: 8080,
        CLIENT_ADDRESS: "203.0.113.9",
        USER_AGENT_ORIGINAL: "curl/8.5.0",
    }


# -- query redaction ----------------------------------------------------------------

SIGNED_QUERY = "q=shoes&AWSAccessKeyId=AKIA123&Signature=abc%2Fdef&sig=s1&X-Goog-Signature=g0&page=2"
REDACTED_QUERY = (
    "q=shoes&AWSAccessKeyId=REDACTED&Signature=REDACTED&sig=REDACTED&X-Goog-Signature=REDACTED&page=2"
)


@pytest.mark.parametrize(
    ("semconv_mode", "key", "expected"),
    [("http", URL_QUERY, REDACTED_QUERY), ("", HTTP_TARGET, f"/search?{REDACTED_QUERY}")],
    indirect=["semconv_mode"],
    ids=["url.query", "http.target"],
)
def test_signature_query_parameters_are_redacted_and_everything_else_kept_as_sent(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    key: str,
    expected: str,
) -> None:
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", f"/search?{SIGNED_QUERY}", {}, b"")

    assert one_server_span(span_exporter).attributes[key] == expected


@STABLE
def test_a_query_without_signature_parameters_is_recorded_exactly_as_sent(
    instrumentor: Any, providers: dict[str, Any], make_shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    server = make_shop()
    query = "q=a%20b+c&empty=&flag&tags=x&tags=y&design=big"

    server.handle_request("GET", f"/search?{query}", {}, b"")

    assert one_server_span(span_exporter).attributes[URL_QUERY] == query


@STABLE
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("s%69g=secret&q=1", "s%69g=REDACTED&q=1"),
        ("si%67=secret", "si%67=REDACTED"),
        ("AWSAccessKeyI%64=AKIA123", "AWSAccessKeyI%64=REDACTED"),
    ],
)
def test_a_signature_parameter_with_a_percent_encoded_name_is_redacted_too(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    query: str,
    expected: str,
) -> None:
    # The server decodes "s%69g" to "sig": the same secret, spelled otherwise.
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", f"/search?{query}", {}, b"")

    assert one_server_span(span_exporter).attributes[URL_QUERY] == expected


# -- suppression ------------------------------------------------------------------


@pytest.mark.parametrize("suppress", [suppress_instrumentation, suppress_http_instrumentation])
@OLD_MODES
def test_a_suppressed_request_passes_straight_through_with_no_span_and_no_metric(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    seen_in_handler: dict[str, Any],
    suppress: Any,
) -> None:
    instrumentor.instrument(**providers)
    server = make_shop()

    with suppress():
        response = server.handle_request("GET", "/healthz", {}, b"")

    assert response is HEALTHY
    assert seen_in_handler["active"] == []
    assert span_exporter.get_finished_spans() == ()
    assert no_metric_points(metric_reader)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (SPECIFIC_EXCLUDED, "/healthz,/broken("),
        (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST, "x-request-id,x-(("),
        (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE, "["),
        (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS, "cookie,)"),
    ],
)
@pytest.mark.instrumentation_errors
def test_an_invalid_pattern_in_the_environment_is_logged_naming_the_variable_and_only_that_setting_is_ignored(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
    variable: str,
    value: str,
) -> None:
    # Under opentelemetry-instrument a raise here would stop every
    # instrumentation after this one: the bad setting alone is dropped.
    monkeypatch.setenv(variable, value)

    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/healthz", lambda headers, body: {"status": 200})
    server.handle_request("GET", "/healthz", {}, b"")

    [record] = instrumentation_errors.records
    assert variable in record.getMessage()
    assert value in record.getMessage()
    assert one_server_span(span_exporter).name == "GET /healthz"


def test_an_invalid_excluded_urls_argument_is_an_error_naming_the_value(
    instrumentor: Any, providers: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match=r"excluded_urls='/ok,\(broken'"):
        instrumentor.instrument(excluded_urls="/ok,(broken", **providers)
