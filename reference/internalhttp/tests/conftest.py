"""Fixtures for the framework's own tests.

Every server is started on 127.0.0.1, port 0, and always shut down; every
client socket has a timeout, so a broken server fails a test instead of
hanging the run.
"""

from __future__ import annotations

import http.client
import sys
from pathlib import Path
from typing import Callable, Iterator, List

import pytest
from internalhttp.serving import RunningServer, serve

# The test modules import their helpers from framework_support, next to this
# file. Under --import-mode=importlib (the repository's configuration) pytest
# does not put test directories on sys.path, so this conftest, which pytest
# loads before any test module here, does.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from framework_support import TIMEOUT, RawClient, RecordingServer, build_app  # noqa: E402


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
def raw_connect(running: RunningServer) -> Iterator[Callable[[], RawClient]]:
    """Open plain sockets to the running server, for requests http.client will not send."""
    clients: List[RawClient] = []

    def connect() -> RawClient:
        clients.append(RawClient((running.host, running.port)))
        return clients[-1]

    try:
        yield connect
    finally:
        for client in clients:
            client.close()
