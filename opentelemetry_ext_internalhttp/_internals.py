"""Every read of an OpenTelemetry internal, in one place.

The fast paths rely on five private names of the API and of contrib; each
is looked up once here, and a release without it only turns its fast path
off (the public, slower way is taken instead). ``FAST_PATHS`` says which
are on, and tests/test_internals.py fails when a release we admit removes
one, so that it never turns off unnoticed. The contrib modules whose
private helpers the conventions come from (``_semconv``, ``_labeler``) are
imported here too; setup.cfg bounds their versions.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from opentelemetry import context, trace
from opentelemetry.environment_variables import OTEL_PYTHON_METER_PROVIDER, OTEL_PYTHON_TRACER_PROVIDER
from opentelemetry.instrumentation._labeler import enrich_metric_attributes, get_labeler_attributes
from opentelemetry.instrumentation._semconv import (
    HTTP_DURATION_HISTOGRAM_BUCKETS_NEW,
    OTEL_SEMCONV_STABILITY_OPT_IN,
    _get_schema_url,
    _get_semconv_opt_in_modes,
    _OpenTelemetryStabilitySignalType,
    _report_new,
    _report_old,
    _StabilityMode,
)
from opentelemetry.metrics import Meter, NoOpMeter, get_meter_provider
from opentelemetry.trace import NoOpTracer, ProxyTracerProvider

__all__ = [
    "FAST_PATHS",
    "HTTP_DURATION_HISTOGRAM_BUCKETS_NEW",
    "OTEL_SEMCONV_STABILITY_OPT_IN",
    "SdkPresence",
    "_OpenTelemetryStabilitySignalType",
    "_StabilityMode",
    "_get_schema_url",
    "_get_semconv_opt_in_modes",
    "_report_new",
    "_report_old",
    "enrich_metric_attributes",
    "global_meter_provider_unset",
    "global_tracer_provider_unset",
    "has_labels",
    "never_samples",
    "read_globals",
]

# The API's set-once global tracer provider (opentelemetry.trace._TRACER_PROVIDER).
_TRACE_GLOBALS: Any = trace if hasattr(trace, "_TRACER_PROVIDER") else None

try:
    import opentelemetry.metrics._internal as _metrics_internal

    # The global meter provider as set (_METER_PROVIDER), and the proxy
    # that stands in before an SDK is set (_ProxyMeterProvider).
    _METRICS_GLOBALS: Any = _metrics_internal if hasattr(_metrics_internal, "_METER_PROVIDER") else None
    _PROXY_METER_PROVIDER: Optional[type] = getattr(_metrics_internal, "_ProxyMeterProvider", None)
except ImportError:  # pragma: no cover - a future API may move it
    _METRICS_GLOBALS = None
    _PROXY_METER_PROVIDER = None

try:
    # Where contrib's labeler lives in the context.
    from opentelemetry.instrumentation._labeler._internal import LABELER_CONTEXT_KEY

    _LABELER_KEY: Optional[str] = LABELER_CONTEXT_KEY
except ImportError:  # pragma: no cover - a contrib release that moved the key
    _LABELER_KEY = None

try:
    from opentelemetry.context import _RUNTIME_CONTEXT
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

    # The ContextVar behind the API's default runtime context: reading it is
    # one C call, where context.get_current() makes two Python ones.
    _CONTEXT_VAR: Any = (
        getattr(_RUNTIME_CONTEXT, "_current_context", None)
        if isinstance(_RUNTIME_CONTEXT, ContextVarsRuntimeContext)
        else None
    )
except ImportError:  # pragma: no cover - a future API may move it
    _CONTEXT_VAR = None

# Which fast path each private name keeps on (True) in the installed releases.
FAST_PATHS = {
    "opentelemetry.trace._TRACER_PROVIDER": _TRACE_GLOBALS is not None,
    "opentelemetry.metrics._internal._METER_PROVIDER": _METRICS_GLOBALS is not None,
    "opentelemetry.metrics._internal._ProxyMeterProvider": _PROXY_METER_PROVIDER is not None,
    "opentelemetry.instrumentation._labeler._internal.LABELER_CONTEXT_KEY": _LABELER_KEY is not None,
    "opentelemetry.context._RUNTIME_CONTEXT._current_context": _CONTEXT_VAR is not None,
}


def read_globals() -> bool:
    """Whether the API's globals can be read directly: not when a provider is named in the environment.

    Such a provider is loaded on first use, which only the public getters do.
    """
    return not {OTEL_PYTHON_TRACER_PROVIDER, OTEL_PYTHON_METER_PROVIDER} & set(os.environ)


def global_tracer_provider_unset(direct: bool) -> bool:
    """Whether no global tracer provider is set yet (spans would go nowhere).

    The set-once global, read directly when ``direct``: the public getter
    also looks in os.environ on every call while none is set.
    """
    if direct and _TRACE_GLOBALS is not None:
        return _TRACE_GLOBALS._TRACER_PROVIDER is None
    return isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


def global_meter_provider_unset(direct: bool) -> bool:
    """Whether no global meter provider is set yet; False when that cannot be told."""
    if direct and _METRICS_GLOBALS is not None:
        return _METRICS_GLOBALS._METER_PROVIDER is None
    return _PROXY_METER_PROVIDER is not None and isinstance(get_meter_provider(), _PROXY_METER_PROVIDER)


def can_tell_meter_provider_unset() -> bool:
    """Whether :func:`global_meter_provider_unset` can ever say True."""
    return _PROXY_METER_PROVIDER is not None


def has_labels() -> bool:
    """Whether the request's handler added labeler attributes (cheaper than building them)."""
    if _LABELER_KEY is None:  # pragma: no cover - a contrib release that moved the key
        return bool(get_labeler_attributes())
    current = _CONTEXT_VAR.get() if _CONTEXT_VAR is not None else context.get_current()
    labeler = current.get(_LABELER_KEY)
    return labeler is not None and len(labeler) > 0  # type: ignore[arg-type]


def never_samples(tracer: object) -> bool:
    """Whether the SDK tracer drops every span whatever it is shown (``ALWAYS_OFF``).

    Read from the SDK tracer's ``sampler``; any other tracer may sample.
    """
    sampler = getattr(tracer, "sampler", None)
    return sampler is not None and sampler.get_description() == "AlwaysOffSampler"


class SdkPresence:
    """Whether an SDK stands behind the tracer and the meter, asked cheaply on every request.

    Known at once for explicit providers; asked per request for the global
    ones, which an SDK may be installed behind at any time, until one is.
    """

    __slots__ = (
        "_direct",
        "_meter_follows_global",
        "_meter_is_noop",
        "_tracer_follows_global",
        "_tracer_is_noop",
        "maybe_none",
    )

    def __init__(
        self, tracer: trace.Tracer, explicit_tracer: bool, meter: Meter, explicit_meter: bool, hookless: bool
    ) -> None:
        # Hooks always need a span, so with hooks the shortcut is never taken.
        self.maybe_none = hookless
        self._direct = read_globals()
        self._tracer_is_noop = isinstance(tracer, NoOpTracer)
        self._tracer_follows_global = not explicit_tracer
        self._meter_is_noop = isinstance(meter, NoOpMeter)
        self._meter_follows_global = not explicit_meter and can_tell_meter_provider_unset()

    def nothing_records(self) -> bool:
        """True when neither spans nor metrics reach an SDK (the API's no-op or unset global providers).

        A global provider is set once and for all, so once one is seen the
        answer is kept instead of asked again on every request.
        """
        traces_off = self._tracer_is_noop or (
            self._tracer_follows_global and global_tracer_provider_unset(self._direct)
        )
        if not traces_off:
            self.maybe_none = False  # an SDK records: this shortcut is never taken again
            return False
        metrics_off = self._meter_is_noop or (
            self._meter_follows_global and global_meter_provider_unset(self._direct)
        )
        if not metrics_off:
            self.maybe_none = False
        return metrics_off
