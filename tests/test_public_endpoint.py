"""A trust boundary for trace context: a public request starts its own trace and only links the caller's."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from internalhttp.server import ConnectionInfo, InternalHTTPServer
from opentelemetry import baggage, trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from otel_testing import PARENT_ID, TRACE_ID, TRACEPARENT, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

UNSAMPLED_TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-00"
PUBLIC_PEER = ConnectionInfo(client_address="203.0.113.9", client_port=50000)
PROXY_PEER = ConnectionInfo(client_address="10.1.2.3", client_port=40000)


@pytest.fixture
def seen_in_handler() -> dict[str, Any]:
    return {}


@pytest.fixture
def make_app(providers: dict[str, Any], seen_in_handler: dict[str, Any]) -> Callable[..., InternalHTTPServer]:
    def handler(headers: Any, body: Any) -> str:
        seen_in_handler["baggage"] = dict(baggage.get_all())
        seen_in_handler["trace_id"] = trace.get_current_span().get_span_context().trace_id
        return "ok"

    def make(**options: Any) -> InternalHTTPServer:
        server = InternalHTTPServer("shop")
        server.add_route("/", handler)
        InternalHTTPInstrumentor.instrument_app(server, **providers, **options)
        return server

    return make


def call(server: InternalHTTPServer, headers: dict[str, str], peer: ConnectionInfo = PUBLIC_PEER) -> None:
    server.handle_request("GET", "/", headers, b"", connection=peer)


def test_a_public_request_starts_a_new_trace_as_a_root_server_span(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    call(make_app(public_endpoint=True), {"traceparent": TRACEPARENT})

    span = one_server_span(span_exporter)
    assert span.kind is SpanKind.SERVER
    assert span.parent is None
    assert span.context.trace_id != TRACE_ID


def test_a_public_request_links_the_callers_span_context(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    call(make_app(public_endpoint=True), {"traceparent": TRACEPARENT})

    (link,) = one_server_span(span_exporter).links
    assert (link.context.trace_id, link.context.span_id, link.context.is_remote) == (
        TRACE_ID,
        PARENT_ID,
        True,
    )


def test_a_public_request_without_trace_context_has_no_link(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    call(make_app(public_endpoint=True), {})

    assert list(one_server_span(span_exporter).links) == []


def test_a_public_request_ignores_the_callers_baggage(make_app: Any, seen_in_handler: dict[str, Any]) -> None:
    call(make_app(public_endpoint=True), {"traceparent": TRACEPARENT, "baggage": "tenant=acme"})

    assert seen_in_handler["baggage"] == {}


def test_a_public_request_is_sampled_as_a_root_whatever_the_callers_flags(
    make_app: Any, span_exporter: InMemorySpanExporter, seen_in_handler: dict[str, Any]
) -> None:
    # The default sampler follows a parent's "not sampled"; a root is sampled.
    call(make_app(public_endpoint=True), {"traceparent": UNSAMPLED_TRACEPARENT})

    span = one_server_span(span_exporter)
    assert span.context.trace_flags.sampled
    assert seen_in_handler["trace_id"] == span.context.trace_id


def test_a_request_that_is_not_public_continues_the_callers_trace(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    call(make_app(), {"traceparent": TRACEPARENT})

    span = one_server_span(span_exporter)
    assert (span.context.trace_id, span.parent.span_id if span.parent else None) == (TRACE_ID, PARENT_ID)
    assert list(span.links) == []


@pytest.mark.parametrize(("peer", "continued"), [(PUBLIC_PEER, False), (PROXY_PEER, True)])
def test_untrusted_makes_requests_public_only_when_the_peer_is_not_a_trusted_proxy(
    make_app: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    peer: ConnectionInfo,
    continued: bool,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_PUBLIC_ENDPOINT", "untrusted")

    call(make_app(), {"traceparent": TRACEPARENT}, peer)

    assert (one_server_span(span_exporter).context.trace_id == TRACE_ID) is continued


@pytest.mark.parametrize(("path_is_public", "continued"), [(True, False), (False, True)])
def test_a_callable_decides_from_the_request_view(
    make_app: Any, span_exporter: InMemorySpanExporter, path_is_public: bool, continued: bool
) -> None:
    views: list[Any] = []

    def public(view: Any) -> bool:
        views.append(view)
        return path_is_public

    call(make_app(public_endpoint=public), {"traceparent": TRACEPARENT})

    assert (one_server_span(span_exporter).context.trace_id == TRACE_ID) is continued
    assert [(view.method, view.path, view.headers["traceparent"]) for view in views] == [
        ("GET", "/", TRACEPARENT)
    ]


@pytest.mark.instrumentation_errors
def test_a_callable_that_fails_is_logged_and_the_request_treated_as_public(
    make_app: Any, span_exporter: InMemorySpanExporter, instrumentation_errors: Any
) -> None:
    def public(view: Any) -> bool:
        raise RuntimeError("broken decision")

    call(make_app(public_endpoint=public), {"traceparent": TRACEPARENT})

    assert one_server_span(span_exporter).context.trace_id != TRACE_ID
    assert "public_endpoint" in instrumentation_errors.records[0].getMessage()


@pytest.mark.instrumentation_errors
def test_an_invalid_public_endpoint_variable_is_named_and_ignored(
    make_app: Any,
    span_exporter: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    instrumentation_errors: Any,
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_PUBLIC_ENDPOINT", "sometimes")

    call(make_app(), {"traceparent": TRACEPARENT})

    assert one_server_span(span_exporter).context.trace_id == TRACE_ID
    assert "OTEL_PYTHON_INTERNALHTTP_PUBLIC_ENDPOINT" in instrumentation_errors.records[0].getMessage()


# -- no client input makes any logger warn --------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": TRACEPARENT + "-" + "x" * 600},
        {"traceparent": TRACEPARENT, "tracestate": "a=" + "b" * 600},
        {"traceparent": TRACEPARENT, "tracestate": "not a tracestate!"},
        {"baggage": "no-equals-sign"},
        {"baggage": ",".join(f"k{i}=v" for i in range(200))},
        {"baggage": "k=" + "v" * 9000},
    ],
    ids=[
        "long-traceparent",
        "long-tracestate",
        "odd-tracestate",
        "odd-baggage",
        "many-baggage",
        "long-baggage",
    ],
)
def test_odd_trace_headers_make_no_logger_warn_and_the_request_is_traced(
    make_app: Any,
    span_exporter: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
) -> None:
    server = make_app()

    with caplog.at_level(logging.DEBUG):
        call(server, headers)

    assert len(span_exporter.get_finished_spans()) == 1
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []


def test_a_traceparent_over_512_characters_is_treated_as_absent(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    call(make_app(), {"traceparent": TRACEPARENT + "-" + "x" * 600})

    assert one_server_span(span_exporter).parent is None


def test_outside_a_request_the_propagators_still_warn(caplog: pytest.LogCaptureFixture) -> None:
    from opentelemetry.propagate import extract

    from opentelemetry_ext_internalhttp._trace_context import install_filter

    install_filter()
    with caplog.at_level(logging.WARNING):
        extract({"baggage": "k=" + "v" * 9000})

    assert any(record.levelno == logging.WARNING for record in caplog.records)
