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
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode
from otlp_tree import Span, TracePrinter, format_trace
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


def _export_a_request(endpoint: str) -> None:
    """What an instrumented service sends for one request: a SERVER span with a CLIENT child, a histogram."""
    resource = Resource.create({"service.name": "shop"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
    )
    tracer = tracer_provider.get_tracer("test")
    attributes = {"http.method": "GET", "http.target": "/users/42", "http.status_code": 200}
    with (
        tracer.start_as_current_span("GET /users/<user_id>", kind=SpanKind.SERVER, attributes=attributes),
        tracer.start_as_current_span("SELECT users", kind=SpanKind.CLIENT) as child,
    ):
        child.set_status(Status(StatusCode.ERROR))
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
