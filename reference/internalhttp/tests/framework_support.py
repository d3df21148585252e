"""Helpers shared by the framework's tests (imported by name, unlike conftest).

The name is unique on purpose: the repository's root tests directory is
collected in the same run and has its own modules.
"""

from __future__ import annotations

import http.client
import io
import socket
import threading
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Tuple

from internalhttp.server import ConnectionInfo, Headers, InternalHTTPServer, Refusal

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
        self.refusals: List[Refusal] = []
        self.release = threading.Event()  # lets /slow return
        self.entered = threading.Event()  # set when /slow starts

    def handle_request(self, method, path, headers=None, body=b"", *, connection=None):  # type: ignore[override]
        self.calls.append(Call(method, path, headers, body, connection))
        return super().handle_request(method, path, headers, body, connection=connection)

    def refused(self, refusal: Refusal) -> None:
        self.refusals.append(refusal)


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

    _add_failing_and_odd_routes(app)
    return app


def _add_failing_and_odd_routes(app: RecordingServer) -> None:
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


class RawClient:
    """A plain socket for requests http.client will not send (or pipeline).

    Responses are parsed from one buffered reader kept for the connection's
    lifetime: a fresh reader per response could swallow the start of the
    next, pipelined, one.
    """

    def __init__(self, address: Tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self._reader = _KeptOpen(socket.SocketIO(self.sock, "rb"))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_response(self, method: str = "GET") -> Tuple[int, http.client.HTTPMessage, bytes]:
        response = http.client.HTTPResponse(_ReaderSocket(self._reader), method=method)  # type: ignore[arg-type]
        try:
            response.begin()
            return response.status, response.msg, response.read()
        finally:
            response.close()

    def server_closed(self) -> bool:
        """Whether the server has closed its end (the next read is end of file)."""
        try:
            return self._reader.read(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        io.BufferedReader.close(self._reader)
        self.sock.close()


class _KeptOpen(io.BufferedReader):
    """A reader that HTTPResponse cannot close after each response."""

    def close(self) -> None:
        pass


class _ReaderSocket:
    """What HTTPResponse needs from a socket: makefile() giving the shared reader."""

    def __init__(self, reader: io.BufferedReader) -> None:
        self._reader = reader

    def makefile(self, mode: str) -> io.BufferedReader:
        return self._reader


def server_closed(sock: socket.socket) -> bool:
    """Whether the server has closed its end of a socket nothing else reads from."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def no_control_socket() -> List[str]:
    """gunicorn's option against the control socket it opens in $HOME by default; none before it had one."""
    from gunicorn.config import KNOWN_SETTINGS

    return ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []
