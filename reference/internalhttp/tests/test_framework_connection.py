"""What serving layers tell about a request's connection, and what a refusal says was asked.

``ConnectionInfo.server_address``/``server_port`` are the local end of the
accepted socket (``getsockname()``), never a bind address nor a client's
``Host``; ``transport`` says ``tcp`` or ``unix``; ``root_path`` is where a
WSGI application is mounted. A :class:`~internalhttp.Refusal` carries the
method and target whenever the request line could be read.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import queue
import re
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest
from framework_support import TIMEOUT, RecordingServer, no_control_socket
from internalhttp import ConnectionInfo, make_wsgi_app
from internalhttp.request import local_endpoint
from internalhttp.serving import RunningServer

Environ = Dict[str, Any]


def call_wsgi(app: RecordingServer, environ: Environ) -> str:
    """Call the WSGI adapter once with ``environ`` (plus the required keys); return the status line."""
    full = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input": io.BytesIO(b""), **environ}
    started: Dict[str, str] = {}
    make_wsgi_app(app)(full, lambda status, headers, exc_info=None: started.update(status=status))  # type: ignore[arg-type, misc, return-value]
    return started["status"]


@contextlib.contextmanager
def accepted_tcp(host: str) -> Iterator[Tuple[socket.socket, int]]:
    """A server-side socket accepted on ``host`` (a real connection), and the listening port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        with socket.create_connection((host, port), timeout=TIMEOUT) as _client:
            accepted, _ = listener.accept()
            with accepted:
                yield accepted, port


def exchange(running: RunningServer, data: bytes) -> bytes:
    """Send raw bytes, read until the server closes; the server may refuse before taking them all."""
    with socket.create_connection((running.host, running.port), timeout=TIMEOUT) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        received = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                received += chunk
    return received


# -- the socket server ---------------------------------------------------------------


def test_the_socket_server_reports_the_accepted_sockets_local_end_not_the_host_header(
    running: RunningServer, app: RecordingServer
) -> None:
    client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    try:
        client.request("GET", "/", headers={"Host": "evil.example:1234"})
        client.getresponse().read()
    finally:
        client.close()

    connection = app.calls[0].connection
    assert connection is not None
    assert (connection.server_address, connection.server_port) == ("127.0.0.1", running.port)
    assert (connection.transport, connection.root_path) == ("tcp", "")


# request bytes, status, the method and target the refusal carries
READABLE_REFUSALS = [
    ("unsupported-version", b"GET /users/1 HTTP/2.0\r\n\r\n", 505, "GET", "/users/1"),
    ("malformed-version", b"GET /x HTTP/one\r\n\r\n", 400, "GET", "/x"),
    (
        "body-too-large",
        b"POST /echo HTTP/1.1\r\nContent-Length: 1000000000000000\r\n\r\n",
        413,
        "POST",
        "/echo",
    ),
    ("too-many-fields", b"GET /f HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431, "GET", "/f"),
    ("head-too-large", b"GET /big HTTP/1.1\r\n" + b"X-Big: a\r\n" * 7000, 431, "GET", "/big"),
    ("two-word-request-line", b"GET /\r\n\r\n", 400, "", ""),
    ("method-not-a-token", b"G@T / HTTP/1.1\r\n\r\n", 400, "", ""),
    ("request-line-too-long", b"GET /" + b"a" * 70000, 414, "", ""),
]


@pytest.mark.parametrize(
    ("request_bytes", "status", "method", "target"),
    [r[1:] for r in READABLE_REFUSALS],
    ids=[r[0] for r in READABLE_REFUSALS],
)
def test_a_refusal_carries_the_method_and_target_when_the_request_line_can_be_read(
    running: RunningServer, app: RecordingServer, request_bytes: bytes, status: int, method: str, target: str
) -> None:
    response = exchange(running, request_bytes)

    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    [refusal] = app.refusals
    assert (refusal.status, refusal.method, refusal.target) == (status, method, target)


def test_a_refusal_describes_the_connection_it_came_on(running: RunningServer, app: RecordingServer) -> None:
    exchange(running, b"GET /users/1 HTTP/2.0\r\n\r\n")

    connection = app.refusals[0].connection
    assert connection is not None
    assert (connection.client_address, connection.server_address) == ("127.0.0.1", "127.0.0.1")
    assert (connection.server_port, connection.transport) == (running.port, "tcp")


def test_a_closed_socket_has_no_known_local_end() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.close()

    assert local_endpoint(sock) == ("tcp", None, None)


# -- the WSGI adapter ------------------------------------------------------------------


def test_under_wsgi_the_local_end_comes_from_gunicorns_socket_not_server_name(app: RecordingServer) -> None:
    with accepted_tcp("127.0.0.1") as (accepted, port):
        call_wsgi(
            app,
            {
                "gunicorn.socket": accepted,
                "SERVER_NAME": "evil.example",
                "SERVER_PORT": "1234",
                "HTTP_HOST": "evil.example:1234",
            },
        )

    connection = app.calls[0].connection
    assert connection is not None
    assert (connection.server_address, connection.server_port, connection.transport) == (
        "127.0.0.1",
        port,
        "tcp",
    )


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_under_wsgi_an_ipv6_socket_gives_its_address_and_port(app: RecordingServer) -> None:
    with accepted_tcp("::1") as (accepted, port):
        call_wsgi(app, {"gunicorn.socket": accepted})

    connection = app.calls[0].connection
    assert connection is not None
    assert (connection.server_address, connection.server_port, connection.transport) == ("::1", port, "tcp")


def test_under_wsgi_a_unix_socket_gives_its_path_and_no_ports(app: RecordingServer, tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(1)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(path)
            accepted, _ = listener.accept()
            with accepted:
                # What gunicorn puts in the environ for a unix-socket client.
                call_wsgi(
                    app, {"gunicorn.socket": accepted, "REMOTE_ADDR": "", "SERVER_NAME": "evil.example"}
                )

    assert app.calls[0].connection == ConnectionInfo(
        client_address=None,
        client_port=None,
        server_address=path,
        server_port=None,
        scheme="http",
        protocol_version=None,
        transport="unix",
    )


def test_under_wsgi_an_unnamed_unix_socket_has_no_local_address(app: RecordingServer) -> None:
    server_end, client_end = socket.socketpair(socket.AF_UNIX)
    with server_end, client_end:
        call_wsgi(app, {"gunicorn.socket": server_end})

    connection = app.calls[0].connection
    assert connection is not None
    assert (connection.server_address, connection.server_port, connection.transport) == (None, None, "unix")


def test_under_wsgi_without_a_socket_the_local_end_is_unknown(app: RecordingServer) -> None:
    call_wsgi(app, {"SERVER_NAME": "evil.example", "SERVER_PORT": "1234"})

    connection = app.calls[0].connection
    assert connection is not None
    assert (connection.server_address, connection.server_port, connection.transport) == (None, None, "tcp")


def test_under_wsgi_something_that_is_not_a_socket_tells_nothing(app: RecordingServer) -> None:
    call_wsgi(app, {"gunicorn.socket": object()})

    connection = app.calls[0].connection
    assert connection is not None
    assert (connection.server_address, connection.server_port) == (None, None)


@pytest.mark.parametrize(
    ("script_name", "root_path"),
    [("", ""), ("/", ""), ("/api", "/api"), ("/api/", "/api"), ("/my app/v1", "/my%20app/v1")],
)
def test_under_wsgi_the_root_path_is_script_name_as_sent_without_a_trailing_slash(
    app: RecordingServer, script_name: str, root_path: str
) -> None:
    call_wsgi(app, {"SCRIPT_NAME": script_name, "PATH_INFO": "/users/1"})

    connection = app.calls[0].connection
    assert connection is not None
    assert connection.root_path == root_path


def test_under_wsgi_routing_is_below_the_root_path(app: RecordingServer) -> None:
    status = call_wsgi(app, {"SCRIPT_NAME": "/api", "PATH_INFO": "/users/1", "RAW_URI": "/api/users/1"})

    assert (status, app.calls[0].path) == ("200 OK", "/users/1")


def test_under_wsgi_a_refusal_carries_the_method_target_and_root_path(app: RecordingServer) -> None:
    status = call_wsgi(
        app, {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "/api", "PATH_INFO": "/echo", "CONTENT_LENGTH": "x"}
    )

    assert status == "400 Bad Request"
    [refusal] = app.refusals
    assert (refusal.method, refusal.target) == ("POST", "/echo")
    assert refusal.connection is not None and refusal.connection.root_path == "/api"


# -- gunicorn, on TCP and on a unix socket at once ---------------------------------------

REPORTING_APP = """
    import dataclasses
    import json

    import internalhttp


    class Reporting(internalhttp.InternalHTTPServer):
        # Answers every request with what the adapter passed to the dispatch seam.
        def handle_request(self, method, path, headers=None, body=b"", *, connection=None):
            return {"body": {"path": path, "connection": dataclasses.asdict(connection)}}


    application = internalhttp.make_wsgi_app(Reporting("reporting"))
"""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(self._path)


@pytest.fixture(scope="module")
def gunicorn_two_binds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[int, str]]:
    """gunicorn serving the reporting app under SCRIPT_NAME=/api on 127.0.0.1 and a unix socket."""
    pytest.importorskip("gunicorn")
    folder = tmp_path_factory.mktemp("gunicorn")
    (folder / "reporting_app.py").write_text(textwrap.dedent(REPORTING_APP))
    unix_path = str(folder / "g.sock")
    command = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--bind", f"unix:{unix_path}"]
    command += ["--workers", "1", "--chdir", str(folder), "--graceful-timeout", "2", *no_control_socket()]
    command += ["reporting_app:application"]
    environment = {"PATH": "/usr/bin:/bin", "SCRIPT_NAME": "/api", "HOME": str(folder)}
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environment
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stderr or ()], daemon=True)
    reader.start()
    try:
        yield _listening_port(lines), unix_path
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


def _listening_port(lines: queue.Queue[str]) -> int:
    for _ in range(50):
        try:
            line = lines.get(timeout=15)
        except queue.Empty:
            break
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1))
    pytest.fail("gunicorn did not start listening within 15 s")


def _report(client: http.client.HTTPConnection, host: Optional[str] = None) -> Any:
    try:
        client.request("GET", "/api/users/1", headers={"Host": host} if host else {})
        response = client.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        client.close()


def test_under_gunicorn_on_tcp_the_local_end_is_the_socket_never_the_host_header(
    gunicorn_two_binds: Tuple[int, str],
) -> None:
    port, _ = gunicorn_two_binds

    report = _report(http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT), "evil.example:1234")

    connection = report["connection"]
    assert (connection["server_address"], connection["server_port"]) == ("127.0.0.1", port)
    assert (connection["client_address"], connection["transport"]) == ("127.0.0.1", "tcp")


def test_under_gunicorn_script_name_is_the_root_path_and_routing_stays_below_it(
    gunicorn_two_binds: Tuple[int, str],
) -> None:
    port, _ = gunicorn_two_binds

    report = _report(http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT))

    assert (report["path"], report["connection"]["root_path"]) == ("/users/1", "/api")


def test_under_gunicorn_on_a_unix_socket_the_transport_is_unix_with_the_path_and_no_client_values(
    gunicorn_two_binds: Tuple[int, str],
) -> None:
    _, unix_path = gunicorn_two_binds

    report = _report(_UnixHTTPConnection(unix_path), "evil.example:1234")

    connection = report["connection"]
    assert (connection["transport"], connection["server_address"], connection["server_port"]) == (
        "unix",
        unix_path,
        None,
    )
    assert (connection["client_address"], connection["client_port"]) == (None, None)
