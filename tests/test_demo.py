"""examples/demo.py, run as ``tox run -e demo`` runs it: it succeeds only when the telemetry arrived."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from otel_testing import needs_urllib_instrumentation

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"
TIMEOUT_S = 90


def _run_demo(**env: str) -> subprocess.CompletedProcess[str]:
    environment = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, str(DEMO)],
        cwd=DEMO.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _NotACollector(BaseHTTPRequestHandler):
    """Answers every OTLP export with 404, as a web server at the wrong address would."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def not_a_collector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotACollector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def _lines_after(lines: list[str], start: str, count: int) -> list[str]:
    """The ``count`` lines after the first that starts with ``start``."""
    index = next(i for i, line in enumerate(lines) if line.startswith(start))
    return lines[index + 1 : index + 1 + count]


@needs_urllib_instrumentation
def test_the_demo_succeeds_with_its_own_receiver_and_prints_the_trace_across_both_services() -> None:
    result = _run_demo(COLUMNS="120")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo: OK" in result.stdout
    assert "        backend   GET /items/<item_id>          SERVER" in result.stdout
    lines = result.stdout.splitlines()
    # Under the backend's SERVER span of the checkout: its handler's line, then its access line.
    assert _lines_after(lines, "        backend   GET /items/<item_id>          SERVER  UNSET   200", 2) == [
        "          - INFO  shop.backend: looking up item 42",
        '          - INFO  internalhttp.access: 127.0.0.1 - "GET /items/42" 200 40',
    ]
    # The raising handler: its own line, the framework's error record with the exception, the access line.
    assert _lines_after(lines, "        backend   GET /items/<item_id>/reviews  SERVER  ERROR   500", 3) == [
        "          - INFO  shop.backend: fetching the reviews of item 42",
        "          - ERROR internalhttp: RuntimeError: the reviews database is unreachable",
        '          - INFO  internalhttp.access: 127.0.0.1 - "GET /items/42/reviews" 500 21',
    ]
    assert "      - INFO  shop.frontend: checkout of item 42: asking the backend" in lines
    assert "outside any span" not in result.stdout


@needs_urllib_instrumentation
def test_with_exceptions_as_log_events_the_raising_handler_shows_the_event_instead_of_the_error_line() -> (
    None
):
    result = _run_demo(COLUMNS="120", OTEL_SEMCONV_EXCEPTION_SIGNAL_OPT_IN="logs")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert _lines_after(lines, "        backend   GET /items/<item_id>/reviews  SERVER  ERROR   500", 3) == [
        "          - INFO  shop.backend: fetching the reviews of item 42",
        '          - INFO  internalhttp.access: 127.0.0.1 - "GET /items/42/reviews" 500 21',
        "          - ERROR http.server.request.exception: RuntimeError: the reviews database is unreachable",
    ]
    assert "- ERROR internalhttp:" not in result.stdout


def test_the_demo_fails_and_says_why_when_nothing_listens_at_the_endpoint() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"

    result = _run_demo(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)

    assert result.returncode == 1
    assert f"export failed: nothing answers at {endpoint}" in result.stderr
    assert "demo: FAILED" in result.stderr
    assert "demo: OK" not in result.stdout


def test_the_demo_fails_when_the_services_log_that_their_exports_failed(not_a_collector: str) -> None:
    result = _run_demo(OTEL_EXPORTER_OTLP_ENDPOINT=not_a_collector)

    assert result.returncode == 1, result.stdout
    assert "export failed: the services could not deliver their telemetry" in result.stderr
    assert "Failed to export" in result.stderr
    assert "they exported their telemetry" not in result.stdout
    assert "demo: FAILED" in result.stderr
