"""An in-process client for testing applications without sockets.

``TestClient`` calls ``InternalHTTPServer.exchange`` (which calls
``handle_request``), as every serving layer does, so instrumentation sees
these requests too and the response is exactly the one the servers would
send.

>>> from internalhttp import InternalHTTPServer
>>> app = InternalHTTPServer("doc")
>>> app.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": {"id": item_id}})
>>> response = TestClient(app).get("/items/3")
>>> response.status, response.headers["content-type"], response.json()
(200, 'application/json', {'id': '3'})
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Tuple, Union

from internalhttp.server import ConnectionInfo, Headers

if TYPE_CHECKING:  # annotations only: never bind the class at run time
    from internalhttp.server import InternalHTTPServer

__all__ = ["TestClient", "TestResponse"]

HeadersArg = Union[Mapping[str, str], Iterable[Tuple[str, str]], None]


@dataclass(frozen=True)
class TestResponse:
    """A normalised response, plus ``raw``: what ``handle_request`` returned.

    ``raw`` is ``None`` when the handler raised and the client was asked to
    turn that into a 500.
    """

    __test__ = False  # not a pytest test class, despite the name

    status: int
    headers: Headers
    body: bytes
    raw: Any = None

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class TestClient:
    """Send requests to an application in-process.

    By default an exception raised by a handler (or a ``TypeError``/
    ``ValueError`` for a return value that is not a valid response)
    propagates out of :meth:`request` unchanged, so a test can assert on it.
    With ``raise_server_exceptions=False`` it is logged and becomes the same
    500 response the socket server and the WSGI adapter would send.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, server: InternalHTTPServer, *, raise_server_exceptions: bool = True) -> None:
        self.server = server
        self.raise_server_exceptions = raise_server_exceptions

    def request(
        self,
        method: str,
        path: str,
        headers: HeadersArg = None,
        body: Union[bytes, str] = b"",
        connection: Optional[ConnectionInfo] = None,
    ) -> TestResponse:
        """Dispatch one request and return its normalised response.

        ``headers`` may be a mapping or a list of pairs (repeated names are
        joined with ``,`` as a server would); a ``str`` body is sent as UTF-8.
        ``connection`` is passed to ``handle_request`` as given: ``None``
        means an in-process request with no connection, as it is here.
        """
        payload = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        # As a serving layer does, the headers go in as a Headers.
        raising = self.raise_server_exceptions
        outcome = self.server.exchange(
            method, path, _headers(headers), payload, connection, raise_exceptions=raising
        )
        status, response_headers, response_body = outcome.response
        return TestResponse(status, Headers(response_headers), response_body, outcome.value)

    def get(
        self, path: str, headers: HeadersArg = None, connection: Optional[ConnectionInfo] = None
    ) -> TestResponse:
        """``request("GET", path, ...)``."""
        return self.request("GET", path, headers, connection=connection)

    def post(
        self,
        path: str,
        headers: HeadersArg = None,
        body: Union[bytes, str] = b"",
        connection: Optional[ConnectionInfo] = None,
    ) -> TestResponse:
        """``request("POST", path, ...)``."""
        return self.request("POST", path, headers, body, connection)


def _headers(headers: HeadersArg) -> Headers:
    return headers if isinstance(headers, Headers) else Headers(headers)
