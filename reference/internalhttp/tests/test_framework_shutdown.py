"""serve_forever() stopped the way containers and service managers stop it.

Every test here sends signals to a server process of its own
(``serve_subprocess.py``), never to the test process.
"""

from __future__ import annotations

import http.client
import signal
import subprocess
import threading
import time
from typing import Dict, Iterator, Tuple

import pytest
import serve_subprocess
from framework_support import TIMEOUT, build_app
from internalhttp import RunningServer, serving

Server = Tuple["subprocess.Popen[str]", Tuple[str, int]]


@pytest.fixture
def start() -> Iterator[serve_subprocess.Starter]:
    started = []

    def start(*options: str) -> Server:
        started.append(serve_subprocess.start(*options))
        return started[-1]

    try:
        yield start
    finally:
        for process, _ in started:
            if process.poll() is None:
                process.kill()
                process.communicate()


def test_sigterm_stops_serving_and_the_process_exits_normally(start: serve_subprocess.Starter) -> None:
    process, (host, port) = start()
    client = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    client.request("GET", "/")
    assert client.getresponse().read() == b"hello"  # and the connection idles, kept alive
    began = time.monotonic()

    process.send_signal(signal.SIGTERM)
    status, stdout, stderr = serve_subprocess.finish(process)

    assert time.monotonic() - began < 2
    assert status == 0
    assert stdout == "atexit ran\n"  # the interpreter exited normally: atexit handlers ran
    assert stderr[-1] == "internalhttp: SIGTERM received, shutting down"
    client.close()


def test_sigterm_lets_a_request_in_progress_finish_but_accepts_no_more(
    start: serve_subprocess.Starter,
) -> None:
    process, (host, port) = start()
    client = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    client.request("GET", "/sleep", headers={"X-Seconds": "1"})
    time.sleep(0.3)  # the handler is running

    process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(host, port, timeout=TIMEOUT).connect()
    response = client.getresponse()

    assert (response.status, response.read(), response.getheader("Connection")) == (200, b"slept", "close")
    status, stdout, _ = serve_subprocess.finish(process)
    assert (status, stdout) == (0, "atexit ran\n")
    client.close()


def test_the_grace_period_bounds_the_wait_for_a_handler_that_takes_too_long(
    start: serve_subprocess.Starter,
) -> None:
    process, (host, port) = start("--grace-period", "0.5")
    client = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    client.request("GET", "/sleep", headers={"X-Seconds": "30"})
    time.sleep(0.3)
    began = time.monotonic()

    process.send_signal(signal.SIGTERM)
    status, stdout, stderr = serve_subprocess.finish(process)

    assert time.monotonic() - began < 3
    assert (status, stdout) == (0, "atexit ran\n")
    assert any("still running at shutdown; left behind" in line for line in stderr)
    client.close()


def test_sigint_is_handled_the_same_way(start: serve_subprocess.Starter) -> None:
    process, _ = start()

    process.send_signal(signal.SIGINT)
    status, stdout, stderr = serve_subprocess.finish(process)

    assert (status, stdout) == (0, "atexit ran\n")
    assert stderr[-1] == "internalhttp: SIGINT received, shutting down"


def test_serve_forever_off_the_main_thread_installs_no_signal_handler_and_ends_with_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: Dict[str, RunningServer] = {}
    real_serve = serving.serve

    def serve_and_keep(*args: object, **kwargs: object) -> RunningServer:
        seen["running"] = real_serve(*args, **kwargs)  # type: ignore[arg-type]
        return seen["running"]

    monkeypatch.setattr(serving, "serve", serve_and_keep)
    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=serving.serve_forever, args=(build_app(), "127.0.0.1", 0))
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while "running" not in seen and time.monotonic() < deadline:
        time.sleep(0.01)

    seen["running"]._httpd.shutdown()  # the serving loop ends: serve_forever() returns
    thread.join(TIMEOUT)

    assert not thread.is_alive()
    assert signal.getsignal(signal.SIGTERM) is before
