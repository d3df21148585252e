"""internalhttp.make_wsgi_app: PEP 3333, under wsgiref (direct calls and a real socket) and gunicorn."""

from __future__ import annotations

import http.client
import io
import json
import logging
import queue
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from framework_support import TIMEOUT, RecordingServer, no_control_socket
from internalhttp import ConnectionInfo, Headers, make_wsgi_app

Environ = Dict[str, Any]


def call(
    application: Any, environ: Optional[Environ] = None, body: bytes = b""
) -> Tuple[str, Dict[str, str], bytes]:
    """Call a WSGI application the way a server would; return status line, headers, body."""
    environ = {"SCRIPT_NAME": "", "QUERY_STRING": "", **(environ or {})}
    environ.setdefault("wsgi.input", io.BytesIO(body))
    if body:
        environ.setdefault("CONTENT_LENGTH", str(len(body)))
    setup_testing_defaults(environ)
    started: Dict[str, Any] = {}

    def start_response(status: str, headers: List[Tuple[str, str]], exc_info: Any = None) -> Any:
        started.update(status=status, headers=headers)
        return lambda data: None

    result = application(environ, start_response)
    try:
        payload = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return started["status"], dict(started["headers"]), payload


# -- direct calls ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/", b""), ("GET", "/users/1", b""), ("POST", "/echo", b"data"), ("GET", "/boom", b"")],
)
def test_the_adapter_passes_wsgiref_validation(
    app: RecordingServer, method: str, path: str, body: bytes
) -> None:
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path}
    if body:
        environ["CONTENT_TYPE"] = "text/plain"

    status, _, _ = call(validator(make_wsgi_app(app)), environ, body)

    assert status[:3] in ("200", "500")


def test_a_request_is_dispatched_and_answered(app: RecordingServer) -> None:
    status, headers, body = call(make_wsgi_app(app), {"PATH_INFO": "/users/42"})

    assert status == "200 OK"
    assert headers == {"Content-Type": "application/json", "Content-Length": str(len(body))}
    assert json.loads(body) == {"id": "42"}


def test_the_raw_uri_is_the_target_when_the_server_gives_it(app: RecordingServer) -> None:
    call(
        make_wsgi_app(app),
        {"RAW_URI": "/users/a%2Fb?x=%20", "PATH_INFO": "/users/a/b", "QUERY_STRING": "x=%20"},
    )

    assert app.calls[0].path == "/users/a%2Fb?x=%20"


def test_request_uri_is_used_when_there_is_no_raw_uri(app: RecordingServer) -> None:
    call(make_wsgi_app(app), {"REQUEST_URI": "/users/7?y=1", "PATH_INFO": "/users/7"})

    assert app.calls[0].path == "/users/7?y=1"


def test_under_a_script_name_the_target_is_rebuilt_from_path_info(app: RecordingServer) -> None:
    call(make_wsgi_app(app), {"SCRIPT_NAME": "/api", "RAW_URI": "/api/users/7", "PATH_INFO": "/users/7"})

    assert app.calls[0].path == "/users/7"


def test_path_info_is_percent_encoded_back_from_its_latin1_bytes(app: RecordingServer) -> None:
    path_info = "/users/a b\u00c3\u00a9"  # PEP 3333: the UTF-8 bytes of "a b\u00e9", decoded as Latin-1

    call(make_wsgi_app(app), {"PATH_INFO": path_info, "QUERY_STRING": "q=1&r=%2F"})

    assert app.calls[0].path == "/users/a%20b%C3%A9?q=1&r=%2F"


def test_characters_allowed_in_a_path_are_not_encoded(app: RecordingServer) -> None:
    call(make_wsgi_app(app), {"PATH_INFO": "/a:b@c!$&'()*+,;=~-._"})

    assert app.calls[0].path == "/a:b@c!$&'()*+,;=~-._"


def test_an_empty_path_info_is_the_root_path(app: RecordingServer) -> None:
    status, _, body = call(make_wsgi_app(app), {"PATH_INFO": ""})

    assert (status, body, app.calls[0].path) == ("200 OK", b"hello", "/")


def test_headers_come_from_http_variables_and_the_content_variables(app: RecordingServer) -> None:
    environ = {
        "PATH_INFO": "/headers",
        "HTTP_X_REQUEST_ID": "r-1",
        "HTTP_ACCEPT": "text/plain,application/json",
        "CONTENT_TYPE": "text/csv",
        "CONTENT_LENGTH": "",
    }

    call(make_wsgi_app(app), environ)
    headers = app.calls[0].headers

    assert isinstance(headers, Headers)
    assert dict(headers) == {
        "Host": "127.0.0.1",  # HTTP_HOST, from setup_testing_defaults
        "X-Request-Id": "r-1",
        "Accept": "text/plain,application/json",
        "Content-Type": "text/csv",
    }


def test_the_body_is_read_by_content_length(app: RecordingServer) -> None:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/echo", "CONTENT_LENGTH": "5"}
    environ["wsgi.input"] = io.BytesIO(b"hello, and bytes that are not part of the body")

    assert call(make_wsgi_app(app), environ)[2] == b"hello"


def test_without_content_length_the_body_is_empty(app: RecordingServer) -> None:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/echo", "wsgi.input": io.BytesIO(b"ignored")}

    call(make_wsgi_app(app), environ)

    assert app.calls[0].body == b""


def test_a_terminated_input_without_content_length_is_read_to_its_end(app: RecordingServer) -> None:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/echo",
        "wsgi.input": io.BytesIO(b"chunked upload"),
        "wsgi.input_terminated": True,
    }

    assert call(make_wsgi_app(app), environ)[2] == b"chunked upload"


@pytest.mark.parametrize(
    ("length", "data", "message"),
    [
        ("x", b"", b"Invalid Content-Length"),
        ("-1", b"", b"Invalid Content-Length"),
        ("10", b"abc", b"shorter"),
    ],
)
def test_a_bad_content_length_is_a_400_and_is_not_dispatched(
    app: RecordingServer, length: str, data: bytes, message: bytes
) -> None:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/echo",
        "CONTENT_LENGTH": length,
        "wsgi.input": io.BytesIO(data),
    }

    status, _, body = call(make_wsgi_app(app), environ)

    assert status == "400 Bad Request"
    assert message in body
    assert app.calls == []


def test_the_peer_scheme_and_protocol_come_from_the_environ(app: RecordingServer) -> None:
    environ = {
        "REMOTE_ADDR": "10.0.0.1",
        "REMOTE_PORT": "54321",
        "SERVER_NAME": "api.example",
        "SERVER_PORT": "8443",
        "SERVER_PROTOCOL": "HTTP/2",
        "wsgi.url_scheme": "https",
    }

    call(make_wsgi_app(app), environ)

    # SERVER_NAME/SERVER_PORT are not the local end (gunicorn takes them from
    # the client's Host); without the connection's socket it is unknown.
    assert app.calls[0].connection == ConnectionInfo(
        client_address="10.0.0.1",
        client_port=54321,
        server_address=None,
        server_port=None,
        scheme="https",
        protocol_version="2",
    )


def test_missing_or_odd_connection_details_are_none(app: RecordingServer) -> None:
    environ = {"REMOTE_ADDR": "", "REMOTE_PORT": "n/a", "SERVER_PORT": "", "SERVER_PROTOCOL": "INCLUDED"}

    call(make_wsgi_app(app), environ)

    connection = app.calls[0].connection
    assert connection is not None
    assert (connection.client_address, connection.client_port, connection.server_port) == (None, None, None)
    assert connection.protocol_version is None


def test_status_lines_carry_the_standard_reason_phrase(app: RecordingServer) -> None:
    assert call(make_wsgi_app(app), {"PATH_INFO": "/missing"})[0] == "404 Not Found"


def test_a_status_without_a_registered_phrase_still_makes_a_valid_status_line(app: RecordingServer) -> None:
    app.add_route("/odd", lambda headers, body: {"status": 599})

    assert call(make_wsgi_app(app), {"PATH_INFO": "/odd"})[0] == "599 Unknown"


def test_hop_by_hop_headers_from_a_handler_are_dropped(
    app: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="internalhttp"):
        _, headers, body = call(make_wsgi_app(app), {"PATH_INFO": "/close"})

    assert "Connection" not in headers
    assert body == b"bye"
    assert "dropping hop-by-hop response header Connection" in caplog.text


def test_head_gets_the_headers_without_the_body(app: RecordingServer) -> None:
    app.add_route("/page", lambda headers, body: "content", method="HEAD")

    _, headers, body = call(make_wsgi_app(app), {"REQUEST_METHOD": "HEAD", "PATH_INFO": "/page"})

    assert (headers["Content-Length"], body) == ("7", b"")


def test_an_unusual_method_is_passed_through(app: RecordingServer) -> None:
    status, _, body = call(make_wsgi_app(app), {"REQUEST_METHOD": "PURGE", "PATH_INFO": "/cache"})

    assert (status, body) == ("200 OK", b"purged")


def test_a_handler_exception_is_a_logged_500(app: RecordingServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="internalhttp"):
        status, headers, body = call(make_wsgi_app(app), {"PATH_INFO": "/boom"})

    assert (status, body) == ("500 Internal Server Error", b"Internal Server Error")
    assert headers["Content-Length"] == "21"
    assert "GET /boom" in caplog.text and "RuntimeError: boom" in caplog.text


def test_an_invalid_return_value_is_a_500(app: RecordingServer) -> None:
    assert call(make_wsgi_app(app), {"PATH_INFO": "/invalid"})[0] == "500 Internal Server Error"


# -- wsgiref on a real socket -----------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # wsgiref logs every request to stderr


@pytest.fixture
def wsgiref_server(app: RecordingServer) -> Iterator[WSGIServer]:
    httpd = make_server("127.0.0.1", 0, make_wsgi_app(app), handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)


def wsgiref_request(httpd: WSGIServer, method: str, path: str, **kwargs: Any) -> http.client.HTTPResponse:
    client = http.client.HTTPConnection("127.0.0.1", httpd.server_port, timeout=TIMEOUT)
    try:
        client.request(method, path, **kwargs)
        response = client.getresponse()
        response.body = response.read()  # type: ignore[attr-defined]
        return response
    finally:
        client.close()


def test_under_wsgiref_a_get_with_a_query_is_served(wsgiref_server: WSGIServer, app: RecordingServer) -> None:
    response = wsgiref_request(wsgiref_server, "GET", "/users/a%20b?x=1")

    assert response.status == 200
    assert json.loads(response.body) == {"id": "a%20b"}  # type: ignore[attr-defined]
    assert app.calls[0].path == "/users/a%20b?x=1"


def test_under_wsgiref_a_post_body_is_echoed(wsgiref_server: WSGIServer) -> None:
    payload = bytes(range(256)) * 64

    response = wsgiref_request(
        wsgiref_server, "POST", "/echo", body=payload, headers={"Content-Type": "application/x-test"}
    )

    assert (response.status, response.getheader("Content-Type")) == (200, "application/x-test")
    assert response.body == payload  # type: ignore[attr-defined]


def test_under_wsgiref_the_connection_is_described(wsgiref_server: WSGIServer, app: RecordingServer) -> None:
    wsgiref_request(wsgiref_server, "GET", "/")

    connection = app.calls[0].connection
    assert connection is not None
    # wsgiref shares no socket in the environ: the local end is unknown.
    assert (
        connection.client_address,
        connection.server_port,
        connection.scheme,
        connection.protocol_version,
    ) == (
        "127.0.0.1",
        None,
        "http",
        "1.1",
    )


def test_under_wsgiref_a_handler_exception_is_a_500_and_serving_goes_on(
    wsgiref_server: WSGIServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.CRITICAL, logger="internalhttp"):
        assert wsgiref_request(wsgiref_server, "GET", "/boom").status == 500

    assert wsgiref_request(wsgiref_server, "GET", "/").body == b"hello"  # type: ignore[attr-defined]


def test_under_wsgiref_head_has_a_content_length_and_no_body(wsgiref_server: WSGIServer) -> None:
    response = wsgiref_request(wsgiref_server, "HEAD", "/")

    assert (response.status, response.getheader("Content-Length"), response.body) == (405, "18", b"")  # type: ignore[attr-defined]


# -- gunicorn -----------------------------------------------------------------------

GUNICORN_APP = """
    import internalhttp

    server = internalhttp.InternalHTTPServer("under-gunicorn")

    @server.route("/users/<user_id>")
    def user(headers, body, user_id):
        return {"body": {"id": user_id, "agent": headers.get("user-agent")}}

    @server.route("/echo", method="POST")
    def echo(headers, body):
        return body

    @server.route("/boom")
    def boom(headers, body):
        raise RuntimeError("boom under gunicorn")

    application = internalhttp.make_wsgi_app(server)
"""


@pytest.fixture
def gunicorn_url(tmp_path: Path) -> Iterator[Tuple[str, int, queue.Queue[str]]]:
    pytest.importorskip("gunicorn")
    (tmp_path / "app_under_gunicorn.py").write_text(textwrap.dedent(GUNICORN_APP))
    command = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1"]
    command += ["--chdir", str(tmp_path), "--graceful-timeout", "2", *no_control_socket()]
    command += ["app_under_gunicorn:application"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr or ()], daemon=True)
    reader.start()
    try:
        port = None
        while port is None:
            try:
                line = lines.get(timeout=15)
            except queue.Empty:
                pytest.fail("gunicorn did not start listening within 15 s")
            found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        yield "127.0.0.1", port, lines
    finally:
        process.terminate()
        try:
            process.wait(TIMEOUT * 2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(TIMEOUT)
        reader.join(TIMEOUT)
        if process.stderr:
            process.stderr.close()


def wait_for_line(lines: queue.Queue[str], text: str) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if text in lines.get(timeout=0.1):
                return True
        except queue.Empty:
            pass
    return False


def test_under_gunicorn_requests_are_served(gunicorn_url: Tuple[str, int, queue.Queue[str]]) -> None:
    host, port, log_lines = gunicorn_url
    client = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        client.request("GET", "/users/a%2Fb?x=1", headers={"User-Agent": "spec"})
        response = client.getresponse()
        assert (response.status, json.loads(response.read())) == (200, {"id": "a%2Fb", "agent": "spec"})

        client.request("POST", "/echo", body=iter([b"chunked ", b"upload"]), encode_chunked=True)
        response = client.getresponse()
        assert (response.status, response.read()) == (200, b"chunked upload")

        client.request("GET", "/boom")
        response = client.getresponse()
        assert (response.status, response.read()) == (500, b"Internal Server Error")
        assert wait_for_line(log_lines, "RuntimeError: boom under gunicorn")  # logged with its traceback

        client.request("GET", "/users/again")
        assert client.getresponse().status == 200
    finally:
        client.close()
