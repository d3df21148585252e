"""Configuration: excluded URLs, captured headers, query redaction, suppression."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import internalhttp.server
import pytest
from internalhttp.testing import TestClient
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
    OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS,
)
from otel_testing import (
    ALL_MODES,
    BEHIND_PROXY,
    OLD,
    OLD_MODES,
    STABLE,
    metric_points,
    one_server_span,
)

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


# -- invalid settings: named, with the valid items kept ----------------------------


@pytest.mark.parametrize(
    ("variable", "value", "invalid"),
    [
        (SPECIFIC_EXCLUDED, "/never,/broken(", "'/broken('"),
        (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST, "x-request-id,x-((", "'x-(('"),
        (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE, "[", "'['"),
        (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS, "cookie,)", "')'"),
    ],
)
@pytest.mark.instrumentation_errors
def test_an_invalid_pattern_in_the_environment_is_named_with_its_variable_and_requests_are_still_recorded(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
    variable: str,
    value: str,
    invalid: str,
) -> None:
    # Under opentelemetry-instrument a raise here would stop every
    # instrumentation after this one: the bad item alone is dropped.
    monkeypatch.setenv(variable, value)

    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/healthz", lambda headers, body: {"status": 200})
    server.handle_request("GET", "/healthz", {}, b"")

    [record] = instrumentation_errors.records
    assert record.getMessage().startswith(f"{variable}={value!r}: {invalid} (")
    assert one_server_span(span_exporter).name == "GET /healthz"


@pytest.mark.instrumentation_errors
def test_the_valid_excluded_urls_beside_an_invalid_one_still_apply(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv(SPECIFIC_EXCLUDED, "healthz,/broken(")
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", "/healthz", {}, b"")
    server.handle_request("GET", "/orders", {}, b"")

    assert traced_paths(span_exporter) == ["/orders"]


@STABLE
@pytest.mark.instrumentation_errors
def test_the_valid_header_patterns_beside_an_invalid_one_are_still_captured(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv(OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST, "x-request-id,x-((")
    instrumentor.instrument(**providers)

    make_shop().handle_request("GET", "/users/1", REQUEST_HEADERS, b"")

    assert one_server_span(span_exporter).attributes["http.request.header.x-request-id"] == ("r-1",)


@pytest.mark.instrumentation_errors
def test_an_invalid_pattern_in_a_keyword_is_named_in_an_error_and_the_valid_ones_apply(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    instrumentation_errors: Any,
) -> None:
    instrumentor.instrument(excluded_urls="healthz,(broken", **providers)
    server = make_shop()

    server.handle_request("GET", "/healthz", {}, b"")
    server.handle_request("GET", "/orders", {}, b"")

    [record] = instrumentation_errors.records
    assert record.getMessage().startswith("excluded_urls='healthz,(broken': '(broken' (missing ),")
    assert traced_paths(span_exporter) == ["/orders"]


@pytest.mark.instrumentation_errors
def test_a_pattern_that_compiles_alone_but_not_beside_the_others_is_named_too(
    instrumentor: Any, providers: dict[str, Any], instrumentation_errors: Any
) -> None:
    # The patterns are joined into one expression: a group name may appear once.
    instrumentor.instrument(excluded_urls=["(?P<x>a)", "(?P<x>b)"], **providers)

    [record] = instrumentation_errors.records
    assert "'(?P<x>b)' (redefinition of group name 'x'" in record.getMessage()


@OLD
@pytest.mark.instrumentation_errors
def test_an_invalid_known_method_is_named_and_the_valid_ones_replace_the_default_list(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,BAD METHOD")
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", "/orders", {}, b"")
    server.handle_request("DELETE", "/orders", {}, b"")

    [record] = instrumentation_errors.records
    assert record.getMessage().startswith(
        "OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS='GET,BAD METHOD': 'BAD METHOD' ignored"
        " (valid: HTTP method tokens"
    )
    methods = [span.attributes["http.method"] for span in span_exporter.get_finished_spans()]
    assert methods == ["GET", "_OTHER"]


@OLD
@pytest.mark.instrumentation_errors
def test_known_methods_with_no_valid_item_leave_the_default_list(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "BAD METHOD")
    instrumentor.instrument(**providers)

    make_shop().handle_request("DELETE", "/orders", {}, b"")

    assert "the default applies" in instrumentation_errors.records[0].getMessage()
    assert one_server_span(span_exporter).attributes["http.method"] == "DELETE"


@pytest.mark.parametrize("semconv_mode", ["htpp"], indirect=True)
@pytest.mark.instrumentation_errors
def test_an_unknown_semconv_stability_value_is_named_once_per_instrument_call_and_the_old_conventions_apply(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    instrumentation_errors: Any,
) -> None:
    instrumentor.instrument(**providers)

    make_shop().handle_request("GET", "/orders", {}, b"")
    make_shop().handle_request("GET", "/orders", {}, b"")

    [record] = instrumentation_errors.records
    assert record.getMessage().startswith(
        "OTEL_SEMCONV_STABILITY_OPT_IN='htpp': 'htpp' ignored (valid: http, "
    )
    assert [span.attributes["http.method"] for span in span_exporter.get_finished_spans()] == ["GET", "GET"]


OTHER_DOMAINS = "http, database/dup, messaging, rpc/dup, code, gen_ai_latest_experimental"


@pytest.mark.parametrize("semconv_mode", [OTHER_DOMAINS], indirect=True)
def test_the_semconv_stability_values_of_other_domains_are_not_reported(
    instrumentor: Any, providers: dict[str, Any], make_shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)

    make_shop().handle_request("GET", "/orders", {}, b"")

    assert one_server_span(span_exporter).attributes["http.request.method"] == "GET"


@pytest.mark.instrumentation_errors
def test_an_unknown_exception_signal_value_is_named_and_exceptions_stay_span_events(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN", "log")
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")

    def broken(headers: Any, body: Any) -> Any:
        raise LookupError("gone")

    server.add_route("/broken", broken)
    with pytest.raises(LookupError):
        server.handle_request("GET", "/broken", {}, b"")

    [record] = instrumentation_errors.records
    assert record.getMessage() == (
        "OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN='log': 'log' ignored (valid: logs, logs/dup)"
    )
    assert [event.name for event in one_server_span(span_exporter).events] == ["exception"]


@OLD
def test_capture_all_methods_false_keeps_unknown_methods_as_other(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS, "False")
    instrumentor.instrument(**providers)

    make_shop().handle_request("BREW", "/orders", {}, b"")

    assert one_server_span(span_exporter).attributes["http.method"] == "_OTHER"


@pytest.mark.instrumentation_errors
def test_capture_all_methods_other_than_true_or_false_is_named(
    instrumentor: Any,
    providers: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv(OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS, "yes")

    instrumentor.instrument(**providers)

    [record] = instrumentation_errors.records
    assert record.getMessage() == (
        "OTEL_PYTHON_INSTRUMENTATION_HTTP_CAPTURE_ALL_METHODS='yes' is ignored (valid: true, false)"
    )


# -- a configuration file (the rest is in test_config_file.py, SDK 1.44+ only) -----


@pytest.mark.instrumentation_errors
def test_a_file_that_cannot_be_read_is_named_and_the_environment_variables_apply(
    instrumentor: Any,
    providers: dict[str, Any],
    make_shop: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv("OTEL_CONFIG_FILE", str(tmp_path / "missing.yaml"))
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_EXCLUDED_URLS", "/healthz")
    instrumentor.instrument(**providers)
    server = make_shop()

    server.handle_request("GET", "/healthz", {}, b"")
    server.handle_request("GET", "/orders", {}, b"")

    [record] = instrumentation_errors.records
    assert record.getMessage().startswith(f"OTEL_CONFIG_FILE={str(tmp_path / 'missing.yaml')!r} is not used")
    assert one_server_span(span_exporter).name == "GET /orders"


# -- adding a sensitive query parameter keeps the defaults -------------------------


@pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
def test_an_added_sensitive_query_parameter_is_redacted_alike_on_the_span_and_in_the_access_line(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    framework_logs: None,
    log_exporter: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_SENSITIVE_QUERY_PARAMETERS", "token")
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/search", lambda headers, body: {"status": 200})

    TestClient(server).get("/search?token=t1&sig=s1&q=shoes")

    [access_line] = [
        record.log_record.body
        for record in log_exporter.get_finished_logs()
        if record.instrumentation_scope.name == "internalhttp.access"
    ]
    assert "/search?token=REDACTED&sig=REDACTED&q=shoes" in access_line
    assert one_server_span(span_exporter).attributes[URL_QUERY] == "token=REDACTED&sig=REDACTED&q=shoes"
