"""One request as the telemetry holds it: the view hooks get, the state between start and finish.

Kept apart from the lifecycle (``_telemetry``) so that each reads on its
own: ``RequestView`` is public (hooks, ``exclude`` and ``public_endpoint``
receive it), ``RequestState`` is what finishing needs of a started span.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import Token
from typing import Any, Callable, NamedTuple, Optional

from internalhttp.server import InternalHTTPServer, Request
from opentelemetry.context import Context
from opentelemetry.trace import Span

from opentelemetry_ext_internalhttp._metric_attributes import SharedAttributes

RequestHook = Callable[[Span, "RequestView"], None]
ResponseHook = Callable[[Span, "RequestView", Any], None]
Answer = Callable[[Request, Any], Any]


class RequestView(NamedTuple):
    """The read-only view of a request that hooks receive.

    ``headers`` is a read-only mapping with lower-case names, whatever shape
    the caller passed them in.
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Optional[bytes]
    server: InternalHTTPServer


# One request's telemetry between span start and finish, as a plain tuple:
# one is made for every request, and CPython builds a tuple in about a
# quarter of the instructions an instance of a class takes. Unpacked by name:
#   span, token, shared, view, server_span_recording, metric_extras, request_size, start = state
# ``token`` is the attached context's; ``shared`` is None when nothing
# records (no SDK behind the API: see SdkPresence), and then only the
# token is given back; ``view`` is what hooks get (None without hooks);
# response headers are captured on a recording SERVER span only
# (``server_span_recording``); ``metric_extras`` are the opt-in, per-request
# metric attributes (bounded) and ``request_size`` the request body's size
# when an opt-in wants it; ``start`` is the default_timer() reading the
# duration is measured from.
RequestState = tuple[
    Span,
    Optional[Token[Context]],
    Optional[SharedAttributes],
    Optional[RequestView],
    bool,
    Optional[dict[str, Any]],
    Optional[int],
    float,
]


def _answer_and_conclude(
    server: InternalHTTPServer, request: Request, body: bytes, answer: Optional[Answer]
) -> Any:
    """A request with no telemetry (excluded, suppressed): answered and, when served, concluded."""
    if answer is None:
        answer = server.dispatch
    if request.exchange is None:
        return answer(request, body)
    try:
        value = answer(request, body)
    except Exception as error:
        server.conclude(request, error=error)
        raise
    server.conclude(request, value)
    return value
