"""Request bodies are read by the serving loop, so slow ones cannot take the workers.

The loop hands a request to a worker only once its whole body is buffered;
a body must arrive within ``body_timeout`` seconds of its head (408 and a
close otherwise), and at most ``max_buffered_bytes`` of body bytes are held
across all connections (503 past it). Chunked bodies and ``Expect:
100-continue`` work as before. What the loop does to connections is told to
the application's ``serving_observer``. Everything on 127.0.0.1, each
client bounded in time.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from typing import Any, Iterator, List, Tuple

import pytest
from framework_support import TIMEOUT, RecordingServer
from internalhttp import RunningServer, serve

SLOW_CLIENTS = 10
WORKERS = 4  # fewer than half the slow clients
BODY_TIMEOUT = 1.5
TICK = 0.1  # a slow client sends every TICK seconds


def status_line(response: bytes) -> bytes:
    return response.partition(b"\r\n")[0]


def trickle(address: Tuple[str, int], rate: int, answers: List[bytes]) -> None:
    """Send a 1 MiB body at ``rate`` bytes per second until answered (bounded); record the answer."""
    response = b""
    with socket.create_connection(address, timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        sock.settimeout(TICK)
        started = time.monotonic()
        while not response and time.monotonic() - started < BODY_TIMEOUT + 3:
            with contextlib.suppress(OSError):
                sock.sendall(b"x" * int(rate * TICK))
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                response = sock.recv(65536)
    answers.append(response)


def latencies_of_ordinary_requests(running: RunningServer, seconds: float) -> List[float]:
    latencies: List[float] = []
    client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        client.request("POST", "/echo", body=b"ordinary")
        assert client.getresponse().read() == b"ordinary"
        latencies.append(time.monotonic() - started)
        time.sleep(0.01)
    client.close()
    return latencies


@pytest.mark.timeout(60)
@pytest.mark.parametrize("rate", [1024, 16384], ids=["1KiB/s", "16KiB/s"])
def test_slow_bodies_from_more_clients_than_workers_leave_ordinary_requests_fast(
    app: RecordingServer, rate: int
) -> None:
    answers: List[bytes] = []
    with serve(app, max_workers=WORKERS, body_timeout=BODY_TIMEOUT) as running:
        address = (running.host, running.port)
        slow = [threading.Thread(target=trickle, args=(address, rate, answers)) for _ in range(SLOW_CLIENTS)]
        for thread in slow:
            thread.start()
        time.sleep(0.2)  # every slow client has sent its head
        latencies = sorted(latencies_of_ordinary_requests(running, 1.0))
        buffered = running._httpd._intake.buffered
        for thread in slow:
            thread.join(BODY_TIMEOUT + 5)

    p99 = latencies[int(len(latencies) * 0.99) - 1]
    assert len(latencies) >= 20 and p99 < 0.1, latencies
    # Memory: what the slow clients sent so far, nothing more (a read is 16 KiB at most).
    assert buffered <= SLOW_CLIENTS * (rate * 1.5 + 16384)
    assert [status_line(answer) for answer in answers] == [b"HTTP/1.1 408 Request Timeout"] * SLOW_CLIENTS
    assert all(call.path == "/echo" and call.body == b"ordinary" for call in app.calls)
    assert [(r.status, r.method, r.target) for r in app.refusals] == [(408, "POST", "/echo")] * SLOW_CLIENTS


def test_a_body_sent_in_pieces_reaches_the_handler_whole(app: RecordingServer) -> None:
    with (
        serve(app) as running,
        socket.create_connection((running.host, running.port), timeout=TIMEOUT) as sock,
    ):
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
        time.sleep(0.1)
        assert app.calls == []  # no worker waits for the rest
        sock.sendall(b"world")
        response = sock.recv(65536)

    assert status_line(response) == b"HTTP/1.1 200 OK"
    assert app.calls[0].body == b"helloworld"


def test_a_chunked_body_sent_in_pieces_reaches_the_handler_whole(app: RecordingServer) -> None:
    pieces = [b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", b"lo\r\n6"]
    pieces += [b"\r\n world\r\n0\r\nX-Trailer: 1\r\n", b"\r\n"]
    with (
        serve(app) as running,
        socket.create_connection((running.host, running.port), timeout=TIMEOUT) as sock,
    ):
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(0.05)
        response = sock.recv(65536)

    assert status_line(response) == b"HTTP/1.1 200 OK"
    assert app.calls[0].body == b"hello world"


def test_100_continue_is_sent_by_the_loop_before_the_body_is_read(app: RecordingServer) -> None:
    with (
        serve(app) as running,
        socket.create_connection((running.host, running.port), timeout=TIMEOUT) as sock,
    ):
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        response = sock.recv(65536)

    assert status_line(response) == b"HTTP/1.1 200 OK" and response.endswith(b"hello")


def test_a_pipelined_request_behind_a_slow_body_waits_in_the_loop(app: RecordingServer) -> None:
    with (
        serve(app, max_workers=1) as running,
        socket.create_connection((running.host, running.port), timeout=TIMEOUT) as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nab")
        time.sleep(0.2)
        other = http.client.HTTPConnection(running.host, running.port, timeout=1.0)
        other.request("GET", "/")  # the one worker is free: the slow body is the loop's
        assert other.getresponse().read() == b"hello"
        other.close()
        sock.sendall(b"cd")
        time.sleep(0.1)
        response = sock.recv(65536)

    assert response.count(b"HTTP/1.1 200 OK") == 2 and response.endswith(b"abcd")


def test_bodies_past_max_buffered_bytes_are_answered_503(app: RecordingServer) -> None:
    with serve(app, max_buffered_bytes=1000) as running:
        with socket.create_connection((running.host, running.port), timeout=TIMEOUT) as holding:
            holding.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b"x" * 900)
            time.sleep(0.1)
            with socket.create_connection((running.host, running.port), timeout=TIMEOUT) as second:
                second.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b"x" * 200)
                response = second.recv(65536)
        ordinary = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        ordinary.request("POST", "/echo", body=b"small")
        small = ordinary.getresponse().read()
        ordinary.close()

    assert status_line(response) == b"HTTP/1.1 503 Service Unavailable"
    assert b"\r\nRetry-After: 1\r\n" in response
    assert [refusal.status for refusal in app.refusals] == [503]
    assert small == b"small"  # the bytes of closed connections no longer count


class Recording:
    def __init__(self) -> None:
        self.events: List[Tuple[Any, ...]] = []

    def connection_opened(self) -> None:
        self.events.append(("opened",))

    def connection_closed(self, duration_s: float, requests: int, reason: str) -> None:
        self.events.append(("closed", requests, reason))

    def connection_rejected(self, reason: str) -> None:
        self.events.append(("rejected", reason))

    def request_queued(self) -> None:
        self.events.append(("queued",))

    def request_dequeued(self, wait_s: float) -> None:
        self.events.append(("dequeued",))


@pytest.fixture
def observer(app: RecordingServer) -> Iterator[Recording]:
    recording = Recording()
    app.serving_observer = recording
    yield recording


def test_the_observer_hears_a_connection_and_its_requests(app: RecordingServer, observer: Recording) -> None:
    with serve(app) as running:
        client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        for _ in range(2):
            client.request("GET", "/")
            client.getresponse().read()
        client.close()
        deadline = time.monotonic() + TIMEOUT
        while observer.events[-1:] != [("closed", 2, "client_closed")] and time.monotonic() < deadline:
            time.sleep(0.01)

    assert observer.events[0] == ("opened",)
    assert observer.events.count(("queued",)) == observer.events.count(("dequeued",)) >= 1
    assert observer.events[-1] == ("closed", 2, "client_closed")


def test_a_failing_observer_does_not_stop_serving(app: RecordingServer) -> None:
    class Broken(Recording):
        def connection_opened(self) -> None:
            raise RuntimeError("a bug in the observer")

        def request_queued(self) -> None:
            raise RuntimeError("a bug in the observer")

    app.serving_observer = Broken()
    with serve(app) as running:
        client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
        client.request("GET", "/")
        assert client.getresponse().read() == b"hello"
        client.close()


def test_body_timeout_must_be_positive(app: RecordingServer) -> None:
    with pytest.raises(ValueError, match="body_timeout"):
        serve(app, body_timeout=0)
