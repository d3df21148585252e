"""Assertion helpers for the instrumentation tests: "the one server span" and
"the metric points"."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


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
