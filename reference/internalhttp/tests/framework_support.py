"""Helpers shared by the framework's tests (imported by name, unlike conftest).

The name is unique on purpose: the repository's root tests directory is
collected in the same run and has its own modules.
"""

from __future__ import annotations

import http.client
import socket
import threading
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

from internalhttp.server import ConnectionInfo, Headers, InternalHTTPServer

TIMEOUT = 5.0


@dataclass
class Call:
    """One call of ``handle_request`` as a serving layer made it."""

    method: str
    path: str
    headers: Optional[Mapping[str, str]]
    body: bytes
    connection: Optional[ConnectionInfo]


class RecordingServer(InternalHTTPServer):
    """Records what reaches the dispatch seam, as instrumentation would see it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.calls: List[Call] = []
        self.release = threading.Event()  # lets /slow return
        self.entered = threading.Event()  # set when /slow starts

    def handle_request(self, method, path, headers=None, body=b"", *, connection=None):  # type: ignore[override]
        self.calls.append(Call(method, path, headers, body, connection))
        return super().handle_request(method, path, headers, body, connection=connection)


def build_app() -> RecordingServer:
    app = RecordingServer("test-app")

    @app.route("/")
    def index(headers: Headers, body: bytes) -> Any:
        return {"body": "hello"}

    @app.route("/echo", method="POST")
    def echo(headers: Headers, body: bytes) -> Any:
        return {
            "body": body,
            "headers": {"Content-Type": headers.get("Content-Type", "application/octet-stream")},
        }

    @app.route("/headers")
    def show_headers(headers: Headers, body: bytes) -> Any:
        return {"body": dict(headers)}

    @app.route("/users/<user_id>")
    def user(headers: Headers, body: bytes, user_id: str) -> Any:
        return {"body": {"id": user_id}}

    @app.route("/boom")
    def boom(headers: Headers, body: bytes) -> Any:
        raise RuntimeError("boom")

    @app.route("/invalid")
    def invalid(headers: Headers, body: bytes) -> Any:
        return 42

    @app.route("/empty")
    def empty(headers: Headers, body: bytes) -> Any:
        return None

    @app.route("/cache", method="PURGE")
    def purge(headers: Headers, body: bytes) -> Any:
        return {"body": "purged"}

    @app.route("/close")
    def close(headers: Headers, body: bytes) -> Any:
        return {"body": "bye", "headers": {"Connection": "close"}}

    @app.route("/slow")
    def slow(headers: Headers, body: bytes) -> Any:
        app.entered.set()
        app.release.wait(TIMEOUT)
        return {"body": "finally"}

    return app


def read_response(sock: socket.socket, method: str = "GET") -> tuple[int, http.client.HTTPMessage, bytes]:
    """Parse one response from a raw socket, leaving the socket open."""
    response = http.client.HTTPResponse(sock, method=method)
    try:
        response.begin()
        return response.status, response.msg, response.read()
    finally:
        response.close()


def server_closed(sock: socket.socket) -> bool:
    """Whether the server has closed its end (the next read is end of file)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
