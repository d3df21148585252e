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


def request_carrier(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The headers to extract from: without a ``traceparent`` or ``tracestate`` over 512 characters.

    >>> sorted(request_carrier({"traceparent": "0" * 513, "host": "h"}))
    ['host']
    >>> headers = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
    >>> request_carrier(headers) is headers
    True
    """
    traceparent = headers.get("traceparent")
    tracestate = headers.get("tracestate")
    if (traceparent is None or len(traceparent) <= _MAX_TRACE_HEADER_LENGTH) and (
        tracestate is None or len(tracestate) <= _MAX_TRACE_HEADER_LENGTH
    ):
        return headers
    return {
        name: value
        for name, value in headers.items()
        if name not in _TRACE_HEADERS or len(value) <= _MAX_TRACE_HEADER_LENGTH
    }


def extract_from_request(headers: Mapping[str, str]) -> Context:
    """The caller's context (trace and baggage) through the global propagator, quietly."""
    carrier = request_carrier(headers)
    if "baggage" not in carrier and "tracestate" not in carrier:
        return extract(carrier)  # nothing left that the API would warn about
    with _quietly():
        return extract(carrier)


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
