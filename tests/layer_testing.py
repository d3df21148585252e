"""One request sent through each way it reaches an application, and what the client received.

A direct ``handle_request`` call, the ``TestClient``, the WSGI adapter and
the socket server (``internalhttp.serve``, over loopback). Each layer takes
the same request and gives back a ``Received``: status, headers as sent
(repeated names kept), body bytes.
"""

from __future__ import annotations

import http.client
import io
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Optional
from wsgiref.util import setup_testing_defaults

import internalhttp
from internalhttp.response import response_for
from internalhttp.server import InternalHTTPServer
from internalhttp.testing import TestClient

TIMEOUT = 10.0


class Received(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def values(self, name: str) -> list[str]:
        """Every value of the header ``name`` (any case), in the order sent."""
        return [value for key, value in self.headers if key.lower() == name.lower()]


Send = Callable[[InternalHTTPServer, str, str, Mapping[str, str], bytes], Received]


def call_directly(
    server: InternalHTTPServer, method: str, target: str, headers: Mapping[str, str], body: bytes
) -> Received:
    try:
        value = server.handle_request(method, target, dict(headers), body)
    except RuntimeError:
        return Received(500, [], b"")  # what every serving layer answers
    status, sent_headers, sent_body = response_for(value).response
    return Received(status, list(sent_headers), sent_body)


def call_test_client(
    server: InternalHTTPServer, method: str, target: str, headers: Mapping[str, str], body: bytes
) -> Received:
    response = TestClient(server, raise_server_exceptions=False).request(method, target, dict(headers), body)
    return Received(response.status, list(response.headers.items()), response.body)


def call_wsgi(
    server: InternalHTTPServer,
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    script_name: Optional[str] = None,
) -> Received:
    path, _, query = target.partition("?")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    if script_name is not None:
        environ["SCRIPT_NAME"] = script_name
    for name, value in headers.items():
        if name.lower() == "content-type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    setup_testing_defaults(environ)
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks = internalhttp.make_wsgi_app(server)(
        environ,
        lambda status, sent: started.append((status, sent)),  # type: ignore[arg-type,return-value]
    )
    status_line, sent_headers = started[0]
    return Received(int(status_line.split()[0]), list(sent_headers), b"".join(chunks))


def call_socket(
    server: InternalHTTPServer, method: str, target: str, headers: Mapping[str, str], body: bytes
) -> Received:
    with internalhttp.serve(server) as running:
        return over_socket(running.host, running.port, method, target, headers, body)


def over_socket(
    host: str, port: int, method: str, target: str, headers: Mapping[str, str], body: bytes
) -> Received:
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        connection.request(method, target, body=body or None, headers=dict(headers))
        response = connection.getresponse()
        return Received(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


LAYERS: dict[str, Send] = {
    "direct": call_directly,
    "test-client": call_test_client,
    "wsgi": call_wsgi,
    "socket": call_socket,
}
# The layers that send a response: the ones where headers are added to it.
SERVING_LAYERS = {name: send for name, send in LAYERS.items() if name != "direct"}
