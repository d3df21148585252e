"""The keyword arguments of ``instrument()`` and ``instrument_app()``, and the telemetry built from them.

``InstrumentOptions`` is the public type of the keywords, grouped by what
they are about; ``build_telemetry`` is the one place where tracer, meters
and configuration are put together for one ``instrument*()`` call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable, Optional, TypedDict, Union, cast

from opentelemetry._logs import LoggerProvider
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from opentelemetry_ext_internalhttp._config import ConfigFile, keywords_from_code, read_settings
from opentelemetry_ext_internalhttp._internals import (
    _get_semconv_opt_in_modes,
    _OpenTelemetryStabilitySignalType,
)
from opentelemetry_ext_internalhttp._request_state import RequestHook, RequestView, ResponseHook
from opentelemetry_ext_internalhttp._telemetry import _RequestTelemetry

_logger = logging.getLogger("opentelemetry_ext_internalhttp")

Names = Union[str, list[str]]


class ProviderOptions(TypedDict, total=False):
    """Where spans, metrics and exception log events go (default: the global providers)."""

    tracer_provider: Optional[TracerProvider]
    meter_provider: Optional[MeterProvider]
    logger_provider: Optional[LoggerProvider]


class SelectionOptions(TypedDict, total=False):
    """Which requests are recorded, and what marks one an error."""

    excluded_urls: Optional[Names]
    excluded_methods: Optional[Names]
    exclude: Optional[Callable[[RequestView], bool]]
    known_methods: Optional[Names]
    server_error_statuses: Optional[Names]


class RecordingOptions(TypedDict, total=False):
    """What is recorded beyond the required attributes, and the hooks that add more."""

    request_hook: Optional[RequestHook]
    response_hook: Optional[ResponseHook]
    http_capture_headers_server_request: Optional[Names]
    http_capture_headers_server_response: Optional[Names]
    opt_in: Optional[Names]
    body_capture_limit: Optional[int]
    server_timing: Optional[bool]
    serving_metrics: Optional[bool]


class PrivacyOptions(TypedDict, total=False):
    """What is never recorded as sent."""

    http_capture_headers_sanitize_fields: Optional[Names]
    sensitive_query_parameters: Optional[Names]
    sensitive_query_parameters_replace: Optional[Names]
    sensitive_path_parameters: Optional[Names]
    sensitive_path_parameters_replace: Optional[Names]


class TrustOptions(TypedDict, total=False):
    """Whose forwarding headers and trace context are believed."""

    trusted_proxies: Optional[Names]
    forwarded_headers: Optional[str]
    public_endpoint: Optional[Union[bool, str, Callable[[RequestView], bool]]]


class InstrumentOptions(
    ProviderOptions, SelectionOptions, RecordingOptions, PrivacyOptions, TrustOptions, total=False
):
    """The keyword arguments of ``instrument()`` and ``instrument_app()``.

    Each defaults to its configuration-file key or environment variable
    (see the manual), then to the behaviour the semantic conventions ask for.
    """


OPTIONS = frozenset(InstrumentOptions.__optional_keys__)


def build_telemetry(
    options: Mapping[str, Any], config_file: Optional[ConfigFile], known: frozenset[str] = OPTIONS
) -> _RequestTelemetry:
    """The telemetry of one ``instrument*()`` call: keyword arguments, then the file or the environment."""
    mode = _get_semconv_opt_in_modes((_OpenTelemetryStabilitySignalType.HTTP,))[
        _OpenTelemetryStabilitySignalType.HTTP
    ]
    given = cast(InstrumentOptions, keywords_from_code(options, config_file))
    warn_unknown(given, known)
    return _RequestTelemetry(
        sem_conv_opt_in_mode=mode,
        settings=read_settings(given, config_file),
        tracer_provider=given.get("tracer_provider"),
        meter_provider=given.get("meter_provider"),
        request_hook=given.get("request_hook"),
        response_hook=given.get("response_hook"),
        logger_provider=given.get("logger_provider"),
    )


def warn_unknown(options: Mapping[str, object], known: frozenset[str]) -> None:
    """Name a keyword argument nothing reads: a misspelt option must not pass in silence."""
    unknown = sorted(set(options) - known)
    if unknown:
        _logger.warning(
            "InternalHTTPInstrumentor ignores unknown keyword argument(s) %s; known: %s",
            ", ".join(unknown),
            ", ".join(sorted(OPTIONS)),
        )
