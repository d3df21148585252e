"""W3C trace context in, the server span current inside the handler, and out again."""

from __future__ import annotations

from typing import Any

import internalhttp
import internalhttp.server
import pytest
from opentelemetry import baggage, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import INVALID_SPAN, SpanKind
from otel_testing import PARENT_ID, TRACE_ID, TRACEPARENT, TRACESTATE, one_server_span


class Refused(Exception):
    pass


@pytest.fixture
def seen_in_handler() -> dict[str, Any]:
    return {}


@pytest.fixture
def shop(
    instrumentor: Any,
    providers: dict[str, Any],
    tracer_provider: TracerProvider,
    seen_in_handler: dict[str, Any],
) -> Any:
    instrumentor.instrument(**providers)
    server = internalhttp.server.InternalHTTPServer("shop")
    tracer = tracer_provider.get_tracer("the-application")

    def get_user(headers: Any, body: Any, user_id: str) -> dict[str, Any]:
        seen_in_handler["current_span"] = trace.get_current_span()
        seen_in_handler["baggage"] = dict(baggage.get_all())
        return {"status": 200, "body": user_id}

    def get_orders(headers: Any, body: Any, user_id: str) -> dict[str, Any]:
        seen_in_handler["current_span"] = trace.get_current_span()
        with tracer.start_as_current_span("load orders from db"):
            pass
        return {"status": 200, "body": []}

    def refuse(headers: Any, body: Any) -> dict[str, Any]:
        raise Refused("no")

    server.add_route("/users/<user_id>", get_user)
    server.add_route("/users/<user_id>/orders", get_orders)
    server.add_route("/refuse", refuse)
    return server


def spans_by_name(exporter: InMemorySpanExporter) -> dict[str, Any]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_the_server_span_continues_the_trace_named_by_traceparent_as_a_child_of_the_remote_caller(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    shop.handle_request("GET", "/users/1", {"traceparent": TRACEPARENT}, b"")

    span = one_server_span(span_exporter)
    assert span.kind is SpanKind.SERVER
    assert span.context.trace_id == TRACE_ID
    assert span.parent is not None
    assert span.parent.span_id == PARENT_ID
    assert span.parent.is_remote
    assert span.context.span_id != PARENT_ID


@pytest.mark.parametrize(
    "headers",
    [
        {"TraceParent": TRACEPARENT},
        {"TRACEPARENT": TRACEPARENT},
        internalhttp.Headers([("Traceparent", TRACEPARENT)]),
        [("traceParent", TRACEPARENT), ("Accept", "*/*")],
    ],
    ids=["dict-mixed-case", "dict-upper-case", "internalhttp-headers", "list-of-pairs"],
)
def test_traceparent_is_found_whatever_the_case_of_its_name_and_the_shape_of_the_headers(
    shop: Any, span_exporter: InMemorySpanExporter, headers: Any
) -> None:
    shop.handle_request("GET", "/users/1", headers, b"")

    span = one_server_span(span_exporter)
    assert span.context.trace_id == TRACE_ID
    assert span.parent.span_id == PARENT_ID


def test_tracestate_is_carried_into_the_server_span_context(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    shop.handle_request("GET", "/users/1", {"traceparent": TRACEPARENT, "TraceState": TRACESTATE}, b"")

    assert one_server_span(span_exporter).context.trace_state.to_header() == TRACESTATE


def test_baggage_from_the_request_is_visible_to_the_handler(
    shop: Any, seen_in_handler: dict[str, Any]
) -> None:
    shop.handle_request(
        "GET", "/users/1", {"traceparent": TRACEPARENT, "Baggage": "tenant=acme,plan=gold"}, b""
    )

    assert seen_in_handler["baggage"] == {"tenant": "acme", "plan": "gold"}


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace id
        f"00-{TRACE_ID:032x}-0000000000000000-01",  # all-zero parent id
        f"ff-{TRACE_ID:032x}-{PARENT_ID:016x}-01",  # forbidden version
        f"00-{TRACE_ID:032x}-{PARENT_ID:016x}",  # no flags
        f"{TRACEPARENT},{TRACEPARENT}",  # sent twice
    ],
)
def test_a_malformed_traceparent_starts_a_new_trace_without_failing_the_request(
    shop: Any, span_exporter: InMemorySpanExporter, traceparent: str
) -> None:
    response = shop.handle_request("GET", "/users/1", {"traceparent": traceparent, "tracestate": "a=b"}, b"")

    span = one_server_span(span_exporter)
    assert response == {"status": 200, "body": "1"}
    assert span.parent is None
    assert span.context.trace_id != TRACE_ID


def test_without_traceparent_the_server_span_is_a_root_span(
    shop: Any, span_exporter: InMemorySpanExporter
) -> None:
    shop.handle_request("GET", "/users/1", None, b"")

    span = one_server_span(span_exporter)
    assert span.parent is None
    assert span.kind is SpanKind.SERVER


def test_the_server_span_is_current_inside_the_handler_so_its_spans_are_children(
    shop: Any, span_exporter: InMemorySpanExporter, seen_in_handler: dict[str, Any]
) -> None:
    shop.handle_request("GET", "/users/1/orders", {"traceparent": TRACEPARENT}, b"")

    spans = spans_by_name(span_exporter)
    server_span, child = spans["GET /users/<user_id>/orders"], spans["load orders from db"]
    assert seen_in_handler["current_span"].get_span_context() == server_span.context
    assert child.parent.span_id == server_span.context.span_id
    assert child.context.trace_id == TRACE_ID


def test_the_context_is_detached_once_the_handler_returned(shop: Any) -> None:
    shop.handle_request("GET", "/users/1", {"traceparent": TRACEPARENT, "baggage": "tenant=acme"}, b"")

    assert trace.get_current_span() is INVALID_SPAN
    assert baggage.get_all() == {}


def test_the_context_is_detached_once_the_handler_raised(shop: Any) -> None:
    with pytest.raises(Refused):
        shop.handle_request("GET", "/refuse", {"traceparent": TRACEPARENT}, b"")

    assert trace.get_current_span() is INVALID_SPAN


def test_inside_an_already_current_span_the_request_is_an_internal_child_not_a_second_server_span(
    shop: Any, span_exporter: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    outer_tracer = tracer_provider.get_tracer("an-outer-layer")
    with outer_tracer.start_as_current_span("outer server span", kind=SpanKind.SERVER) as outer:
        # A traceparent reaching this layer is the outer layer's business.
        shop.handle_request("GET", "/users/1", {"traceparent": TRACEPARENT}, b"")
        assert trace.get_current_span() is outer

    spans = spans_by_name(span_exporter)
    inner = spans["GET /users/<user_id>"]
    assert inner.kind is SpanKind.INTERNAL
    assert inner.parent.span_id == outer.get_span_context().span_id
    assert inner.context.trace_id == outer.get_span_context().trace_id
    assert [span.kind for span in span_exporter.get_finished_spans()].count(SpanKind.SERVER) == 1
