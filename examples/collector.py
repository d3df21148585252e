"""A tiny OTLP/HTTP receiver: just enough of a collector for the demo and the tests.

It listens on 127.0.0.1, accepts the protobuf bodies that the official
OTLP/HTTP exporters POST to ``/v1/traces`` and ``/v1/metrics`` (plain, gzip or
deflate), decodes them with ``opentelemetry-proto`` and keeps what it got in
memory as flat, easy-to-assert records:

>>> with Receiver() as receiver:                      # doctest: +SKIP
...     run_service(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
...     receiver.wait_until(lambda r: r.spans(kind="SERVER"), timeout=10)
...     receiver.spans()[0].service
'backend'

It is not a collector: no batching, retries, auth or other signals. Unknown
paths get 404 and bodies that do not decode get 400, so that an exporter
misconfiguration shows up as an export error in the service's log.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
_PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class Span:
    """One received span, ids as lower-case hex (``parent_span_id`` is "" for a root)."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str  # "SERVER", "CLIENT", "INTERNAL", ...
    status: str  # "UNSET", "OK" or "ERROR"
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)
    resource: Mapping[str, Any] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", "unknown_service"))

    @property
    def pid(self) -> Optional[int]:
        """``process.pid`` from the resource; present only with the ``process`` detector."""
        pid = self.resource.get("process.pid")
        return int(pid) if pid is not None else None

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass(frozen=True)
class HistogramPoint:
    """One data point of an explicit-bucket histogram, as exported.

    Bucket ``i`` counts values in ``(bounds[i-1], bounds[i]]``; the first has
    no lower bound and the last no upper bound, so there is one more count
    than there are bounds.
    """

    metric: str
    unit: str
    attributes: Mapping[str, Any]
    resource: Mapping[str, Any]
    start_ns: int
    time_ns: int
    count: int
    sum: float
    bucket_counts: tuple[int, ...]
    bounds: tuple[float, ...]
    min: Optional[float] = None
    max: Optional[float] = None

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", "unknown_service"))

    def quantile(self, q: float) -> Optional[float]:
        """Estimate the ``q``-quantile (0..1) from the buckets; ``None`` when empty.

        The value is interpolated linearly inside the bucket that holds the
        rank, the way Prometheus' ``histogram_quantile`` does, with the
        exported ``min``/``max`` closing the open-ended first and last
        buckets. It is an estimate: exact only to the bucket's width.

        >>> point = HistogramPoint("d", "ms", {}, {}, 0, 0, 4, 40.0, (0, 2, 2), (0.0, 10.0), 2.0, 30.0)
        >>> point.quantile(0.5), point.quantile(1.0)
        (10.0, 30.0)
        """
        if self.count <= 0:
            return None
        rank = q * self.count
        seen = 0
        for index, in_bucket in enumerate(self.bucket_counts):
            if in_bucket and seen + in_bucket >= rank:
                low = self.bounds[index - 1] if index > 0 else self.min
                high = self.bounds[index] if index < len(self.bounds) else self.max
                if low is None or (self.min is not None and self.min > low):
                    low = self.min if self.min is not None else high
                if high is None or (self.max is not None and self.max < high):
                    high = self.max if self.max is not None else low
                if low is None or high is None:  # no bounds and no min/max: nothing to say
                    return None
                return low + (high - low) * max(rank - seen, 0) / in_bucket
            seen += in_bucket
        return self.max


def merge_points(points: list[HistogramPoint]) -> HistogramPoint:
    """Add up points of one metric with the same bucket bounds (e.g. several streams).

    The result keeps the first point's metric, unit, attributes and resource.
    """
    first = points[0]
    if any(p.bounds != first.bounds for p in points):
        raise ValueError(f"cannot merge {first.metric} points with different bucket bounds")
    mins = [p.min for p in points if p.min is not None]
    maxes = [p.max for p in points if p.max is not None]
    return replace(
        first,
        start_ns=min(p.start_ns for p in points),
        time_ns=max(p.time_ns for p in points),
        count=sum(p.count for p in points),
        sum=sum(p.sum for p in points),
        bucket_counts=tuple(map(sum, zip(*(p.bucket_counts for p in points), strict=True))),
        min=min(mins) if mins else None,
        max=max(maxes) if maxes else None,
    )


def _value(value: AnyValue) -> Any:
    """An OTLP ``AnyValue`` as the Python value it holds."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        result[pair.key] = _value(pair.value)
    return result


def _kind(span: ProtoSpan) -> str:
    return ProtoSpan.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_")


def _status(span: ProtoSpan) -> str:
    return ProtoStatus.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_")


class Receiver:
    """An OTLP/HTTP protobuf receiver on a background thread; also a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._spans: list[Span] = []
        self._histograms: list[HistogramPoint] = []
        self._metric_names: set[str] = set()
        self._exports = 0  # bumped on every export, so that wait_until notices news
        self._host = host
        self._httpd = ThreadingHTTPServer((host, port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    @property
    def endpoint(self) -> str:
        """The base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``; exporters append ``/v1/...``."""
        return f"http://{self._host}:{self._httpd.server_address[1]}"

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="otlp-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # What arrived. Each call returns a snapshot, safe to use while more arrives.

    def spans(self, *, kind: Optional[str] = None, service: Optional[str] = None) -> list[Span]:
        with self._lock:
            spans = list(self._spans)
        return [
            span
            for span in spans
            if (kind is None or span.kind == kind) and (service is None or span.service == service)
        ]

    def metric_names(self) -> set[str]:
        with self._lock:
            return set(self._metric_names)

    def histogram_points(self, metric: str) -> list[HistogramPoint]:
        """Every point of ``metric`` received, in arrival order."""
        with self._lock:
            return [p for p in self._histograms if p.metric == metric]

    def latest_histogram_points(self, metric: str) -> list[HistogramPoint]:
        """The newest point of each stream of ``metric``.

        The SDK exports cumulative histograms by default: every export repeats
        the totals since the process started, so only the newest point of a
        stream (same resource, same attributes) counts; adding them up would
        count requests several times.
        """
        latest: dict[tuple[str, str], HistogramPoint] = {}
        for point in self.histogram_points(metric):
            key = (repr(sorted(point.resource.items())), repr(sorted(point.attributes.items())))
            if key not in latest or point.time_ns >= latest[key].time_ns:
                latest[key] = point
        return list(latest.values())

    def wait_until(self, condition: Callable[[Receiver], Any], timeout: float) -> bool:
        """Wait until ``condition(self)`` is truthy, re-checking whenever data arrives."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = self._exports
            if condition(self):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait_for(lambda: self._exports != seen, remaining)  # noqa: B023

    # Decoding, called from the HTTP handler threads.

    def _add_traces(self, body: bytes) -> bytes:
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Span(
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=_kind(span),
                            status=_status(span),
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes=_attributes(span.attributes),
                            resource=resource,
                        )
                    )
        with self._changed:
            self._spans.extend(spans)
            self._exports += 1
            self._changed.notify_all()
        return ExportTraceServiceResponse().SerializeToString()

    def _add_metrics(self, body: bytes) -> bytes:
        request = ExportMetricsServiceRequest.FromString(body)
        names, points = set(), []
        for resource_metrics in request.resource_metrics:
            resource = _attributes(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    names.add(metric.name)
                    if metric.WhichOneof("data") != "histogram":
                        continue  # the demo and tests only read the duration histograms
                    for point in metric.histogram.data_points:
                        points.append(
                            HistogramPoint(
                                metric=metric.name,
                                unit=metric.unit,
                                attributes=_attributes(point.attributes),
                                resource=resource,
                                start_ns=point.start_time_unix_nano,
                                time_ns=point.time_unix_nano,
                                count=point.count,
                                sum=point.sum,
                                bucket_counts=tuple(point.bucket_counts),
                                bounds=tuple(point.explicit_bounds),
                                min=point.min if point.HasField("min") else None,
                                max=point.max if point.HasField("max") else None,
                            )
                        )
        with self._changed:
            self._metric_names |= names
            self._histograms.extend(points)
            self._exports += 1
            self._changed.notify_all()
        return ExportMetricsServiceResponse().SerializeToString()


def _make_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    routes: dict[str, Callable[[bytes], bytes]] = {
        TRACES_PATH: receiver._add_traces,
        METRICS_PATH: receiver._add_metrics,
    }

    class _OTLPHandler(BaseHTTPRequestHandler):
        # HTTP/1.1 so that the exporter's connection pool can keep one connection.
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            decode = routes.get(self.path.split("?", 1)[0])
            if decode is None:
                self._answer(HTTPStatus.NOT_FOUND, b"", "text/plain")
                return
            try:
                answer = decode(_decompress(body, self.headers.get("Content-Encoding", "")))
            except (DecodeError, OSError, EOFError, zlib.error, ValueError) as exc:
                self._answer(HTTPStatus.BAD_REQUEST, str(exc).encode(), "text/plain")
                return
            self._answer(HTTPStatus.OK, answer, _PROTOBUF)

        def _answer(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per export would drown the demo's output

    return _OTLPHandler


def _decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding in ("", "identity"):
        return body
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")
