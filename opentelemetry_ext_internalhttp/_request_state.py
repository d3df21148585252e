"""One request as the telemetry holds it: the view hooks get, the state between start and finish.

Kept apart from the lifecycle (``_telemetry``) so that each reads on its
own: ``RequestView`` is public (hooks, ``exclude`` and ``public_endpoint``
receive it), ``_RequestState`` is what ``_finish`` needs of a started span.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import Token
from timeit import default_timer
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


class _RequestState:
    """One request's telemetry between span start and finish."""

    __slots__ = (
        "metric_extras",
        "request_size",
        "server_span_recording",
        "shared",
        "span",
        "start",
        "token",
        "view",
    )

    def __init__(
        self,
        span: Span,
        token: Optional[Token[Context]],
        shared: Optional[SharedAttributes],
        view: Optional[RequestView],
        server_span_recording: bool,
    ) -> None:
        self.span = span
        self.token = token
        # None when nothing records (no SDK behind the API): see _SdkPresence.
        self.shared = shared
        self.view = view
        # Response headers are captured on a recording SERVER span only.
        self.server_span_recording = server_span_recording
        # Opt-in, per-request metric attributes (bounded), and the request
        # body's size when an opt-in wants it.
        self.metric_extras: Optional[dict[str, Any]] = None
        self.request_size: Optional[int] = None
        self.start = default_timer()


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
