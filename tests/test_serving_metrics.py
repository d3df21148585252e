"""The socket server's own metrics: connections, rejections, queueing, keep-alive reuse.

Instrumented, a server served by ``internalhttp.serve`` records, under
``internalhttp.server.``, what its serving loop tells the serving observer
(``internalhttp.observe``): open connections, how long each lasted and why
it closed, how many requests it carried, the connections closed to make
room, the requests waiting for a worker and how long each waited; and the
wait is on the request's SERVER span as ``internalhttp.request.queue_time``.
Attribute values come from fixed lists, never from a client.
``serving_metrics=False`` (or ``OTEL_PYTHON_INTERNALHTTP_SERVING_METRICS=false``)
turns it all off. Real sockets on loopback throughout.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import internalhttp
import pytest
from internalhttp.observe import CLOSE_REASONS, REJECT_REASONS
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_testing import metric_points, point_attributes

from opentelemetry_ext_internalhttp import InternalHTTPInstrumentor

TIMEOUT = 10.0
PREFIX = "internalhttp.server."
SERVING_METRICS = [
    "internalhttp.server.active_connections",
    "internalhttp.server.connection.duration",
    "internalhttp.server.connection.requests",
    "internalhttp.server.queued_requests",
    "internalhttp.server.request.queue_time",
]


@pytest.fixture
def app() -> internalhttp.InternalHTTPServer:
    server = internalhttp.InternalHTTPServer("shop")
    server.add_route("/", lambda headers, body: "hi")
    return server


Instrument = Callable[..., internalhttp.InternalHTTPServer]


@pytest.fixture
def instrumented(app: internalhttp.InternalHTTPServer, providers: dict[str, Any]) -> Iterator[Instrument]:
    def instrument(**options: Any) -> internalhttp.InternalHTTPServer:
        InternalHTTPInstrumentor.instrument_app(app, **providers, **options)
        return app

    yield instrument
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        InternalHTTPInstrumentor.uninstrument_app(app)


def get_on_one_connection(running: internalhttp.RunningServer, count: int) -> None:
    client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    for _ in range(count):
        client.request("GET", "/")
        assert client.getresponse().read() == b"hi"
    client.close()


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def closed_reasons(reader: InMemoryMetricReader) -> list[str]:
    points = metric_points(reader, "internalhttp.server.connection.duration")
    reason = "internalhttp.connection.close_reason"
    return sorted(point.attributes[reason] for point in points for _ in range(point.count))


def test_a_kept_alive_connection_is_counted_open_then_closed_with_its_requests(
    instrumented: Instrument, metric_reader: InMemoryMetricReader
) -> None:
    with internalhttp.serve(instrumented()) as running:
        get_on_one_connection(running, 3)
        wait_for(lambda: closed_reasons(metric_reader) == ["client_closed"])

    (active,) = metric_points(metric_reader, "internalhttp.server.active_connections")
    (requests,) = metric_points(metric_reader, "internalhttp.server.connection.requests")
    (duration,) = metric_points(metric_reader, "internalhttp.server.connection.duration")
    assert active.value == 0
    assert (requests.count, requests.sum) == (1, 3)
    assert duration.count == 1 and 0 < duration.sum < TIMEOUT
    assert dict(duration.attributes) == {
        "network.transport": "tcp",
        "internalhttp.connection.close_reason": "client_closed",
    }


def test_each_request_handed_to_a_worker_is_queued_and_its_wait_recorded(
    instrumented: Instrument, metric_reader: InMemoryMetricReader
) -> None:
    with internalhttp.serve(instrumented()) as running:
        for _ in range(2):
            get_on_one_connection(running, 1)

    (queued,) = metric_points(metric_reader, "internalhttp.server.queued_requests")
    (wait,) = metric_points(metric_reader, "internalhttp.server.request.queue_time")
    assert queued.value == 0
    assert wait.count == 2 and 0 <= wait.sum < TIMEOUT
    assert dict(wait.attributes) == {"network.transport": "tcp"}


def test_the_server_span_says_how_long_the_request_waited_for_a_worker(
    instrumented: Instrument, span_exporter: InMemorySpanExporter
) -> None:
    with internalhttp.serve(instrumented()) as running:
        get_on_one_connection(running, 1)

    (span,) = span_exporter.get_finished_spans()
    assert 0 <= span.attributes["internalhttp.request.queue_time"] < TIMEOUT


def test_a_request_behind_a_busy_worker_shows_its_queue_time(
    app: internalhttp.InternalHTTPServer, instrumented: Instrument, span_exporter: InMemorySpanExporter
) -> None:
    release = threading.Event()
    app.add_route("/slow", lambda headers, body: "slow" if release.wait(TIMEOUT) else "late")
    with internalhttp.serve(instrumented(), max_workers=1) as running:
        slow = threading.Thread(target=lambda: urlopen(running, "/slow"))
        slow.start()
        time.sleep(0.1)  # the one worker is taken
        waiting = threading.Thread(target=lambda: urlopen(running, "/"))
        waiting.start()
        time.sleep(0.3)
        release.set()
        slow.join(TIMEOUT)
        waiting.join(TIMEOUT)

    spans = {span.attributes["http.target"]: span for span in span_exporter.get_finished_spans()}
    assert spans["/"].attributes["internalhttp.request.queue_time"] >= 0.2


def urlopen(running: internalhttp.RunningServer, path: str) -> None:
    client = http.client.HTTPConnection(running.host, running.port, timeout=TIMEOUT)
    client.request("GET", path)
    client.getresponse().read()
    client.close()


def test_a_waiting_connection_closed_to_make_room_is_a_rejection_at_capacity(
    instrumented: Instrument, metric_reader: InMemoryMetricReader
) -> None:
    with internalhttp.serve(instrumented(), max_connections=1) as running:
        idle = socket.create_connection((running.host, running.port), timeout=TIMEOUT)
        wait_for(lambda: bool(metric_points(metric_reader, "internalhttp.server.active_connections")))
        get_on_one_connection(running, 1)  # the idle one is closed to make room
        idle.close()
        wait_for(lambda: "capacity" in closed_reasons(metric_reader))

    (rejected,) = metric_points(metric_reader, "internalhttp.server.rejected_connections")
    assert rejected.value == 1
    assert dict(rejected.attributes) == {
        "network.transport": "tcp",
        "internalhttp.rejection.reason": "capacity",
    }


def test_a_connection_idle_past_the_head_timeout_closes_as_idle(
    instrumented: Instrument, metric_reader: InMemoryMetricReader
) -> None:
    with internalhttp.serve(instrumented(), head_timeout=0.2) as running:
        with socket.create_connection((running.host, running.port), timeout=TIMEOUT) as idle:
            assert idle.recv(10) == b""  # closed by the server
        wait_for(lambda: closed_reasons(metric_reader) == ["idle_timeout"])


def test_a_body_past_its_deadline_closes_as_body_timeout(
    instrumented: Instrument, metric_reader: InMemoryMetricReader
) -> None:
    with internalhttp.serve(instrumented(), body_timeout=0.2) as running:
        with socket.create_connection((running.host, running.port), timeout=TIMEOUT) as slow:
            slow.sendall(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nab")
            assert slow.recv(100).startswith(b"HTTP/1.1 408 ")
        wait_for(lambda: closed_reasons(metric_reader) == ["body_timeout"])


def test_every_attribute_value_of_the_serving_metrics_is_from_a_fixed_list(
    instrumented: Instrument, metric_reader: InMemoryMetricReader
) -> None:
    with internalhttp.serve(instrumented(), max_connections=1) as running:
        socket.create_connection((running.host, running.port), timeout=TIMEOUT).close()
        get_on_one_connection(running, 2)
        wait_for(lambda: len(closed_reasons(metric_reader)) == 2)

    allowed = {
        "network.transport": {"tcp"},
        "internalhttp.connection.close_reason": set(CLOSE_REASONS),
        "internalhttp.rejection.reason": set(REJECT_REASONS),
    }
    for name in [*SERVING_METRICS, "internalhttp.server.rejected_connections"]:
        for attributes in point_attributes(metric_reader, name):
            assert all(value in allowed[key] for key, value in attributes.items()), (name, attributes)


def test_serving_metrics_false_records_none_of_them(
    instrumented: Instrument, metric_reader: InMemoryMetricReader, span_exporter: InMemorySpanExporter
) -> None:
    with internalhttp.serve(instrumented(serving_metrics=False)) as running:
        get_on_one_connection(running, 1)

    assert [name for name in SERVING_METRICS if metric_points(metric_reader, name)] == []
    (span,) = span_exporter.get_finished_spans()
    assert "internalhttp.request.queue_time" not in span.attributes


def test_the_environment_variable_turns_them_off(
    instrumented: Instrument, metric_reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_INTERNALHTTP_SERVING_METRICS", "false")
    with internalhttp.serve(instrumented()) as running:
        get_on_one_connection(running, 1)

    assert [name for name in SERVING_METRICS if metric_points(metric_reader, name)] == []


def test_uninstrumenting_stops_them(
    app: internalhttp.InternalHTTPServer, instrumented: Instrument, metric_reader: InMemoryMetricReader
) -> None:
    instrumented()
    InternalHTTPInstrumentor.uninstrument_app(app)
    with internalhttp.serve(app) as running:
        get_on_one_connection(running, 1)

    assert app.serving_observer is None
    assert [name for name in SERVING_METRICS if metric_points(metric_reader, name)] == []


def test_instrument_gives_servers_of_the_replacement_class_the_observer(
    instrumentor: InternalHTTPInstrumentor, providers: dict[str, Any], metric_reader: InMemoryMetricReader
) -> None:
    instrumentor.instrument(**providers)
    server = internalhttp.InternalHTTPServer("shop")
    server.add_route("/", lambda headers, body: "hi")
    with internalhttp.serve(server) as running:
        get_on_one_connection(running, 1)
    instrumentor.uninstrument()

    assert metric_points(metric_reader, "internalhttp.server.request.queue_time")
    assert internalhttp.InternalHTTPServer("after").serving_observer is None


@pytest.mark.instrumentation_errors
def test_a_failing_metric_is_logged_and_serving_goes_on(
    instrumented: Instrument, monkeypatch: pytest.MonkeyPatch, instrumentation_errors: Any
) -> None:
    server = instrumented()
    observer = server.serving_observer

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in a metric")

    monkeypatch.setattr(observer, "_queue_time", type("Broken", (), {"record": staticmethod(broken)})())
    with internalhttp.serve(server) as running:
        get_on_one_connection(running, 2)

    assert instrumentation_errors.records
