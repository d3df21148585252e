"""End to end over OTLP: two real service processes under ``opentelemetry-instrument``.

The shop's backend and frontend (examples/shop, no OpenTelemetry code in them)
run as subprocesses, export traces, metrics and logs with the official
OTLP/HTTP exporters to the receiver of examples/otlp_tree.py, and serve one checkout that crosses from
one to the other through instrumented ``urllib``. They are then stopped with
SIGTERM, so everything they recorded has been flushed before the tests look.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from launch import otel_environment, start_service, stop_process
from otel_testing import needs_urllib_instrumentation
from otlp_tree import HistogramPoint, LogRecord, Receiver, Span

pytestmark = needs_urllib_instrumentation

SERVER_DURATION_METRICS = ("http.server.duration", "http.server.request.duration")
TIMEOUT_S = 10


@dataclass
class ShopRun:
    receiver: Receiver
    checkout_status: int
    exit_statuses: dict[str, int | None]
    logs: Path

    def server_span(self, service: str) -> Span:
        (span,) = self.receiver.spans(kind="SERVER", service=service)
        return span

    def log_record(self, service: str, logger: str) -> LogRecord:
        (record,) = self.receiver.logs(service=service, name=logger)
        return record

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logs.glob("*.log")))


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopRun]:
    logs = tmp_path_factory.mktemp("shop-logs")
    with (
        Receiver() as receiver,
        open(logs / "backend.log", "w") as be_log,
        open(logs / "frontend.log", "w") as fe_log,
    ):
        backend = start_service("shop.backend", otel_environment("backend", receiver.endpoint), be_log)
        try:
            frontend = start_service(
                "shop.frontend",
                otel_environment("frontend", receiver.endpoint),
                fe_log,
                ["--backend-url", backend.url],
            )
            try:
                with urllib.request.urlopen(f"{frontend.url}/checkout/42", timeout=TIMEOUT_S) as response:
                    status = response.status
            finally:
                frontend_exit = stop_process(frontend.process)
        finally:
            backend_exit = stop_process(backend.process)
        yield ShopRun(receiver, status, {"frontend": frontend_exit, "backend": backend_exit}, logs)


def test_the_checkout_succeeds(shop: ShopRun) -> None:
    assert shop.checkout_status == 200


def test_both_services_exit_cleanly_on_sigterm(shop: ShopRun) -> None:
    # Exit status 0 (not -SIGTERM) means atexit ran, which is where the SDK flushes.
    assert shop.exit_statuses == {"frontend": 0, "backend": 0}, shop.log_text()


def test_a_server_span_arrives_from_each_service(shop: ShopRun) -> None:
    names = {(span.service, span.name) for span in shop.receiver.spans(kind="SERVER")}
    assert names == {("frontend", "GET /checkout/<item_id>"), ("backend", "GET /items/<item_id>")}


def test_the_backend_server_span_is_a_child_of_the_frontend_client_span(shop: ShopRun) -> None:
    (client,) = shop.receiver.spans(kind="CLIENT", service="frontend")
    backend = shop.server_span("backend")
    assert backend.trace_id == client.trace_id
    assert backend.parent_span_id == client.span_id


def test_the_frontend_client_span_is_a_child_of_its_server_span(shop: ShopRun) -> None:
    (client,) = shop.receiver.spans(kind="CLIENT", service="frontend")
    frontend = shop.server_span("frontend")
    assert (client.trace_id, client.parent_span_id) == (frontend.trace_id, frontend.span_id)
    assert frontend.parent_span_id == ""  # the test's own request carried no context


def test_every_span_carries_its_service_name_resource(shop: ShopRun) -> None:
    by_pid: dict[object, set[str]] = {}
    for span in shop.receiver.spans():
        by_pid.setdefault(span.pid, set()).add(str(span.resource.get("service.name")))
    assert sorted(map(sorted, by_pid.values())) == [["backend"], ["frontend"]]


def _duration_points(receiver: Receiver) -> list[HistogramPoint]:
    # Which of the two depends on OTEL_SEMCONV_STABILITY_OPT_IN in the caller's environment.
    return [p for name in SERVER_DURATION_METRICS for p in receiver.latest_histogram_points(name)]


def test_the_server_duration_histogram_arrives_from_each_service(shop: ShopRun) -> None:
    points = {(p.service, p.attributes.get("http.route"), p.count) for p in _duration_points(shop.receiver)}
    assert points == {("frontend", "/checkout/<item_id>", 1), ("backend", "/items/<item_id>", 1)}


def test_the_backend_access_line_arrives_as_a_log_record_in_the_backend_server_span(shop: ShopRun) -> None:
    record = shop.log_record("backend", "internalhttp.access")
    span = shop.server_span("backend")
    assert (record.trace_id, record.span_id) == (span.trace_id, span.span_id)
    assert (record.severity_text, record.severity_number) == ("INFO", 9)
    assert record.body.endswith('"GET /items/42" 200 40')


def test_each_handler_line_arrives_in_its_own_service_server_span(shop: ShopRun) -> None:
    for service, logger, body in [
        ("backend", "shop.backend", "looking up item 42"),
        ("frontend", "shop.frontend", "checkout of item 42: asking the backend"),
    ]:
        record = shop.log_record(service, logger)
        span = shop.server_span(service)
        assert (record.trace_id, record.span_id, record.body) == (span.trace_id, span.span_id, body)


def test_every_log_record_of_the_request_is_in_its_trace(shop: ShopRun) -> None:
    (trace_id,) = {span.trace_id for span in shop.receiver.spans()}
    records = shop.receiver.logs()
    assert sorted((r.service, r.name) for r in records) == [
        ("backend", "internalhttp.access"),
        ("backend", "shop.backend"),
        ("frontend", "internalhttp.access"),
        ("frontend", "shop.frontend"),
    ]
    assert {r.trace_id for r in records} == {trace_id}
