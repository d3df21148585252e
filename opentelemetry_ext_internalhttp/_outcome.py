"""How a request ended, on its span and as a log event: status, ``error.type``, the exception.

Everything here runs at a request's end, inside its span's context.
"""

from __future__ import annotations

import traceback
from typing import Any, Optional

from opentelemetry import context
from opentelemetry._logs import Logger, SeverityNumber
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.trace import Span, Status, StatusCode

from opentelemetry_ext_internalhttp._attributes import AttributeKeys

EXCEPTION_EVENT = "http.server.request.exception"
# Distinct statuses whose span attributes are kept made (the framework sends any of 100-599).
_STATUS_LIMIT = 64


def error_type(error: BaseException) -> str:
    """The exception's type as the SDK writes ``exception.type``: fully qualified, builtins bare.

    >>> error_type(ValueError()), error_type(TimeoutError())
    ('ValueError', 'TimeoutError')
    """
    cls = type(error)
    module = cls.__module__
    return f"{module}.{cls.__qualname__}" if module and module != "builtins" else cls.__qualname__


def status_sent(status: Optional[int], error: Optional[BaseException]) -> Optional[int]:
    """The status the client received: the response's, or the 500 every serving layer sends for an exception.

    >>> status_sent(None, RuntimeError()), status_sent(204, None), status_sent(None, KeyboardInterrupt())
    (500, 204, None)
    """
    if status is None and isinstance(error, Exception):
        return 500
    return status


class OutcomeRecording:
    """Records how requests ended, as one configuration asks."""

    __slots__ = ("_error_statuses", "_exception_logger", "_keys", "_span_events", "_status_attributes")

    def __init__(
        self,
        keys: AttributeKeys,
        error_statuses: frozenset[int],
        span_events: bool,
        exception_logger: Optional[Logger],
    ) -> None:
        self._keys = keys
        # The statuses that make a SERVER span an error (5xx only, by default all).
        self._error_statuses = error_statuses
        # Where a handler's exception goes: a span event, a log event, or both.
        self._span_events = span_events
        self._exception_logger = exception_logger
        # The status attribute(s) of each status sent, made once: the SDK copies them.
        self._status_attributes: dict[int, dict[str, int]] = {}

    def on_span(self, span: Span, status: Optional[int], error: Optional[BaseException]) -> Optional[str]:
        """Status code, ``error.type`` and span status on the span; returns the ``error.type``.

        An exception is always an error; a status only when it is one of the
        server error statuses (every 5xx unless configured narrower).
        """
        kind = error_type(error) if error is not None else None
        if kind is None and status in self._error_statuses:
            kind = str(status)
        if not span.is_recording():
            return kind
        if status is not None:
            span.set_attributes(self._status_attributes.get(status) or self._remember_status(status))
        if kind is not None:
            if self._keys.new:
                # error.type exists only in the stable conventions.
                span.set_attribute(ERROR_TYPE, kind)
            if error is not None and self._span_events:
                span.record_exception(error)
            # The description is the message alone: the type is in
            # error.type and in the exception event already.
            span.set_status(Status(StatusCode.ERROR, str(error) if error is not None else None))
        return kind

    def _remember_status(self, status: int) -> dict[str, int]:
        attributes = dict.fromkeys(self._keys.status, status)
        if len(self._status_attributes) < _STATUS_LIMIT:
            self._status_attributes[status] = attributes
        return attributes

    def emit_exception(self, error: BaseException) -> None:
        """The ``http.server.request.exception`` log event, in the request's span context, when asked for."""
        if self._exception_logger is None:
            return
        attributes: dict[str, Any] = {
            EXCEPTION_TYPE: error_type(error),
            EXCEPTION_MESSAGE: str(error),
            EXCEPTION_STACKTRACE: "".join(
                traceback.format_exception(type(error), error, error.__traceback__)
            ),
        }
        self._exception_logger.emit(
            event_name=EXCEPTION_EVENT,
            severity_number=SeverityNumber.ERROR,
            severity_text="ERROR",
            context=context.get_current(),
            attributes=attributes,
        )
