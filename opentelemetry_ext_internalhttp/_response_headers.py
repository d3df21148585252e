"""Headers the instrumentation adds to the response a serving layer sends.

``traceresponse`` (the global response propagator's, with its
``Access-Control-Expose-Headers``) and, when asked for, ``Server-Timing``.
Only the serving layer's copy of the response changes: the value
``handle_request`` returned is left as the handler made it.
"""

from __future__ import annotations

from typing import Optional

from internalhttp.response import NormalizedResponse
from opentelemetry.instrumentation.propagators import ResponsePropagator
from opentelemetry.propagators.textmap import Setter
from opentelemetry.trace import Span


def add_server_timing(response: NormalizedResponse, span: Span) -> None:
    """``Server-Timing: traceparent;desc="..."``, which browsers show to real-user monitoring scripts.

    ``traceresponse`` is not exposed to them; Server-Timing is, once the
    application allows the page's origin with ``Timing-Allow-Origin``.
    """
    span_context = span.get_span_context()
    if not span_context.is_valid:
        return
    traceparent = (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"
    )
    response.headers.append(("Server-Timing", f'traceparent;desc="{traceparent}"'))
    response.headers.append(("Access-Control-Expose-Headers", "Server-Timing"))


class _AppendHeader(Setter[list[tuple[str, str]]]):
    """Adds a header to a response's list of ``(name, value)`` pairs."""

    def set(self, carrier: list[tuple[str, str]], key: str, value: str) -> None:
        carrier.append((key, value))


_APPEND_HEADER = _AppendHeader()


def add_response_headers(
    response: NormalizedResponse, span: Span, propagator: Optional[ResponsePropagator], server_timing: bool
) -> None:
    """The response propagator's headers (``traceresponse``), and ``Server-Timing`` when asked for.

    ``propagator`` is contrib's global response propagator (None when none
    is set). Only the serving layer's copy changes: the value
    ``handle_request`` returned is left as the handler made it.
    """
    if propagator is not None:
        propagator.inject(response.headers, setter=_APPEND_HEADER)
    if server_timing:
        add_server_timing(response, span)
