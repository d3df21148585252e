"""Issue #3, lifecycle: ``opentelemetry-instrument`` traces an application
that contains no OpenTelemetry code at all, through the entry point, even
though the application imports ``InternalHTTPServer`` by name at module top.

Each test runs the application in a fresh interpreter with the
``opentelemetry-instrument`` script installed next to this one, the console
span exporter, and an environment holding no OTEL_* variable but the ones the
test sets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

OPENTELEMETRY_INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
TIMEOUT_SECONDS = 60

APP = """\
import sys

from internalhttp.server import InternalHTTPServer

server = InternalHTTPServer("shop")


@server.route("/users/<user_id>")
def get_user(headers, body, user_id):
    return {"status": 200, "body": {"id": user_id}}


response = server.handle_request("GET", "/users/42", {}, b"")
assert response == {"status": 200, "body": {"id": "42"}}, response
print("server class:", type(server).__name__, file=sys.stderr)
"""


def _run_instrumented(app_dir: Path, **otel_env: str) -> subprocess.CompletedProcess[str]:
    assert OPENTELEMETRY_INSTRUMENT.is_file(), f"{OPENTELEMETRY_INSTRUMENT} is missing (opentelemetry-distro)"
    app = app_dir / "app.py"
    app.write_text(APP)
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env.update(OTEL_SERVICE_NAME="auto-instrumentation-test", **otel_env)
    command = [
        str(OPENTELEMETRY_INSTRUMENT),
        "--traces_exporter",
        "console",
        "--metrics_exporter",
        "none",
        "--logs_exporter",
        "none",
        sys.executable,
        str(app),
    ]
    result = subprocess.run(
        command, cwd=app_dir, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
    )
    assert result.returncode == 0, f"the application failed:\n{result.stderr}"
    return result


def _console_spans(stdout: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed: JSON objects one after the other."""
    decoder = json.JSONDecoder()
    spans: list[dict[str, Any]] = []
    position = 0
    while True:
        while position < len(stdout) and stdout[position].isspace():
            position += 1
        if position == len(stdout):
            return spans
        span, position = decoder.raw_decode(stdout, position)
        spans.append(span)


def test_opentelemetry_instrument_records_a_server_span_named_after_the_route(tmp_path: Path) -> None:
    result = _run_instrumented(tmp_path)

    spans = [(span["kind"], span["name"]) for span in _console_spans(result.stdout)]
    assert spans == [("SpanKind.SERVER", "GET /users/<user_id>")]


def test_opentelemetry_instrument_replaces_the_class_before_the_application_imports_it(
    tmp_path: Path,
) -> None:
    result = _run_instrumented(tmp_path)

    assert "server class: _InstrumentedInternalHTTPServer" in result.stderr


def test_disabling_the_internalhttp_instrumentation_records_no_span(tmp_path: Path) -> None:
    result = _run_instrumented(tmp_path, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="internalhttp")

    assert "server class: InternalHTTPServer" in result.stderr
    assert _console_spans(result.stdout) == []
