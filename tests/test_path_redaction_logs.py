"""The framework's log lines redact a route's secret path parameters as the spans do."""

from __future__ import annotations

import logging
from typing import Any

import internalhttp.server
import pytest
from internalhttp.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.url_attributes import URL_PATH
from otel_testing import STABLE, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor


def fail(headers: Any, body: Any, token: str) -> Any:
    raise RuntimeError("reset failed")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("internalhttp")]


@pytest.fixture
def shop() -> internalhttp.server.InternalHTTPServer:
    server = internalhttp.server.InternalHTTPServer("shop")
    server.add_route("/reset/<token>", lambda headers, body, token: "ok")
    server.add_route("/reset/<token>/fail", fail)
    server.add_route("/orders/<order_id>", lambda headers, body, order_id: "ok")
    return server


def test_the_access_line_shows_a_secret_path_parameter_redacted_uninstrumented_too(
    shop: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="internalhttp"):
        TestClient(shop).get("/reset/s3cret-t0ken?x=1")
        TestClient(shop).get("/orders/42")

    assert [line.split('"')[1] for line in lines(caplog)] == ["GET /reset/REDACTED?x=1", "GET /orders/42"]


def test_the_error_line_shows_a_secret_path_parameter_redacted(
    shop: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="internalhttp"):
        TestClient(shop, raise_server_exceptions=False).get("/reset/s3cret-t0ken/fail")

    assert all("s3cret" not in line for line in lines(caplog))
    assert "error while handling GET /reset/REDACTED/fail" in lines(caplog)[0]


@STABLE
def test_a_parameter_added_by_the_instrumentation_is_redacted_in_spans_and_log_lines_alike(
    shop: Any,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    InternalHTTPInstrumentor.instrument_app(shop, sensitive_path_parameters="order_id", **providers)

    with caplog.at_level(logging.INFO, logger="internalhttp"):
        TestClient(shop).get("/orders/42")

    assert one_server_span(span_exporter).attributes[URL_PATH] == "/orders/REDACTED"
    assert '"GET /orders/REDACTED"' in lines(caplog)[0]


def test_uninstrument_app_gives_the_server_the_frameworks_lists_back(
    shop: Any, providers: dict[str, Any]
) -> None:
    InternalHTTPInstrumentor.instrument_app(shop, sensitive_path_parameters_replace="order_id", **providers)
    InternalHTTPInstrumentor.uninstrument_app(shop)

    assert shop.sensitive_path_parameters == internalhttp.server.InternalHTTPServer.sensitive_path_parameters
