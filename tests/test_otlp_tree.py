"""examples/otlp_tree.py: the local OTLP/HTTP endpoint that prints traces as trees.

The tool runs as a user runs it, ``python examples/otlp_tree.py --port N``, and
receives from the SDK's own OTLP/HTTP exporters; the trace-completion rules
are checked in-process with a controlled clock.
"""

from __future__ import annotations

import io
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context, get_current
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from otlp_tree import OUTSIDE_LISTED, LogRecord, Span, TracePrinter, format_trace, print_traces
from readme_blocks import ROOT, command_lines, readme_section

TOOL = ROOT / "examples" / "otlp_tree.py"


def readme_command() -> list[str]:
    """The README's command that starts the tool, with this interpreter as ``python``."""
    (line,) = command_lines(readme_section("Seeing your own traces"), "python")
    command = shlex.split(line, comments=True)
    assert command == ["python", "examples/otlp_tree.py"]
    return [sys.executable, *command[1:]]


TIMEOUT_S = 20


@dataclass
class RunningTool:
    process: subprocess.Popen[str]
    endpoint: str
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    reader: threading.Thread | None = None  # puts each line of the tool's output into ``lines``
    seen: list[str] = field(default_factory=list)

    def wait_for(self, text: str) -> str:
        """Everything printed until a line containing ``text`` (that line included)."""
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return "".join(self.seen)
        raise AssertionError(f"otlp_tree never printed {text!r}; it printed:\n{''.join(self.seen)}")

    def stop(self) -> str:
        """SIGTERM; everything it printed."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(TIMEOUT_S)
        assert self.reader is not None
        self.reader.join(TIMEOUT_S)  # the whole output is in the queue
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


@pytest.fixture
def tool() -> Iterator[RunningTool]:
    process = subprocess.Popen(
        [*readme_command(), "--port", "0", "--idle", "0.5"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = process.stdout
    reader = threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True)
    reader.start()
    running = RunningTool(process, endpoint="", lines=lines, reader=reader)
    try:
        first = running.wait_for("listening on")
        running.endpoint = first.split("listening on ", 1)[1].split()[0]
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(TIMEOUT_S)
        stdout.close()


RESOURCE = Resource.create({"service.name": "shop"})
ACCESS_LINE = '127.0.0.1 - "GET /users/42" 200 11'


def _export_a_request(endpoint: str, logs: LoggerProvider | None = None) -> None:
    """What an instrumented service sends for one request: a SERVER span with a CLIENT child, a histogram.

    With ``logs``, it also writes there, in the SERVER span's context, the
    access line and an exception event, after the CLIENT span ended.
    """
    resource = RESOURCE
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
    )
    tracer = tracer_provider.get_tracer("test")
    attributes = {"http.method": "GET", "http.target": "/users/42", "http.status_code": 200}
    with tracer.start_as_current_span("GET /users/<user_id>", kind=SpanKind.SERVER, attributes=attributes):
        with tracer.start_as_current_span("SELECT users", kind=SpanKind.CLIENT) as child:
            child.set_status(Status(StatusCode.ERROR))
        if logs is not None:
            _write_the_request_logs(logs)
    tracer_provider.shutdown()
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics"), export_interval_millis=60_000
    )
    meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
    histogram = meter_provider.get_meter("test").create_histogram("http.server.duration", unit="ms")
    histogram.record(12.0, {"http.route": "/users/<user_id>", "http.status_code": 200})
    meter_provider.shutdown()  # exports once more


def test_the_tool_prints_each_trace_as_a_tree_and_the_metrics_summary_when_stopped(tool: RunningTool) -> None:
    _export_a_request(tool.endpoint)

    printed = tool.wait_for("SELECT users")
    output = tool.stop()

    tree = [line.split() for line in printed.splitlines() if line.startswith("    ")]
    assert tree[-2][:5] == ["shop", "GET", "/users/<user_id>", "SERVER", "UNSET"]
    assert tree[-1][:5] == ["shop", "SELECT", "users", "CLIENT", "ERROR"]
    assert tool.process.returncode == 0, output
    assert "1 trace(s)" in output
    summary = output.split("Metrics: http.server.duration", 1)[1].splitlines()
    assert summary[2].split()[:4] == ["shop", "/users/<user_id>", "200", "1"]


def _write_the_request_logs(logs: LoggerProvider) -> None:
    context = get_current()  # inside the SERVER span, after its child ended
    logs.get_logger("internalhttp.access").emit(
        context=context, severity_number=SeverityNumber.INFO, severity_text="INFO", body=ACCESS_LINE
    )
    logs.get_logger("opentelemetry_ext_internalhttp").emit(
        context=context,
        severity_number=SeverityNumber.ERROR,
        severity_text="ERROR",
        event_name="http.server.request.exception",
        attributes={
            "exception.type": "RuntimeError",
            "exception.message": "boom",
            "exception.stacktrace": "...",
        },
    )


def test_the_tool_prints_log_records_under_their_span_reprinting_a_trace_when_they_arrive_late(
    tool: RunningTool,
) -> None:
    memory = InMemoryLogRecordExporter()
    logs = LoggerProvider(resource=RESOURCE)
    logs.add_log_record_processor(SimpleLogRecordProcessor(memory))
    _export_a_request(tool.endpoint, logs)
    logs.get_logger("shop").emit(
        context=Context(), severity_number=SeverityNumber.INFO, severity_text="INFO", body="started"
    )
    first = tool.wait_for("SELECT users")  # printed: the spans have all arrived
    exporter = OTLPLogExporter(endpoint=f"{tool.endpoint}/v1/logs")
    exporter.export(memory.get_finished_logs())  # the log batch comes after the trace was printed
    exporter.shutdown()
    logs.shutdown()

    tool.wait_for("(updated: 2 more log record(s) arrived late)")
    tree = tool.wait_for("http.server.request.exception")[len(first) :].splitlines()[-4:]
    output = tool.stop()

    assert ACCESS_LINE not in first
    assert tree[0].split()[:4] == ["shop", "GET", "/users/<user_id>", "SERVER"]
    assert tree[1].split()[:3] == ["shop", "SELECT", "users"]
    # Under the SERVER span: indented as its children are, after the child (time order).
    assert tree[2] == f"      - INFO  internalhttp.access: {ACCESS_LINE}"
    assert tree[3] == "      - ERROR http.server.request.exception: RuntimeError: boom"
    assert "1 log record(s) outside any span:\n    shop      - INFO  shop: started\n" in output
    assert "otlp_tree: stopped; 1 trace(s), 3 log record(s)." in output


def test_the_tool_says_so_when_its_port_is_taken(tool: RunningTool) -> None:
    port = tool.endpoint.rsplit(":", 1)[1]
    result = subprocess.run(
        [sys.executable, str(TOOL), "--port", port], capture_output=True, text=True, timeout=TIMEOUT_S
    )

    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def _span(span_id: str, parent: str = "", name: str = "work", trace: str = "ab" * 16) -> Span:
    return Span(trace, span_id * 8, parent * 8 if parent else "", name, "INTERNAL", "UNSET", 0, 1_000_000)


def test_a_trace_without_its_root_is_printed_once_no_span_arrived_for_the_idle_time() -> None:
    out = io.StringIO()
    printer = TracePrinter(out, idle=1.0, root_grace=0.2)
    printer.add([_span("02", parent="01")])  # the root is still running elsewhere
    start = time.monotonic()

    assert printer.print_complete(now=start + 0.5) == 0
    assert printer.print_complete(now=start + 1.1) == 1
    assert "work" in out.getvalue()


def test_a_trace_is_printed_soon_after_its_root_span_arrived() -> None:
    out = io.StringIO()
    printer = TracePrinter(out, idle=5.0, root_grace=0.2)
    printer.add([_span("02", parent="01", name="child"), _span("01", name="root")])
    start = time.monotonic()

    assert printer.print_complete(now=start + 0.3) == 1
    assert [line.split()[1] for line in out.getvalue().splitlines()[1:]] == ["root", "child"]


def test_spans_that_arrive_after_their_trace_was_printed_print_it_again_marked_as_updated() -> None:
    out = io.StringIO()
    printer = TracePrinter(out, idle=1.0, root_grace=0.0)
    printer.add([_span("01", name="root")])
    printer.print_complete(now=time.monotonic() + 0.1)
    printer.add([_span("02", parent="01", name="late")])

    assert printer.print_complete(now=time.monotonic() + 0.1) == 1
    assert "(updated: 1 more span(s) arrived late)" in out.getvalue()
    assert "late" in out.getvalue().splitlines()[-1]


def test_stopping_prints_the_traces_still_waiting() -> None:
    out = io.StringIO()
    printer = TracePrinter(out, idle=60.0)
    printer.add([_span("02", parent="01", name="orphan")])

    assert printer.print_complete(everything=True) == 1


def test_a_span_whose_parent_never_arrived_is_shown_as_a_root() -> None:
    lines = format_trace([_span("03", parent="02", name="grandchild")]).splitlines()

    assert lines[1].split()[1] == "grandchild"


def _log(
    span_id: str,
    body: str,
    time_ns: int,
    trace: str = "ab" * 16,
    severity: str = "INFO",
    attributes: dict[str, str] | None = None,
) -> LogRecord:
    return LogRecord(
        trace_id=trace,
        span_id=span_id * 8 if span_id else "",
        time_ns=time_ns,
        severity_text=severity,
        severity_number=9,
        body=body,
        scope="app",
        attributes=attributes or {},
    )


def test_log_records_print_under_their_span_in_time_order_among_its_children() -> None:
    out = io.StringIO()
    printer = TracePrinter(out, idle=1.0, root_grace=0.2)
    root = Span("ab" * 16, "01" * 8, "", "root", "SERVER", "UNSET", 0, 10_000_000)
    child = Span("ab" * 16, "02" * 8, "01" * 8, "child", "CLIENT", "UNSET", 2_000_000, 4_000_000)
    printer.add_logs([_log("01", "after the child", 5_000_000), _log("02", "in the child", 3_000_000)])
    printer.add_logs([_log("01", "before the child", 1_000_000)])
    printer.add([child, root])

    assert printer.print_complete(now=time.monotonic() + 0.3) == 1
    assert out.getvalue().splitlines()[1:] == [
        "    unknown_service  root     SERVER  UNSET     -    10.00",
        "      - INFO  app: before the child",
        "      unknown_service  child  CLIENT  UNSET     -     2.00",
        "        - INFO  app: in the child",
        "      - INFO  app: after the child",
    ]


def test_a_trace_of_which_only_log_records_arrived_waits_for_its_spans_then_prints_them_alone() -> None:
    out = io.StringIO()
    printer = TracePrinter(out, idle=1.0, root_grace=0.2, logs_wait=5.0)
    printer.add_logs([_log("01", "a line", 0)])
    start = time.monotonic()

    assert printer.print_complete(now=start + 1.5) == 0  # the spans may be in a slower batch
    assert printer.print_complete(now=start + 5.1) == 1
    assert out.getvalue().splitlines() == [
        "  trace abababab  (only log records of it arrived)",
        "    - INFO  app: a line",
    ]


def test_log_records_that_arrive_after_their_trace_was_printed_print_it_again_marked_as_updated() -> None:
    out = io.StringIO()
    printer = TracePrinter(out, idle=1.0, root_grace=0.0)
    printer.add([_span("01", name="root")])
    printer.print_complete(now=time.monotonic() + 0.1)
    printer.add_logs([_log("01", "late line", 0)])

    assert printer.print_complete(now=time.monotonic() + 0.1) == 1
    assert "(updated: 1 more log record(s) arrived late)" in out.getvalue()
    assert out.getvalue().splitlines()[-1] == "      - INFO  app: late line"
    assert printer.traces_printed == 1


def test_log_records_outside_any_span_are_kept_and_listed_the_newest_ones() -> None:
    out = io.StringIO()
    printer = TracePrinter(out, width=80)
    count = OUTSIDE_LISTED + 5
    printer.add_logs([_log("", f"line {n}", n, trace="") for n in range(count)])

    assert printer.print_complete(everything=True) == 0
    assert printer.print_outside() == count
    lines = out.getvalue().splitlines()
    assert lines[0] == f"{count} log record(s) outside any span; the newest {OUTSIDE_LISTED}:"
    assert lines[1:] == [f"    unknown_service  - INFO  app: line {n}" for n in range(5, count)]


def test_a_log_line_is_one_line_cut_to_the_width_and_an_exception_shows_its_type_and_message() -> None:
    root = _span("01", name="root")
    long_body = "x" * 200 + "\nsecond line"
    raised = _log(
        "01",
        "error while handling GET /",
        2,
        severity="ERROR",
        attributes={
            "exception.type": "ValueError",
            "exception.message": "bad",
            "exception.stacktrace": "Traceback...",
        },
    )
    unnamed = _log(
        "01",
        "",
        3,
        attributes={
            "exception.type": "HTTPError",
            "exception.stacktrace": "Traceback ...\nurllib.error.HTTPError: HTTP Error 500",
        },
    )

    lines = format_trace([root], logs=[_log("01", long_body, 1), raised, unnamed], width=60).splitlines()

    assert lines[2] == "      - INFO  app: " + "x" * 38 + "..."
    assert len(lines[2]) == 60
    assert lines[3] == "      - ERROR app: ValueError: bad"
    assert lines[4] == "      - INFO  app: urllib.error.HTTPError: HTTP Error 500"


def test_the_summary_groups_alike_traces_with_their_logs_and_lists_the_records_outside_any_span() -> None:
    out = io.StringIO()
    spans = [_span("01", name="root", trace=trace) for trace in ("aa" * 16, "bb" * 16, "cc" * 16)]
    logs = [
        _log("01", "first", 1, trace="aa" * 16),
        _log("01", "second", 1, trace="bb" * 16),
        _log("01", "an error", 1, trace="cc" * 16, severity="ERROR"),
        _log("", "started", 0, trace=""),
    ]

    print_traces(spans, out, logs, width=80)

    text = out.getvalue()
    assert "  trace aaaaaaaa  root  (and 1 more like it)\n" in text
    assert "    - INFO  app: first\n" in text and "second" not in text
    assert "  trace cccccccc  root\n" in text and "    - ERROR app: an error\n" in text
    assert text.endswith("1 log record(s) outside any span:\n    unknown_service  - INFO  app: started\n")
