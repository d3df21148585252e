"""Issue #3, lifecycle: calling ``instrument()`` or ``uninstrument()`` twice
logs a warning and changes nothing (the warnings come from
``BaseInstrumentor``, through its own logger).
"""

from __future__ import annotations

import logging
from typing import Any

import internalhttp
import internalhttp.server
import pytest
from lifecycle_testing import SPAN_NAME, USER_RESPONSE, Pipeline, get_user, users_server
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_testing import BASE_INSTRUMENTOR_LOGGER, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor, _InstrumentedInternalHTTPServer


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == BASE_INSTRUMENTOR_LOGGER and record.levelno == logging.WARNING
    ]


def test_instrumenting_twice_logs_a_warning(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    instrumentor.instrument(**providers)

    with caplog.at_level(logging.WARNING, logger=BASE_INSTRUMENTOR_LOGGER):
        instrumentor.instrument(**providers)

    [warning] = _warnings(caplog)
    assert "already instrumented" in warning


def test_instrumenting_twice_records_one_span_per_request(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    instrumentor.instrument(**providers)

    get_user(users_server(internalhttp.server.InternalHTTPServer))

    assert one_server_span(span_exporter).name == SPAN_NAME


def test_instrumenting_twice_keeps_the_first_configuration(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    ignored = Pipeline()

    instrumentor.instrument(**ignored.providers)
    get_user(users_server(internalhttp.server.InternalHTTPServer))

    assert one_server_span(span_exporter).name == SPAN_NAME
    assert ignored.span_names() == []


def test_instrumenting_twice_does_not_stack_replacement_classes(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any]
) -> None:
    original = internalhttp.server.InternalHTTPServer
    instrumentor.instrument(**providers)
    instrumentor.instrument(**providers)

    assert internalhttp.server.InternalHTTPServer is _InstrumentedInternalHTTPServer
    instrumentor.uninstrument()
    assert internalhttp.server.InternalHTTPServer is original


def test_uninstrumenting_twice_logs_a_warning(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    instrumentor.instrument(**providers)
    instrumentor.uninstrument()

    with caplog.at_level(logging.WARNING, logger=BASE_INSTRUMENTOR_LOGGER):
        instrumentor.uninstrument()

    [warning] = _warnings(caplog)
    assert "already uninstrumented" in warning


def test_uninstrumenting_twice_keeps_the_original_class_bound(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any]
) -> None:
    before = (internalhttp.server.InternalHTTPServer, internalhttp.InternalHTTPServer)
    instrumentor.instrument(**providers)
    instrumentor.uninstrument()

    instrumentor.uninstrument()

    assert (internalhttp.server.InternalHTTPServer, internalhttp.InternalHTTPServer) == before


def test_uninstrumenting_twice_leaves_servers_working_and_untraced(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    server = users_server(internalhttp.server.InternalHTTPServer)
    instrumentor.uninstrument()

    instrumentor.uninstrument()

    assert get_user(server) == USER_RESPONSE
    assert span_exporter.get_finished_spans() == ()


def test_uninstrumenting_without_instrumenting_logs_a_warning(
    instrumentor: InternalHTTPInstrumentor, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger=BASE_INSTRUMENTOR_LOGGER):
        instrumentor.uninstrument()

    [warning] = _warnings(caplog)
    assert "already uninstrumented" in warning
