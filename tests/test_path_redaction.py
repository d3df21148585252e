"""Secret path parameters, redacted by the route: ``url.path`` and ``http.target`` never carry them.

The route template names each path segment, so for ``/reset/<token>`` the
segment after ``/reset/`` is known to be a credential; ``url.path`` (stable)
and ``http.target`` (old) show ``/reset/REDACTED`` while ``http.route``
keeps the template. The names are the defaults of
``internalhttp.redaction.SENSITIVE_PATH_PARAMETERS`` (compared ignoring case,
``-`` and ``_``), added to with ``sensitive_path_parameters`` or replaced
with ``sensitive_path_parameters_replace``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from internalhttp.redaction import SENSITIVE_PATH_PARAMETERS
from internalhttp.server import InternalHTTPServer
from layer_testing import LAYERS, call_directly, call_wsgi
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_TARGET
from opentelemetry.semconv.attributes.http_attributes import HTTP_ROUTE
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_QUERY
from otel_testing import ALL_MODES, DUP, OLD, OLD_MODES, STABLE, STABLE_MODES, one_server_span

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

SECRET = "s3cr3t-Value"


@pytest.fixture
def make_app(providers: dict[str, Any]) -> Callable[..., InternalHTTPServer]:
    """A server with ``template`` routed to a handler that answers with its parameters."""

    def make(template: str = "/reset/<token>", **options: Any) -> InternalHTTPServer:
        server = InternalHTTPServer("shop")
        server.add_route(template, lambda headers, body, **params: {"status": 200, "body": params})
        InternalHTTPInstrumentor.instrument_app(server, **providers, **options)
        return server

    return make


def get(server: InternalHTTPServer, target: str) -> None:
    call_directly(server, "GET", target, {}, b"")


@STABLE_MODES
@pytest.mark.parametrize("layer", LAYERS)
def test_url_path_shows_the_secret_parameter_redacted(
    make_app: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    LAYERS[layer](make_app(), "GET", f"/reset/{SECRET}", {}, b"")

    assert one_server_span(span_exporter).attributes[URL_PATH] == "/reset/REDACTED"


@OLD_MODES
@pytest.mark.parametrize("layer", LAYERS)
def test_http_target_shows_the_secret_parameter_redacted(
    make_app: Any, span_exporter: InMemorySpanExporter, layer: str
) -> None:
    LAYERS[layer](make_app(), "GET", f"/reset/{SECRET}?lang=en", {}, b"")

    assert one_server_span(span_exporter).attributes[HTTP_TARGET] == "/reset/REDACTED?lang=en"


@ALL_MODES
def test_the_route_keeps_the_template(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    get(make_app(), f"/reset/{SECRET}")

    span = one_server_span(span_exporter)
    assert span.attributes[HTTP_ROUTE] == "/reset/<token>"
    assert span.name == "GET /reset/<token>"


@ALL_MODES
def test_the_secret_is_on_no_span_attribute(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    get(make_app(), f"/reset/{SECRET}?lang=en")

    span = one_server_span(span_exporter)
    assert not [key for key, value in span.attributes.items() if SECRET in str(value)]
    assert SECRET not in span.name


@STABLE
def test_the_handler_still_receives_the_secret(make_app: Any) -> None:
    server = make_app()

    received = call_directly(server, "GET", f"/reset/{SECRET}", {}, b"")

    assert json.loads(received.body) == {"token": SECRET}


@DUP
def test_the_query_is_recorded_as_sent_beside_the_redacted_path(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(make_app(), f"/reset/{SECRET}?lang=en")

    attributes = one_server_span(span_exporter).attributes
    assert (attributes[URL_PATH], attributes[URL_QUERY]) == ("/reset/REDACTED", "lang=en")
    assert attributes[HTTP_TARGET] == "/reset/REDACTED?lang=en"


@STABLE
@pytest.mark.parametrize("name", SENSITIVE_PATH_PARAMETERS)
def test_each_default_name_is_redacted(make_app: Any, span_exporter: InMemorySpanExporter, name: str) -> None:
    get(make_app(f"/accounts/<{name}>/confirm"), f"/accounts/{SECRET}/confirm")

    assert one_server_span(span_exporter).attributes[URL_PATH] == "/accounts/REDACTED/confirm"


@STABLE
@pytest.mark.parametrize("name", ["apiKey", "API_KEY", "Api_Key", "SessionId", "Token"])
def test_names_are_compared_ignoring_case_dashes_and_underscores(
    make_app: Any, span_exporter: InMemorySpanExporter, name: str
) -> None:
    get(make_app(f"/keys/<{name}>"), f"/keys/{SECRET}")

    assert one_server_span(span_exporter).attributes[URL_PATH] == "/keys/REDACTED"


@STABLE
def test_other_parameters_are_recorded_as_sent(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    get(make_app("/users/<user_id>/reset/<token>"), f"/users/42/reset/{SECRET}")

    assert one_server_span(span_exporter).attributes[URL_PATH] == "/users/42/reset/REDACTED"


@STABLE
def test_a_path_that_matched_no_route_is_recorded_as_sent(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    get(make_app(), f"/reset/{SECRET}/extra")

    span = one_server_span(span_exporter)
    assert span.attributes[URL_PATH] == f"/reset/{SECRET}/extra"
    assert HTTP_ROUTE not in span.attributes


@STABLE
def test_a_path_whose_route_does_not_allow_the_method_is_still_redacted(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app()

    received = call_directly(server, "POST", f"/reset/{SECRET}", {}, b"")

    assert received.status == 405
    assert one_server_span(span_exporter).attributes[URL_PATH] == "/reset/REDACTED"


@STABLE
def test_sensitive_path_parameters_adds_to_the_defaults(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app("/orders/<order_code>/reset/<token>", sensitive_path_parameters=["order_code"])

    get(server, f"/orders/A7/reset/{SECRET}")

    assert one_server_span(span_exporter).attributes[URL_PATH] == "/orders/REDACTED/reset/REDACTED"


@STABLE
def test_sensitive_path_parameters_replace_replaces_the_defaults(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    server = make_app("/orders/<order_code>/reset/<token>", sensitive_path_parameters_replace="order-code")

    get(server, f"/orders/A7/reset/{SECRET}")

    assert one_server_span(span_exporter).attributes[URL_PATH] == f"/orders/REDACTED/reset/{SECRET}"


@STABLE
def test_an_empty_replacing_list_redacts_nothing(make_app: Any, span_exporter: InMemorySpanExporter) -> None:
    get(make_app(sensitive_path_parameters_replace=[]), f"/reset/{SECRET}")

    assert one_server_span(span_exporter).attributes[URL_PATH] == f"/reset/{SECRET}"


@OLD
def test_the_adding_variable_adds_to_the_defaults(
    make_app: Any, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_SENSITIVE_PATH_PARAMETERS", "invite, order_code")
    server = make_app("/orders/<order_code>/reset/<token>")

    get(server, f"/orders/A7/reset/{SECRET}")

    assert one_server_span(span_exporter).attributes[HTTP_TARGET] == "/orders/REDACTED/reset/REDACTED"


@STABLE
def test_the_replacing_variable_replaces_the_defaults(
    make_app: Any, span_exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_SENSITIVE_PATH_PARAMETERS_REPLACE", "order_code")
    server = make_app("/orders/<order_code>/reset/<token>")

    get(server, f"/orders/A7/reset/{SECRET}")

    assert one_server_span(span_exporter).attributes[URL_PATH] == f"/orders/REDACTED/reset/{SECRET}"


@STABLE_MODES
def test_the_application_root_comes_first_in_url_path(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    # A root whose segment is named like a secret parameter: the template
    # covers the path below the root only.
    call_wsgi(make_app(), "GET", f"/reset/{SECRET}", {}, b"", script_name="/token")

    attributes = one_server_span(span_exporter).attributes
    assert (attributes[URL_PATH], attributes[HTTP_ROUTE]) == ("/token/reset/REDACTED", "/token/reset/<token>")


@OLD_MODES
def test_the_application_root_comes_first_in_http_target(
    make_app: Any, span_exporter: InMemorySpanExporter
) -> None:
    call_wsgi(make_app(), "GET", f"/reset/{SECRET}", {}, b"", script_name="/token")

    assert one_server_span(span_exporter).attributes[HTTP_TARGET] == "/token/reset/REDACTED"


@STABLE
@pytest.mark.parametrize(
    ("target", "recorded"),
    [
        (f"http://shop.example/reset/{SECRET}", "/reset/REDACTED"),  # the absolute form a proxy sends
        ("/reset/abc%2Fdef", "/reset/REDACTED"),  # an encoded slash is inside the one segment
    ],
)
def test_a_secret_in_any_form_of_target_the_route_matched_is_redacted(
    make_app: Any, span_exporter: InMemorySpanExporter, target: str, recorded: str
) -> None:
    get(make_app(), target)

    assert one_server_span(span_exporter).attributes[URL_PATH] == recorded
