"""The tests' shared vocabulary and assertion helpers.

Everything more than one test file needs is defined here once: the
semantic-convention modes to parametrize over, a valid W3C trace context,
the logger names, "the one server span" and "the metric points".
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest
from internalhttp.server import ConnectionInfo
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# OTEL_SEMCONV_STABILITY_OPT_IN values: the old conventions (the default), the
# stable ones, both at once.
OLD_MODE, STABLE_MODE, DUP_MODE = "", "http", "http/dup"


def semconv_modes(*modes: str) -> pytest.MarkDecorator:
    """Run the test once per mode, through the autouse ``semconv_mode`` fixture in conftest.py."""
    return pytest.mark.parametrize("semconv_mode", list(modes), indirect=True)


ALL_MODES = semconv_modes(OLD_MODE, STABLE_MODE, DUP_MODE)
OLD_AND_STABLE = semconv_modes(OLD_MODE, STABLE_MODE)
OLD_MODES = semconv_modes(OLD_MODE, DUP_MODE)  # the modes that record the old attributes
STABLE_MODES = semconv_modes(STABLE_MODE, DUP_MODE)  # the modes that record the stable attributes
OLD = semconv_modes(OLD_MODE)
STABLE = semconv_modes(STABLE_MODE)
DUP = semconv_modes(DUP_MODE)

# The shop's frontend reaches its backend through instrumented urllib: without
# opentelemetry-instrumentation-urllib the two services make two traces. The
# tox env tests-newest goes without it: it pins the contrib packages exactly, and
# the newest contrib release (0.66b2) has no urllib instrumentation.
needs_urllib_instrumentation = pytest.mark.skipif(
    importlib.util.find_spec("opentelemetry.instrumentation.urllib") is None,
    reason="opentelemetry-instrumentation-urllib is not installed (none in the newest release set)",
)

# A valid W3C trace context from a remote caller.
TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
PARENT_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{PARENT_ID:016x}-01"
TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"

# A reverse proxy on the private network, the connection's peer: trusted by
# default, so the forwarding headers it passes on are believed.
BEHIND_PROXY = ConnectionInfo(
    client_address="10.1.2.3", client_port=40000, scheme="http", protocol_version="1.1"
)

# Logger names: this package's, and the one BaseInstrumentor warns and errs on.
INSTRUMENTATION_LOGGER = "opentelemetry_ext_internalhttp"
BASE_INSTRUMENTOR_LOGGER = "opentelemetry.instrumentation.instrumentor"


def one_server_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    """The single finished span; fails unless there is exactly one."""
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, f"expected exactly one span, got {[span.name for span in spans]}"
    return spans[0]


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    """Every data point of the metric called ``name`` (empty if none was recorded)."""
    data = reader.get_metrics_data()
    points: list[Any] = []
    if data is None:
        return points
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    points.extend(metric.data.data_points)
    return points


def point_attributes(reader: InMemoryMetricReader, name: str) -> list[dict[str, Any]]:
    return [dict(point.attributes) for point in metric_points(reader, name)]
