"""Helpers for the lifecycle tests: a small application, an independent
second telemetry pipeline, and metric readers that report only what was
recorded since their previous collection.

Lifecycle tests ask "does this server record anything *from now on*?". With
the default cumulative temporality every earlier measurement shows up again
in each collection (and an ``active_requests`` +1/-1 pair nets to the same
value), so those tests read metrics through a delta reader instead: once
drained, any metric name that appears in the next collection was recorded in
between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

ROUTE = "/users/<user_id>"
SPAN_NAME = "GET /users/<user_id>"
USER_RESPONSE = {"status": 200, "body": {"id": "42"}}


def _get_user(headers: Any, body: Any, user_id: str) -> dict[str, Any]:
    return {"status": 200, "body": {"id": user_id}}


def users_server(server_class: type, name: str = "shop") -> Any:
    """A server of ``server_class`` with the one route ``GET /users/<user_id>``."""
    server = server_class(name)
    server.add_route(ROUTE, _get_user)
    return server


def tagging_subclass(base: type) -> type:
    """A user subclass of ``base`` whose own ``handle_request`` override marks every response.

    ``base`` is bound when this is called: pass the class bound *before*
    ``instrument()`` for a subclass that derives from the original class.
    """

    class TaggingServer(base):  # type: ignore[misc,valid-type]
        def handle_request(self, *args: Any, **kwargs: Any) -> Any:
            response = super().handle_request(*args, **kwargs)
            return {**response, "headers": {"X-Tagged": "yes"}}

    return TaggingServer


TAGGED_USER_RESPONSE = {**USER_RESPONSE, "headers": {"X-Tagged": "yes"}}


def get_user(server: Any) -> Any:
    """Dispatch ``GET /users/42`` through the framework's one seam and return the response."""
    return server.handle_request("GET", "/users/42", {}, b"")


def delta_metric_reader() -> InMemoryMetricReader:
    """An in-memory reader whose every collection holds only what was recorded since the previous one."""
    delta = AggregationTemporality.DELTA
    return InMemoryMetricReader(
        preferred_temporality={Counter: delta, UpDownCounter: delta, Histogram: delta}
    )


def drain_metric_names(reader: InMemoryMetricReader) -> list[str]:
    """Collect now and return the names of the metrics that have data points, sorted.

    With a :func:`delta_metric_reader` that is exactly what was recorded since
    the previous collection, and the reader is empty again afterwards.
    """
    data = reader.get_metrics_data()
    if data is None:
        return []
    return sorted(
        metric.name
        for resource_metrics in data.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if metric.data.data_points
    )


@dataclass
class Pipeline:
    """An independent tracer provider and meter provider with in-memory outputs."""

    span_exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    metric_reader: InMemoryMetricReader = field(default_factory=delta_metric_reader)
    providers: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        meter_provider = MeterProvider(metric_readers=[self.metric_reader])
        self.providers = {"tracer_provider": tracer_provider, "meter_provider": meter_provider}

    def span_names(self) -> list[str]:
        return [span.name for span in self.span_exporter.get_finished_spans()]
