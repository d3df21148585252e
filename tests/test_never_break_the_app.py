"""Property: instrumentation never changes what the application sees.

For any request (odd methods, paths, header shapes and values, bodies) and
any handler behaviour (a response dict with any status, something that is
not a dict, an exception), an instrumented server returns what a bare server
with the same routes returns, or raises the same kind of exception, its
handlers receive the same arguments, and no OpenTelemetry context is left
behind.
"""

from __future__ import annotations

import copy
from typing import Any

import internalhttp
import internalhttp.server
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import context, trace
from opentelemetry.trace import INVALID_SPAN
from otel_testing import OLD_MODES, TRACEPARENT

# Taken at import time, before any test instruments: the framework's own class.
BareServer = internalhttp.server.InternalHTTPServer


class HandlerFailed(Exception):
    pass


# -- requests --------------------------------------------------------------------

methods = st.one_of(
    st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "FOO", "_OTHER"]),
    st.sampled_from(["get", "Post", "po\u017ft", "", " GET", "GET ", "G\u00c9T", "\u00df", "M-SEARCH"]),
    st.text(max_size=12),
    st.one_of(st.none(), st.integers(), st.binary(max_size=5)),
)

path_pieces = st.one_of(
    st.sampled_from(
        ["users", "42", "static", "page", "caf\u00e9", "%2F", "%", "?", "a?b", "..", "", "\u2603"]
    ),
    st.text(max_size=8),
)
paths = st.one_of(
    st.sampled_from(["/", "/users/42", "/users/42?x=1", "/static/page", "/users/", "", "?", "/?sig=s", "//"]),
    st.lists(path_pieces, max_size=5).map(lambda pieces: "/" + "/".join(pieces)),
    st.text(max_size=30),
    st.one_of(st.none(), st.integers(), st.binary(max_size=8)),
)

header_names = st.one_of(
    st.sampled_from(
        ["traceparent", "TraceState", "baggage", "Host", "X-Forwarded-For", "Forwarded", "User-Agent"]
    ),
    st.text(max_size=10),
)
odd_header_names = st.one_of(header_names, st.integers(), st.binary(max_size=6), st.none())
header_values = st.one_of(
    st.sampled_from(
        [
            TRACEPARENT,
            "00-garbage",
            f"{TRACEPARENT},{TRACEPARENT}",
            "rojo=00f067aa0ba902b7,=,,",
            "[::1]:8080",
            "[::1",
            "host:99999",
            'for="[2001:db8::1]:4711";proto=https',
            "for=;host=",
            "k=v;p,=x,%ZZ",
        ]
    ),
    st.text(max_size=20),
    st.just("x" * 20_000),
)
odd_header_values = st.one_of(
    header_values, st.integers(), st.binary(max_size=8), st.none(), st.lists(st.text(max_size=5), max_size=3)
)
header_maps = st.one_of(
    st.none(),
    st.one_of(st.integers(), st.text(max_size=5), st.just(object())),
    st.dictionaries(header_names, header_values, max_size=6),
    st.dictionaries(odd_header_names, odd_header_values, max_size=4),
    st.lists(st.tuples(header_names, header_values), max_size=6),
    st.lists(st.one_of(st.tuples(header_names, header_values), st.tuples(header_names)), max_size=3),
)
bodies = st.one_of(st.binary(max_size=16), st.text(max_size=8), st.none())
connections = st.one_of(
    st.none(),
    st.builds(
        internalhttp.ConnectionInfo,
        client_address=st.one_of(st.none(), st.sampled_from(["127.0.0.1", "::1", ""])),
        client_port=st.one_of(st.none(), st.integers(0, 65535)),
        server_address=st.one_of(st.none(), st.just("10.0.0.1")),
        server_port=st.one_of(st.none(), st.integers(0, 65535)),
        scheme=st.sampled_from(["http", "https", ""]),
        protocol_version=st.one_of(st.none(), st.sampled_from(["1.0", "1.1", "2"])),
    ),
)

# -- handler behaviours ------------------------------------------------------------

statuses = st.one_of(
    st.integers(-1000, 1000),
    st.sampled_from(["200", " 503 ", "\u00b2", "\u0661\u0660\u0660", "teapot", "", None, True, 2.5, 10**30]),
)
responses = st.one_of(
    st.fixed_dictionaries(
        {"status": statuses},
        optional={
            "body": st.one_of(st.text(max_size=5), st.binary(max_size=5)),
            "headers": st.one_of(
                st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
                st.lists(st.tuples(st.text(max_size=5), st.text(max_size=5)), max_size=2),
                st.none(),
                st.integers(),
            ),
        },
    ),
    st.fixed_dictionaries({}, optional={"body": st.text(max_size=5)}),
    st.one_of(st.text(max_size=5), st.binary(max_size=5), st.none(), st.lists(st.integers(), max_size=2)),
)
behaviours = st.one_of(
    responses.map(lambda response: ("return", response)),
    st.sampled_from([HandlerFailed, ValueError, KeyError]).map(lambda error: ("raise", error)),
)


def build(server_class: Any, behaviour: dict[str, Any], calls: list[Any]) -> Any:
    """A server whose every handler acts as ``behaviour`` says and logs its arguments."""

    def handler(headers: Any, body: Any, **params: Any) -> Any:
        calls.append((sorted(headers.items()), body, params))
        kind, value = behaviour["current"]
        if kind == "raise":
            raise value("handler failed")
        return copy.deepcopy(value)

    server = server_class("shop")
    for template in ("/", "/users/<user_id>", "/static/page", "/users/<user_id>/orders/<order_id>"):
        for method in ("GET", "POST", "FOO"):
            server.add_route(template, handler, method=method)
    return server


def outcome(server: Any, request: tuple[Any, ...], connection: Any) -> tuple[str, Any]:
    method, path, headers, body = copy.deepcopy(request)
    kwargs = {} if connection is None else {"connection": connection}
    try:
        return ("returned", server.handle_request(method, path, headers, body, **kwargs))
    except Exception as error:
        return ("raised", type(error))


@OLD_MODES
def test_an_instrumented_server_behaves_exactly_like_a_bare_one_for_any_request(
    instrumentor: Any,
    providers: dict[str, Any],
    span_exporter: Any,
    instrumentation_errors: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", ".*")
    behaviour: dict[str, Any] = {}
    bare_calls: list[Any] = []
    instrumented_calls: list[Any] = []
    bare = build(BareServer, behaviour, bare_calls)
    hooks_saw: list[Any] = []
    instrumentor.instrument(
        request_hook=lambda span, request: hooks_saw.append(request.path),
        response_hook=lambda span, request, response: hooks_saw.append(response),
        **providers,
    )
    instrumented = build(internalhttp.server.InternalHTTPServer, behaviour, instrumented_calls)
    assert instrumented._is_instrumented_by_opentelemetry

    @settings(
        max_examples=150,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        method=methods,
        path=paths,
        headers=header_maps,
        body=bodies,
        connection=connections,
        handler_behaviour=behaviours,
    )
    def same_behaviour(
        method: Any, path: Any, headers: Any, body: Any, connection: Any, handler_behaviour: Any
    ) -> None:
        behaviour["current"] = handler_behaviour
        bare_calls.clear()
        instrumented_calls.clear()
        span_exporter.clear()
        instrumentation_errors.records.clear()
        request = (method, path, headers, body)
        context_before = context.get_current()

        expected = outcome(bare, request, connection)
        got = outcome(instrumented, request, connection)

        assert got == expected
        # Odd input is the client's or the handler's business: nothing to log.
        assert [record.getMessage() for record in instrumentation_errors.records] == []
        assert instrumented_calls == bare_calls
        assert trace.get_current_span() is INVALID_SPAN
        assert context.get_current() == context_before
        # Every request became one span, and it was ended.
        assert len(span_exporter.get_finished_spans()) == 1

    same_behaviour()
    assert hooks_saw, "the hooks never ran: the property test did not exercise the instrumentation"
