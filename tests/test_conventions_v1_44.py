"""The HTTP semantic conventions v1.44 and the contrib configuration surface.

Known methods, query redaction, opt-in attributes and metrics (recorded only
when asked), header capture by keyword, excluded URLs written as paths or
full URLs, failing hooks shown on the span, labeler attributes on the
duration, and every start attribute visible to the sampler.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import internalhttp
import internalhttp.server
import pytest
from opentelemetry.context import Context
from opentelemetry.instrumentation._labeler import get_labeler
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from otel_testing import BEHIND_PROXY, metric_points, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

ALL_MODES = pytest.mark.parametrize("semconv_mode", ["", "http", "http/dup"], indirect=True)
STABLE = pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)
NEW_OR_DUP = pytest.mark.parametrize("semconv_mode", ["http", "http/dup"], indirect=True)
METHOD_KEY = {"": "http.method", "http": "http.request.method", "http/dup": "http.request.method"}
DURATION = {
    "": "http.server.duration",
    "http": "http.server.request.duration",
    "http/dup": "http.server.request.duration",
}
SOCKET = internalhttp.ConnectionInfo(
    client_address="192.0.2.10",
    client_port=50321,
    server_address="10.0.0.5",
    server_port=8080,
    protocol_version="1.1",
)
OPT_IN_VARIABLE = "OTEL_PYTHON_INTERNALHTTP_OPT_IN"


def make_shop() -> Any:
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": "ok"})
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": "updated"}, method="PUT")
    server.add_route("/items", lambda headers, body: {"status": 201, "body": "created"}, method="POST")
    server.add_route("/cache", lambda headers, body: {"body": "purged"}, method="PURGE")
    server.add_route("/healthz", lambda headers, body: {"body": "ok"})
    return server


@pytest.fixture
def instrument(instrumentor: Any, providers: dict[str, Any], semconv_mode: str) -> Any:
    """instrument() with the test's providers and the given options; returns a new server."""

    def instrument(**options: Any) -> Any:
        instrumentor.instrument(**providers, **options)
        return make_shop()

    return instrument


def span_attributes(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return dict(one_server_span(exporter).attributes)


# -- known methods ----------------------------------------------------------------


@ALL_MODES
def test_query_is_a_known_method_by_default(
    instrument: Any, span_exporter: InMemorySpanExporter, semconv_mode: str
) -> None:
    instrument().handle_request("QUERY", "/items/1", {}, b"")

    assert span_attributes(span_exporter)[METHOD_KEY[semconv_mode]] == "QUERY"


@ALL_MODES
@pytest.mark.parametrize("how", ["environment", "keyword"])
def test_the_known_methods_setting_replaces_the_default_list_case_sensitively(
    instrument: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    semconv_mode: str,
    how: str,
) -> None:
    if how == "environment":
        monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_KNOWN_METHODS", "GET,BREW")
        server = instrument()
    else:
        server = instrument(known_methods=["GET", "BREW"])

    for method in ("BREW", "DELETE", "brew"):
        server.handle_request(method, "/items/1", {}, b"")

    methods = [span.attributes[METHOD_KEY[semconv_mode]] for span in span_exporter.get_finished_spans()]
    assert methods == ["BREW", "_OTHER", "_OTHER"]


# -- query redaction -------------------------------------------------------------

REDACTED_KEYS = [
    "AWSAccessKeyId",
    "Signature",
    "sig",
    "X-Goog-Signature",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
]


@ALL_MODES
@pytest.mark.parametrize("key", REDACTED_KEYS)
def test_each_credential_in_the_current_list_is_redacted_by_default(
    instrument: Any, span_exporter: InMemorySpanExporter, semconv_mode: str, key: str
) -> None:
    instrument().handle_request("GET", f"/items/1?a=1&{key}=secret", {}, b"")

    attributes = span_attributes(span_exporter)
    recorded = attributes.get("url.query", attributes.get("http.target"))
    assert recorded.endswith(f"a=1&{key}=REDACTED")
    assert "secret" not in str(attributes)


@STABLE
@pytest.mark.parametrize("how", ["environment", "keyword"])
def test_the_sensitive_query_parameters_setting_adds_to_the_default_list(
    instrument: Any, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "environment":
        monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_SENSITIVE_QUERY_PARAMETERS", "token")
        server = instrument()
    else:
        server = instrument(sensitive_query_parameters=["token"])

    server.handle_request("GET", "/items/1?token=t&sig=s&q=1", {}, b"")

    assert span_attributes(span_exporter)["url.query"] == "token=REDACTED&sig=REDACTED&q=1"


@STABLE
@pytest.mark.parametrize("how", ["environment", "keyword"])
def test_the_replacing_form_of_the_sensitive_query_parameters_setting_replaces_the_default_list(
    instrument: Any, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "environment":
        monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_SENSITIVE_QUERY_PARAMETERS_REPLACE", "token")
        server = instrument()
    else:
        server = instrument(sensitive_query_parameters_replace=["token"])

    server.handle_request("GET", "/items/1?token=t&sig=s", {}, b"")

    assert span_attributes(span_exporter)["url.query"] == "token=REDACTED&sig=s"


@STABLE
def test_both_forms_together_redact_the_replacing_list_plus_the_added_names(
    instrument: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = instrument(sensitive_query_parameters_replace="token", sensitive_query_parameters="api_key")

    server.handle_request("GET", "/items/1?token=t&api_key=k&sig=s", {}, b"")

    assert span_attributes(span_exporter)["url.query"] == "token=REDACTED&api_key=REDACTED&sig=s"


@STABLE
def test_an_empty_replacing_list_redacts_nothing(
    instrument: Any, span_exporter: InMemorySpanExporter
) -> None:
    instrument(sensitive_query_parameters_replace=[]).handle_request("GET", "/items/1?sig=s", {}, b"")

    assert span_attributes(span_exporter)["url.query"] == "sig=s"


# -- opt-in attributes -----------------------------------------------------------

SPAN_OPT_INS = {
    "client.port": ("client.port", 50321),
    "network.local.address": ("network.local.address", "10.0.0.5"),
    "network.local.port": ("network.local.port", 8080),
    "network.transport": ("network.transport", "tcp"),
    "user_agent.synthetic.type": ("user_agent.synthetic.type", "bot"),
    "http.request.body.size": ("http.request.body.size", 5),
    "http.response.body.size": ("http.response.body.size", 7),
}
BOT = {"User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}


@NEW_OR_DUP
@pytest.mark.parametrize("opt_in", SPAN_OPT_INS)
def test_an_opt_in_span_attribute_is_recorded_only_when_asked_for(
    instrument: Any, providers: dict[str, Any], span_exporter: InMemorySpanExporter, opt_in: str
) -> None:
    key, value = SPAN_OPT_INS[opt_in]
    instrument().handle_request("PUT", "/items/1", BOT, b"hello", connection=SOCKET)
    assert key not in span_attributes(span_exporter)

    InternalHTTPInstrumentor().uninstrument()
    opted_in = make_shop()
    InternalHTTPInstrumentor.instrument_app(opted_in, opt_in=[opt_in], **providers)
    span_exporter.clear()
    opted_in.handle_request("PUT", "/items/1", BOT, b"hello", connection=SOCKET)

    assert span_attributes(span_exporter)[key] == value


@STABLE
def test_all_opts_in_to_every_attribute_and_metric(
    instrument: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    instrument(opt_in="all").handle_request("PUT", "/items/1", BOT, b"hello", connection=SOCKET)

    attributes = span_attributes(span_exporter)
    assert {key: attributes.get(key) for key, _ in SPAN_OPT_INS.values()} == dict(SPAN_OPT_INS.values())
    [point] = metric_points(metric_reader, "http.server.request.duration")
    assert point.attributes["server.address"] == "10.0.0.5"
    assert point.attributes["server.port"] == 8080
    assert point.attributes["user_agent.synthetic.type"] == "bot"
    assert [p.sum for p in metric_points(metric_reader, "http.server.request.body.size")] == [5]
    assert [p.sum for p in metric_points(metric_reader, "http.server.response.body.size")] == [7]
    assert [p.value for p in metric_points(metric_reader, "http.server.active_requests")] == [0]


@pytest.mark.parametrize("semconv_mode", [""], indirect=True)
def test_the_old_conventions_name_the_opted_in_body_size_histograms_as_contrib_asgi_does(
    instrument: Any, metric_reader: InMemoryMetricReader
) -> None:
    server = instrument(opt_in="http.server.request.body.size,http.server.response.body.size")
    server.handle_request("PUT", "/items/1", {}, b"hello")

    assert [p.sum for p in metric_points(metric_reader, "http.server.request.size")] == [5]
    assert [p.sum for p in metric_points(metric_reader, "http.server.response.size")] == [7]


@ALL_MODES
def test_no_opt_in_metric_is_recorded_by_default(
    instrument: Any, metric_reader: InMemoryMetricReader, semconv_mode: str
) -> None:
    instrument().handle_request("PUT", "/items/1", BOT, b"hello", connection=SOCKET)

    [point] = metric_points(metric_reader, DURATION[semconv_mode])
    assert not {"server.address", "server.port", "user_agent.synthetic.type"} & set(point.attributes)
    for name in ("http.server.request.body.size", "http.server.request.size", "http.server.response.size"):
        assert metric_points(metric_reader, name) == []


@pytest.mark.parametrize(
    ("semconv_mode", "counted"), [("", True), ("http/dup", True), ("http", False)], indirect=["semconv_mode"]
)
def test_active_requests_is_kept_for_the_old_conventions_and_opt_in_in_the_stable_ones(
    instrument: Any, metric_reader: InMemoryMetricReader, counted: bool
) -> None:
    instrument().handle_request("GET", "/items/1", {}, b"")

    assert len(metric_points(metric_reader, "http.server.active_requests")) == int(counted)


@STABLE
def test_the_metric_server_address_comes_from_the_connection_never_the_clients_host(
    instrument: Any, metric_reader: InMemoryMetricReader
) -> None:
    server = instrument(opt_in=["server.address", "server.port"])
    for host in ("a.example", "b.example:81"):
        server.handle_request("GET", "/items/1", {"Host": host}, b"", connection=SOCKET)

    [point] = metric_points(metric_reader, "http.server.request.duration")
    assert (point.attributes["server.address"], point.attributes["server.port"], point.count) == (
        "10.0.0.5",
        8080,
        2,
    )


@pytest.mark.instrumentation_errors
@STABLE
def test_an_unknown_opt_in_keyword_item_is_named_in_an_error_and_the_known_ones_are_kept(
    instrument: Any, span_exporter: InMemorySpanExporter, instrumentation_errors: Any
) -> None:
    server = instrument(opt_in="client.port,client.prot")

    server.handle_request("GET", "/items/1", {}, b"", connection=SOCKET)

    [record] = instrumentation_errors.records
    assert "opt_in=" in record.getMessage()
    assert "'client.prot' ignored" in record.getMessage()
    assert span_attributes(span_exporter)["client.port"] == 50321


@pytest.mark.instrumentation_errors
@STABLE
def test_an_unknown_opt_in_in_the_environment_is_named_in_an_error_and_the_known_ones_are_kept(
    instrument: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv(OPT_IN_VARIABLE, "client.port,nonsense")

    instrument().handle_request("GET", "/items/1", {}, b"", connection=SOCKET)

    [record] = instrumentation_errors.records
    assert OPT_IN_VARIABLE in record.getMessage()
    assert "'nonsense' ignored (valid: all, client.port," in record.getMessage()
    assert span_attributes(span_exporter)["client.port"] == 50321


# -- header capture by keyword -------------------------------------------------------


@NEW_OR_DUP
def test_headers_to_capture_can_be_given_as_keywords_to_instrument(
    instrument: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = instrument(
        http_capture_headers_server_request=["x-request-id", "authorization"],
        http_capture_headers_server_response="x-served-by",
        http_capture_headers_sanitize_fields="authorization",
    )
    server.add_route("/served", lambda headers, body: {"headers": {"X-Served-By": "shop-1"}})

    server.handle_request("GET", "/served", {"X-Request-Id": "r-1", "Authorization": "Bearer t"}, b"")

    attributes = span_attributes(span_exporter)
    assert attributes["http.request.header.x-request-id"] == ("r-1",)
    assert attributes["http.request.header.authorization"] == ("[REDACTED]",)
    assert attributes["http.response.header.x-served-by"] == ("shop-1",)


@STABLE
def test_a_header_capture_keyword_wins_over_the_environment_for_instrument_app(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-from-env")
    server = make_shop()
    instrumentor.instrument_app(server, http_capture_headers_server_request=["x-from-keyword"], **providers)

    server.handle_request("GET", "/items/1", {"X-From-Env": "e", "X-From-Keyword": "k"}, b"")

    attributes = span_attributes(span_exporter)
    assert attributes["http.request.header.x-from-keyword"] == ("k",)
    assert "http.request.header.x-from-env" not in attributes


@STABLE
def test_an_unknown_keyword_is_named_in_a_warning(
    instrumentor: Any, providers: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="opentelemetry_ext_internalhttp"):
        instrumentor.instrument(exclude_urls="/healthz", **providers)

    [warning] = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert "exclude_urls" in warning


# -- excluded URLs --------------------------------------------------------------------


@ALL_MODES
@pytest.mark.parametrize(
    "pattern", ["/healthz", "^/healthz$", r"https://shop\.example/healthz", r"shop\.example:8443/healthz"]
)
def test_an_excluded_url_pattern_may_be_written_as_a_path_or_as_a_full_url(
    instrument: Any, span_exporter: InMemorySpanExporter, pattern: str
) -> None:
    server = instrument(excluded_urls=pattern)
    headers = {
        "Host": "shop.example:8443" if "8443" in pattern else "shop.example",
        "X-Forwarded-Proto": "https",
    }

    server.handle_request("GET", "/healthz?probe=1", headers, b"", connection=BEHIND_PROXY)
    server.handle_request("GET", "/items/1", headers, b"", connection=BEHIND_PROXY)

    assert [span.name for span in span_exporter.get_finished_spans()] == ["GET /items/<item_id>"]


@STABLE
def test_an_excluded_url_pattern_never_sees_the_query(
    instrument: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = instrument(excluded_urls="probe")

    server.handle_request("GET", "/healthz?probe=1", {}, b"")

    assert one_server_span(span_exporter).name == "GET /healthz"


# -- failing hooks are shown on the span ---------------------------------------------


@pytest.mark.instrumentation_errors
@ALL_MODES
@pytest.mark.parametrize("hook", ["request_hook", "response_hook"])
def test_a_hook_that_raises_is_logged_and_recorded_as_an_exception_event_on_the_server_span(
    instrument: Any, span_exporter: InMemorySpanExporter, instrumentation_errors: Any, hook: str
) -> None:

    def failing(*args: Any) -> None:
        raise LookupError("hook bug")

    response = instrument(**{hook: failing}).handle_request("GET", "/items/1", {}, b"")

    assert response == {"body": "ok"}
    [event] = one_server_span(span_exporter).events
    assert (event.name, event.attributes["exception.type"], event.attributes["exception.message"]) == (
        "exception",
        "LookupError",
        "hook bug",
    )
    assert hook in instrumentation_errors.records[0].getMessage()


# -- labeler ----------------------------------------------------------------------------


@ALL_MODES
def test_attributes_a_handler_adds_with_the_labeler_appear_on_its_duration_point_only(
    instrument: Any, metric_reader: InMemoryMetricReader, semconv_mode: str
) -> None:
    server = instrument()

    def checkout(headers: Any, body: Any) -> Any:
        get_labeler().add("checkout.tier", headers.get("x-tier"))
        return {"body": "ok"}

    server.add_route("/checkout", checkout)
    server.handle_request("GET", "/checkout", {"X-Tier": "gold"}, b"")
    server.handle_request("GET", "/items/1", {}, b"")

    tiers = {
        point.attributes.get("http.route"): point.attributes.get("checkout.tier")
        for point in metric_points(metric_reader, DURATION[semconv_mode])
    }
    assert tiers == {"/checkout": "gold", "/items/<item_id>": None}


# -- the sampler sees every start attribute ------------------------------------------------


class RecordingSampler(Sampler):
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        self.seen.append(dict(attributes or {}))
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "RecordingSampler"


@ALL_MODES
def test_the_sampler_sees_every_attribute_known_when_the_request_starts(
    instrumentor: Any, meter_provider: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "x-request-id")
    sampler = RecordingSampler()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=sampler)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider, opt_in="all")
    server = make_shop()

    server.handle_request("PUT", "/items/1?q=1", {**BOT, "X-Request-Id": "r-1"}, b"hello", connection=SOCKET)

    at_end = dict(one_server_span(exporter).attributes)
    # Only what the response decides is added after the start.
    decided_later = {"http.status_code", "http.response.status_code", "http.response.body.size"}
    seen = [
        {key: tuple(v) if isinstance(v, list) else v for key, v in attributes.items()}
        for attributes in sampler.seen
    ]
    assert seen == [{key: value for key, value in at_end.items() if key not in decided_later}]
