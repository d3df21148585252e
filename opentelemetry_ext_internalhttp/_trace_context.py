"""The caller's trace context, taken from request headers without letting a client make noise.

The API's propagators log a WARNING for a ``traceparent`` or ``tracestate``
over 512 characters and for malformed ``baggage``: text any client sends.
Over-long trace headers are treated as absent before extraction (as the API
would then treat them, minus the warning), and whatever else the
propagators say about one request's headers is logged at DEBUG on this
package's logger instead, so no client input makes any logger write WARNING.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from opentelemetry.context import Context
from opentelemetry.propagate import extract

_logger = logging.getLogger("opentelemetry_ext_internalhttp")

# The W3C limits the API enforces (with a warning) since 1.45.
_MAX_TRACE_HEADER_LENGTH = 512
_TRACE_HEADERS = ("traceparent", "tracestate")
# The API loggers that speak about the headers they are given.
_PROPAGATOR_LOGGERS = (
    "opentelemetry.trace.propagation.tracecontext",
    "opentelemetry.trace.span",  # TraceState.from_header
    "opentelemetry.baggage.propagation",
)
_EXTRACTING: ContextVar[bool] = ContextVar("opentelemetry_ext_internalhttp_extracting", default=False)


def extract_from_request(headers: Mapping[str, str]) -> Context:
    """The caller's context (trace and baggage) through the global propagator, quietly.

    A ``traceparent`` or ``tracestate`` over 512 characters is left out
    first, as if absent:

    >>> from opentelemetry.trace import get_current_span
    >>> parent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
    >>> get_current_span(extract_from_request({"traceparent": parent})).get_span_context().is_valid
    True
    >>> too_long = {"traceparent": parent, "tracestate": "k=" + "v" * 511}
    >>> get_current_span(extract_from_request(too_long)).get_span_context().is_valid
    True
    >>> too_long["traceparent"] = parent + "-" + "0" * 512
    >>> get_current_span(extract_from_request(too_long)).get_span_context().is_valid
    False
    """
    # One look at each trace header, in this one frame: this runs on every request.
    traceparent = headers.get("traceparent")
    tracestate = headers.get("tracestate")
    if (traceparent is not None and len(traceparent) > _MAX_TRACE_HEADER_LENGTH) or (
        tracestate is not None and len(tracestate) > _MAX_TRACE_HEADER_LENGTH
    ):
        headers = {
            name: value
            for name, value in headers.items()
            if name not in _TRACE_HEADERS or len(value) <= _MAX_TRACE_HEADER_LENGTH
        }
    if tracestate is None and "baggage" not in headers:
        return extract(headers)  # nothing that the API would warn about
    with _quietly():
        return extract(headers)


@contextmanager
def _quietly() -> Iterator[None]:
    token = _EXTRACTING.set(True)
    try:
        yield
    finally:
        _EXTRACTING.reset(token)


class _ClientInputFilter(logging.Filter):
    """Moves a propagator's complaint about one request's headers to DEBUG on our logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _EXTRACTING.get():
            return True
        _logger.debug("ignored part of a request's trace context: %s", record.getMessage())
        return False


_FILTER = _ClientInputFilter()


def install_filter() -> None:
    """Put the filter on the propagators' loggers (once; it passes everything outside extraction)."""
    for name in _PROPAGATOR_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
