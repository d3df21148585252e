"""Serving an application from any WSGI server (PEP 3333).

``make_wsgi_app(server)`` returns a WSGI callable, so the same application runs
under wsgiref, gunicorn, uWSGI or anything else that speaks WSGI, and every
request still goes through ``InternalHTTPServer.handle_request``.

>>> from wsgiref.util import setup_testing_defaults
>>> from internalhttp import InternalHTTPServer
>>> app = InternalHTTPServer("doc")
>>> app.add_route("/", lambda headers, body: "hi")
>>> environ = {}
>>> setup_testing_defaults(environ)
>>> make_wsgi_app(app)(environ, lambda status, headers: print(status))
200 OK
[b'hi']
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, List, Optional, Tuple
from urllib.parse import quote
from wsgiref.util import is_hop_by_hop

from internalhttp.request import ConnectionInfo, Headers, Refusal, local_endpoint
from internalhttp.response import normalize_response
from internalhttp.wire import DEFAULT_MAX_BODY_SIZE, RequestError, parse_content_length

if TYPE_CHECKING:  # annotations only: never bind the class at run time
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from internalhttp.server import InternalHTTPServer

__all__ = ["make_wsgi_app"]

logger = logging.getLogger("internalhttp")

# What PEP 3333 servers put in PATH_INFO is already percent-decoded; these are
# the characters a path may hold literally (RFC 3986 pchar and "/"), so that
# re-quoting gives back the form a client would normally have sent.
_PATH_SAFE = "/:@!$&'()*+,;=~"


def make_wsgi_app(
    server: InternalHTTPServer, *, max_body_size: int = DEFAULT_MAX_BODY_SIZE
) -> WSGIApplication:
    """Return a WSGI application that dispatches to ``server.handle_request``.

    The request is translated as follows:

    * method: ``REQUEST_METHOD``;
    * target (``path``, query included): ``RAW_URI`` or ``REQUEST_URI`` as the
      client sent it, when the server provides one and the application is
      not mounted under a ``SCRIPT_NAME`` prefix; otherwise ``PATH_INFO``
      re-quoted, plus ``?QUERY_STRING`` when there is one;
    * headers: every ``HTTP_*`` variable plus ``CONTENT_TYPE`` and
      ``CONTENT_LENGTH``, as a :class:`~internalhttp.Headers` with names
      spelled ``Content-Type``, ``X-Request-Id``, ...;
    * body: ``CONTENT_LENGTH`` bytes of ``wsgi.input`` (all of it when the
      server marks the input as terminated, e.g. a chunked upload under
      gunicorn; nothing otherwise). A body larger than ``max_body_size``
      bytes (10 MiB by default, :data:`internalhttp.wire.DEFAULT_MAX_BODY_SIZE`)
      is answered with 413 without calling the application, and without
      reading it when ``CONTENT_LENGTH`` announces it; an invalid
      ``CONTENT_LENGTH`` with 400;
    * connection: ``REMOTE_ADDR``/``REMOTE_PORT`` (the peer),
      ``wsgi.url_scheme``, ``SERVER_PROTOCOL``, ``SCRIPT_NAME`` (the root
      path), and the local end and transport from the connection's own
      socket, ``environ["gunicorn.socket"]``, when the server provides it
      (never ``SERVER_NAME``/``SERVER_PORT``, which gunicorn takes from the
      client's ``Host``).

    The response is normalised by :func:`~internalhttp.response.normalize_response`.
    A handler exception (or an invalid return value) is logged on the
    ``internalhttp`` logger and answered with a 500, so the worker goes on.
    Hop-by-hop headers (``Connection``, ...) set by a handler are dropped,
    as PEP 3333 reserves them for the server. ``server`` is only stored, so
    an application whose class was replaced at run time works the same.
    """

    def application(environ: WSGIEnvironment, start_response: StartResponse) -> List[bytes]:
        return _answer(server, max_body_size, environ, start_response)

    return application


def _answer(
    server: InternalHTTPServer, max_body_size: int, environ: WSGIEnvironment, start_response: StartResponse
) -> List[bytes]:
    """One request under WSGI: refused here (413, 400) or dispatched, then started and returned."""
    method = environ["REQUEST_METHOD"]
    try:
        body = _read_body(environ, max_body_size)
    except RequestError as exc:
        status, headers, payload = normalize_response({"status": exc.status, "body": exc.reason})
        refusal = Refusal(exc.status, exc.reason, method, _request_target(environ), _connection_info(environ))
        server.refused(refusal)
    else:
        status, headers, payload = server.serve_request(
            method,
            _request_target(environ),
            _request_headers(environ),
            body,
            _connection_info(environ),
        )
    start_response(_status_line(status), _end_to_end(headers))
    return [payload] if method != "HEAD" else []


def _request_target(environ: WSGIEnvironment) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw and not environ.get("SCRIPT_NAME"):
        return str(raw)
    # PEP 3333 strings are bytes decoded as Latin-1; get the bytes back
    # before percent-encoding them.
    path = quote(environ.get("PATH_INFO", "").encode("latin-1"), safe=_PATH_SAFE) or "/"
    query = environ.get("QUERY_STRING", "")
    return f"{path}?{query}" if query else path


def _request_headers(environ: WSGIEnvironment) -> Headers:
    pairs: List[Tuple[str, str]] = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            pairs.append((key[5:].replace("_", "-").title(), value))
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            pairs.append((key.replace("_", "-").title(), value))
    return Headers(pairs)


def _read_body(environ: WSGIEnvironment, limit: int) -> bytes:
    stream: Any = environ["wsgi.input"]
    length = environ.get("CONTENT_LENGTH", "").strip()  # empty means absent under PEP 3333
    size = parse_content_length([length] if length else [])
    if size is None:
        if not environ.get("wsgi.input_terminated"):
            return b""
        data: bytes = stream.read(limit + 1)  # one byte more tells "too large" apart
        if len(data) > limit:
            raise RequestError(413, "Request body too large")
        return data
    if size > limit:
        raise RequestError(413, "Request body too large")
    data = stream.read(size)
    if len(data) < size:
        raise RequestError(400, "Body shorter than its Content-Length")
    return data


def _connection_info(environ: WSGIEnvironment) -> ConnectionInfo:
    protocol: str = environ.get("SERVER_PROTOCOL", "")
    # SERVER_NAME and SERVER_PORT are no local address: gunicorn fills them
    # from the client's Host header. The connection's own socket, when the
    # server shares it, tells the truth; without it the local end is unknown.
    sock = environ.get("gunicorn.socket")
    transport, local_address, local_port = ("tcp", None, None) if sock is None else local_endpoint(sock)
    return ConnectionInfo(
        client_address=environ.get("REMOTE_ADDR") or None,
        client_port=_port(environ.get("REMOTE_PORT")),
        server_address=local_address,
        server_port=local_port,
        scheme=environ.get("wsgi.url_scheme", "http"),
        protocol_version=protocol.partition("/")[2] or None,
        transport=transport,
        root_path=_root_path(environ),
    )


def _root_path(environ: WSGIEnvironment) -> str:
    """Where the application is mounted: ``SCRIPT_NAME`` percent-encoded, no trailing slash."""
    script_name: str = environ.get("SCRIPT_NAME", "")
    if not script_name:
        return ""
    return quote(script_name.encode("latin-1"), safe=_PATH_SAFE).rstrip("/")


def _port(value: Any) -> Optional[int]:
    text = str(value) if value is not None else ""
    return int(text) if text.isascii() and text.isdigit() else None


def _status_line(status: int) -> str:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:  # a valid code with no registered phrase, e.g. 599
        reason = "Unknown"
    return f"{status} {reason}"


def _end_to_end(headers: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    kept = []
    for name, value in headers:
        if is_hop_by_hop(name):
            logger.debug("internalhttp: dropping hop-by-hop response header %s under WSGI", name)
        else:
            kept.append((name, value))
    return kept
