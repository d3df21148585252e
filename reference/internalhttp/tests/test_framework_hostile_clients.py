"""internalhttp.serve against malformed, oversized and slow clients.

Every exchange is on 127.0.0.1 with socket timeouts; the tests that need a
server process of its own (its memory, its file-descriptor limit) start
``serve_subprocess.py`` and always stop it.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
import resource
import socket
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import serve_subprocess
from framework_support import TIMEOUT, RecordingServer, server_closed
from internalhttp import RunningServer, serve
from internalhttp.wire import DEFAULT_MAX_HEAD_SIZE

Address = Tuple[str, int]
LIMIT = 1000  # the body limit of the servers below


@pytest.fixture
def limited(app: RecordingServer) -> Iterator[RunningServer]:
    running = serve(app, max_body_size=LIMIT)
    try:
        yield running
    finally:
        app.release.set()
        running.shutdown()


def exchange(address: Address, data: bytes, timeout: float = TIMEOUT) -> bytes:
    """Send ``data``, end the request side, return everything answered until the server closes."""
    chunks: List[bytes] = []
    with socket.create_connection(address, timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may refuse before taking it all
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def status_line(response: bytes) -> bytes:
    return response.partition(b"\r\n")[0]


def post(headers: str, body: bytes = b"") -> bytes:
    return f"POST /echo HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode() + body


REFUSALS = [
    ("http-0.9-request-line", b"GET /\r\n\r\n", 400),
    ("four-word-request-line", b"GET / x HTTP/1.1\r\n\r\n", 400),
    ("binary-request-line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ("malformed-version", b"GET / HTTP/one\r\n\r\n", 400),
    ("lower-case-version", b"GET / http/1.1\r\n\r\n", 400),
    ("http-2.0", b"GET / HTTP/2.0\r\n\r\n", 505),
    ("http-1.2", b"GET / HTTP/1.2\r\n\r\n", 505),
    ("http-0.9-version", b"GET / HTTP/0.9\r\n\r\n", 505),
    ("content-length-10-to-the-15", post("Content-Length: 1000000000000000\r\n"), 413),
    ("content-length-10-to-the-20", post("Content-Length: 100000000000000000000\r\n"), 413),
    ("content-length-5000-digits", post(f"Content-Length: {'9' * 5000}\r\n"), 413),
    ("content-length-just-over-the-limit", post(f"Content-Length: {LIMIT + 1}\r\n", b"x" * (LIMIT + 1)), 413),
    ("content-length-with-a-plus-sign", post("Content-Length: +5\r\n", b"hello"), 400),
    ("content-length-with-a-space-inside", post("Content-Length: 1 0\r\n"), 400),
    ("chunk-size-2-to-the-72", post("Transfer-Encoding: chunked\r\n", b"1000000000000000000\r\n"), 413),
    (
        "chunked-body-over-the-limit",
        post("Transfer-Encoding: chunked\r\n", (b"200\r\n" + b"x" * 512 + b"\r\n") * 3 + b"0\r\n\r\n"),
        413,
    ),
    ("request-line-too-long", b"GET /" + b"a" * DEFAULT_MAX_HEAD_SIZE, 414),
    ("head-too-large", b"GET / HTTP/1.1\r\n" + b"X-Big: a\r\n" * (DEFAULT_MAX_HEAD_SIZE // 10), 431),
    ("more-than-100-header-fields", b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431),
]


@pytest.mark.parametrize(("request_bytes", "status"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_each_refusal_is_a_proper_status_line_never_a_traceback(
    limited: RunningServer,
    app: RecordingServer,
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
    status: int,
) -> None:
    with caplog.at_level(logging.DEBUG):
        response = exchange((limited.host, limited.port), request_bytes)

    assert status_line(response).startswith(f"HTTP/1.1 {status} ".encode())
    assert b"\r\nConnection: close\r\n" in response
    head, _, body = response.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert app.calls == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_body_within_the_limit_is_accepted(limited: RunningServer) -> None:
    response = exchange((limited.host, limited.port), post(f"Content-Length: {LIMIT}\r\n", b"y" * LIMIT))

    assert status_line(response) == b"HTTP/1.1 200 OK"
    assert response.endswith(b"y" * LIMIT)


def test_expect_100_continue_is_answered_before_the_body_is_sent(limited: RunningServer) -> None:
    with socket.create_connection((limited.host, limited.port), timeout=TIMEOUT) as sock:
        sock.sendall(post("Content-Length: 5\r\nExpect: 100-continue\r\n"))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"

        sock.sendall(b"hello")
        response = sock.recv(65536)

    assert status_line(response) == b"HTTP/1.1 200 OK"
    assert response.endswith(b"\r\n\r\nhello")


def test_expect_100_continue_with_a_body_too_large_gets_a_413_instead(limited: RunningServer) -> None:
    response = exchange(
        (limited.host, limited.port), post(f"Content-Length: {LIMIT + 1}\r\nExpect: 100-continue\r\n")
    )

    assert status_line(response).startswith(b"HTTP/1.1 413 ")
    assert b"100 Continue" not in response


def test_empty_lines_before_a_request_line_are_ignored(limited: RunningServer) -> None:
    response = exchange((limited.host, limited.port), b"\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n")

    assert status_line(response) == b"HTTP/1.1 200 OK"


def test_an_http_1_0_client_asking_for_keep_alive_gets_it(limited: RunningServer) -> None:
    with socket.create_connection((limited.host, limited.port), timeout=TIMEOUT) as sock:
        for _ in range(2):
            sock.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            response = sock.recv(65536)

            assert status_line(response) == b"HTTP/1.1 200 OK"
            assert b"\r\nConnection: keep-alive\r\n" in response


def test_pipelined_requests_with_bodies_are_answered_in_order(limited: RunningServer) -> None:
    requests = post("Content-Length: 3\r\n", b"one") + post(
        "Transfer-Encoding: chunked\r\n", b"3\r\ntwo\r\n0\r\n\r\n"
    )
    requests += b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"

    response = exchange((limited.host, limited.port), requests)

    assert response.count(b"HTTP/1.1 200 OK") == 3
    assert response.index(b"one") < response.index(b"two") < response.index(b"hello")


# -- slow clients ------------------------------------------------------------------


def test_a_head_trickling_in_is_cut_off_at_the_head_deadline(app: RecordingServer) -> None:
    with serve(app, head_timeout=0.5) as running:
        sock = socket.create_connection((running.host, running.port), timeout=TIMEOUT)
        started = time.monotonic()
        received = b""
        with contextlib.suppress(OSError), sock:  # a reset once the server has closed
            sock.sendall(b"GET / HTTP/1.1\r\n")
            sock.setblocking(False)
            while time.monotonic() - started < 3:
                sock.send(b"X")  # one byte every 50 ms: every read is "on time"
                with contextlib.suppress(BlockingIOError):
                    chunk = sock.recv(1024)
                    received += chunk
                    if not chunk:
                        break
                time.sleep(0.05)

    assert time.monotonic() - started < 2
    assert received == b"" or status_line(received) == b"HTTP/1.1 408 Request Timeout"
    assert app.calls == []


def test_a_body_trickling_in_is_cut_off_and_answered_with_408(app: RecordingServer) -> None:
    with serve(app, body_timeout=0.5) as running:
        sock = socket.create_connection((running.host, running.port), timeout=TIMEOUT)
        started = time.monotonic()
        response = b""
        with sock:
            sock.sendall(post("Content-Length: 100\r\n"))
            sock.settimeout(0.05)
            while not response and time.monotonic() - started < 3:
                with contextlib.suppress(OSError):
                    sock.send(b"x")  # one byte every 50 ms: every read is "on time"
                with contextlib.suppress(TimeoutError):
                    response = sock.recv(65536)

    assert status_line(response) == b"HTTP/1.1 408 Request Timeout"
    assert time.monotonic() - started < 2
    assert app.calls == []


def test_an_idle_kept_alive_connection_is_closed_after_the_head_timeout(app: RecordingServer) -> None:
    with serve(app, head_timeout=0.3) as running:
        client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        client.request("GET", "/")
        assert client.getresponse().read() == b"hello"
        started = time.monotonic()

        assert server_closed(client.sock)
        assert time.monotonic() - started < 2
        client.close()


def _connect_waiting(address: Address) -> socket.socket:
    sock = socket.create_connection(address, timeout=TIMEOUT)
    sock.sendall(b"GET / HT")  # a head started, never finished
    return sock


def test_past_max_connections_the_longest_waiting_one_is_closed_for_a_new_client(
    app: RecordingServer,
) -> None:
    with serve(app, max_connections=3) as running:
        address = (running.host, running.port)
        waiting = []
        for _ in range(3):
            waiting.append(_connect_waiting(address))
            time.sleep(0.1)  # accepted in this order
        try:
            response = exchange(address, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")

            assert status_line(response) == b"HTTP/1.1 200 OK"
            assert server_closed(waiting[0])
            waiting[1].settimeout(0.2)
            with pytest.raises(TimeoutError):
                waiting[1].recv(1)  # still open
        finally:
            for sock in waiting:
                sock.close()


def test_a_kept_alive_connection_does_not_hold_a_worker(app: RecordingServer) -> None:
    with serve(app, max_workers=1) as running:
        idle = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        other = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        try:
            idle.request("GET", "/")
            assert idle.getresponse().read() == b"hello"  # and now it idles, kept alive

            other.request("GET", "/")
            assert other.getresponse().read() == b"hello"
        finally:
            idle.close()
            other.close()


def test_the_worker_threads_are_bounded(app: RecordingServer) -> None:
    with serve(app, max_workers=2) as running:
        clients = [http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT) for _ in range(3)]
        try:
            for client in clients:
                client.request("GET", "/slow")
            assert app.entered.wait(TIMEOUT)
            time.sleep(0.2)
            workers = [t for t in threading.enumerate() if t.name.startswith("internalhttp-worker-")]

            assert len(workers) == 2
            app.release.set()
            assert [c.getresponse().read() for c in clients] == [b"finally"] * 3
        finally:
            app.release.set()
            for client in clients:
                client.close()


def test_running_out_of_file_descriptors_closes_the_oldest_waiting_connection_or_pauses(
    running: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    # Driven directly: really exhausting descriptors in the test process would
    # break everything else. The subprocess test below does it for real.
    httpd = running._httpd
    waiting = _connect_waiting((running.host, running.port))
    try:
        time.sleep(0.2)
        with caplog.at_level(logging.WARNING, logger="internalhttp"):
            httpd._out_of_descriptors()  # not thread-safe: fine while the loop idles
            assert server_closed(waiting)
            httpd._out_of_descriptors()
        assert "out of file descriptors" in caplog.text
        client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        client.request("GET", "/")  # accepting resumed after the pause
        assert client.getresponse().status == 200
        client.close()
    finally:
        waiting.close()


def test_with_every_connection_busy_a_new_one_waits_for_room_then_is_served(app: RecordingServer) -> None:
    with serve(app, max_connections=1) as running:
        busy = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        try:
            busy.request("GET", "/slow")
            assert app.entered.wait(TIMEOUT)
            newcomer = threading.Thread(
                target=lambda: answers.append(
                    exchange((running.host, running.port), b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                )
            )
            answers: List[bytes] = []
            newcomer.start()
            time.sleep(0.3)
            assert answers == []  # not accepted: the only connection is busy

            app.release.set()
            assert busy.getresponse().read() == b"finally"
            newcomer.join(TIMEOUT)

            assert [status_line(answer) for answer in answers] == [b"HTTP/1.1 200 OK"]
            assert server_closed(busy.sock)  # idle again, it made room for the newcomer
        finally:
            busy.close()


def test_a_head_completed_past_the_size_limit_is_refused(limited: RunningServer) -> None:
    field = b"X-A: " + b"b" * 93 + b"\r\n"  # 100 bytes
    with socket.create_connection((limited.host, limited.port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n" + field * 600)  # 60,016 bytes: under the limit
        time.sleep(0.2)
        sock.sendall(field * 100 + b"\r\n")  # the end of the head, past it
        sock.shutdown(socket.SHUT_WR)
        response = sock.recv(65536)

    assert status_line(response).startswith(b"HTTP/1.1 431 ")
    assert response.endswith(b": Request head too large\n")


def test_a_status_without_a_reason_phrase_gets_an_empty_one(
    running: RunningServer, app: RecordingServer
) -> None:
    app.add_route("/odd", lambda headers, body: {"status": 599})

    response = exchange((running.host, running.port), b"GET /odd HTTP/1.1\r\nConnection: close\r\n\r\n")

    assert status_line(response) == b"HTTP/1.1 599 "


def test_the_wsgi_adapter_applies_the_body_limit_too(app: RecordingServer) -> None:
    from wsgiref.util import setup_testing_defaults

    from internalhttp import make_wsgi_app

    wsgi_app = make_wsgi_app(app, max_body_size=4)
    statuses: List[str] = []
    for extra in (
        {"CONTENT_LENGTH": "5", "wsgi.input": io.BytesIO(b"hello")},
        {"CONTENT_LENGTH": str(10**20), "wsgi.input": io.BytesIO(b"")},
        {"wsgi.input_terminated": True, "wsgi.input": io.BytesIO(b"hello")},
        {"wsgi.input_terminated": True, "wsgi.input": io.BytesIO(b"hell")},
    ):
        environ: Dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/echo", **extra}
        setup_testing_defaults(environ)
        wsgi_app(environ, lambda status, headers: statuses.append(status))  # type: ignore[arg-type,return-value]

    assert [status[:3] for status in statuses] == ["413", "413", "413", "200"]  # phrases vary by Python
    assert [call.body for call in app.calls] == [b"hell"]


def test_descriptors_above_1023_are_served_like_any_other(
    app: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2500:
        if hard != resource.RLIM_INFINITY and hard < 2500:
            pytest.skip("needs 2,500 file descriptors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2500, hard))
    idle: List[socket.socket] = []
    try:
        with serve(app, max_connections=2000) as running, caplog.at_level(logging.WARNING):
            address = (running.host, running.port)
            idle.extend(socket.create_connection(address, timeout=TIMEOUT) for _ in range(600))
            client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
            answers = []
            for _ in range(3):  # kept alive: the worker waits for the next request on a high descriptor
                client.request("GET", "/")
                answers.append(client.getresponse().read())
            client.close()

        assert client.sock is None and answers == [b"hello"] * 3
        assert caplog.records == []
    finally:
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_invalid_limits_are_refused(app: RecordingServer) -> None:
    with pytest.raises(ValueError):
        serve(app, max_connections=0)


# -- in a process of its own -------------------------------------------------------


@pytest.fixture
def server_process() -> Iterator[Tuple[int, Address]]:
    process, address = serve_subprocess.start("--nofile", "1024")
    try:
        yield process.pid, address
    finally:
        process.terminate()
        status, _, stderr = serve_subprocess.finish(process)
        assert status == 0, stderr


def _upload(address: Address, head: bytes, chunk: bytes, total: int) -> bytes:
    """Send ``head`` then ``chunk`` until ``total`` bytes or the server stops taking them."""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sent = 0
        with contextlib.suppress(OSError):
            sock.sendall(head)
            while sent < total:
                sock.sendall(chunk)
                sent += len(chunk)
        response = b""
        with contextlib.suppress(OSError):
            response = sock.recv(65536)
    return response


def test_an_oversized_body_never_reaches_memory(server_process: Tuple[int, Address]) -> None:
    pid, address = server_process
    gib = 1 << 30

    fixed = _upload(
        address, f"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: {gib}\r\n\r\n".encode(), b"", 0
    )
    chunk = b"x" * (1 << 20)
    chunked = _upload(
        address,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"100000\r\n" + chunk + b"\r\n",
        512 << 20,
    )

    assert status_line(fixed).startswith(b"HTTP/1.1 413 ")
    assert status_line(chunked).startswith(b"HTTP/1.1 413 ") or chunked == b""  # reset before read
    assert serve_subprocess.peak_rss_mb(pid) < 100


def test_running_out_of_descriptors_for_real_neither_spins_nor_stops_serving() -> None:
    process, address = serve_subprocess.start("--nofile", "64")  # far below max_connections
    slow: List[socket.socket] = []
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                slow.append(_connect_waiting(address))
        cpu_before, started = _cpu_seconds(process.pid), time.monotonic()
        for _ in range(3):
            response = exchange(address, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert status_line(response) == b"HTTP/1.1 200 OK"
            time.sleep(0.3)
        busy = (_cpu_seconds(process.pid) - cpu_before) / (time.monotonic() - started)

        assert busy < 0.5
    finally:
        for sock in slow:
            sock.close()
        process.terminate()
        status, _, stderr = serve_subprocess.finish(process)
    assert status == 0
    assert sum("out of file descriptors" in line for line in stderr) == 1  # rate-limited


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads in /proc status")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def test_ordinary_requests_are_answered_while_1100_slow_connections_are_held(
    server_process: Tuple[int, Address],
) -> None:
    pid, address = server_process
    slow: List[socket.socket] = []
    for _ in range(1100):  # the server may hold 1,024 descriptors in all
        with contextlib.suppress(OSError):
            sock = socket.create_connection(address, timeout=TIMEOUT)
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                sock.send(b"GET / HTTP/1.1\r\n")
            slow.append(sock)
    try:
        cpu_before, started = _cpu_seconds(pid), time.monotonic()
        answered: List[float] = []
        for _ in range(8):
            for sock in slow:  # one more byte each: every slow head is still "alive"
                with contextlib.suppress(OSError):
                    sock.send(b"X")
            began = time.monotonic()
            response = exchange(address, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert status_line(response) == b"HTTP/1.1 200 OK"
            answered.append(time.monotonic() - began)
            time.sleep(0.5)
        busy = (_cpu_seconds(pid) - cpu_before) / (time.monotonic() - started)

        assert max(answered) < 3
        assert len(list(Path(f"/proc/{pid}/fd").iterdir())) < 1024
        assert _threads(pid) < 40
        assert busy < 0.5  # nothing spins
    finally:
        for sock in slow:
            sock.close()
