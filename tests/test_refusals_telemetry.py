"""What the telemetry shows for the requests the framework refuses, and after SIGTERM.

The socket server answers malformed, oversized and unsupported requests (400,
413, 414, 431, 505) itself, before the application is called, and tells the
application through ``InternalHTTPServer.refused``. Instrumented, each one is
a span and a duration point with the status the client received, built only
from what the server could read: a method the conventions know, or _OTHER,
and the path; never a header, so no attribute name comes from a client.
Requests the application refuses (404, 405) get a normal span with their
status. Nothing is logged at WARNING or above either way.

The last test runs an instrumented service in a process of its own, stops it
with SIGTERM, as container runtimes do, and checks that what it recorded was
exported on the way out.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import internalhttp
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.http_attributes import HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE
from otel_testing import metric_points, point_attributes
from otlp_tree import Receiver

TIMEOUT = 10.0
DURATION = "http.server.request.duration"
# Attribute names the instrumentation may use: lower-case dotted names, never request text.
ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9_.]*\Z")

pytestmark = pytest.mark.parametrize("semconv_mode", ["http"], indirect=True)

PRE_DISPATCH_REFUSALS = [
    ("http-0.9-request-line", b"GET /\x01\xff\r\n\r\n", 400),
    ("method-not-a-token", b"G\x7fT /x HTTP/1.1\r\n\r\n", 400),
    ("http-2.0", b"GET /x HTTP/2.0\r\n\r\n", 505),
    (
        "content-length-10-to-the-20",
        b"POST /x HTTP/1.1\r\nContent-Length: 100000000000000000000\r\n\r\n",
        413,
    ),
    ("content-length-over-the-limit", b"POST /x HTTP/1.1\r\nContent-Length: 1025\r\n\r\n", 413),
    ("content-length-signed", b"POST /x HTTP/1.1\r\nContent-Length: +1\r\n\r\nx", 400),
    (
        "chunk-size-2-to-the-72",
        b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000000\r\n",
        413,
    ),
    ("request-line-too-long", b"GET /" + b"a" * 70000, 414),
    ("more-than-100-header-fields", b"GET /x HTTP/1.1\r\n" + b"X-\xff\x01: 1\r\n" * 101 + b"\r\n", 431),
]


@pytest.fixture
def running(instrumentor: Any, providers: dict[str, Any]) -> Iterator[Any]:
    instrumentor.instrument(**providers)
    server = internalhttp.InternalHTTPServer("shop")
    server.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": item_id})
    with internalhttp.serve(server, max_body_size=1024) as handle:
        yield handle


def exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, end the request side, return what the server answered before closing."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        with contextlib.suppress(OSError):  # a refusal may come before all of it is taken
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def test_each_refusal_before_dispatch_is_one_span_and_point_with_the_status_sent_and_no_log_line(
    running: Any,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG):
        statuses = [
            exchange(running.port, data).partition(b"\r\n")[0] for _, data, _ in PRE_DISPATCH_REFUSALS
        ]

    expected = [status for _, _, status in PRE_DISPATCH_REFUSALS]
    assert [line.split(b" ")[:2] for line in statuses] == [[b"HTTP/1.1", str(s).encode()] for s in expected]
    spans = sorted(span_exporter.get_finished_spans(), key=lambda span: span.start_time or 0)
    assert [span.attributes[HTTP_RESPONSE_STATUS_CODE] for span in spans] == expected
    for span in spans:
        assert span.attributes[HTTP_REQUEST_METHOD] in ("GET", "POST", "_OTHER")
        assert all(ATTRIBUTE_NAME.match(name) for name in span.attributes)
        assert "\x01" not in repr(dict(span.attributes)) and "\xff" not in repr(dict(span.attributes))
    counted = Counter()
    for point in metric_points(metric_reader, DURATION):
        counted[point.attributes[HTTP_RESPONSE_STATUS_CODE]] += point.count
    assert counted == Counter(expected)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_505_refusal_records_the_method_its_request_line_carried(
    running: Any, span_exporter: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    exchange(running.port, b"GET /items/1 HTTP/2.0\r\n\r\n")

    (span,) = span_exporter.get_finished_spans()
    assert (span.name, span.attributes[HTTP_REQUEST_METHOD]) == ("GET", "GET")
    assert "http.request.method_original" not in span.attributes
    assert [point[HTTP_REQUEST_METHOD] for point in point_attributes(metric_reader, DURATION)] == ["GET"]


def test_a_wsgi_refusal_is_one_span_with_the_status_sent(
    instrumentor: Any, providers: dict[str, Any], span_exporter: InMemorySpanExporter
) -> None:
    instrumentor.instrument(**providers)
    server = internalhttp.InternalHTTPServer("shop")
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/upload", "CONTENT_LENGTH": "2048"}
    environ["wsgi.input"] = io.BytesIO(b"x" * 2048)
    setup_testing_defaults(environ)
    started: list[str] = []

    internalhttp.make_wsgi_app(server, max_body_size=1024)(
        environ, lambda status, headers: started.append(status)
    )

    [span] = span_exporter.get_finished_spans()
    assert [status.split()[0] for status in started] == ["413"]  # the phrase differs by Python version
    assert (span.name, span.attributes[HTTP_RESPONSE_STATUS_CODE]) == ("POST", 413)


def test_refusals_by_the_application_get_spans_with_a_status_and_clean_attribute_names(
    running: Any,
    span_exporter: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile = b"X-\xe9vil\x01: 1\r\nX-" + b"a" * 200 + b": 2\r\n"
    requests = [
        b"GET /nowhere/\xe9 HTTP/1.1\r\n" + hostile + b"\r\n",  # 404
        b"DELETE /items/1 HTTP/1.1\r\n" + hostile + b"\r\n",  # 405
        b"M-SEARCH~x /items/1 HTTP/1.1\r\n" + hostile + b"\r\n",  # a method nobody registered
    ]
    with caplog.at_level(logging.DEBUG):
        statuses = [
            exchange(running.port, data.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1))[9:12]
            for data in requests
        ]

    assert statuses == [b"404", b"405", b"405"]
    spans = sorted(span_exporter.get_finished_spans(), key=lambda span: span.start_time or 0)
    assert [span.attributes[HTTP_RESPONSE_STATUS_CODE] for span in spans] == [404, 405, 405]
    assert [span.attributes[HTTP_REQUEST_METHOD] for span in spans] == ["GET", "DELETE", "_OTHER"]
    for span in spans:
        assert all(ATTRIBUTE_NAME.match(name) for name in span.attributes)
        assert "vil" not in repr(dict(span.attributes)) and "aaaa" not in repr(dict(span.attributes))
    points = point_attributes(metric_reader, DURATION)
    assert sorted(p[HTTP_RESPONSE_STATUS_CODE] for p in points) == [404, 405, 405]  # DELETE, _OTHER
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


SERVICE = textwrap.dedent(
    """
    import sys

    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import internalhttp
    from internalhttp.serving import serve_forever
    from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

    endpoint = sys.argv[1]
    resource = Resource.create({"service.name": "sigterm-test"})
    # Nothing is exported on a schedule during the test: only the SDK's
    # atexit flush can deliver what the test looks for.
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint + "/v1/traces"), schedule_delay_millis=600_000)
    )
    trace.set_tracer_provider(tracer_provider)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint + "/v1/metrics"), 600_000)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader], resource=resource))
    InternalHTTPInstrumentor().instrument()

    app = internalhttp.InternalHTTPServer("sigterm-test")
    app.add_route("/items/<item_id>", lambda headers, body, item_id: {"body": item_id})
    serve_forever(app, "127.0.0.1", 0)
    """
)


def test_spans_and_metrics_are_exported_after_sigterm() -> None:
    with Receiver() as receiver:
        process = subprocess.Popen(
            [sys.executable, "-c", SERVICE, receiver.endpoint],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stderr is not None
            announced = process.stderr.readline()  # the start-up line, printed at once
            port = int(re.search(r"http://127\.0\.0\.1:([0-9]+) ", announced).group(1))  # type: ignore[union-attr]
            for number in range(9):
                data = f"GET /items/{number} HTTP/1.1\r\nConnection: close\r\n\r\n".encode()
                assert exchange(port, data).startswith(b"HTTP/1.1 200 ")
            began = time.monotonic()

            process.send_signal(signal.SIGTERM)
            status = process.wait(TIMEOUT)
        finally:
            if process.poll() is None:
                process.kill()
            _, stderr = process.communicate()

        assert (status, time.monotonic() - began < 5) == (0, True), stderr
        assert len(receiver.spans(kind="SERVER", service="sigterm-test")) == 9
        assert DURATION in receiver.metric_names()
