"""Routing and dispatch: InternalHTTPServer.route/add_route/match/handle_request."""

from __future__ import annotations

from typing import Any

import pytest
from internalhttp import Headers, InternalHTTPServer, RouteMatch


def ok(headers: Headers, body: bytes, **params: str) -> Any:
    return {"body": params}


@pytest.fixture
def app() -> InternalHTTPServer:
    return InternalHTTPServer("routing")


def test_a_static_route_dispatches_to_its_handler(app: InternalHTTPServer) -> None:
    app.add_route("/health", lambda headers, body: {"body": "ok"})

    assert app.handle_request("GET", "/health") == {"body": "ok"}


def test_the_root_path_is_a_route_like_any_other(app: InternalHTTPServer) -> None:
    app.add_route("/", lambda headers, body: "root")

    assert app.handle_request("GET", "/") == "root"


def test_a_path_parameter_is_passed_to_the_handler_as_a_string(app: InternalHTTPServer) -> None:
    app.add_route("/users/<user_id>", ok)

    assert app.handle_request("GET", "/users/42") == {"body": {"user_id": "42"}}


def test_several_path_parameters_are_all_passed_by_name(app: InternalHTTPServer) -> None:
    app.add_route("/users/<user_id>/orders/<order_id>", ok)

    assert app.handle_request("GET", "/users/7/orders/x-9") == {"body": {"user_id": "7", "order_id": "x-9"}}


def test_a_parameter_never_spans_a_slash_or_matches_an_empty_segment(app: InternalHTTPServer) -> None:
    app.add_route("/files/<name>", ok)

    assert app.match("GET", "/files/a/b").status == 404
    assert app.match("GET", "/files/").status == 404


def test_an_unknown_path_answers_404_not_found(app: InternalHTTPServer) -> None:
    app.add_route("/known", ok)

    assert app.handle_request("GET", "/unknown") == {"status": 404, "body": "Not Found", "headers": {}}


def test_match_reports_404_without_a_route_template(app: InternalHTTPServer) -> None:
    found = app.match("GET", "/nowhere")

    assert (found.status, found.route, found.handler, found.found) == (404, None, None, False)


def test_a_known_path_with_another_method_answers_405_with_an_allow_header(app: InternalHTTPServer) -> None:
    app.add_route("/items", ok, method="GET")
    app.add_route("/items", ok, method="POST")

    response = app.handle_request("DELETE", "/items")

    assert response == {"status": 405, "body": "Method Not Allowed", "headers": {"Allow": "GET, POST"}}


def test_match_reports_405_with_the_template_and_the_allowed_methods(app: InternalHTTPServer) -> None:
    app.add_route("/users/<user_id>", ok, method="PUT")

    found = app.match("GET", "/users/3")

    assert found == RouteMatch(
        status=405, route="/users/<user_id>", params={"user_id": "3"}, allowed_methods=("PUT",)
    )


def test_match_reports_the_template_handler_and_params_of_a_hit(app: InternalHTTPServer) -> None:
    app.add_route("/users/<user_id>", ok)

    found = app.match("GET", "/users/3?x=1")

    assert (found.status, found.route, found.handler, found.params, found.found) == (
        200,
        "/users/<user_id>",
        ok,
        {"user_id": "3"},
        True,
    )


def test_the_query_string_is_ignored_when_matching(app: InternalHTTPServer) -> None:
    app.add_route("/search", lambda headers, body: "found")

    assert app.handle_request("GET", "/search?q=a/b&page=2") == "found"


def test_an_empty_target_or_bare_query_means_the_root_path(app: InternalHTTPServer) -> None:
    app.add_route("/", lambda headers, body: "root")

    assert app.handle_request("GET", "") == "root"
    assert app.handle_request("GET", "?q=1") == "root"


def test_request_methods_are_case_sensitive(app: InternalHTTPServer) -> None:
    app.add_route("/", ok, method="GET")

    assert app.match("get", "/").status == 405


def test_route_methods_are_registered_upper_case(app: InternalHTTPServer) -> None:
    app.add_route("/", ok, method="post")

    assert app.match("POST", "/").found
    assert [route.method for route in app.routes] == ["POST"]


def test_any_method_token_can_be_routed(app: InternalHTTPServer) -> None:
    app.add_route("/", ok, method="M-SEARCH")
    app.add_route("/", ok, method="PURGE")

    assert app.match("M-SEARCH", "/").found
    assert app.match("PURGE", "/").found


def test_a_trailing_slash_is_a_different_path(app: InternalHTTPServer) -> None:
    app.add_route("/users", ok)
    app.add_route("/teams/", ok)

    assert app.match("GET", "/users/").status == 404
    assert app.match("GET", "/teams").status == 404
    assert app.match("GET", "/teams/").found


def test_a_static_route_wins_over_a_parametrised_one_for_the_same_path(app: InternalHTTPServer) -> None:
    app.add_route("/users/<user_id>", lambda headers, body, user_id: "by id")
    app.add_route("/users/me", lambda headers, body: "me")

    assert app.handle_request("GET", "/users/me") == "me"
    assert app.handle_request("GET", "/users/1") == "by id"


def test_a_static_route_does_not_hide_another_method_of_a_parametrised_one(app: InternalHTTPServer) -> None:
    app.add_route("/users/me", lambda headers, body: "me", method="GET")
    app.add_route("/users/<user_id>", lambda headers, body, user_id: f"deleted {user_id}", method="DELETE")

    assert app.handle_request("DELETE", "/users/me") == "deleted me"


def test_a_405_allows_the_methods_of_every_template_fitting_the_path(app: InternalHTTPServer) -> None:
    app.add_route("/users/me", ok, method="GET")
    app.add_route("/users/<user_id>", ok, method="DELETE")

    found = app.match("PATCH", "/users/me")

    assert (found.status, found.route, found.allowed_methods) == (405, "/users/me", ("GET", "DELETE"))


def test_parametrised_routes_are_tried_in_registration_order(app: InternalHTTPServer) -> None:
    app.add_route("/<first>/x", lambda headers, body, first: "first")
    app.add_route("/a/<second>", lambda headers, body, second: "second")

    assert app.handle_request("GET", "/a/x") == "first"
    assert app.handle_request("GET", "/a/y") == "second"


def test_two_methods_of_one_template_share_the_template(app: InternalHTTPServer) -> None:
    app.add_route("/users/<user_id>", ok, method="GET")
    app.add_route("/users/<user_id>", ok, method="PUT")

    assert [(route.template, route.method, route.param_names) for route in app.routes] == [
        ("/users/<user_id>", "GET", ("user_id",)),
        ("/users/<user_id>", "PUT", ("user_id",)),
    ]


def test_routes_lists_static_routes_before_parametrised_ones(app: InternalHTTPServer) -> None:
    app.add_route("/<page>", ok)
    app.add_route("/about", ok)

    assert [route.template for route in app.routes] == ["/about", "/<page>"]


def test_the_route_decorator_returns_the_handler_unchanged(app: InternalHTTPServer) -> None:
    decorated = app.route("/")(ok)

    assert decorated is ok


@pytest.mark.parametrize(
    ("path", "method", "reason"),
    [
        ("users", "GET", "starting with '/'"),
        (123, "GET", "starting with '/'"),
        ("/a//b", "GET", "empty path segment"),
        ("/<x>/<x>", "GET", "appears twice"),
        ("/<body>", "GET", "reserved"),
        ("/<headers>", "GET", "reserved"),
        ("/a b", "GET", "invalid segment"),
        ("/a?b", "GET", "invalid segment"),
        ("/a<b>", "GET", "invalid segment"),
        ("/<1x>", "GET", "invalid segment"),
        ("/ok", "", "invalid method"),
        ("/ok", "G ET", "invalid method"),
        ("/ok", "G\u00c9T", "invalid method"),
        ("/ok", None, "invalid method"),
    ],
)
def test_an_invalid_route_definition_raises_value_error_naming_the_route(
    app: InternalHTTPServer, path: Any, method: Any, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason) as raised:
        app.add_route(path, ok, method=method)

    assert repr(path) in str(raised.value)


def test_a_handler_that_is_not_callable_is_refused_naming_the_route(app: InternalHTTPServer) -> None:
    with pytest.raises(ValueError, match=r"route GET '/x': handler 'nope' is not callable"):
        app.add_route("/x", "nope")  # type: ignore[arg-type]


def test_registering_the_same_method_and_path_twice_is_refused(app: InternalHTTPServer) -> None:
    app.add_route("/users/<user_id>", ok)

    with pytest.raises(ValueError, match=r"route GET '/users/<user_id>' is already registered"):
        app.add_route("/users/<user_id>", ok, method="get")


def test_a_refused_duplicate_leaves_the_first_handler_in_place(app: InternalHTTPServer) -> None:
    app.add_route("/", lambda headers, body: "first")

    with pytest.raises(ValueError):
        app.add_route("/", lambda headers, body: "second")

    assert app.handle_request("GET", "/") == "first"


def test_handle_request_returns_the_handler_value_itself(app: InternalHTTPServer) -> None:
    sentinel = {"body": object()}
    app.add_route("/", lambda headers, body: sentinel)

    assert app.handle_request("GET", "/") is sentinel


def test_handle_request_lets_handler_exceptions_propagate(app: InternalHTTPServer) -> None:
    error = LookupError("missing")

    def fail(headers: Headers, body: bytes) -> Any:
        raise error

    app.add_route("/", fail)

    with pytest.raises(LookupError) as raised:
        app.handle_request("GET", "/")

    assert raised.value is error


def test_handlers_receive_the_body_and_case_insensitive_headers(app: InternalHTTPServer) -> None:
    seen = {}

    def record(headers: Headers, body: bytes) -> Any:
        seen.update(headers=headers, body=body)
        return None

    app.add_route("/", record, method="POST")
    app.handle_request("POST", "/", {"X-Token": "t"}, b"payload")

    assert isinstance(seen["headers"], Headers)
    assert seen["headers"]["x-token"] == "t"
    assert seen["body"] == b"payload"


def test_handlers_receive_empty_headers_when_none_are_given(app: InternalHTTPServer) -> None:
    seen = {}
    app.add_route("/", lambda headers, body: seen.setdefault("headers", headers))

    app.handle_request("GET", "/")

    assert seen["headers"] == Headers()


def test_a_headers_instance_is_passed_through_as_is(app: InternalHTTPServer) -> None:
    headers = Headers({"A": "1"})
    app.add_route("/", lambda headers, body: headers)

    assert app.handle_request("GET", "/", headers) is headers


def test_the_connection_argument_is_accepted_and_not_given_to_handlers(app: InternalHTTPServer) -> None:
    from internalhttp import ConnectionInfo

    app.add_route("/", lambda headers, body: "no connection parameter needed")

    result = app.handle_request("GET", "/", connection=ConnectionInfo(client_address="127.0.0.1"))

    assert result == "no connection parameter needed"


def test_a_server_repr_names_it() -> None:
    assert repr(InternalHTTPServer("shop")) == "InternalHTTPServer('shop')"


def test_a_server_repr_names_a_public_subclass() -> None:
    class ShopServer(InternalHTTPServer):
        pass

    assert repr(ShopServer("shop")) == "ShopServer('shop')"


def test_a_server_repr_names_the_public_class_behind_a_private_subclass() -> None:
    class _Wrapped(InternalHTTPServer):  # what an instrumentation puts in the class's place
        pass

    assert repr(_Wrapped("shop")) == "InternalHTTPServer('shop')"


def test_a_served_request_is_routed_once_even_though_respond_calls_handle_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from internalhttp import InternalHTTPServer
    from internalhttp.testing import TestClient

    app = InternalHTTPServer("once")
    app.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": item_id})
    searched: list[str] = []
    original = InternalHTTPServer._candidates

    def counting(self: InternalHTTPServer, request_path: str) -> Any:
        searched.append(request_path)
        return original(self, request_path)

    monkeypatch.setattr(InternalHTTPServer, "_candidates", counting)

    assert app.serve_request("GET", "/items/7", {}).status == 200
    assert TestClient(app).get("/items/8").text == "8"
    assert searched == ["/items/7", "/items/8"]


def test_handle_request_called_with_other_parts_inside_respond_reads_its_own_request() -> None:
    from internalhttp import InternalHTTPServer

    class Rewriting(InternalHTTPServer):
        def handle_request(
            self, method: Any, path: Any, headers: Any = None, body: Any = b"", **kwargs: Any
        ) -> Any:
            return super().handle_request(method, path.replace("/old/", "/new/"), headers, body, **kwargs)

    app = Rewriting("rewriting")
    app.add_route("/new/<item_id>", lambda headers, body, item_id: {"body": f"new {item_id}"})

    assert app.serve_request("GET", "/old/3", {}).body == b"new 3"
