"""The one policy for a failure inside telemetry: log it and let the request go on.

>>> with LogAndGoOn("demonstrate the guard"):
...     raise RuntimeError("a bug in telemetry")
>>> print("the request goes on")
the request goes on

Only ``Exception`` is swallowed: ``KeyboardInterrupt`` and ``SystemExit``
still stop the program. Guards are made once, at import, and reused, so a
``with`` costs no allocation on the request path.

Where a step runs on every request, a ``with`` still costs two calls
(``__enter__`` and ``__exit__``) even when nothing fails; there the step is
a ``try`` (free until something raises) whose ``except Exception`` hands the
failure to the same guard, which logs it the same way:

>>> try:
...     raise RuntimeError("a bug in telemetry")
... except Exception:
...     LogAndGoOn("demonstrate the guard").failed()
>>> print("the request goes on")
the request goes on
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Optional

_logger = logging.getLogger("opentelemetry_ext_internalhttp")


class LogAndGoOn:
    """A context manager that logs an ``Exception`` raised inside it, with its traceback, and swallows it."""

    __slots__ = ("_what",)

    def __init__(self, what: str) -> None:
        self._what = what

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool:
        if exc_type is None or not issubclass(exc_type, Exception):
            return False
        _logger.error(
            "internalhttp instrumentation failed to %s; the request goes on",
            self._what,
            exc_info=(exc_type, exc, traceback),  # type: ignore[arg-type]  # exc is set whenever exc_type is
        )
        return True

    def failed(self) -> None:
        """Log the ``Exception`` being handled, as ``__exit__`` does; for an ``except Exception`` clause."""
        _logger.error(
            "internalhttp instrumentation failed to %s; the request goes on", self._what, exc_info=True
        )

    def __repr__(self) -> str:
        return f"LogAndGoOn({self._what!r})"


START = LogAndGoOn("start telemetry for a request")
BUILD_ATTRIBUTES = LogAndGoOn("read a request attribute")
RECORD_RESPONSE = LogAndGoOn("record a response")
RECORD_DURATION = LogAndGoOn("record a request duration")
COUNT_ACTIVE = LogAndGoOn("count an active request")
END_SPAN = LogAndGoOn("end a span")
EMIT_EXCEPTION = LogAndGoOn("emit an exception log event")
INJECT_RESPONSE_CONTEXT = LogAndGoOn("add traceresponse or Server-Timing to a response")
DECIDE_PUBLIC = LogAndGoOn("run public_endpoint")
DECIDE_EXCLUDED = LogAndGoOn("run exclude")
RECORD_SERVING = LogAndGoOn("record a serving-layer metric")


class LogAndRecordOnSpan(LogAndGoOn):
    """``LogAndGoOn`` that also records the exception as an event on ``span``.

    For user hooks: a failing hook is the user's bug, so it is shown where
    the user looks, in the trace, as well as in the log.
    """

    __slots__ = ("_span",)

    def __init__(self, what: str, span: Any) -> None:
        super().__init__(what)
        self._span = span

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> bool:
        swallowed = super().__exit__(exc_type, exc, traceback)
        if swallowed and exc is not None:
            with RECORD_HOOK_FAILURE:
                if self._span.is_recording():
                    self._span.record_exception(exc)
        return swallowed


RECORD_HOOK_FAILURE = LogAndGoOn("record a hook's exception on its span")
