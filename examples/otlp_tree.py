"""otlp_tree: a local OTLP/HTTP endpoint that prints traces as trees, with their log lines.

Run it, point your services at it, and read each request as a tree of spans,
each span followed by the log records written in it, instead of the console
exporter's JSON::

    python examples/otlp_tree.py                  # listens on 127.0.0.1:4318
    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf opentelemetry-instrument python app.py

It accepts what the official OTLP/HTTP protobuf exporters POST to
``/v1/traces``, ``/v1/metrics`` and ``/v1/logs`` (plain, gzip or deflate),
prints every trace once it is complete (see :class:`TracePrinter`) and, when
stopped with Ctrl-C or SIGTERM, the log records that belong to no span and a
summary of the HTTP server duration histograms. Needs ``opentelemetry-proto``
(which the OTLP exporter installs).

A log record is printed under the span whose ``span_id`` it carries (a
logging bridge such as ``opentelemetry-instrumentation-logging`` sets it),
among that span's children in time order, on one line cut to the terminal's
width: ``- SEVERITY logger: message``, where the logger is the event's name
for an event and the message is an exception's type and message when the
record carries one. Logs and spans travel in separate batches, so a trace's
log records may arrive after it was printed: the trace is then printed again,
marked ``(updated: N more log record(s) arrived late)``, as for late spans.
A trace of which only log records arrived waits a while for its spans (the
SDK's default batch delays are 1 s for logs and 5 s for spans).

It is a development aid, not a collector: no batching, retries, auth,
forwarding or storage, and everything stays in memory. Unknown paths get 404
and bodies that do not decode get 400, so that an exporter misconfiguration
shows up as an export error in the service's log.

The demo (``examples/demo.py``) and the tests use its :class:`Receiver`
directly, in-process, and read what arrived as flat records:

>>> with Receiver() as receiver:                      # doctest: +SKIP
...     run_service(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint)
...     receiver.wait_until(lambda r: r.spans(kind="SERVER"), timeout=10)
...     receiver.spans()[0].service
'backend'
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import signal
import sys
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, TextIO

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as ProtoLogRecord
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as ProtoStatus

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"
LOGS_PATH = "/v1/logs"
SERVER_DURATION_METRICS = ("http.server.duration", "http.server.request.duration")
_PROTOBUF = "application/x-protobuf"
# LogRecord.event_name is a recent OTLP field; an older opentelemetry-proto has none.
_HAS_EVENT_NAME = "event_name" in ProtoLogRecord.DESCRIPTOR.fields_by_name
# Log lines are cut to the terminal's width; this one when there is no terminal.
FALLBACK_WIDTH = 100
# At most this many log records outside any span are listed (the newest), the rest counted.
OUTSIDE_LISTED = 20


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
class LogRecord:
    """One received log record; ``trace_id``/``span_id`` are "" outside any span.

    ``scope`` is the instrumentation scope, which the logging bridge names
    after the Python logger (``internalhttp.access``); ``event_name`` is set
    for events (``http.server.request.exception``).
    """

    trace_id: str
    span_id: str
    time_ns: int
    severity_text: str
    severity_number: int
    body: Any
    scope: str = ""
    event_name: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    resource: Mapping[str, Any] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return str(self.resource.get("service.name", "unknown_service"))

    @property
    def name(self) -> str:
        """The event's name, or else the logger's."""
        return self.event_name or self.scope

    @property
    def severity(self) -> str:
        """``severity_text`` as written (the bridge writes the level's name), else the number's name."""
        if self.severity_text:
            return self.severity_text
        try:
            return SeverityNumber.Name(self.severity_number).removeprefix("SEVERITY_NUMBER_")
        except ValueError:  # a number this proto version does not name
            return str(self.severity_number)

    @property
    def text(self) -> str:
        """What the record says, on one line: the exception's type and message if it
        carries one (the framework's error record, the exception event), else the body.

        >>> LogRecord("", "", 0, "ERROR", 17, "error while handling GET /",
        ...           attributes={"exception.type": "KeyError", "exception.message": "'42'"}).text
        "KeyError: '42'"
        """
        exception_type = self.attributes.get("exception.type")
        message = self.attributes.get("exception.message")
        stacktrace = str(self.attributes.get("exception.stacktrace", "")).strip()
        if exception_type and message is None and stacktrace:
            # No message attribute (the logging bridge takes it from args[0], which some
            # exceptions, urllib's HTTPError, lack): the traceback's last line says it.
            text = stacktrace.splitlines()[-1]
        elif exception_type:
            text = f"{exception_type}: {message or ''}"
        else:
            text = "" if self.body is None else str(self.body)
        lines = text.strip().splitlines() or [""]
        return lines[0] + (" [...]" if len(lines) > 1 else "")


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


def _id(raw: bytes) -> str:
    # A log record written outside any span has no ids, or ids of zeros.
    return raw.hex() if any(raw) else ""


def _decode_logs(request: ExportLogsServiceRequest) -> list[LogRecord]:
    records = []
    for resource_logs in request.resource_logs:
        resource = _attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for record in scope_logs.log_records:
                records.append(
                    LogRecord(
                        trace_id=_id(record.trace_id),
                        span_id=_id(record.span_id),
                        # The time of the event if the writer gave one, else when it was seen.
                        time_ns=record.time_unix_nano or record.observed_time_unix_nano,
                        severity_text=record.severity_text,
                        severity_number=record.severity_number,
                        body=_value(record.body),
                        scope=scope_logs.scope.name,
                        event_name=record.event_name if _HAS_EVENT_NAME else "",
                        attributes=_attributes(record.attributes),
                        resource=resource,
                    )
                )
    return records


class Receiver:
    """An OTLP/HTTP protobuf receiver on a background thread; also a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        on_spans: Optional[Callable[[list[Span]], None]] = None,
        keep_spans: bool = True,
        on_logs: Optional[Callable[[list[LogRecord]], None]] = None,
        keep_logs: bool = True,
    ) -> None:
        """``on_spans`` is called with the spans of each export as they arrive (on a
        handler thread); ``keep_spans=False`` keeps none for :meth:`spans`.
        ``on_logs`` and ``keep_logs`` are the same for log records and :meth:`logs`."""
        self._on_spans = on_spans
        self._keep_spans = keep_spans
        self._on_logs = on_logs
        self._keep_logs = keep_logs
        self.log_records = 0  # how many arrived, kept or not
        self._logs: list[LogRecord] = []
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

    def logs(self, *, service: Optional[str] = None, name: Optional[str] = None) -> list[LogRecord]:
        """Log records in arrival order; ``name`` is the logger's or the event's."""
        with self._lock:
            records = list(self._logs)
        return [
            record
            for record in records
            if (service is None or record.service == service) and (name is None or record.name == name)
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
            if self._keep_spans:
                self._spans.extend(spans)
            self._exports += 1
            self._changed.notify_all()
        if self._on_spans is not None:
            self._on_spans(spans)
        return ExportTraceServiceResponse().SerializeToString()

    def _add_logs(self, body: bytes) -> bytes:
        records = _decode_logs(ExportLogsServiceRequest.FromString(body))
        with self._changed:
            self.log_records += len(records)
            if self._keep_logs:
                self._logs.extend(records)
            self._exports += 1
            self._changed.notify_all()
        if self._on_logs is not None:
            self._on_logs(records)
        return ExportLogsServiceResponse().SerializeToString()

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
        LOGS_PATH: receiver._add_logs,
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


# Traces

Row = tuple[int, "Span | LogRecord"]  # depth in the tree, and what sits there


def terminal_width() -> int:
    """The width log lines are cut to: the terminal's, else ``COLUMNS``, else ``FALLBACK_WIDTH``."""
    return shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns


def print_traces(
    spans: list[Span],
    out: TextIO = sys.stdout,
    logs: Sequence[LogRecord] = (),
    width: Optional[int] = None,
) -> None:
    """Every trace at once, one tree each with its log lines, alike traces shown once (the demo's summary).

    Two traces are alike when they have the same shape (services, names,
    kinds, statuses, and which loggers wrote at which severity under which
    span), as the demo's repeated checkouts do. Log records outside any span
    are listed after the traces.
    """
    width = width or terminal_width()
    traces = _by_trace(spans, logs)
    shown: dict[tuple[tuple[object, ...], ...], list[list[Row]]] = {}
    for trace_spans, trace_logs in sorted(traces.values(), key=_trace_start):
        rows = list(_walk(trace_spans, trace_logs))
        shown.setdefault(tuple(map(_shape, rows)), []).append(rows)
    print(
        f"Traces: {len(traces)}, each a tree of spans (a child is indented under its parent);"
        "\n  under each span its log records in time order: - severity logger: message",
        file=out,
    )
    labels = [
        _label(depth, item) for group in shown.values() for depth, item in group[0] if isinstance(item, Span)
    ]
    label_width = max(map(len, labels), default=0)
    print(_columns(label_width), file=out)
    for group in shown.values():
        alike = f"  (and {len(group) - 1} more like it)" if len(group) > 1 else ""
        print("\n".join(_trace_lines(group[0], label_width, alike, width)), file=out)
    outside = [record for record in logs if not record.trace_id]
    if outside:
        print("\n".join(format_outside(outside, width)), file=out)


def _by_trace(spans: list[Span], logs: Sequence[LogRecord]) -> dict[str, tuple[list[Span], list[LogRecord]]]:
    traces: dict[str, tuple[list[Span], list[LogRecord]]] = defaultdict(lambda: ([], []))
    for span in spans:
        traces[span.trace_id][0].append(span)
    for record in logs:
        if record.trace_id:
            traces[record.trace_id][1].append(record)
    return traces


def _start(item: Span | LogRecord) -> int:
    return item.start_ns if isinstance(item, Span) else item.time_ns


def _trace_start(trace: tuple[list[Span], list[LogRecord]]) -> int:
    items: list[Span | LogRecord] = [*trace[0], *trace[1]]
    return min(map(_start, items))


def _shape(row: Row) -> tuple[object, ...]:
    depth, item = row
    if isinstance(item, Span):
        return (depth, item.service, item.name, item.kind, item.status)
    return (depth, "log", item.name, item.severity)


def _columns(width: int) -> str:
    return f"    {'service   span name':<{width}}  {'kind':<6}  {'status':<6} {'http':>4}  {'ms':>7}"


def format_trace(
    spans: list[Span], note: str = "", logs: Sequence[LogRecord] = (), width: Optional[int] = None
) -> str:
    """One trace as a tree: a heading line, then one line per span, children indented,
    and under each span its log records (cut to ``width``, the terminal's by default).

    >>> root = Span("ab" * 16, "01" * 8, "", "GET /users/<user_id>", "SERVER", "UNSET", 0, 2_000_000,
    ...             {"http.method": "GET", "http.target": "/users/42", "http.status_code": 200},
    ...             {"service.name": "shop"})
    >>> child = Span("ab" * 16, "02" * 8, "01" * 8, "SELECT", "CLIENT", "UNSET", 500_000, 1_500_000,
    ...              {}, {"service.name": "shop"})
    >>> access = LogRecord("ab" * 16, "01" * 8, 1_900_000, "INFO", 9, '127.0.0.1 - "GET /users/42" 200 11',
    ...                    "internalhttp.access")
    >>> print(format_trace([child, root], logs=[access], width=60))
      trace abababab  GET /users/42
        shop      GET /users/<user_id>  SERVER  UNSET   200     2.00
          shop      SELECT              CLIENT  UNSET     -     1.00
          - INFO  internalhttp.access: 127.0.0.1 - "GET /user...
    """
    rows = list(_walk(spans, logs))
    label_width = max((len(_label(depth, item)) for depth, item in rows if isinstance(item, Span)), default=0)
    return "\n".join(_trace_lines(rows, label_width, note, width or terminal_width()))


def format_outside(records: Sequence[LogRecord], width: int) -> list[str]:
    """The log records that belong to no span: a count, then the newest ``OUTSIDE_LISTED``, oldest first."""
    newest = sorted(records, key=lambda record: record.time_ns)[-OUTSIDE_LISTED:]
    which = f"; the newest {len(newest)}" if len(newest) < len(records) else ""
    lines = [f"{len(records)} log record(s) outside any span{which}:"]
    lines.extend(_cut(f"    {record.service:<8}  {_log_text(record)}", width) for record in newest)
    return lines


def _trace_lines(rows: list[Row], label_width: int, note: str, width: int) -> list[str]:
    root = next((item for _, item in rows if isinstance(item, Span)), None)
    heading = (_target(root) or root.name) if root is not None else "(only log records of it arrived)"
    lines = [f"  trace {rows[0][1].trace_id[:8]}  {heading}{note}"]
    for depth, item in rows:
        if isinstance(item, Span):
            lines.append(
                f"    {_label(depth, item):<{label_width}}  {item.kind:<6}  {item.status:<6}"
                f" {_http_status(item):>4}  {item.duration_ms:7.2f}"
            )
        else:
            lines.append(_cut(f"    {'  ' * depth}{_log_text(item)}", width))
    return lines


def _log_text(record: LogRecord) -> str:
    return f"- {record.severity:<5} {record.name}: {record.text}"


def _cut(line: str, width: int) -> str:
    return line if len(line) <= width else line[: max(width - 3, 0)] + "..."


class TracePrinter:
    """Prints each trace as a tree, its log records under their spans, once it looks complete.

    A trace is complete when nothing (no span, no log record) arrived for it
    for ``idle`` seconds, or ``root_grace`` seconds after its root span (one
    without a parent) arrived, whichever comes first. A trace of which only
    log records arrived waits ``logs_wait`` seconds for its spans instead:
    the SDK exports logs every second but spans only every five by default,
    so a request's log lines often come first. Spans or log records of a
    trace that arrive after it was printed (a slow service's batch, or the
    other signal's) print it again, marked as updated. Log records outside
    any span are kept for :meth:`print_outside`.
    """

    def __init__(
        self,
        out: TextIO = sys.stdout,
        idle: float = 1.0,
        root_grace: float = 0.2,
        logs_wait: float = 10.0,
        width: Optional[int] = None,
    ) -> None:
        self._out = out
        self._idle = idle
        self._root_grace = root_grace
        self._logs_wait = logs_wait
        self._width = width  # None: the terminal's, at each print
        self._lock = threading.Lock()
        self._spans: dict[str, list[Span]] = defaultdict(list)  # every span, per trace
        self._logs: dict[str, list[LogRecord]] = defaultdict(list)  # every log record, per trace
        self._outside: list[LogRecord] = []  # log records of no span
        self._last_arrival: dict[str, float] = {}  # traces with spans or logs not printed yet
        self._root_arrival: dict[str, float] = {}
        self._printed: dict[str, tuple[int, int]] = {}  # trace id -> spans, log records printed so far

    @property
    def traces_printed(self) -> int:
        """How many traces were printed (a trace printed again counts once)."""
        with self._lock:
            return len(self._printed)

    def add(self, spans: list[Span]) -> None:
        """Take newly received spans (the receiver's ``on_spans`` callback)."""
        now = time.monotonic()
        with self._lock:
            for span in spans:
                self._spans[span.trace_id].append(span)
                self._last_arrival[span.trace_id] = now
                if not span.parent_span_id:
                    self._root_arrival.setdefault(span.trace_id, now)

    def add_logs(self, records: list[LogRecord]) -> None:
        """Take newly received log records (the receiver's ``on_logs`` callback)."""
        now = time.monotonic()
        with self._lock:
            for record in records:
                if record.trace_id:
                    self._logs[record.trace_id].append(record)
                    self._last_arrival[record.trace_id] = now
                else:
                    self._outside.append(record)

    def print_complete(self, now: Optional[float] = None, everything: bool = False) -> int:
        """Print the traces that are complete (all pending ones with ``everything``); how many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            due = [
                trace_id
                for trace_id, last in self._last_arrival.items()
                if everything or self._complete(trace_id, now - last, now)
            ]
            batches = [self._take(trace_id) for trace_id in due]
            for _, text in sorted(batches):
                print(text, file=self._out, flush=True)
            return len(batches)

    def print_outside(self) -> int:
        """List the log records that arrived outside any span (see :func:`format_outside`); how many."""
        with self._lock:
            records = list(self._outside)
        if records:
            print(
                "\n".join(format_outside(records, self._width or terminal_width())),
                file=self._out,
                flush=True,
            )
        return len(records)

    def _complete(self, trace_id: str, quiet: float, now: float) -> bool:
        if not self._spans.get(trace_id):
            return quiet >= self._logs_wait
        root = self._root_arrival.get(trace_id)
        return quiet >= self._idle or (root is not None and now - root >= self._root_grace)

    def _take(self, trace_id: str) -> tuple[int, str]:
        """A pending trace, formatted (and its start, to print in order); no longer pending."""
        del self._last_arrival[trace_id]
        spans = list(self._spans.get(trace_id, ()))
        logs = list(self._logs.get(trace_id, ()))
        earlier = self._printed.get(trace_id)
        self._printed[trace_id] = (len(spans), len(logs))
        note = _late_note(len(spans) - earlier[0], len(logs) - earlier[1]) if earlier else ""
        items: list[Span | LogRecord] = [*spans, *logs]
        start = min(map(_start, items))
        return start, format_trace(spans, note, logs, self._width)


def _late_note(spans: int, logs: int) -> str:
    late = [f"{count} more {what}" for count, what in ((spans, "span(s)"), (logs, "log record(s)")) if count]
    return f"  (updated: {', '.join(late)} arrived late)"


def _walk(trace: list[Span], logs: Sequence[LogRecord] = ()) -> Iterator[Row]:
    """Spans depth first, each followed by its children and its log records, in time order."""
    ids = {span.span_id for span in trace}
    children: dict[str, list[Span | LogRecord]] = defaultdict(list)
    items: list[Span | LogRecord] = [*trace, *logs]
    for item in items:
        parent = item.parent_span_id if isinstance(item, Span) else item.span_id
        # A parent that is not in the trace (not exported, or remote) makes a root;
        # a log record whose span did not arrive shows at the top of its trace.
        children[parent if parent in ids else ""].append(item)

    def visit(parent: str, depth: int) -> Iterator[Row]:
        for item in sorted(children[parent], key=_start):
            yield depth, item
            if isinstance(item, Span):
                yield from visit(item.span_id, depth + 1)

    return visit("", 0)


def _label(depth: int, span: Span) -> str:
    return f"{'  ' * depth}{span.service:<8}  {span.name}"


def _target(span: Span) -> str:
    # The old and the stable HTTP conventions name the request target differently.
    method = span.attributes.get("http.method") or span.attributes.get("http.request.method", "")
    target = span.attributes.get("http.target") or span.attributes.get("url.path", "")
    return f"{method} {target}".strip()


def _http_status(span: Span) -> str:
    code = span.attributes.get("http.status_code") or span.attributes.get("http.response.status_code")
    return str(code) if code else "-"


# Metrics


def print_metrics(receiver: Receiver, out: TextIO = sys.stdout) -> None:
    """Request count and estimated p50/p95 per service, route and status."""
    names = receiver.metric_names()
    name = next((n for n in SERVER_DURATION_METRICS if n in names), None)
    if name is None:
        print("Metrics: no HTTP server duration histogram arrived.", file=out)
    else:
        _print_durations(receiver, name, out)
    others = sorted(names - {name})
    if others:
        print(f"  Other metrics received: {', '.join(others)}", file=out)


def _print_durations(receiver: Receiver, name: str, out: TextIO) -> None:
    groups: dict[tuple[str, str, str], list[HistogramPoint]] = defaultdict(list)
    for point in receiver.latest_histogram_points(name):
        groups[(point.service, _route(point), _point_status(point))].append(point)
    # The stable conventions measure in seconds, the old ones in milliseconds.
    scale = 1000.0 if groups and next(iter(groups.values()))[0].unit == "s" else 1.0
    route_w = max([len("route"), *(len(route) for _, route, _ in groups)])
    status_w = max([len("status"), *(len(status) for _, _, status in groups)])
    print(f"Metrics: {name} per service, route and status (ms; p50/p95 estimated from the buckets)", file=out)
    row = "    {:<9} {:<{route_w}}  {:<{status_w}}  {:>5} {:>7} {:>7}"
    print(
        row.format("service", "route", "status", "count", "p50", "p95", route_w=route_w, status_w=status_w),
        file=out,
    )
    for (service, route, status), points in sorted(groups.items()):
        merged = merge_points(points)
        p50, p95 = (_ms(merged.quantile(q), scale) for q in (0.5, 0.95))
        print(
            row.format(service, route, status, merged.count, p50, p95, route_w=route_w, status_w=status_w),
            file=out,
        )
    if not all(status.isdigit() for _, _, status in groups):
        print(
            "  A status that is not a number (and http '-' in the traces): the handler raised, so no"
            "\n  status code was recorded, only the exception; the serving layer then answered 500.",
            file=out,
        )


def _route(point: HistogramPoint) -> str:
    return str(point.attributes.get("http.route", "(no route)"))


def _point_status(point: HistogramPoint) -> str:
    code = point.attributes.get("http.status_code") or point.attributes.get("http.response.status_code")
    if code:
        return str(code)
    # The handler raised: the instrumentation saw an exception, not a response
    # (the serving layer answered 500 after it). The stable conventions name it.
    return str(point.attributes.get("error.type", "raised"))


def _ms(value: Optional[float], scale: float) -> str:
    return "-" if value is None else f"{value * scale:.2f}"


# The command line


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="A local OTLP/HTTP endpoint for your own services: prints each trace as a tree, with the"
        " log records under their spans, as it completes, and a summary of the HTTP server duration metrics"
        " when stopped (Ctrl-C or SIGTERM).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=4318, help="port to listen on, 0 for any free one (default: %(default)s)"
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=1.0,
        help="print a trace once no span arrived for it for this many seconds (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    printer = TracePrinter(idle=args.idle)
    try:
        receiver = Receiver(
            args.host,
            args.port,
            on_spans=printer.add,
            keep_spans=False,
            on_logs=printer.add_logs,
            keep_logs=False,
        )
    except OSError as exc:
        print(f"otlp_tree: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with receiver:
        print(
            f"otlp_tree: listening on {receiver.endpoint} for OTLP/HTTP (protobuf). Run your services with\n"
            f"  OTEL_EXPORTER_OTLP_ENDPOINT={receiver.endpoint} OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf\n"
            "Each trace prints once complete; columns: service and span name, kind, status,"
            " HTTP status, ms;\nunder each span its log records (- severity logger: message)."
            "\nCtrl-C (or SIGTERM) stops and prints the metrics summary.",
            flush=True,
        )
        # The timeout keeps the main thread waking up: signals are handled and traces printed.
        while not stop.wait(0.1):
            printer.print_complete()
    printer.print_complete(everything=True)
    printer.print_outside()
    print(
        f"\notlp_tree: stopped; {printer.traces_printed} trace(s), {receiver.log_records} log record(s).",
        flush=True,
    )
    print_metrics(receiver)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
