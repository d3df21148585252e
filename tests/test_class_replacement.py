"""Issue #3, lifecycle: ``instrument()`` replaces the ``InternalHTTPServer``
class binding and ``uninstrument()`` puts the original back.

The class is always looked up through ``internalhttp.server`` at the moment
it is needed, except in the tests that are about a reference taken early.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import internalhttp
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
from otel_testing import ALL_MODES, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor, _InstrumentedInternalHTTPServer


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    """Delta temporality: each collection shows only what was recorded since the last one."""
    return delta_metric_reader()


@pytest.fixture
def original_class() -> type:
    """The class bound before the test instruments anything."""
    original = internalhttp.server.InternalHTTPServer
    assert original is not _InstrumentedInternalHTTPServer, "an earlier test left the class replaced"
    return original


# -- the class binding ---------------------------------------------------------


def test_instrument_binds_the_replacement_class_in_internalhttp_server(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], original_class: type
) -> None:
    instrumentor.instrument(**providers)

    assert internalhttp.server.InternalHTTPServer is _InstrumentedInternalHTTPServer


def test_instrument_binds_the_replacement_class_in_the_internalhttp_package(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], original_class: type
) -> None:
    instrumentor.instrument(**providers)

    assert internalhttp.InternalHTTPServer is _InstrumentedInternalHTTPServer


def test_the_replacement_class_is_a_subclass_of_the_original(original_class: type) -> None:
    assert _InstrumentedInternalHTTPServer is not original_class
    assert issubclass(_InstrumentedInternalHTTPServer, original_class)


def test_uninstrument_restores_the_exact_original_class_objects(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any]
) -> None:
    before = (internalhttp.server.InternalHTTPServer, internalhttp.InternalHTTPServer)
    instrumentor.instrument(**providers)

    instrumentor.uninstrument()

    assert internalhttp.server.InternalHTTPServer is before[0]
    assert internalhttp.InternalHTTPServer is before[1]


# -- what servers record -------------------------------------------------------


def test_a_server_made_after_instrument_records_one_server_span_per_request(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    server = users_server(internalhttp.server.InternalHTTPServer)

    for _ in range(3):
        assert get_user(server) == USER_RESPONSE

    spans = span_exporter.get_finished_spans()
    assert [(span.name, span.kind) for span in spans] == [(SPAN_NAME, SpanKind.SERVER)] * 3
    assert len({span.context.trace_id for span in spans}) == 3, "each request is its own trace"


def test_a_server_made_while_instrumented_records_no_span_after_uninstrument(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    server = users_server(internalhttp.server.InternalHTTPServer)
    get_user(server)
    assert one_server_span(span_exporter).name == SPAN_NAME
    span_exporter.clear()

    instrumentor.uninstrument()

    assert get_user(server) == USER_RESPONSE
    assert span_exporter.get_finished_spans() == ()


@ALL_MODES
def test_a_server_made_while_instrumented_records_no_metric_after_uninstrument(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], metric_reader: InMemoryMetricReader
) -> None:
    instrumentor.instrument(**providers)
    server = users_server(internalhttp.server.InternalHTTPServer)
    get_user(server)
    assert drain_metric_names(metric_reader), "the server recorded metrics while instrumented"

    instrumentor.uninstrument()

    assert get_user(server) == USER_RESPONSE
    assert drain_metric_names(metric_reader) == []


# -- import order ---------------------------------------------------------------


def test_a_class_reference_taken_before_instrument_still_names_the_original_class(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], original_class: type
) -> None:
    from internalhttp.server import InternalHTTPServer as EarlyReference

    instrumentor.instrument(**providers)

    assert EarlyReference is original_class
    assert EarlyReference is not internalhttp.server.InternalHTTPServer


def test_servers_from_a_class_reference_taken_before_instrument_are_not_traced(
    instrumentor: InternalHTTPInstrumentor,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    # Documented limitation: instrument() rebinds the module attribute, it
    # cannot reach names that were imported before it ran.
    from internalhttp.server import InternalHTTPServer as EarlyReference

    instrumentor.instrument(**providers)
    server = users_server(EarlyReference)

    assert get_user(server) == USER_RESPONSE
    assert span_exporter.get_finished_spans() == ()
    assert drain_metric_names(metric_reader) == []


def test_servers_from_a_class_reference_taken_after_instrument_are_traced(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    from internalhttp.server import InternalHTTPServer as LateReference

    get_user(users_server(LateReference))

    assert one_server_span(span_exporter).name == SPAN_NAME


# -- user subclasses --------------------------------------------------------------


def test_a_user_subclass_defined_before_instrument_is_not_traced(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    subclass = tagging_subclass(internalhttp.server.InternalHTTPServer)
    instrumentor.instrument(**providers)

    response = get_user(users_server(subclass))

    assert response == TAGGED_USER_RESPONSE
    assert span_exporter.get_finished_spans() == ()


def test_a_user_subclass_defined_after_instrument_is_traced_once_per_request(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    subclass = tagging_subclass(internalhttp.server.InternalHTTPServer)

    get_user(users_server(subclass))

    span = one_server_span(span_exporter)
    assert (span.name, span.kind) == (SPAN_NAME, SpanKind.SERVER)


def test_a_user_subclass_defined_after_instrument_still_runs_its_own_override(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any]
) -> None:
    instrumentor.instrument(**providers)
    subclass = tagging_subclass(internalhttp.server.InternalHTTPServer)

    response = get_user(users_server(subclass))

    assert response == TAGGED_USER_RESPONSE


# -- instrument again with another configuration --------------------------------


@pytest.mark.parametrize("made", ["during the first instrument()", "after the second instrument()"])
def test_instrumenting_again_sends_spans_only_to_the_new_providers(
    instrumentor: InternalHTTPInstrumentor,
    providers: dict[str, Any],
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    made: str,
) -> None:
    instrumentor.instrument(**providers)
    server = users_server(internalhttp.server.InternalHTTPServer)
    instrumentor.uninstrument()
    new = Pipeline()
    instrumentor.instrument(**new.providers)
    if made == "after the second instrument()":
        server = users_server(internalhttp.server.InternalHTTPServer)

    get_user(server)

    assert new.span_names() == [SPAN_NAME]
    assert drain_metric_names(new.metric_reader) != []
    assert span_exporter.get_finished_spans() == ()
    assert drain_metric_names(metric_reader) == []


@pytest.mark.parametrize("made", ["during the first instrument()", "after the second instrument()"])
def test_instrumenting_again_calls_only_the_new_hooks(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], made: str
) -> None:
    calls: list[str] = []
    instrumentor.instrument(
        request_hook=lambda span, request: calls.append("stale request_hook"),
        response_hook=lambda span, request, response: calls.append("stale response_hook"),
        **providers,
    )
    server = users_server(internalhttp.server.InternalHTTPServer)
    instrumentor.uninstrument()
    instrumentor.instrument(
        request_hook=lambda span, request: calls.append("new request_hook"),
        response_hook=lambda span, request, response: calls.append("new response_hook"),
        **providers,
    )
    if made == "after the second instrument()":
        server = users_server(internalhttp.server.InternalHTTPServer)

    get_user(server)

    assert calls == ["new request_hook", "new response_hook"]


# -- garbage collection ----------------------------------------------------------


def test_a_server_of_the_replacement_class_can_be_garbage_collected(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    server = users_server(internalhttp.server.InternalHTTPServer)
    get_user(server)
    assert one_server_span(span_exporter).name == SPAN_NAME
    collected = weakref.ref(server)

    del server
    gc.collect()

    assert collected() is None


def test_a_server_given_to_instrument_app_can_be_garbage_collected(
    providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    server = users_server(internalhttp.server.InternalHTTPServer)
    InternalHTTPInstrumentor.instrument_app(server, **providers)
    get_user(server)
    assert one_server_span(span_exporter).name == SPAN_NAME
    collected = weakref.ref(server)

    del server
    gc.collect()

    assert collected() is None
