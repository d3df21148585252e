"""Issue #3, lifecycle: ``instrument_app`` / ``uninstrument_app`` instrument
one existing server, whatever class it was made from, and how that combines
with ``instrument()`` / ``uninstrument()``.
"""

from __future__ import annotations

import logging
from typing import Any

import internalhttp.server
import pytest
from lifecycle_testing import (
    SPAN_NAME,
    TAGGED_USER_RESPONSE,
    USER_RESPONSE,
    Pipeline,
    delta_metric_reader,
    drain_metric_names,
    get_user,
    tagging_subclass,
    users_server,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from otel_testing import ALL_MODES, INSTRUMENTATION_LOGGER, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

instrument_app = InternalHTTPInstrumentor.instrument_app
uninstrument_app = InternalHTTPInstrumentor.uninstrument_app


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """Delta temporality: each collection shows only what was recorded since the last one."""
    return delta_metric_reader()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == INSTRUMENTATION_LOGGER and record.levelno == logging.WARNING
    ]


# -- instrument_app on servers instrument() cannot reach ------------------------


def test_instrument_app_traces_a_server_of_the_original_class(
    providers: dict[str, Any], span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    server = users_server(internalhttp.server.InternalHTTPServer)

    instrument_app(server, **providers)

    assert get_user(server) == USER_RESPONSE
    span = one_server_span(span_exporter)
    assert (span.name, span.kind) == (SPAN_NAME, SpanKind.SERVER)
    assert drain_metric_names(metric_reader) != []


def test_instrument_app_traces_a_server_created_before_instrument_with_its_own_config(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    server = users_server(internalhttp.server.InternalHTTPServer)
    everyone_else = Pipeline()
    instrumentor.instrument(**everyone_else.providers)
    hooked: list[str] = []

    instrument_app(server, request_hook=lambda span, request: hooked.append(request.path), **providers)
    get_user(server)

    assert one_server_span(span_exporter).name == SPAN_NAME
    assert hooked == ["/users/42"]
    assert everyone_else.span_names() == []


def test_instrument_app_traces_a_server_from_a_class_reference_taken_before_instrument(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    from internalhttp.server import InternalHTTPServer as EarlyReference

    everyone_else = Pipeline()
    instrumentor.instrument(**everyone_else.providers)
    server = users_server(EarlyReference)

    instrument_app(server, **providers)
    get_user(server)

    assert one_server_span(span_exporter).name == SPAN_NAME
    assert everyone_else.span_names() == []


def test_instrument_app_traces_an_instance_of_a_user_subclass(
    providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    server = users_server(tagging_subclass(internalhttp.server.InternalHTTPServer))

    instrument_app(server, **providers)
    get_user(server)

    assert one_server_span(span_exporter).name == SPAN_NAME


def test_instrument_app_keeps_the_user_subclass_override_running(providers: dict[str, Any]) -> None:
    server = users_server(tagging_subclass(internalhttp.server.InternalHTTPServer))

    instrument_app(server, **providers)

    assert get_user(server) == TAGGED_USER_RESPONSE


# -- instrumenting what is already instrumented ----------------------------------


def test_a_second_instrument_app_logs_a_warning(
    providers: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    server = users_server(internalhttp.server.InternalHTTPServer)
    instrument_app(server, **providers)

    with caplog.at_level(logging.WARNING, logger=INSTRUMENTATION_LOGGER):
        instrument_app(server, **Pipeline().providers)

    assert len(_warnings(caplog)) == 1


def test_a_second_instrument_app_changes_nothing(
    providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    server = users_server(internalhttp.server.InternalHTTPServer)
    instrument_app(server, **providers)
    ignored = Pipeline()
    ignored_hook_calls: list[object] = []

    instrument_app(
        server, request_hook=lambda span, request: ignored_hook_calls.append(request), **ignored.providers
    )
    get_user(server)

    assert one_server_span(span_exporter).name == SPAN_NAME
    assert ignored.span_names() == []
    assert ignored_hook_calls == []


def test_instrument_app_on_a_replacement_class_server_while_instrumented_logs_a_warning(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    instrumentor.instrument(**providers)
    server = users_server(internalhttp.server.InternalHTTPServer)

    with caplog.at_level(logging.WARNING, logger=INSTRUMENTATION_LOGGER):
        instrument_app(server, **Pipeline().providers)

    assert len(_warnings(caplog)) == 1


def test_instrument_app_on_a_replacement_class_server_while_instrumented_changes_nothing(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    server = users_server(internalhttp.server.InternalHTTPServer)
    ignored = Pipeline()

    instrument_app(server, **ignored.providers)
    get_user(server)

    assert one_server_span(span_exporter).name == SPAN_NAME
    assert ignored.span_names() == []


def test_instrument_app_then_instrument_still_records_one_span_per_request(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    server = users_server(internalhttp.server.InternalHTTPServer)
    instrument_app(server, **providers)
    everyone_else = Pipeline()

    instrumentor.instrument(**everyone_else.providers)
    get_user(server)

    assert one_server_span(span_exporter).name == SPAN_NAME
    assert everyone_else.span_names() == []


# -- uninstrument_app --------------------------------------------------------------


def _original_class_server(instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any]) -> Any:
    server = users_server(internalhttp.server.InternalHTTPServer)
    instrument_app(server, **providers)
    return server


def _replacement_class_server(instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any]) -> Any:
    instrumentor.instrument(**providers)
    return users_server(internalhttp.server.InternalHTTPServer)


SERVER_KINDS = pytest.mark.parametrize(
    "make_server",
    [_original_class_server, _replacement_class_server],
    ids=["instrument_app-on-original-class", "replacement-class-under-instrument"],
)


@SERVER_KINDS
def test_uninstrument_app_stops_spans(
    instrumentor: InternalHTTPInstrumentor,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    make_server: Any,
) -> None:
    server = make_server(instrumentor, providers)
    get_user(server)
    assert one_server_span(span_exporter).name == SPAN_NAME
    span_exporter.clear()

    uninstrument_app(server)

    assert get_user(server) == USER_RESPONSE
    assert span_exporter.get_finished_spans() == ()


@SERVER_KINDS
@ALL_MODES
def test_uninstrument_app_stops_metrics(
    instrumentor: InternalHTTPInstrumentor,
    providers: dict[str, Any],
    metric_reader: InMemoryMetricReader,
    make_server: Any,
) -> None:
    server = make_server(instrumentor, providers)
    get_user(server)
    assert drain_metric_names(metric_reader) != []

    uninstrument_app(server)

    assert get_user(server) == USER_RESPONSE
    assert drain_metric_names(metric_reader) == []


def test_a_handle_request_kept_from_before_uninstrument_app_answers_untraced(
    providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    server = users_server(internalhttp.server.InternalHTTPServer)
    instrument_app(server, **providers)
    kept = server.handle_request  # bound while instrumented, as a serving layer may hold it

    uninstrument_app(server)

    assert kept("GET", "/users/42", {}, b"") == USER_RESPONSE
    assert span_exporter.get_finished_spans() == ()


def test_uninstrument_app_leaves_other_replacement_class_servers_traced(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    quiet = users_server(internalhttp.server.InternalHTTPServer)
    traced = users_server(internalhttp.server.InternalHTTPServer)

    uninstrument_app(quiet)
    get_user(quiet)
    get_user(traced)

    assert one_server_span(span_exporter).name == SPAN_NAME


def test_uninstrument_app_keeps_the_user_subclass_override_running(providers: dict[str, Any]) -> None:
    server = users_server(tagging_subclass(internalhttp.server.InternalHTTPServer))
    instrument_app(server, **providers)

    uninstrument_app(server)

    assert get_user(server) == TAGGED_USER_RESPONSE


@SERVER_KINDS
def test_a_second_uninstrument_app_logs_a_warning(
    instrumentor: InternalHTTPInstrumentor,
    providers: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
    make_server: Any,
) -> None:
    server = make_server(instrumentor, providers)
    uninstrument_app(server)

    with caplog.at_level(logging.WARNING, logger=INSTRUMENTATION_LOGGER):
        uninstrument_app(server)

    assert len(_warnings(caplog)) == 1


def test_uninstrument_app_on_a_server_never_instrumented_logs_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = users_server(internalhttp.server.InternalHTTPServer)

    with caplog.at_level(logging.WARNING, logger=INSTRUMENTATION_LOGGER):
        uninstrument_app(server)

    assert len(_warnings(caplog)) == 1
    assert get_user(server) == USER_RESPONSE


@SERVER_KINDS
def test_instrument_app_after_uninstrument_app_records_with_the_new_config(
    instrumentor: InternalHTTPInstrumentor,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    make_server: Any,
) -> None:
    server = make_server(instrumentor, providers)
    uninstrument_app(server)
    new = Pipeline()
    hooked: list[str] = []

    instrument_app(server, request_hook=lambda span, request: hooked.append(request.path), **new.providers)
    get_user(server)

    assert new.span_names() == [SPAN_NAME]
    assert hooked == ["/users/42"]
    assert span_exporter.get_finished_spans() == ()


# -- uninstrument() and instrument_app'd servers -----------------------------------


def test_uninstrument_leaves_an_instrument_app_server_of_the_original_class_traced(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    # Documented: instrument_app'd servers keep their own configuration
    # until uninstrument_app, whatever instrument()/uninstrument() do.
    server = users_server(internalhttp.server.InternalHTTPServer)
    instrumentor.instrument(**Pipeline().providers)
    instrument_app(server, **providers)

    instrumentor.uninstrument()
    get_user(server)

    assert one_server_span(span_exporter).name == SPAN_NAME


def test_uninstrument_silences_replacement_class_servers_next_to_instrument_app_ones(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    app_server = users_server(internalhttp.server.InternalHTTPServer)
    instrument_app(app_server, **Pipeline().providers)
    instrumentor.instrument(**providers)
    replacement_server = users_server(internalhttp.server.InternalHTTPServer)

    instrumentor.uninstrument()
    get_user(replacement_server)

    assert span_exporter.get_finished_spans() == ()


def test_instrument_app_on_a_replacement_class_server_after_uninstrument_outlives_instrument(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**Pipeline().providers)
    server = users_server(internalhttp.server.InternalHTTPServer)
    instrumentor.uninstrument()
    instrument_app(server, **providers)
    everyone_else = Pipeline()

    instrumentor.instrument(**everyone_else.providers)
    instrumentor.uninstrument()
    get_user(server)

    assert one_server_span(span_exporter).name == SPAN_NAME
    assert everyone_else.span_names() == []
