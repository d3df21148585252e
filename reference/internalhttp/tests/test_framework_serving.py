"""internalhttp.serve: real sockets on 127.0.0.1, driven by http.client."""

from __future__ import annotations

import http.client
import json
import logging
import signal
import socket
import threading
import time
from typing import Callable, Dict, Iterator, List

import internalhttp
import pytest
from framework_support import TIMEOUT, RawClient, RecordingServer, build_app, server_closed
from internalhttp import ConnectionInfo, Headers, RunningServer, serve, serving
from internalhttp.serving import serve_forever

RawConnect = Callable[[], RawClient]


def get(client: http.client.HTTPConnection, path: str, method: str = "GET", **kwargs: object):
    client.request(method, path, **kwargs)  # type: ignore[arg-type]
    response = client.getresponse()
    return response.status, response.headers, response.read()


# -- binding and lifecycle ---------------------------------------------------


def test_port_0_binds_a_real_free_port_on_127_0_0_1(running: RunningServer) -> None:
    assert running.host == "127.0.0.1"
    assert running.port > 0
    assert running.url == f"http://127.0.0.1:{running.port}"
    with socket.create_connection((running.host, running.port), timeout=TIMEOUT):
        pass


def test_serve_returns_a_handle_on_the_served_application(
    running: RunningServer, app: RecordingServer
) -> None:
    assert running.app is app
    assert not running.closed
    assert repr(running) == f"<RunningServer RecordingServer('test-app') on {running.url} (serving)>"


def test_binding_an_address_in_use_raises_in_the_caller(app: RecordingServer) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError):
            serve(app, "127.0.0.1", taken.getsockname()[1])


def test_shutdown_stops_serving_and_frees_the_port(app: RecordingServer) -> None:
    running = serve(app)
    port = running.port

    running.shutdown()

    assert running.closed
    assert not any(t.name == f"internalhttp-serve-{port}" for t in threading.enumerate())
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()


def test_shutdown_is_idempotent(app: RecordingServer) -> None:
    running = serve(app)

    running.shutdown()
    running.shutdown()

    assert "(closed)" in repr(running)


def test_the_context_manager_shuts_the_server_down(app: RecordingServer) -> None:
    with serve(app) as running:
        assert not running.closed

    assert running.closed


def test_shutdown_ends_idle_keep_alive_connections_promptly(app: RecordingServer) -> None:
    running = serve(app)
    client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    try:
        assert get(client, "/")[0] == 200  # the connection now idles, kept alive
        started = time.monotonic()

        running.shutdown()

        assert time.monotonic() - started < 2
        assert server_closed(client.sock)
        assert not [t for t in threading.enumerate() if t.name.startswith("internalhttp-worker-")]
    finally:
        client.close()


def test_shutdown_lets_a_request_in_progress_finish(app: RecordingServer) -> None:
    running = serve(app)
    client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    try:
        client.request("GET", "/slow")
        assert app.entered.wait(TIMEOUT)
        stopper = threading.Thread(target=running.shutdown)
        stopper.start()
        time.sleep(0.1)  # shutdown is now waiting for the handler
        app.release.set()
        stopper.join(TIMEOUT)

        response = client.getresponse()

        assert (response.status, response.read()) == (200, b"finally")
        assert not stopper.is_alive()
    finally:
        app.release.set()
        client.close()


def test_shutdown_gives_up_on_a_handler_that_does_not_return(
    app: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    running = serve(app, grace_period=0.1)
    client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    try:
        client.request("GET", "/slow")
        assert app.entered.wait(TIMEOUT)

        with caplog.at_level(logging.WARNING, logger="internalhttp"):
            running.shutdown()

        assert "still running at shutdown" in caplog.text
    finally:
        app.release.set()
        client.close()


def test_a_handler_can_shut_down_its_own_server_and_still_answer(app: RecordingServer) -> None:
    holder: Dict[str, RunningServer] = {}
    app.add_route("/stop", lambda headers, body: holder["running"].shutdown() or "stopping")
    running = holder["running"] = serve(app)
    client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    try:
        status, _, body = get(client, "/stop")

        assert (status, body) == (200, b"stopping")
        assert running.closed
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((running.host, running.port), timeout=TIMEOUT).close()
    finally:
        client.close()


@pytest.fixture
def sigint_raises_keyboard_interrupt() -> Iterator[None]:
    """Python's own SIGINT handler for the test, whatever the disposition the run inherited.

    ``_thread.interrupt_main()`` does nothing while SIGINT is ignored (under
    ``nohup``, or as a background job of a script), which would leave
    ``serve_forever`` running for ever.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.usefixtures("sigint_raises_keyboard_interrupt")
def test_serve_forever_blocks_until_interrupted_with_ctrl_c(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    import _thread

    app = build_app()
    seen: Dict[str, object] = {}
    announced = threading.Event()
    real_serve = serving.serve
    real_announce = serving._announce

    def serve_and_tell(*args: object, **kwargs: object) -> RunningServer:
        running = real_serve(*args, **kwargs)  # type: ignore[arg-type]
        seen["running"] = running
        return running

    def announce_and_tell(line: str) -> None:
        real_announce(line)
        announced.set()  # from here on Ctrl-C is handled, as the docstring promises

    def user_at_the_keyboard() -> None:
        try:
            if announced.wait(TIMEOUT):
                running = seen["running"]
                assert isinstance(running, RunningServer)
                client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
                seen["response"] = get(client, "/")[2]
                client.close()
        finally:
            _thread.interrupt_main()  # what Ctrl-C does

    monkeypatch.setattr(serving, "serve", serve_and_tell)
    monkeypatch.setattr(serving, "_announce", announce_and_tell)
    keyboard = threading.Thread(target=user_at_the_keyboard)
    keyboard.start()
    serve_forever(app, "127.0.0.1", 0)
    keyboard.join(TIMEOUT)

    running = seen["running"]
    assert isinstance(running, RunningServer)
    assert running.closed
    assert seen["response"] == b"hello"
    # Printed to stderr, so it is seen without any logging configuration.
    assert capfd.readouterr().err.splitlines() == [
        f"internalhttp: serving RecordingServer('test-app') on {running.url} (Ctrl-C or SIGTERM to stop)",
        "internalhttp: SIGINT received, shutting down",
    ]


# -- HTTP/1.1 semantics ---------------------------------------------------------


def test_a_get_is_answered_with_status_headers_and_body(client: http.client.HTTPConnection) -> None:
    status, headers, body = get(client, "/users/42")

    assert status == 200
    assert json.loads(body) == {"id": "42"}
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Length"] == str(len(body))
    assert headers["Server"] == f"internalhttp/{internalhttp.__version__}"
    assert "Date" in headers


def test_two_requests_share_one_kept_alive_connection(
    client: http.client.HTTPConnection, app: RecordingServer
) -> None:
    assert get(client, "/")[2] == b"hello"
    first_socket = client.sock

    assert get(client, "/users/1")[0] == 200

    assert client.sock is first_socket
    ports = {call.connection.client_port for call in app.calls if call.connection}
    assert ports == {first_socket.getsockname()[1]}


def test_an_http_1_0_request_is_answered_and_the_connection_closed(
    raw_connect: RawConnect, app: RecordingServer
) -> None:
    raw = raw_connect()
    raw.send(b"GET / HTTP/1.0\r\n\r\n")

    status, headers, body = raw.read_response()

    assert (status, body) == (200, b"hello")
    assert headers["Connection"] == "close"
    assert raw.server_closed()
    assert app.calls[0].connection and app.calls[0].connection.protocol_version == "1.0"


def test_a_client_asking_to_close_gets_connection_close(raw_connect: RawConnect) -> None:
    raw = raw_connect()
    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    status, headers, _ = raw.read_response()

    assert (status, headers["Connection"]) == (200, "close")
    assert raw.server_closed()


def test_a_handler_can_close_the_connection_with_a_connection_header(raw_connect: RawConnect) -> None:
    raw = raw_connect()
    raw.send(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")

    status, headers, body = raw.read_response()

    assert (status, headers.get_all("Connection"), body) == (200, ["close"], b"bye")
    assert raw.server_closed()


def test_the_request_reaches_handle_request_as_sent(running: RunningServer, app: RecordingServer) -> None:
    client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    try:
        get(client, "/users/5?expand=orders&x=%20", method="GET", headers={"X-Request-Id": "abc"})
        call = app.calls[0]

        assert (call.method, call.path, call.body) == ("GET", "/users/5?expand=orders&x=%20", b"")
        assert isinstance(call.headers, Headers)
        assert call.headers["x-request-id"] == "abc"
        assert call.connection == ConnectionInfo(
            client_address="127.0.0.1",
            client_port=client.sock.getsockname()[1],
            server_address="127.0.0.1",
            server_port=running.port,
            scheme="http",
            protocol_version="1.1",
            queue_time=call.connection.queue_time,
        )
        assert 0.0 <= call.connection.queue_time < TIMEOUT  # how long it waited for a worker
    finally:
        client.close()


def test_repeated_request_headers_are_joined_with_a_comma(
    client: http.client.HTTPConnection, app: RecordingServer
) -> None:
    client.putrequest("GET", "/headers")
    client.putheader("X-Tag", "a")
    client.putheader("x-tag", "b")
    client.putheader("X-TAG", "c")
    client.endheaders()
    response = client.getresponse()

    assert json.loads(response.read())["X-Tag"] == "a,b,c"


def test_a_one_megabyte_body_is_echoed_back(client: http.client.HTTPConnection) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value

    status, headers, body = get(
        client, "/echo", method="POST", body=payload, headers={"Content-Type": "application/x-test"}
    )

    assert (status, headers["Content-Type"], headers["Content-Length"]) == (
        200,
        "application/x-test",
        "1048576",
    )
    assert body == payload


def test_a_request_without_content_length_has_an_empty_body(
    raw_connect: RawConnect, app: RecordingServer
) -> None:
    raw = raw_connect()
    raw.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n\r\n")

    assert raw.read_response()[2] == b""
    assert app.calls[0].body == b""


def test_repeated_identical_content_lengths_are_accepted(raw_connect: RawConnect) -> None:
    raw = raw_connect()
    raw.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc")

    assert raw.read_response()[::2] == (200, b"abc")


def test_a_chunked_request_body_is_decoded(client: http.client.HTTPConnection) -> None:
    status, _, body = get(
        client, "/echo", method="POST", body=iter([b"hello ", b"", b"world"]), encode_chunked=True
    )

    assert (status, body) == (200, b"hello world")


def test_chunk_extensions_and_trailers_are_accepted_and_dropped(raw_connect: RawConnect) -> None:
    raw = raw_connect()
    raw.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n0\r\nX-Checksum: 1\r\n\r\n"
    )

    assert raw.read_response()[::2] == (200, b"hello")

    raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # the connection is still in step
    assert raw.read_response()[::2] == (200, b"hello")


@pytest.mark.parametrize(
    ("request_head", "status"),
    [
        (b"POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
        (b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX", 400),
        (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 70000 + b"\r\n", 400),
        (
            b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"X-T: 1\r\n" * 101 + b"\r\n",
            431,
        ),
        (b"G@T / HTTP/1.1\r\n\r\n", 400),
    ],
    ids=[
        "content-length-not-a-number",
        "content-length-negative",
        "content-lengths-disagree",
        "content-length-and-transfer-encoding",
        "unsupported-transfer-coding",
        "chunk-size-not-hex",
        "chunk-without-crlf",
        "chunk-size-line-too-long",
        "too-many-trailers",
        "method-not-a-token",
    ],
)
def test_a_malformed_request_is_refused_and_the_connection_closed(
    raw_connect: RawConnect, app: RecordingServer, request_head: bytes, status: int
) -> None:
    raw = raw_connect()
    raw.send(request_head)

    response_status, headers, _ = raw.read_response()

    assert (response_status, headers["Connection"]) == (status, "close")
    assert raw.server_closed()
    assert app.calls == []


def test_a_refused_upload_is_drained_so_the_client_can_finish_sending(raw_connect: RawConnect) -> None:
    raw = raw_connect()
    raw.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
    assert raw.read_response()[0] == 400

    raw.send(b"x" * 200_000)  # the rest of an upload the client had already started

    assert raw.server_closed()


@pytest.mark.parametrize(
    "partial_request",
    [
        b"POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    ],
    ids=["short-body", "no-chunk", "short-chunk"],
)
def test_a_client_leaving_mid_body_is_not_dispatched_and_the_server_keeps_serving(
    running: RunningServer, raw_connect: RawConnect, app: RecordingServer, partial_request: bytes
) -> None:
    raw = raw_connect()
    raw.send(partial_request)
    raw.sock.shutdown(socket.SHUT_WR)

    assert raw.server_closed()
    assert app.calls == []
    client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    assert get(client, "/")[0] == 200
    client.close()


def test_head_gets_the_headers_of_the_response_without_its_body(raw_connect: RawConnect) -> None:
    app_head = b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = raw_connect()
    raw.send(app_head + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # pipelined

    status, headers, body = raw.read_response(method="HEAD")
    # Nothing was sent after the headers: the next bytes are the GET's response.
    assert (status, headers["Content-Length"], body) == (405, "18", b"")
    assert raw.read_response()[::2] == (200, b"hello")


def test_a_204_has_no_content_length_and_no_body(client: http.client.HTTPConnection) -> None:
    status, headers, body = get(client, "/empty")

    assert (status, headers["Content-Length"], body) == (204, None, b"")
    assert get(client, "/")[2] == b"hello"  # still in step on the same connection


def test_an_unusual_method_reaches_the_application(client: http.client.HTTPConnection) -> None:
    assert get(client, "/cache", method="PURGE")[::2] == (200, b"purged")


def test_a_method_spelled_in_lower_case_is_a_different_method(
    client: http.client.HTTPConnection, app: RecordingServer
) -> None:
    status, headers, _ = get(client, "/", method="get")

    assert (status, headers["Allow"]) == (405, "GET")
    assert app.calls[0].method == "get"


def test_an_unknown_path_is_a_404(client: http.client.HTTPConnection) -> None:
    assert get(client, "/missing")[::2] == (404, b"Not Found")


def test_a_handler_exception_is_a_logged_500_and_the_connection_goes_on(
    client: http.client.HTTPConnection, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="internalhttp"):
        status, headers, body = get(client, "/boom")

    assert (status, body, headers["Content-Type"]) == (
        500,
        b"Internal Server Error",
        "text/plain; charset=utf-8",
    )
    [record] = [r for r in caplog.records if r.name == "internalhttp"]
    assert "GET /boom" in record.getMessage()
    assert record.exc_info and isinstance(record.exc_info[1], RuntimeError)
    assert get(client, "/")[::2] == (200, b"hello")


def test_an_invalid_return_value_is_a_500(
    client: http.client.HTTPConnection, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="internalhttp"):
        assert get(client, "/invalid")[0] == 500

    assert "a handler must return" in caplog.text


def test_eight_concurrent_clients_each_get_their_own_answers(running: RunningServer) -> None:
    errors: List[BaseException] = []
    answers: Dict[int, List[bytes]] = {}

    def client_thread(number: int) -> None:
        client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        try:
            answers[number] = [
                get(client, "/echo", method="POST", body=f"{number}-{i}".encode())[2] for i in range(5)
            ]
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            client.close()

    threads = [threading.Thread(target=client_thread, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)

    assert errors == []
    assert answers == {n: [f"{n}-{i}".encode() for i in range(5)] for n in range(8)}


def test_requests_are_handled_in_parallel(running: RunningServer, app: RecordingServer) -> None:
    slow = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    fast = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    try:
        slow.request("GET", "/slow")
        assert app.entered.wait(TIMEOUT)

        assert get(fast, "/")[2] == b"hello"  # answered while /slow is still running

        app.release.set()
        assert slow.getresponse().read() == b"finally"
    finally:
        slow.close()
        fast.close()


def test_one_access_line_per_request_goes_to_an_info_logger_not_stderr(
    client: http.client.HTTPConnection, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.DEBUG, logger="internalhttp.access"):
        get(client, "/users/1?q=2")

    [record] = [r for r in caplog.records if r.name == "internalhttp.access"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == '127.0.0.1 - "GET /users/1?q=2" 200 10'  # {"id":"1"}
    assert capfd.readouterr().err == ""


def test_handle_request_is_looked_up_on_the_instance_for_every_request(
    client: http.client.HTTPConnection, app: RecordingServer
) -> None:
    original = app.handle_request

    def wrapped(*args: object, **kwargs: object) -> object:
        return {"body": "wrapped", "status": original(*args, **kwargs)["status"]}  # type: ignore[arg-type,index]

    assert get(client, "/missing")[2] == b"Not Found"
    app.handle_request = wrapped  # type: ignore[method-assign]

    assert get(client, "/missing")[::2] == (404, b"wrapped")


class _BrokenTransport(Exception):
    pass


def test_connection_errors_are_logged_quietly_and_other_errors_with_a_traceback(
    running: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    httpd = running._httpd
    with caplog.at_level(logging.DEBUG, logger="internalhttp"):
        try:
            raise ConnectionResetError("peer reset")
        except ConnectionResetError:
            httpd.handle_error(None, ("127.0.0.1", 1))
        try:
            raise _BrokenTransport("bug")
        except _BrokenTransport:
            httpd.handle_error(None, ("127.0.0.1", 2))

    quiet, loud = [r for r in caplog.records if r.name == "internalhttp"]
    assert (quiet.levelno, quiet.exc_info) == (logging.DEBUG, None)
    assert loud.levelno == logging.ERROR and loud.exc_info and loud.exc_info[0] is _BrokenTransport
