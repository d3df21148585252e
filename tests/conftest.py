"""Shared fixtures: explicit providers with in-memory exporters, an
instrumentor that is always uninstrumented afterwards, semantic-convention
modes, and a guard that fails any test in which the instrumentation logged an
error the test did not ask for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.instrumentation._semconv import (
    OTEL_SEMCONV_STABILITY_OPT_IN,
    _OpenTelemetrySemanticConventionStability,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_testing import INSTRUMENTATION_LOGGER

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    return provider


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(metric_reader: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider(metric_readers=[metric_reader])


@pytest.fixture
def log_exporter() -> InMemoryLogRecordExporter:
    return InMemoryLogRecordExporter()


@pytest.fixture
def logger_provider(log_exporter: InMemoryLogRecordExporter) -> LoggerProvider:
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    return provider


@pytest.fixture
def framework_logs(logger_provider: LoggerProvider) -> Iterator[None]:
    """The framework's log lines (``internalhttp``, INFO and up) through the logging bridge."""
    # Imported here: the README's own install line (tox env readme) runs some
    # of these tests without the bridge installed.
    from opentelemetry.instrumentation.logging.handler import LoggingHandler

    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    framework = logging.getLogger("internalhttp")
    level = framework.level
    framework.addHandler(handler)
    framework.setLevel(logging.INFO)
    yield
    framework.removeHandler(handler)
    framework.setLevel(level)


@pytest.fixture
def providers(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> dict[str, Any]:
    """Keyword arguments for instrument() / instrument_app()."""
    return {"tracer_provider": tracer_provider, "meter_provider": meter_provider}


def _reset_semconv_mode() -> None:
    # The library reads OTEL_SEMCONV_STABILITY_OPT_IN once per process.
    _OpenTelemetrySemanticConventionStability._initialized = False
    _OpenTelemetrySemanticConventionStability._OTEL_SEMCONV_STABILITY_SIGNAL_MAPPING = {}


@pytest.fixture(autouse=True)
def semconv_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The OTEL_SEMCONV_STABILITY_OPT_IN value for this test ("" = default).

    Parametrize with ``@pytest.mark.parametrize("semconv_mode", [...], indirect=True)``.
    """
    mode = getattr(request, "param", "")
    if mode:
        monkeypatch.setenv(OTEL_SEMCONV_STABILITY_OPT_IN, mode)
    else:
        monkeypatch.delenv(OTEL_SEMCONV_STABILITY_OPT_IN, raising=False)
    _reset_semconv_mode()
    yield mode
    _reset_semconv_mode()


@pytest.fixture
def instrumentor() -> Iterator[InternalHTTPInstrumentor]:
    """The (singleton) instrumentor, uninstrumented after the test whatever it did."""
    instrumentor = InternalHTTPInstrumentor()
    yield instrumentor
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def instrumentation_errors(request: pytest.FixtureRequest) -> Iterator[_ErrorCollector]:
    """Fail the test if the instrumentation logged an error it did not expect.

    A test that provokes errors on purpose is marked
    ``@pytest.mark.instrumentation_errors``; it then takes this fixture and
    asserts on ``instrumentation_errors.records`` (the test fails if it logged
    none).
    """
    expected = request.node.get_closest_marker("instrumentation_errors") is not None
    collector = _ErrorCollector()
    logger = logging.getLogger(INSTRUMENTATION_LOGGER)
    logger.addHandler(collector)
    try:
        yield collector
    finally:
        logger.removeHandler(collector)
    if collector.records and not expected:
        messages = "\n".join(record.getMessage() for record in collector.records)
        pytest.fail(f"the instrumentation logged unexpected errors:\n{messages}")
    if expected and not collector.records:
        pytest.fail("marked instrumentation_errors, but the instrumentation logged no error")
