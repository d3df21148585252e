"""Where the route's handler lives, on the SERVER span, when opted in (code.function.name, ...)."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import pytest
from internalhttp.server import InternalHTTPServer
from internalhttp.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.code_attributes import (
    CODE_FILE_PATH,
    CODE_FUNCTION_NAME,
    CODE_LINE_NUMBER,
)
from otel_testing import ALL_MODES, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

CODE_KEYS = (CODE_FUNCTION_NAME, CODE_FILE_PATH, CODE_LINE_NUMBER)


def get_user(headers: Any, body: Any, user_id: str) -> str:
    return user_id


class Orders:
    def show(self, headers: Any, body: Any, order_id: str) -> str:
        return order_id


def logged(handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def wrapper(**kwargs: Any) -> Any:
        return handler(**kwargs)

    return wrapper


@pytest.fixture
def make_app(providers: dict[str, Any]) -> Callable[..., InternalHTTPServer]:
    def make(**options: Any) -> InternalHTTPServer:
        server = InternalHTTPServer("shop")
        server.add_route("/users/<user_id>", get_user)
        server.add_route("/orders/<order_id>", Orders().show)
        server.add_route("/logged/<user_id>", logged(get_user))
        InternalHTTPInstrumentor.instrument_app(server, **providers, **options)
        return server

    return make


@ALL_MODES
def test_the_handlers_function_file_and_line_are_recorded_when_opted_in(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    TestClient(make_app(opt_in=",".join(CODE_KEYS))).get("/users/7")

    attributes = one_server_span(span_exporter).attributes
    assert attributes[CODE_FUNCTION_NAME] == f"{__name__}.get_user"
    assert attributes[CODE_FILE_PATH] == inspect.getsourcefile(get_user)
    assert attributes[CODE_LINE_NUMBER] == get_user.__code__.co_firstlineno


def test_a_method_is_named_with_its_class(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    TestClient(make_app(opt_in="code.function.name")).get("/orders/3")

    assert one_server_span(span_exporter).attributes[CODE_FUNCTION_NAME] == f"{__name__}.Orders.show"


def test_a_decorated_handler_is_located_at_the_function_it_wraps(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    TestClient(make_app(opt_in="code.line.number")).get("/logged/7")

    assert one_server_span(span_exporter).attributes[CODE_LINE_NUMBER] == get_user.__code__.co_firstlineno


def test_each_code_attribute_is_its_own_opt_in(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    TestClient(make_app(opt_in="code.file.path")).get("/users/7")

    attributes = one_server_span(span_exporter).attributes
    assert [key for key in CODE_KEYS if key in attributes] == [CODE_FILE_PATH]


def test_all_turns_the_code_attributes_on(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    TestClient(make_app(opt_in="all")).get("/users/7")

    assert all(key in one_server_span(span_exporter).attributes for key in CODE_KEYS)


@ALL_MODES
def test_no_code_attribute_by_default_nor_without_a_handler(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app()
    TestClient(server).get("/users/7")
    opted = make_app(opt_in="all")
    TestClient(opted).get("/nowhere")

    default_span, not_found_span = span_exporter.get_finished_spans()
    assert not any(key in default_span.attributes for key in CODE_KEYS)
    assert not any(key in not_found_span.attributes for key in CODE_KEYS)


def test_two_servers_with_one_template_each_record_their_own_handler(
    instrumentor: Any, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    import internalhttp.server

    instrumentor.instrument(opt_in="code.function.name", **providers)
    users, orders = internalhttp.server.InternalHTTPServer("a"), internalhttp.server.InternalHTTPServer("b")
    users.add_route("/things/<user_id>", get_user)
    orders.add_route("/things/<order_id>", Orders().show)

    TestClient(users).get("/things/1")
    TestClient(orders).get("/things/1")

    assert [span.attributes[CODE_FUNCTION_NAME] for span in span_exporter.get_finished_spans()] == [
        f"{__name__}.get_user",
        f"{__name__}.Orders.show",
    ]


def test_the_location_is_worked_out_when_the_route_is_registered() -> None:
    server = InternalHTTPServer("shop")
    server.add_route("/users/<user_id>", get_user)

    (route,) = server.routes
    assert route.location is not None
    assert server.match("GET", "/users/1").location is route.location
