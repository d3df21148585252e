"""internalhttp.testing.TestClient: in-process requests through the dispatch seam."""

from __future__ import annotations

import logging

import pytest
from framework_support import RecordingServer
from internalhttp import ConnectionInfo, Headers
from internalhttp.testing import TestClient, TestResponse


def test_get_returns_the_normalised_response_and_the_raw_value(app: RecordingServer) -> None:
    response = TestClient(app).get("/users/9")

    assert isinstance(response, TestResponse)
    assert (response.status, response.body, response.raw) == (200, b'{"id":"9"}', {"body": {"id": "9"}})
    assert response.headers == Headers([("Content-Type", "application/json"), ("Content-Length", "10")])
    assert response.headers["content-type"] == "application/json"


def test_text_and_json_decode_the_body(app: RecordingServer) -> None:
    client = TestClient(app)

    assert client.get("/").text == "hello"
    assert client.get("/users/1").json() == {"id": "1"}


def test_post_sends_the_body_and_a_str_body_as_utf8(app: RecordingServer) -> None:
    client = TestClient(app)

    assert client.post("/echo", body=b"\x00raw").body == b"\x00raw"
    assert client.post("/echo", body="caf\u00e9").body == b"caf\xc3\xa9"


def test_request_sends_any_method(app: RecordingServer) -> None:
    assert TestClient(app).request("PURGE", "/cache").body == b"purged"


def test_the_request_reaches_handle_request_unchanged(app: RecordingServer) -> None:
    TestClient(app).request("POST", "/echo?x=1", {"X-Id": "7"}, b"body")

    [call] = app.calls
    assert (call.method, call.path, call.body, call.connection) == ("POST", "/echo?x=1", b"body", None)
    assert isinstance(call.headers, Headers)
    assert call.headers["x-id"] == "7"


def test_headers_may_be_pairs_and_repeats_are_joined(app: RecordingServer) -> None:
    response = TestClient(app).get("/headers", [("X-Tag", "a"), ("x-tag", "b")])

    assert response.json() == {"X-Tag": "a,b"}


def test_a_headers_instance_is_passed_as_is(app: RecordingServer) -> None:
    headers = Headers({"A": "1"})

    TestClient(app).get("/", headers)

    assert app.calls[0].headers is headers


def test_a_connection_is_passed_through_when_given(app: RecordingServer) -> None:
    connection = ConnectionInfo(client_address="192.0.2.1", client_port=1234, scheme="https")

    TestClient(app).get("/", connection=connection)

    assert app.calls[0].connection is connection


def test_a_handler_exception_propagates_unchanged_by_default(app: RecordingServer) -> None:
    error = KeyError("the very exception")

    def fail(headers: Headers, body: bytes) -> None:
        raise error

    app.add_route("/fail", fail)

    with pytest.raises(KeyError) as raised:
        TestClient(app).get("/fail")

    assert raised.value is error


def test_an_invalid_return_value_raises_by_default(app: RecordingServer) -> None:
    with pytest.raises(TypeError, match="a handler must return"):
        TestClient(app).get("/invalid")


def test_without_raising_a_handler_exception_is_a_logged_500(
    app: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = TestClient(app, raise_server_exceptions=False)

    with caplog.at_level(logging.ERROR, logger="internalhttp"):
        response = client.get("/boom")

    assert (response.status, response.body, response.raw) == (500, b"Internal Server Error", None)
    assert "GET /boom" in caplog.text


def test_without_raising_an_invalid_return_value_is_a_500_keeping_the_raw_value(
    app: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="internalhttp"):
        response = TestClient(app, raise_server_exceptions=False).get("/invalid")

    assert (response.status, response.raw) == (500, 42)


def test_404_and_405_are_ordinary_responses(app: RecordingServer) -> None:
    client = TestClient(app)

    assert client.get("/missing").status == 404
    response = client.post("/")
    assert (response.status, response.headers["Allow"]) == (405, "GET")


def test_a_none_return_value_is_a_204(app: RecordingServer) -> None:
    response = TestClient(app).get("/empty")

    assert (response.status, response.body, response.raw) == (204, b"", None)


def test_pytest_does_not_mistake_the_client_classes_for_tests() -> None:
    assert TestClient.__test__ is False
    assert TestResponse.__test__ is False
