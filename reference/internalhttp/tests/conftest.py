"""Fixtures for the framework's own tests.

Every server is started on 127.0.0.1, port 0, and always shut down; every
client socket has a timeout, so a broken server fails a test instead of
hanging the run.
"""

from __future__ import annotations

import http.client
import socket
from typing import Callable, Iterator, List

import pytest
from framework_support import TIMEOUT, RecordingServer, build_app
from internalhttp.serving import RunningServer, serve


@pytest.fixture
def app() -> RecordingServer:
    return build_app()


@pytest.fixture
def running(app: RecordingServer) -> Iterator[RunningServer]:
    server = serve(app, "127.0.0.1", 0)
    try:
        yield server
    finally:
        app.release.set()
        server.shutdown()


@pytest.fixture
def client(running: RunningServer) -> Iterator[http.client.HTTPConnection]:
    """A keep-alive HTTP/1.1 client connection to the running server."""
    connection = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    try:
        yield connection
    finally:
        connection.close()


@pytest.fixture
def raw_connect(running: RunningServer) -> Iterator[Callable[[], socket.socket]]:
    """Open plain sockets to the running server, for requests http.client will not send."""
    sockets: List[socket.socket] = []

    def connect() -> socket.socket:
        sock = socket.create_connection((running.host, running.port), timeout=TIMEOUT)
        sockets.append(sock)
        return sock

    try:
        yield connect
    finally:
        for sock in sockets:
            sock.close()
