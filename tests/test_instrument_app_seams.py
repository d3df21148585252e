"""``instrument_app`` on a server of the original class covers every framework seam.

A server made before ``instrument()`` (or from a class reference taken
before it) is instrumented through attributes of its own: the requests a
serving layer ends in ``respond``, the failures it logs, the requests it
refuses, and the query parameters its log lines redact all follow that
server's own telemetry, and nothing of it is left after ``uninstrument_app``.
"""

from __future__ import annotations

import io
import logging
from typing import Any
from wsgiref.util import setup_testing_defaults

import internalhttp
import internalhttp.server
import pytest
from internalhttp.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_testing import one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

# Taken at import time, before any test instruments: the framework's own class.
BareServer = internalhttp.server.InternalHTTPServer

pytestmark = pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)


def broken(headers: Any, body: Any) -> Any:
    raise LookupError("no such basket")


@pytest.fixture
def shop(providers: dict[str, Any]) -> Any:
    server = BareServer("shop")
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": item_id})
    server.add_route("/basket", broken)
    InternalHTTPInstrumentor.instrument_app(server, sensitive_query_parameters=["token"], **providers)
    yield server
    if server._is_instrumented_by_opentelemetry:
        InternalHTTPInstrumentor.uninstrument_app(server)


def test_a_request_served_through_respond_is_one_server_span(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    assert TestClient(shop).get("/items/7").status == 200

    span = one_server_span(span_exporter)
    assert (span.name, span.attributes["http.response.status_code"]) == ("GET /items/<item_id>", 200)


def test_a_refusal_of_the_wsgi_adapter_is_recorded_for_the_server(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/items", "CONTENT_LENGTH": "x"}
    environ["wsgi.input"] = io.BytesIO(b"")
    setup_testing_defaults(environ)

    internalhttp.make_wsgi_app(shop)(environ, lambda status, headers: None)

    assert one_server_span(span_exporter).attributes["http.response.status_code"] == 400


def test_the_servers_log_lines_redact_the_query_parameters_its_telemetry_redacts(
    shop: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="internalhttp"):
        TestClient(shop, raise_server_exceptions=False).get("/basket?token=s3cret")

    lines = [record.getMessage() for record in caplog.records if record.name.startswith("internalhttp")]
    assert len(lines) == 2  # the error record and the access line
    assert all("token=REDACTED" in line and "s3cret" not in line for line in lines)


def test_with_exceptions_as_logs_the_servers_error_line_is_not_written(
    providers: dict[str, Any],
    logger_provider: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN", "logs")
    server = BareServer("shop")
    server.add_route("/basket", broken)
    InternalHTTPInstrumentor.instrument_app(server, logger_provider=logger_provider, **providers)

    with caplog.at_level(logging.ERROR, logger="internalhttp"):
        assert TestClient(server, raise_server_exceptions=False).get("/basket").status == 500

    assert [record for record in caplog.records if record.name == "internalhttp"] == []


def test_after_uninstrument_app_the_server_logs_refuses_and_redacts_as_the_framework_does(
    shop: Any, span_exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    InternalHTTPInstrumentor.uninstrument_app(shop)

    with caplog.at_level(logging.ERROR, logger="internalhttp"):
        assert TestClient(shop, raise_server_exceptions=False).get("/basket?sig=s").status == 500

    assert span_exporter.get_finished_spans() == ()
    assert shop.sensitive_query_parameters == BareServer.sensitive_query_parameters
    assert {"handle_request", "respond", "log_failure", "refused"}.isdisjoint(vars(shop))
    [error] = [record for record in caplog.records if record.name == "internalhttp"]
    assert "sig=REDACTED" in error.getMessage()


def test_an_excluded_request_served_through_respond_records_nothing(
    providers: dict[str, Any], span_exporter: InMemorySpanExporter, metric_reader: Any
) -> None:
    server = BareServer("shop")
    server.add_route("/healthz", lambda headers, body: "ok")
    InternalHTTPInstrumentor.instrument_app(server, excluded_urls="/healthz", **providers)

    assert TestClient(server).get("/healthz").text == "ok"

    assert span_exporter.get_finished_spans() == ()
    assert metric_reader.get_metrics_data() is None or not metric_reader.get_metrics_data().resource_metrics


def test_an_instrumented_class_server_redacts_with_the_framework_list_once_uninstrumented(
    instrumentor: Any, providers: dict[str, Any]
) -> None:
    instrumentor.instrument(sensitive_query_parameters=["token"], **providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    assert server.sensitive_query_parameters == (*BareServer.sensitive_query_parameters, "token")

    instrumentor.uninstrument()

    assert server.sensitive_query_parameters == BareServer.sensitive_query_parameters


@pytest.mark.parametrize(
    "option",
    ["http_capture_headers_server_request", "known_methods", "sensitive_query_parameters", "opt_in"],
)
def test_a_keyword_that_is_neither_a_string_nor_a_list_of_strings_is_a_value_error_naming_it(
    providers: dict[str, Any], option: str
) -> None:
    with pytest.raises(ValueError, match=option):
        InternalHTTPInstrumentor.instrument_app(BareServer("shop"), **{option: 5}, **providers)
