"""A real collector in the loop: the demo's two services export OTLP/HTTP to ``rotel``.

``rotel`` (PyPI) is an OpenTelemetry collector written in Rust; its wheel ships
the ``rotel-agent`` binary. The agent runs with its own working directory and
its OTLP/HTTP receiver on a free loopback port, forwarding everything over
OTLP/HTTP to the receiver of examples/otlp_tree.py. The shop's backend and
frontend (examples/shop) export to the agent, serve the demo's requests, and
are stopped with SIGTERM (their final export goes to the agent); the agent is
stopped last, by its PID, so that it forwards what it still holds. What
reached the far side must be complete: every span with its parent across the
two services, every log record in the span it was written in, every request
in the duration histograms.

Outside CI a missing ``rotel`` skips these tests; with ``CI=true`` (``.ci/run``)
it fails them, since the tox ``tests`` envs install it.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
from launch import otel_environment, start_service, stop_process
from otel_testing import needs_urllib_instrumentation
from otlp_tree import SERVER_DURATION_METRICS, HistogramPoint, Receiver, Span

pytestmark = needs_urllib_instrumentation

# The demo's requests (examples/demo.py), with fewer repeats: (path, expected status).
REQUESTS = [
    ("/checkout/42", 200),
    ("/checkout/999", 404),
    ("/no-such-page", 404),
    ("/reviews/42", 500),
    *[("/checkout/7", 200)] * 5,
]
# The frontend calls the backend for every request but the one that has no route.
BACKEND_CALLS = sum(1 for path, _ in REQUESTS if path != "/no-such-page")
ROTEL_MISSING = "rotel is not installed: pip install rotel (the tox 'tests' envs install it)"
START_TIMEOUT_S = 10
TIMEOUT_S = 10
# The agent batches for at most this long before it forwards (its default is 200 ms).
BATCH_TIMEOUT = "100ms"


@dataclass
class CollectorRun:
    receiver: Receiver
    statuses: list[int]
    exit_statuses: dict[str, Optional[int]]
    logs: Path

    def log_text(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(self.logs.glob("*.log"))
        )

    def spans_by_id(self) -> dict[tuple[str, str], Span]:
        return {(span.trace_id, span.span_id): span for span in self.receiver.spans()}


def rotel_agent() -> Optional[Path]:
    """The ``rotel-agent`` binary inside the installed ``rotel`` wheel, if there is one."""
    spec = importlib.util.find_spec("rotel")
    if spec is None or not spec.submodule_search_locations:
        return None
    agent = Path(next(iter(spec.submodule_search_locations))) / "rotel-agent"
    return agent if os.access(agent, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    stop_process(process)
    raise AssertionError(f"rotel-agent is not listening on port {port}:\n{log.read_text(errors='replace')}")


def start_rotel(agent: Path, forward_to: str, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``rotel-agent`` in the foreground in ``directory``; return it and its OTLP/HTTP endpoint."""
    http_port, grpc_port = _free_port(), _free_port()
    command = [
        str(agent),
        "start",
        "--otlp-http-endpoint",
        f"127.0.0.1:{http_port}",
        # It always listens for gRPC too: keep that on loopback as well.
        "--otlp-grpc-endpoint",
        f"127.0.0.1:{grpc_port}",
        "--exporter",
        "otlp",
        "--otlp-exporter-protocol",
        "http",
        "--otlp-exporter-endpoint",
        forward_to,
        "--batch-timeout",
        BATCH_TIMEOUT,
        # Used by --daemon only; named so that nothing goes to the default /tmp paths.
        "--pid-file",
        str(directory / "rotel.pid"),
        "--log-file",
        str(directory / "rotel-agent.log"),
    ]
    log = directory / "rotel.log"
    # Its own environment: no ROTEL_* setting of the caller's changes what it does.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(directory), "NO_COLOR": "1"}
    # The binary links libpython of the Python its wheel was built for, which is
    # this one: the loader finds it only in the system's folders unless told where.
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        filter(None, [sysconfig.get_config_var("LIBDIR"), os.environ.get("LD_LIBRARY_PATH")])
    )
    with open(log, "wb") as log_file:
        process = subprocess.Popen(command, cwd=directory, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    _wait_for_port(http_port, process, log)
    return process, f"http://127.0.0.1:{http_port}"


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


@pytest.fixture(scope="module")
def agent() -> Path:
    found = rotel_agent()
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{ROTEL_MISSING}; CI must run these tests", pytrace=False)
        pytest.skip(ROTEL_MISSING)
    return found


@pytest.fixture(scope="module")
def through_rotel(agent: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorRun]:
    directory = tmp_path_factory.mktemp("rotel")
    exit_statuses: dict[str, Optional[int]] = {}
    with Receiver() as receiver:
        rotel, endpoint = start_rotel(agent, receiver.endpoint, directory)
        try:
            with (
                open(directory / "backend.log", "w") as be_log,
                open(directory / "frontend.log", "w") as fe_log,
            ):
                backend = start_service("shop.backend", otel_environment("backend", endpoint), be_log)
                try:
                    frontend = start_service(
                        "shop.frontend",
                        otel_environment("frontend", endpoint),
                        fe_log,
                        ["--backend-url", backend.url],
                    )
                    try:
                        statuses = [_get(frontend.url + path) for path, _ in REQUESTS]
                    finally:
                        exit_statuses["frontend"] = stop_process(frontend.process)
                finally:
                    exit_statuses["backend"] = stop_process(backend.process)
        finally:
            # SIGTERM to its PID: the agent forwards what it still holds, then exits.
            exit_statuses["rotel"] = stop_process(rotel)
        yield CollectorRun(receiver, statuses, exit_statuses, directory)


def test_every_request_got_its_expected_status(through_rotel: CollectorRun) -> None:
    assert through_rotel.statuses == [status for _, status in REQUESTS]


def test_the_services_and_the_collector_exit_cleanly(through_rotel: CollectorRun) -> None:
    assert through_rotel.exit_statuses == {"frontend": 0, "backend": 0, "rotel": 0}, through_rotel.log_text()


def test_no_service_logged_a_failed_export(through_rotel: CollectorRun) -> None:
    assert "Failed to export" not in through_rotel.log_text()


def test_each_request_is_one_trace_rooted_at_a_frontend_server_span(through_rotel: CollectorRun) -> None:
    roots = [span for span in through_rotel.receiver.spans() if not span.parent_span_id]
    assert [(span.service, span.kind) for span in roots] == [("frontend", "SERVER")] * len(REQUESTS)
    assert len({span.trace_id for span in through_rotel.receiver.spans()}) == len(REQUESTS)


def test_every_span_arrived_with_its_parent(through_rotel: CollectorRun) -> None:
    spans = through_rotel.spans_by_id()
    orphans = [
        span
        for span in spans.values()
        if span.parent_span_id and (span.trace_id, span.parent_span_id) not in spans
    ]
    assert orphans == []
    # Each trace: the frontend's SERVER span, and per backend call a CLIENT and a backend SERVER span.
    assert len(spans) == len(REQUESTS) + 2 * BACKEND_CALLS


def test_every_backend_server_span_is_the_child_of_a_frontend_client_span(
    through_rotel: CollectorRun,
) -> None:
    spans = through_rotel.spans_by_id()
    backend = through_rotel.receiver.spans(kind="SERVER", service="backend")
    parents = [spans[(span.trace_id, span.parent_span_id)] for span in backend]
    assert len(backend) == BACKEND_CALLS
    assert {(parent.service, parent.kind) for parent in parents} == {("frontend", "CLIENT")}
    # ... and that CLIENT span is the child of the frontend's SERVER span of the same request.
    grandparents = {
        (span.service, span.kind) for span in (spans[(p.trace_id, p.parent_span_id)] for p in parents)
    }
    assert grandparents == {("frontend", "SERVER")}


def test_every_log_record_arrived_in_a_span_of_its_own_service(through_rotel: CollectorRun) -> None:
    spans = through_rotel.spans_by_id()
    records = through_rotel.receiver.logs()
    assert records
    assert [r for r in records if spans.get((r.trace_id, r.span_id)) is None] == []
    assert {r.service for r in records if spans[(r.trace_id, r.span_id)].service != r.service} == set()


def test_every_server_span_has_its_access_line(through_rotel: CollectorRun) -> None:
    access = Counter((r.trace_id, r.span_id) for r in through_rotel.receiver.logs(name="internalhttp.access"))
    server_spans = {(s.trace_id, s.span_id) for s in through_rotel.receiver.spans(kind="SERVER")}
    assert access == Counter(dict.fromkeys(server_spans, 1))


def test_the_raising_handler_error_record_arrived_in_its_span(through_rotel: CollectorRun) -> None:
    (record,) = [
        r
        for r in through_rotel.receiver.logs(service="backend", name="internalhttp")
        if r.attributes.get("exception.type") == "RuntimeError"
    ]
    span = through_rotel.spans_by_id()[(record.trace_id, record.span_id)]
    assert (span.service, span.name, span.status) == ("backend", "GET /items/<item_id>/reviews", "ERROR")
    assert "the reviews database is unreachable" in str(record.attributes.get("exception.stacktrace"))


def _status(point: HistogramPoint) -> Any:
    return point.attributes.get("http.response.status_code", point.attributes.get("http.status_code"))


def test_every_request_is_counted_in_the_duration_histograms(through_rotel: CollectorRun) -> None:
    counts = Counter[tuple[str, Any, Any]]()
    for name in SERVER_DURATION_METRICS:  # which one: OTEL_SEMCONV_STABILITY_OPT_IN of the caller
        for point in through_rotel.receiver.latest_histogram_points(name):
            counts[(point.service, point.attributes.get("http.route"), _status(point))] += point.count
    assert counts == {
        ("frontend", "/checkout/<item_id>", 200): 6,
        ("frontend", "/checkout/<item_id>", 404): 1,
        ("frontend", None, 404): 1,
        ("frontend", "/reviews/<item_id>", 500): 1,
        ("backend", "/items/<item_id>", 200): 6,
        ("backend", "/items/<item_id>", 404): 1,
        ("backend", "/items/<item_id>/reviews", 500): 1,
    }
