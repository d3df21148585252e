"""Turning what a handler returned into a status, headers and body bytes.

``InternalHTTPServer.handle_request`` deliberately returns the handler's value
unchanged, so that whatever wraps it (telemetry, tests) sees exactly what the
application produced. Every serving layer then needs the same translation to
wire form; it lives here, in one function, so that the socket server, the WSGI
adapter and the test client can never disagree about what a response means.

A handler may return:

* a mapping (normally a ``dict``) with optional keys

  - ``"status"``: anything ``int()`` accepts (``200``, ``"404"``,
    ``HTTPStatus.OK``) but ``bool``, in ``100..599``; default ``200``.
  - ``"body"``: ``bytes``/``bytearray``/``memoryview`` sent as they are;
    ``str`` encoded as UTF-8 with a default ``Content-Type`` of
    ``text/plain; charset=utf-8``; ``None`` or missing for no content;
    anything else JSON-encoded (compactly, UTF-8, NaN refused) with a
    default ``Content-Type`` of ``application/json``.
  - ``"headers"``: a mapping or an iterable of ``(name, value)`` pairs of
    ``str``. They win over the defaults above: a handler that sets
    ``Content-Type`` itself gets exactly that, once.

* ``str`` or ``bytes``: a ``200`` response with that body.
* ``None``: ``204 No Content``.

>>> normalize_response({"status": 201, "body": {"id": 7}})
NormalizedResponse(status=201, headers=[('Content-Type', 'application/json'), ('Content-Length', '8')], \
body=b'{"id":7}')
>>> normalize_response("hello").headers
[('Content-Type', 'text/plain; charset=utf-8'), ('Content-Length', '5')]
>>> normalize_response(None)
NormalizedResponse(status=204, headers=[], body=b'')
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any, Iterable, List, Mapping, NamedTuple, Optional, Tuple

from internalhttp.wire import TOKEN as _TOKEN  # RFC 9110, 5.1: a field name is a token
from internalhttp.wire import status_allows_body

if TYPE_CHECKING:  # annotations only: never bind the class at run time
    pass

__all__ = [
    "NormalizedResponse",
    "Outcome",
    "internal_server_error",
    "normalize_response",
    "outcome_of",
    "response_for",
]

logger = logging.getLogger("internalhttp")

TEXT_PLAIN = "text/plain; charset=utf-8"
APPLICATION_JSON = "application/json"

# RFC 9110, section 5.5: no CR, LF or NUL in a field value; the rest of the
# check (Latin-1 only) is done by encoding, as both http.server and PEP 3333
# put header strings on the wire as Latin-1.
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")


class NormalizedResponse(NamedTuple):
    """A response in wire form; a plain ``(status, headers, body)`` tuple."""

    status: int
    headers: List[Tuple[str, str]]
    body: bytes


def normalize_response(value: Any) -> NormalizedResponse:
    """Translate a handler's return value into ``(status, headers, body)``.

    The accepted shapes are listed in this module's documentation.

    ``Content-Length`` is computed here, because only the framework knows
    the exact byte count and a wrong value would corrupt a kept-alive
    connection: a handler may set it only to the right value, and it is
    left out where RFC 9110 forbids it (1xx, 204). A 1xx, 204 or 304 status
    with non-empty content is refused for the same reason.

    Anything else, including an invalid status or header, raises
    ``TypeError`` or ``ValueError``; serving layers catch those and answer
    ``500`` exactly as for an exception raised by the handler.
    """
    if value is None:
        return NormalizedResponse(204, [], b"")
    if isinstance(value, (str, bytes)):
        value = {"body": value}
    if not isinstance(value, Mapping):
        raise TypeError(
            f"a handler must return a dict, str, bytes or None, not {type(value).__name__}: {value!r}"
        )
    status = _status(value.get("status", 200))
    body, default_type = _body(value.get("body"))
    headers = _headers(value.get("headers"))
    names = {name.lower() for name, _ in headers}
    if default_type is not None and "content-type" not in names:
        headers.insert(0, ("Content-Type", default_type))
    _frame(status, headers, names, body)
    return NormalizedResponse(status, headers, body)


def _frame(status: int, headers: List[Tuple[str, str]], names: set[str], body: bytes) -> None:
    """Check the framing a handler asked for, and add the ``Content-Length`` it left out.

    The one home of the Content-Length rule: only the framework knows the
    byte count, and a wrong one corrupts a kept-alive connection.
    """
    if "transfer-encoding" in names:
        raise ValueError("a handler may not set Transfer-Encoding: the framework frames responses itself")
    if not status_allows_body(status) and body:
        raise ValueError(f"a {status} response cannot have content, got {len(body)} bytes")
    if status < 200 or status == 204:
        if "content-length" in names:
            raise ValueError(f"a {status} response cannot have a Content-Length header")
    elif "content-length" not in names:
        headers.append(("Content-Length", str(len(body))))
    elif status != 304:  # a 304's Content-Length describes the cached representation
        lengths = {v.strip() for n, v in headers if n.lower() == "content-length"}
        if lengths != {str(len(body))}:
            raise ValueError(f"Content-Length {sorted(lengths)} does not match the {len(body)}-byte body")


def _status(raw: Any) -> int:
    if isinstance(raw, bool):
        raise TypeError(f"invalid response status {raw!r}: a bool is not a status code")
    if isinstance(raw, float) and not raw.is_integer():
        raise ValueError(f"invalid response status {raw!r}: not a whole number")
    try:
        status = int(raw)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"invalid response status {raw!r}") from exc
    if not 100 <= status <= 599:
        raise ValueError(f"invalid response status {status}: must be within 100..599")
    return status


def _body(raw: Any) -> Tuple[bytes, Optional[str]]:
    """Return the body bytes and the Content-Type they imply, if any."""
    if raw is None:
        return b"", None
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw), None
    if isinstance(raw, str):
        return raw.encode("utf-8"), TEXT_PLAIN
    try:
        text = json.dumps(raw, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except TypeError as exc:
        raise TypeError(f"response body of type {type(raw).__name__} is not JSON serializable") from exc
    except ValueError as exc:  # NaN/Infinity, circular references
        raise ValueError(f"response body cannot be encoded as JSON: {exc}") from exc
    return text.encode("utf-8"), APPLICATION_JSON


def _headers(raw: Any) -> List[Tuple[str, str]]:
    if raw is None:
        return []
    if isinstance(raw, Mapping):
        pairs: Iterable[Any] = raw.items()
    elif isinstance(raw, (str, bytes)) or not isinstance(raw, Iterable):
        raise TypeError(f"response headers must be a mapping or a list of pairs, not {type(raw).__name__}")
    else:
        pairs = raw
    result: List[Tuple[str, str]] = []
    for pair in pairs:
        try:
            name, value = pair
        except (TypeError, ValueError) as exc:
            raise TypeError(f"response header {pair!r} is not a (name, value) pair") from exc
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"response header {name!r}: name and value must be str")
        if not _TOKEN.match(name):
            raise ValueError(f"invalid response header name {name!r}")
        if _FORBIDDEN_IN_VALUE.search(value):
            raise ValueError(f"response header {name!r}: value contains CR, LF or NUL")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ValueError(f"response header {name!r}: value is not Latin-1 encodable") from exc
        result.append((name, value))
    return result


_INTERNAL_SERVER_ERROR = normalize_response({"status": 500, "body": "Internal Server Error"})


def internal_server_error() -> NormalizedResponse:
    """The response every serving layer sends when the application failed."""
    status, headers, body = _INTERNAL_SERVER_ERROR
    return NormalizedResponse(status, list(headers), body)


class Outcome(NamedTuple):
    """How one request ended: the response the client receives, and why.

    ``value`` is what ``handle_request`` returned (``None`` if it raised)
    and ``error`` the exception it, or the translation of its value into a
    response, raised; the response is then the 500 every serving layer sends.
    """

    response: NormalizedResponse
    value: Any = None
    error: Optional[Exception] = None


def response_for(value: Any) -> Outcome:
    """The response a client receives when a handler returns ``value``.

    The one rule every serving layer applies: :func:`normalize_response`,
    or the 500 response when the value cannot be sent (``error`` then says
    why). Code that holds a handler's value rather than the response sent
    (telemetry of a direct ``handle_request`` call) asks it too.

    >>> response_for({"status": 200.0}).response.status, response_for(None).response.status
    (200, 204)
    >>> outcome = response_for({"status": "teapot"})
    >>> outcome.response.status, type(outcome.error).__name__
    (500, 'ValueError')
    """
    try:
        return Outcome(normalize_response(value), value)
    except Exception as error:
        return Outcome(internal_server_error(), value, error)


def outcome_of(value: Any, error: Optional[Exception] = None) -> Outcome:
    """How a request ended: :func:`response_for` the handler's value, or the 500 for its exception.

    >>> outcome_of(None, RuntimeError("down")).response.status, outcome_of("ok").response.status
    (500, 200)
    """
    return response_for(value) if error is None else Outcome(internal_server_error(), None, error)
